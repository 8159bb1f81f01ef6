"""`benchkit score`: the eval metrics on a folder of images made elsewhere.

Images are matched to prompts by a ``file`` column in the prompts file, or by the
``{prompt_id}_{seed}.png`` names benchkit itself writes. The result is a run directory
(manifest, samples.jsonl pointing at the original files, results.json) like any other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from benchkit.distributed import current_world
from benchkit.errors import BenchkitError
from benchkit.evaluate import git_sha, now, score_run
from benchkit.hardware import fingerprint
from benchkit.rundir import RunDir
from metrics import parse_metric_names
from prompts import PromptSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def match_images(folder: Path, prompt_set: PromptSet) -> list[dict[str, Any]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchkitError(f"{folder} is not a folder of images")
    by_id = {r.prompt_id: r for r in prompt_set.records}
    records: list[dict[str, Any]] = []
    if all("file" in r.meta for r in prompt_set.records):
        for r in prompt_set.records:
            path = folder / r.meta["file"]
            if not path.exists():
                raise BenchkitError(f"{path} listed in {prompt_set.source} does not exist")
            seed = int(r.meta.get("seed") or 0)
            records.append(_record(r, seed, path))
        return records
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BenchkitError(f"{folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    for path in files:
        pid, _, seed_text = path.stem.rpartition("_")
        if pid in by_id and seed_text.isdigit():
            records.append(_record(by_id[pid], int(seed_text), path))
        elif path.stem in by_id:
            records.append(_record(by_id[path.stem], 0, path))
        else:
            raise BenchkitError(
                f"{path}: no prompt with id '{pid or path.stem}' in {prompt_set.source}; name images {{prompt_id}}_{{seed}}.png or add a 'file' column"
            )
    return records


def _record(rec, seed: int, path: Path) -> dict[str, Any]:
    return {"prompt_id": rec.prompt_id, "prompt": rec.prompt, "seed": seed, "meta": dict(rec.meta),
            "file": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def score_folder(folder: Path, prompt_set: PromptSet, metrics: list[str], out: Path, cache_dir: Path,
                 device: torch.device, show_progress: bool = True) -> dict[str, Any]:
    names = parse_metric_names(metrics)
    if "latency" in names:
        raise BenchkitError("latency cannot be measured on existing images; use `benchkit eval` to time a model")
    records = match_images(folder, prompt_set)
    identity = {"source": str(Path(folder).resolve()), "prompt_set_sha256": prompt_set.sha256,
                "files_sha256": hashlib.sha256("".join(r["sha256"] for r in records).encode()).hexdigest()}
    manifest = {"benchkit_run": 1, "created": now(), "command": "score", "source": str(Path(folder).resolve()),
                "prompt_set": prompt_set.describe(), "seeds": sorted({r["seed"] for r in records}),
                "hardware": fingerprint(include_dtype_support=False), "git_sha": git_sha(), "device": device.type}
    world = current_world(device)
    if world.is_main:
        run = RunDir.open(out, identity, manifest, overwrite=True)
        run.replace_records(records)
    world.barrier()
    run = RunDir(out)
    results = score_run(run, names, cache_dir, world.device(device), show_progress, world=world)
    if world.is_main:
        run.update_manifest(status="complete", completed=now())
    return results
