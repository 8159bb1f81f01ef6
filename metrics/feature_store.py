"""One feature pass per image: extractor features cached on disk by (image content, extractor, preprocessing).

A :class:`FeatureView` names the path from an image file to a feature vector: the extractor (its
name and weights' sha256) and the preprocessing (the metric's preprocessor key, which names the
function and its parameters). Features are stored per view, keyed by the sha256 of the image
file's bytes, so they follow the content, not the file name: rescoring a run with another metric on
the same view, or using the run as another run's reference, reads them back instead of decoding,
resizing and running the network again.

Layout under a store root (``RUN/features`` for a run's own images, ``<cache>/features`` for
references)::

    features/<view id>/view.json          the view's parts (what the id hashes)
    features/<view id>/part-<hash>.npz    sha256 (N, unicode) + features (N x dim, float32)

Parts are written whole (a temporary name, then a rename) and never changed; a damaged or foreign
part is skipped (its images are computed again), never trusted. Features are float32 on disk and
every consumer reads them through :func:`as_stored`, so a cached number equals a fresh one bit for
bit (the extractors' networks compute in float32, so the rounding loses nothing).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from benchkit.core.atomic import atomic_target, write_json_atomic
from benchkit.core.errors import BenchkitError

FOLDER = "features"
_PART = re.compile(r"part-[0-9a-f]{16,64}\.npz")
_DAMAGED = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)


@dataclass(frozen=True)
class FeatureView:
    """What a feature vector is a function of, besides the image: the extractor and the preprocessing."""

    extractor: str  # registry name of the network
    extractor_sha256: str  # its weights
    preprocessing: str  # the preprocessor key (names the function and everything it depends on)
    dim: int

    @property
    def id(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict:
        return {**asdict(self), "id": self.id}


def as_stored(features: np.ndarray) -> np.ndarray:
    """Features as the store keeps them (float32), handed to metrics in float64."""
    return np.asarray(features, dtype=np.float32).astype(np.float64)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes: the key its features are stored under."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class FeatureStore:
    """Features of every view, looked up in ``roots`` (first hit wins) and written to ``write_root``.

    ``write_root`` is a folder this process may write (the run it holds the lock of, or the
    cache); the other roots are read only (a reference run's own features). ``write_root`` None:
    look up only.
    """

    def __init__(self, roots: Sequence[Path], write_root: Path | None = None):
        self.write_root = Path(write_root) if write_root is not None else None
        ordered = ([self.write_root] if self.write_root is not None else []) + [Path(r) for r in roots]
        self.roots = list(dict.fromkeys(ordered))
        self._index: dict[str, dict[str, np.ndarray]] = {}  # view id -> {image sha256: float32 features}
        self.hits = 0
        self.added = 0

    def _load(self, view: FeatureView) -> dict[str, np.ndarray]:
        if view.id in self._index:
            return self._index[view.id]
        found: dict[str, np.ndarray] = {}
        for root in reversed(self.roots):  # earlier roots win: read last, they overwrite
            folder = root / FOLDER / view.id
            if not folder.is_dir():
                continue
            for part in sorted(folder.iterdir()):
                if not _PART.fullmatch(part.name):
                    continue
                try:
                    with np.load(part, allow_pickle=False) as data:
                        shas, feats = data["sha256"], data["features"]
                except _DAMAGED:
                    continue  # a damaged part: its images are computed again
                if feats.dtype != np.float32 or feats.ndim != 2 or feats.shape != (len(shas), view.dim):
                    continue  # not a part of this view
                found.update(zip((str(s) for s in shas), feats))
        self._index[view.id] = found
        return found

    def lookup(self, view: FeatureView, shas: Sequence[str]) -> list[np.ndarray | None]:
        """The stored features of each image (None where there are none)."""
        index = self._load(view)
        out = [index.get(s) for s in shas]
        self.hits += sum(f is not None for f in out)
        return out

    def add(self, view: FeatureView, shas: Sequence[str], features: np.ndarray) -> None:
        """Store new features (one part file, written whole); images already stored are skipped."""
        index = self._load(view)
        feats = np.asarray(features, dtype=np.float32)
        if feats.shape != (len(shas), view.dim):
            raise ValueError(f"features of shape {feats.shape} for {len(shas)} images of a {view.dim}-d view")
        new = [i for i, s in enumerate(shas) if s not in index]
        if not new:
            return
        keep_shas = np.array([shas[i] for i in new])
        keep = feats[new]
        index.update(zip(keep_shas.tolist(), keep))
        self.added += len(new)
        if self.write_root is None:
            return
        folder = self.write_root / FOLDER / view.id
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / "view.json").exists():
                write_json_atomic(folder / "view.json", view.describe())
        except OSError as exc:
            raise BenchkitError(f"cannot write cached features under {folder}: {exc.strerror or exc}") from None
        name = hashlib.sha256(("\n".join(keep_shas.tolist())).encode()).hexdigest()[:32]
        with atomic_target(folder / f"part-{name}.npz") as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to the temporary name
                np.savez(f, sha256=keep_shas, features=keep)
