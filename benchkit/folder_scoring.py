"""`benchkit score`: the eval metrics on a folder of images made elsewhere.

Images are matched to prompts by a ``file`` column in the prompts file, or by the
``{prompt_id}_{seed}.png`` names benchkit itself writes. The result is a run directory
(manifest, samples.jsonl pointing at the original files, results.json) like any other.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import torch

from benchkit.core.distributed import current_world
from benchkit.core.errors import BenchkitError
from benchkit.core.hardware import fingerprint
from benchkit.core.lock import folder_lock
from benchkit.core.outpaths import check_separate
from benchkit.core.provenance import git_sha, now
from benchkit.core.rundir import RunDir
from benchkit.models.families import family_of_images
from benchkit.scoring import default_metrics, plan_records, score_run
from metrics import MetricContext, ScorePlan, check_metrics, parse_metric_names
from metrics.loading import check_workers
from metrics.reference_sets import open_reference
from prompts import PromptSet, is_seed

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


_NAME = re.compile(r"(?P<pid>.+)_(?P<seed>\d+)")


def match_images(folder: Path, prompt_set: PromptSet) -> tuple[list[dict[str, Any]], set[tuple[int, int]]]:
    """The sample records of the folder's images, and the (height, width) sizes they come in.

    Each file is read once: its bytes give the record's sha256 and, from the header, its size."""
    folder = Path(folder)
    sizes: set[tuple[int, int]] = set()
    if not folder.is_dir():
        raise BenchkitError(f"{folder} is not a folder of images")
    by_id = {r.prompt_id: r for r in prompt_set.records}
    records: list[dict[str, Any]] = []
    if all("file" in r.meta for r in prompt_set.records):
        for r in prompt_set.records:
            path = folder / str(r.meta["file"])
            if not path.is_file():
                raise BenchkitError(f"{path} listed in {prompt_set.source} (prompt {r.prompt_id}) is not a readable file")
            records.append(_record(r, _seed_cell(r.meta.get("seed"), r.prompt_id, prompt_set.source), path, sizes))
        return records, sizes
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BenchkitError(f"{folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    for path in files:
        named = _NAME.fullmatch(path.stem)
        if named and named["pid"] in by_id:
            records.append(_record(by_id[named["pid"]], _seed_cell(named["seed"], named["pid"], path), path, sizes))
        elif path.stem in by_id:
            records.append(_record(by_id[path.stem], 0, path, sizes))
        else:
            pid = named["pid"] if named else path.stem
            raise BenchkitError(
                f"{path}: no prompt with id '{pid}' in {prompt_set.source}; name images {{prompt_id}}_{{seed}}.png "
                "(seed: a non-negative integer) or add a 'file' column"
            )
    seen: dict[tuple[str, int], str] = {}
    for rec in records:
        key = (rec["prompt_id"], rec["seed"])
        if key in seen:
            raise BenchkitError(f"{rec['file']} and {seen[key]} are both prompt {key[0]} seed {key[1]}; keep one")
        seen[key] = rec["file"]
    return records, sizes


def _seed_cell(value: Any, prompt_id: str, where: Any) -> int:
    """A seed from a file name or a prompt file's ``seed`` column: a non-negative integer (as `eval` writes)."""
    if value is None or value == "":
        return 0
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not is_seed(int(text)):
        raise BenchkitError(f"{where}: seed {value!r} of prompt {prompt_id} is not a non-negative integer; "
                            "fix the seed column or the file name")
    return int(text)


def _record(rec, seed: int, path: Path, sizes: set[tuple[int, int]]) -> dict[str, Any]:
    """The sample record of one image; its (height, width), read from the header, is added to ``sizes``."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BenchkitError(f"cannot read image {path}: {exc.strerror or exc} (a broken link or a missing file?)") from None
    try:
        with Image.open(io.BytesIO(data)) as im:  # the header only: no pixels are decoded here
            sizes.add((im.height, im.width))
    except (OSError, UnidentifiedImageError) as exc:
        raise BenchkitError(f"cannot read image {path.resolve()}: {exc}") from None
    return {"prompt_id": rec.prompt_id, "prompt": rec.prompt, "seed": seed, "meta": dict(rec.meta),
            "file": str(path.resolve()), "sha256": hashlib.sha256(data).hexdigest()}


def score_folder(folder: Path, prompt_set: PromptSet, metrics: list[str] | None, out: Path, cache_dir: Path,
                 device: torch.device, show_progress: bool = True, wait: bool = False,
                 workers: int | None = None, reference: Path | None = None) -> dict[str, Any]:
    """Score the images of ``folder`` into the run folder ``out`` (a new folder or an earlier score run).

    ``workers``: DataLoader processes that decode and prepare the images (None: one per core but
    one, at most 8; 0: none); the scores do not depend on it.

    ``out`` may be neither the image folder nor inside or around it, nor any other folder that is
    not a benchkit score run: only score runs are replaced. The images are read, never written.
    """
    names = parse_metric_names(metrics) if metrics is not None else None
    workers = check_workers(workers)
    if names is not None and "latency" in names:
        raise BenchkitError("latency cannot be measured on existing images; use `benchkit eval` to time a model")
    check_separate(out, [("image folder", folder), ("prompt file", prompt_set.file), ("--reference", reference)])
    ref = open_reference(reference, cache_dir, show_progress) if reference is not None else None
    records, sizes = match_images(folder, prompt_set)
    per_prompt: dict[str, int] = {}
    for r in records:
        per_prompt[r["prompt_id"]] = per_prompt.get(r["prompt_id"], 0) + 1
    family = family_of_images(sizes)  # images only one family makes (the toy's 8x8 digits) are that family's
    plan = ScorePlan(records=plan_records(prompt_set, set(per_prompt)), seeds_per_prompt=min(per_prompt.values()), media="image",
                     family=family.name if family else None, image_sizes=sizes)
    ctx = MetricContext(cache_dir=cache_dir, device=device, reference=ref)
    left_out: dict[str, str] = {}
    if names is None:
        names, left_out = default_metrics(plan, ctx, timed=False)
    check_metrics(names, plan, ctx)
    identity = {"source": str(Path(folder).resolve()), "prompt_set_sha256": prompt_set.sha256,
                "files_sha256": hashlib.sha256("".join(r["sha256"] for r in records).encode()).hexdigest()}
    manifest = {"benchkit_run": 1, "created": now(), "command": "score", "source": str(Path(folder).resolve()),
                "prompt_set": prompt_set.describe(), "seeds": sorted({r["seed"] for r in records}),
                "hardware": fingerprint(include_dtype_support=False), "git_sha": git_sha(), "device": device.type}
    if left_out:
        manifest["metrics_left_out"] = left_out
    world = current_world(device)
    with folder_lock(out, "benchkit score", wait=wait):
        if world.is_main:
            run = RunDir.open(out, identity, manifest, overwrite=True)
            run.replace_records(records)
        world.barrier()
        run = RunDir(out)
        results = score_run(run, names, cache_dir, world.device(device), show_progress, world=world, left_out=left_out,
                            workers=workers, reference=ref)
        if world.is_main:
            run.update_manifest(status="complete", completed=now())
    return results
