"""Reference image sets for FID, built from a user's local COCO val2014 copy.

COCO images keep their Flickr licenses, so benchkit ships captions only; users point it at
their own ``val2014/`` folder. Two pairings are in use in the papers:

- ``all``: every val2014 image (40,504) as the reference, whatever the prompts (GigaGAN's
  and DMD2's SD1.5 COCO-30k protocol);
- ``matched``: exactly the images whose ids the prompt subset uses (the COCO-10k style).

A reference set is a list of files with a content hash over their names and sha256s; the
FID statistics computed from it are cached under that hash, so a changed folder can never
reuse stale statistics.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit.core.errors import BenchkitError
from benchkit.core.progress import progress_bar
from benchkit.core.rundir import write_json_atomic
from prompts import PromptSet

VAL2014_COUNT = 40504
_COCO_NAME = re.compile(r"^COCO_val2014_(\d{12})\.jpg$")


def coco_file_name(image_id: int) -> str:
    return f"COCO_val2014_{image_id:012d}.jpg"


@dataclass
class ReferenceSet:
    name: str
    pairing: str  # "all" or "matched"
    root: Path
    files: list[str]  # names relative to root, sorted by image id
    file_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        blob = json.dumps(sorted(self.file_sha256.items()))
        return hashlib.sha256(blob.encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "pairing": self.pairing, "root": str(self.root), "count": len(self.files),
                "sha256": self.sha256}


def _scan(coco_dir: Path) -> dict[int, str]:
    if not coco_dir.is_dir():
        raise BenchkitError(f"--coco-dir {coco_dir} is not a folder; point it at your COCO val2014/ folder")
    found = {}
    for p in coco_dir.iterdir():
        m = _COCO_NAME.match(p.name)
        if m:
            found[int(m.group(1))] = p.name
    if not found:
        raise BenchkitError(f"{coco_dir} holds no COCO_val2014_<id>.jpg files; point --coco-dir at val2014/")
    return found


def _prompt_ids(prompt_set: PromptSet) -> list[int]:
    try:
        return [int(r.prompt_id) for r in prompt_set.records]
    except ValueError:
        raise BenchkitError(f"prompt set {prompt_set.name} has non-numeric ids; matched COCO pairing needs COCO image ids") from None


def coco_reference(coco_dir: Path, pairing: str, prompt_set: PromptSet | None = None, allow_partial: bool = False,
                   show_progress: bool = True) -> ReferenceSet:
    """Pair a val2014 folder with a protocol, verify ids and counts, and hash the files."""
    coco_dir = Path(coco_dir)
    found = _scan(coco_dir)
    if pairing == "all":
        if len(found) != VAL2014_COUNT and not allow_partial:
            raise BenchkitError(
                f"{coco_dir} has {len(found)} val2014 images, the protocol needs all {VAL2014_COUNT}; "
                "complete the folder or pass --allow-partial (the FID is then not comparable)"
            )
        ids = sorted(found)
        name = "coco2014-val-all"
    elif pairing == "matched":
        if prompt_set is None:
            raise BenchkitError("matched pairing needs a prompt set (e.g. --prompts coco2014-10k)")
        ids = sorted(set(_prompt_ids(prompt_set)))
        missing = [coco_file_name(i) for i in ids if i not in found]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise BenchkitError(f"{coco_dir} lacks {len(missing)} image(s) the prompts need: {shown}")
        name = f"coco2014-matched-{prompt_set.name}-{len(ids)}"
    else:
        raise BenchkitError(f"unknown pairing '{pairing}'; use 'all' or 'matched'")
    files = [found[i] for i in ids]
    ref = ReferenceSet(name, pairing, coco_dir, files)
    with progress_bar(show_progress) as bar:
        task = bar.add_task("hash reference", total=len(files), info="")
        for f in files:
            ref.file_sha256[f] = hashlib.sha256((coco_dir / f).read_bytes()).hexdigest()
            bar.advance(task)
    return ref


def write_reference(ref: ReferenceSet, out_dir: Path) -> Path:
    """reference.json: the pairing, counts, content hash and every file with its sha256."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "reference.json"
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if not (isinstance(old, dict) and {"pairing", "sha256", "files"} <= set(old)):
            raise BenchkitError(f"{path} exists and is not a benchkit reference; choose another --out")
    write_json_atomic(path, {**ref.describe(), "files": ref.file_sha256})
    return path


def cache_fid_statistics(ref: ReferenceSet, protocol: str, cache_dir: Path, device: str = "auto",
                         show_progress: bool = True) -> dict[str, Any]:
    """Inception statistics of ``ref`` under an FID protocol, cached under the reference's content hash.

    The FID metrics of that protocol find them through the cache's index
    (``<cache>/references/<protocol>.json``); a changed folder has a new hash, so stale
    statistics are never reused. Returns the index entry.
    """
    from benchkit.core.hardware import resolve_device
    from metrics.fid import build_reference_stats, get_protocol

    proto = get_protocol(protocol)
    if proto.pairing not in ("any", ref.pairing):
        raise BenchkitError(f"protocol {proto.name} uses the '{proto.pairing}' reference pairing, not '{ref.pairing}'; "
                            f"pass --pairing {proto.pairing}" + (f" -p {proto.prompts}" if proto.prompts else ""))
    files = [ref.root / f for f in ref.files]
    return build_reference_stats(files, ref.describe(), proto, Path(cache_dir), resolve_device(device),
                                 show_progress=show_progress, sha256s=[ref.file_sha256[f] for f in ref.files])
