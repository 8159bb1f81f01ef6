"""The run directory: an append-only, resumable record of what was generated.

Layout (a contract other tools parse; keys are only ever added)::

    RUN/manifest.json   spec, recipe, prompt set, seeds, hardware, versions, sessions, status
    RUN/samples.jsonl   one line per image: prompt_id, prompt, seed, file, sha256, seconds, ...
    RUN/images/         {prompt_id}_{seed}.png
    RUN/results.json    {"run": {...}, "metrics": [...]}
    RUN/shards/         samples-rank{R}.jsonl while a multi-process run is generating

Under torchrun / accelerate launch each rank commits its lines to its own shard file (no two
processes append to one file); rank 0 folds the shard files into samples.jsonl when the ranks
have finished, and recovery folds whatever a killed run left there.

Crash safety: an image is written to a temporary name and renamed into place, then its
line is appended to samples.jsonl and fsynced. A line is the commit point: on resume a torn
last line is cut off, lines whose image is missing or corrupt are dropped, and image files
without a line are deleted, so every item ends up exactly once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, TypedDict

import numpy as np

from benchkit.core.atomic import write_json_atomic, write_text_atomic  # noqa: F401 (re-exported)
from benchkit.core.errors import BenchkitError, describe_os_error


class SampleRecord(TypedDict, total=False):
    """One line of samples.jsonl: an image (or clip) and how it was made. Keys are only ever added."""

    prompt_id: str
    prompt: str
    seed: int
    meta: dict[str, Any]  # the prompt set's columns (category, challenge, digit...)
    file: str  # images/{prompt_id}_{seed}.png, relative to the run (absolute for `benchkit score`)
    sha256: str  # of the image file
    seconds: float  # this item's share of its batch's generation time
    batch_id: str  # s{session}[-r{rank}]-b{index}
    batch_seconds: float
    batch_size: int
    stages: dict[str, Any]  # per-stage seconds of the batch (pipelines)
    video: str  # videos/{prompt_id}_{seed}.mp4|.png of a video model
    video_format: str  # mp4 | apng
    fps: str
    frames: str
    input_image: str  # image-to-video: the image the item was conditioned on, and its sha256
    input_image_sha256: str


class Session(TypedDict, total=False):
    """One process's part of a run (one per rank and per resume)."""

    started: str
    finished: str
    pid: int
    load_seconds: float
    first_load_in_process: bool
    generated: int
    resumed_with: int
    batch_size: int
    threads: int
    warmup_seconds: float
    warmup_images: int
    warmup_stages: dict[str, Any]
    peak_memory_bytes: int
    peak_memory_kind: str
    rank: int
    world_size: int
    local_rank: int
    backend: str | None


class Manifest(TypedDict, total=False):
    """manifest.json: what a run is (its identity) and how it was made. Keys are only ever added."""

    benchkit_run: int  # 1: this folder is a benchkit run (what --overwrite and recovery check)
    created: str
    completed: str
    status: str  # running | complete
    command: str  # eval | score
    identity: dict[str, Any]  # what must match for a rerun to resume: spec hash, prompts, seeds, dtype, device
    spec: dict[str, Any]
    model: dict[str, Any]  # path, weights sha256 and files, size, resolution, family, scheduler, LoRA...
    prompt_set: dict[str, Any]
    seeds: list[int]
    seed_policy: str
    device: str
    dtype: str
    batch_size: int
    warmup_batches: int
    hardware: dict[str, Any]
    runtime: dict[str, Any]
    git_sha: str | None
    sessions: list[Session]
    metrics_left_out: dict[str, str]
    source: str  # `benchkit score`: the folder of images scored


MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
SHARDS = "shards"
RESULTS = "results.json"
ITEM_SCORES = "item_scores.json"  # each image's score under the per-image metrics, for paired comparisons
IMAGES = "images"


def slug(text: str) -> str:
    """A file-name-safe form of a label, for run and job folders."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchkitError(f"{path} not found: is this a benchkit run directory?") from None
    except ValueError as exc:
        raise BenchkitError(f"{path} is not valid JSON ({exc}); the file is damaged") from None


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes without metadata, so the same pixels always give the same file and hash."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB")
            return np.asarray(im)
    except (OSError, UnidentifiedImageError) as exc:
        raise BenchkitError(f"cannot read image {path}: {exc}") from None


class RunDir:
    """One run's folder. Create or reopen with :meth:`open`; generation appends batches."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def images_dir(self) -> Path:
        return self.path / IMAGES

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def samples_path(self) -> Path:
        return self.path / SAMPLES

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS

    def shard_samples_path(self, rank: int) -> Path:
        return self.path / SHARDS / f"samples-rank{rank}.jsonl"

    def _shard_files(self) -> list[Path]:
        folder = self.path / SHARDS
        return sorted(folder.glob("samples-rank*.jsonl"), key=lambda p: int(p.stem.removeprefix("samples-rank"))) \
            if folder.is_dir() else []

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def kind(self) -> str | None:
        """The command that made this run ("eval", "score"), or None when the folder is no benchkit run."""
        if not self.manifest_path.is_file():
            return None
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not ("benchkit_run" in data or "identity" in data):
            return None  # RunDir.open writes both; a manifest.json without them is someone else's
        return str(data.get("command") or "eval")

    @classmethod
    def open(cls, path: Path, identity: dict[str, Any], manifest: dict[str, Any], overwrite: bool = False) -> "RunDir":
        """Create a new run, or reopen one made with the same identity (else a clear error).

        ``overwrite`` replaces only a benchkit run of the same kind (its own files; anything else a
        user put in the folder stays); any other non-empty folder is refused, never deleted.
        """
        run = cls(path)
        kind = manifest.get("command", "eval")
        if overwrite and run.path.exists():
            found = run.kind()
            if found == kind:
                run.clear()
            elif _user_entries(run.path):
                what = f"a benchkit {found} run" if found else "a folder that is not a benchkit run"
                raise BenchkitError(f"{run.path} is {what}; benchkit only replaces its own {kind} runs: "
                                    "choose an empty or new folder")
        if run.exists():
            found = run.kind()
            if found is None:
                raise BenchkitError(f"{run.path} has a {MANIFEST} that is not a benchkit run's; choose an empty or new folder")
            if found != kind:
                raise BenchkitError(f"{run.path} holds a benchkit {found} run, not a {kind} run; choose another folder")
            old = read_json(run.manifest_path).get("identity", {})
            if old != identity:
                diff = next((k for k in sorted(set(old) | set(identity)) if old.get(k) != identity.get(k)), "?")
                raise BenchkitError(
                    f"{run.path} holds a run with a different '{diff}'; use another --out, or --overwrite to replace it"
                )
            return run
        if run.path.exists() and _user_entries(run.path) and not overwrite:
            raise BenchkitError(f"{run.path} exists and is not a benchkit run; choose an empty or new --out")
        try:
            run.images_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise describe_os_error(exc, run.path, "creating") from None
        write_json_atomic(run.manifest_path, {**manifest, "identity": identity, "status": "running", "sessions": []})
        return run

    def clear(self) -> None:
        """Remove this run's own files (manifest, sample logs, results, generated images and clips).

        Only names benchkit writes are removed; a file a user added to the folder is left alone.
        """
        for name in (MANIFEST, SAMPLES, RESULTS, ITEM_SCORES):
            (self.path / name).unlink(missing_ok=True)
        for folder, pattern in ((self.images_dir, _OUTPUT_FILE), (self.path / "videos", _OUTPUT_FILE),
                                (self.path / SHARDS, _SHARD_FILE)):
            if not folder.is_dir():
                continue
            for f in folder.iterdir():
                if f.is_file() and (pattern.fullmatch(f.name) or _TEMP_FILE.fullmatch(f.name)):
                    f.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()
        for f in self.path.iterdir():
            if f.is_file() and _TEMP_FILE.fullmatch(f.name):
                f.unlink()

    # -- manifest -------------------------------------------------------------------------
    def manifest(self) -> Manifest:
        return read_json(self.manifest_path)

    def update_manifest(self, **changes: Any) -> dict[str, Any]:
        data = self.manifest()
        data.update(changes)
        write_json_atomic(self.manifest_path, data)
        return data

    # -- samples --------------------------------------------------------------------------
    def records(self) -> list[SampleRecord]:
        """Committed sample lines (a torn last line from a crash is ignored)."""
        return _committed_lines(self.samples_path)

    def replace_records(self, records: list[SampleRecord]) -> None:
        """Rewrite samples.jsonl atomically with exactly these records (no-op when unchanged)."""
        lines = "".join(json.dumps(r) + "\n" for r in records)
        current = self.samples_path.read_text(encoding="utf-8") if self.samples_path.exists() else ""
        if current == lines:
            return
        write_text_atomic(self.samples_path, lines)

    def recover(self, verify_hashes: bool = True) -> dict[str, SampleRecord]:
        """Repair after a crash and return the committed records by key (prompt_id_seed)."""
        good: dict[str, dict[str, Any]] = {}
        shard_files = self._shard_files()
        for rec in self.records() + [r for f in shard_files for r in _committed_lines(f)]:
            key = f"{rec['prompt_id']}_{rec['seed']}"
            if key in good:
                continue
            file = self.path / rec["file"]
            if not file.exists():
                continue
            if verify_hashes and hashlib.sha256(file.read_bytes()).hexdigest() != rec["sha256"]:
                continue
            good[key] = rec
        self.replace_records(list(good.values()))
        for f in shard_files:  # folded into samples.jsonl above; a crash before this only leaves duplicates
            f.unlink()
        if shard_files and not any((self.path / SHARDS).iterdir()):
            (self.path / SHARDS).rmdir()
        keep = {Path(r["file"]).name for r in good.values()}
        if self.images_dir.exists():
            for f in self.images_dir.iterdir():
                # an uncommitted image or temp file of a killed run; never a file benchkit did not name
                if f.name not in keep and f.is_file() and (_OUTPUT_FILE.fullmatch(f.name) or _TEMP_FILE.fullmatch(f.name)):
                    f.unlink()
        return good

    def write_batch(self, records: list[SampleRecord], images: Iterable[np.ndarray], rank: int | None = None) -> None:
        """Write images (temp file + rename), then commit their lines with one fsynced append.

        ``rank`` (multi-process runs) commits to that rank's shard file instead of samples.jsonl.
        """
        samples = self.samples_path if rank is None else self.shard_samples_path(rank)
        try:
            samples.parent.mkdir(exist_ok=True)
            for rec, image in zip(records, images, strict=True):
                data = encode_png(image)
                final = self.images_dir / f"{rec['prompt_id']}_{rec['seed']}.png"
                tmp = final.with_name(f".{final.name}.tmp")
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
                rec["file"] = f"{IMAGES}/{final.name}"
                rec["sha256"] = hashlib.sha256(data).hexdigest()
            with open(samples, "a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r) + "\n" for r in records))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise describe_os_error(exc, self.path) from None

    def check_free_space(self, n_images: int, bytes_per_image: int) -> None:
        """Fail before generating when the disk clearly cannot hold the remaining images."""
        need = n_images * (bytes_per_image + 512) + (1 << 20)
        free = shutil.disk_usage(self.path).free
        if free < need:
            raise BenchkitError(
                f"not enough space in {self.path}: about {need / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free; free space or choose another --out"
            )

    def write_results(self, results: dict[str, Any]) -> None:
        write_json_atomic(self.results_path, results)

    @property
    def item_scores_path(self) -> Path:
        return self.path / ITEM_SCORES

    def item_scores(self) -> dict[str, dict[str, Any]]:
        """{metric: {"higher_is_better", "scores": {prompt_id: {seed: score}}}}; empty when none were kept."""
        if not self.item_scores_path.is_file():
            return {}
        data = read_json(self.item_scores_path)
        return data.get("metrics") or {} if isinstance(data, dict) else {}

    def write_item_scores(self, metrics: dict[str, dict[str, Any]]) -> None:
        write_json_atomic(self.item_scores_path, {"metrics": metrics})


# The names benchkit gives what it writes in a run; only these are ever removed.
_OUTPUT_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*_\d+\.(png|mp4)")
_SHARD_FILE = re.compile(r"samples-rank\d+\.jsonl")
_TEMP_FILE = re.compile(r"\..+\.tmp")


def _user_entries(folder: Path) -> list[str]:
    """What a folder holds besides benchkit's lock file."""
    from benchkit.core.lock import LOCK_NAME

    return [p.name for p in folder.iterdir() if p.name != LOCK_NAME] if folder.is_dir() else []


def committed_records(run: Path) -> list[SampleRecord]:
    """A run folder's committed sample records, read without opening (or locking) the run."""
    return _committed_lines(Path(run) / SAMPLES)


def _committed_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a samples file up to the first torn one (only a crash's last line can be)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out
