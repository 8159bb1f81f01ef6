"""Any image set as a reference: a benchkit run (``--reference RUN``) or a folder of images.

FID, PRDC, FD-DINOv2 and CMMD against the teacher's own samples, or against a local MJHQ-30K copy,
are the same computation as against COCO: the reference's features under the metric's feature
view. They go through the same feature store as a run's own images (keyed by file content), so a
reference is read once per view and extractor, whichever metric or run asks next.

A reference is its list of image files and their sha256 (the set's identity, recorded in every
value computed against it). Hashing a 30k-image folder takes a while, so a folder's hashes are
remembered in ``<cache>/references/folders/`` by (path, size, mtime) and only changed files are
hashed again; ``benchkit reference folder DIR`` does the hashing and the feature passes up front.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchkit.core.atomic import write_json_atomic
from benchkit.core.errors import BenchkitError
from benchkit.core.progress import progress_bar
from benchkit.core.rundir import MANIFEST, committed_records, read_image
from metrics.feature_store import FOLDER, FeatureStore, FeatureView, as_stored, file_sha256

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CATEGORY_FILES = ("meta_data.json",)  # MJHQ-30K's: {image id: {"category": ..., "prompt": ...}}
BATCH = 64


@dataclass
class ImageReference:
    """A fixed, ordered set of image files with their content hashes."""

    kind: str  # "run" or "folder"
    root: Path
    files: list[Path]
    sha256s: list[str]
    cache_dir: Path
    categories: dict[str, str] = field(default_factory=dict)  # file stem -> category, where a category file says
    category: str | None = None  # this is the part of a reference in one category (see restricted)
    _features: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def sha256(self) -> str:
        """The set's identity: the sorted content hashes (names and order do not change it)."""
        return hashlib.sha256("\n".join(sorted(self.sha256s)).encode()).hexdigest()

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.root}" + (f" [category={self.category}]" if self.category is not None else "")

    def describe(self) -> dict[str, Any]:
        out = {"kind": self.kind, "path": str(self.root), "count": len(self.files), "sha256": self.sha256}
        if self.category is not None:
            out["category"] = self.category
        elif self.categories:
            out["categories"] = len(set(self.categories.values()))
        return out

    def restricted(self, category: str) -> "ImageReference":
        """The images of one category (MJHQ-30K's per-category FID: a category's images against the
        reference images of that category). Its features come from the same store."""
        keep = [i for i, f in enumerate(self.files) if self.categories.get(f.stem) == category]
        return ImageReference(self.kind, self.root, [self.files[i] for i in keep], [self.sha256s[i] for i in keep],
                              self.cache_dir, {self.files[i].stem: category for i in keep}, category)

    def store(self) -> FeatureStore:
        """Look up in the run's own feature folder (a run reference) and the cache; write to the cache only."""
        return FeatureStore([self.root] if self.kind == "run" else [], write_root=self.cache_dir)

    def features(self, view: FeatureView, prepare: Callable[[np.ndarray], Any],
                 extract: Callable[[Sequence[Any]], np.ndarray], show_progress: bool = False) -> np.ndarray:
        """Every reference image's features under ``view`` (float64, in file order): stored ones
        read back, the rest computed as ``extract([prepare(image), ...])`` in batches and stored."""
        if view.id in self._features:
            return self._features[view.id]
        if len(self.files) < 2:
            raise BenchkitError(f"the reference {self.name} holds {len(self.files)} images; a group needs at least 2 "
                                "reference images to compare with")
        store = self.store()
        have = store.lookup(view, self.sha256s)
        missing = [i for i, f in enumerate(have) if f is None]
        if missing:
            with progress_bar(show_progress) as bar:
                task = bar.add_task(f"reference {view.extractor}", total=len(missing), info=self.name)
                for start in range(0, len(missing), BATCH):
                    idx = missing[start : start + BATCH]
                    got = np.asarray(extract([prepare(read_image(self.files[i])) for i in idx]))
                    if got.shape != (len(idx), view.dim):
                        raise BenchkitError(f"extractor {view.extractor} gave features of shape {got.shape} for "
                                            f"{len(idx)} reference images of a {view.dim}-d view")
                    got = got.astype(np.float32)
                    store.add(view, [self.sha256s[i] for i in idx], got)
                    for i, f in zip(idx, got):
                        have[i] = f
                    bar.update(task, advance=len(idx))
        feats = as_stored(np.stack(have)) if have else np.zeros((0, view.dim))
        self._features[view.id] = feats
        return feats


def is_run(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def open_reference(path: Path, cache_dir: Path, show_progress: bool = False) -> ImageReference:
    """``path`` as a reference: a benchkit run (its committed images) or a folder of images.
    One-line errors when it is neither or holds no image."""
    path = Path(path).expanduser()
    if not path.exists():
        raise BenchkitError(f"--reference {path}: no such file or folder; give a benchkit run or a folder of images")
    if not path.is_dir():
        raise BenchkitError(f"--reference {path} is a file; give a benchkit run folder or a folder of images")
    return _run_reference(path, cache_dir) if is_run(path) else folder_reference(path, cache_dir, show_progress)


def _run_reference(run: Path, cache_dir: Path) -> ImageReference:
    try:
        manifest = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BenchkitError(f"--reference {run}: its {MANIFEST} is not readable JSON; is it a benchkit run?") from None
    if not isinstance(manifest, dict) or manifest.get("benchkit_run") != 1:
        raise BenchkitError(f"--reference {run}: its {MANIFEST} is not a benchkit run's")
    records = committed_records(run)
    if len(records) < 2:
        raise BenchkitError(f"--reference {run} has {len(records)} committed images; a reference needs at least 2 "
                            "(finish the run first)")
    files, shas = [], []
    for rec in records:
        f = run / rec["file"]
        try:
            digest = file_sha256(f)
        except OSError:
            raise BenchkitError(f"--reference {run}: image {rec['file']} is missing; resume that run to repair it") from None
        if digest != rec.get("sha256"):
            raise BenchkitError(f"--reference {run}: image {rec['file']} changed since it was generated (sha256 differs "
                                "from samples.jsonl); resume that run to repair it")
        files.append(f)
        shas.append(digest)
    return ImageReference("run", run.resolve(), files, shas, Path(cache_dir))


def _index_path(cache_dir: Path, folder: Path) -> Path:
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:32]
    return Path(cache_dir) / "references" / "folders" / f"{key}.json"


def folder_reference(folder: Path, cache_dir: Path, show_progress: bool = False) -> ImageReference:
    """Every image file under ``folder`` (recursively, sorted by relative path), hashed; hashes of
    files unchanged since the last look (same size and mtime) are read from the cache's index."""
    folder = Path(folder).resolve()
    files = sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                    and FOLDER not in p.relative_to(folder).parts), key=lambda p: p.relative_to(folder).as_posix())
    if len(files) < 2:
        raise BenchkitError(f"{folder} holds {len(files)} image files ({', '.join(IMAGE_SUFFIXES)}); a reference needs at "
                            "least 2")
    index_path = _index_path(cache_dir, folder)
    try:
        known = json.loads(index_path.read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        known = {}
    entries, shas = {}, []
    with progress_bar(show_progress) as bar:
        task = bar.add_task("hash reference", total=len(files), info=str(folder))
        for f in files:
            rel = f.relative_to(folder).as_posix()
            st = f.stat()
            old = known.get(rel) if isinstance(known, dict) else None
            if isinstance(old, list) and len(old) == 3 and old[:2] == [st.st_size, st.st_mtime_ns]:
                digest = str(old[2])
            else:
                digest = file_sha256(f)
            entries[rel] = [st.st_size, st.st_mtime_ns, digest]
            shas.append(digest)
            bar.update(task, advance=1)
    if entries != known:
        try:
            index_path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(index_path, {"folder": str(folder), "files": entries})
        except (OSError, BenchkitError):
            pass  # a read-only cache costs hashing again next time, nothing else
    return ImageReference("folder", folder, files, shas, Path(cache_dir), _categories(folder, files))


def _categories(folder: Path, files: list[Path]) -> dict[str, str]:
    """Each image's category from MJHQ-30K's ``meta_data.json`` (keys are image ids = file stems), if present."""
    for name in CATEGORY_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise BenchkitError(f"{path} is not readable JSON; fix or remove it (it should map image ids to "
                                "{'category': ..., 'prompt': ...})") from None
        if not isinstance(data, dict):
            raise BenchkitError(f"{path} should map image ids to {{'category': ..., 'prompt': ...}}")
        stems = {f.stem for f in files}
        return {k: str(v["category"]) for k, v in data.items()
                if k in stems and isinstance(v, dict) and v.get("category") is not None}
    return {}
