"""`benchkit eval` as a function: spec + prompt set + seeds + metrics -> a run directory.

Generation appends to the RunDir batch by batch (so a killed run resumes), then metrics are
computed from the images on disk, so a resumed run scores exactly what an uninterrupted one
would. Under torchrun / accelerate launch the missing items are split across ranks, each rank
scores its share of the images, and rank 0 merges the metric states and writes results.json.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from benchkit.distributed import World, current_world
from benchkit.errors import BenchkitError
from benchkit.generation import Item, make_generator
from benchkit.hardware import (dtype_name, fingerprint, model_dtype, peak_memory_bytes, reset_peak_memory,
                               resolve_device, runtime_settings, synchronize)
from benchkit.loading import TOY_FAMILY, load_model
from benchkit.lock import folder_lock
from benchkit.outpaths import check_separate
from benchkit.outputs import attach_outputs, describe_model
from benchkit.progress import progress_bar
from benchkit.rundir import RunDir, read_image
from benchkit.spec import ModelSpec, spec_hash
from metrics import MetricContext, SampleBatch, ScorePlan, build_metrics, check_metrics, parse_metric_names
from metrics.breakdown import SEED_FIELD, Breakdown
from prompts import PromptSet, is_seed



def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCHKIT_CACHE", Path.home() / ".cache" / "benchkit"))


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def make_items(prompt_set: PromptSet, seeds: list[int]) -> list[Item]:
    return [
        Item(r.prompt_id, r.prompt, s, tuple(sorted(r.meta.items())))
        for r in prompt_set.records
        for s in seeds
    ]


def _batches(items: list[Item], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_eval(
    spec: ModelSpec,
    prompt_set: PromptSet,
    seeds: list[int],
    out: Path,
    metrics: list[str] | None = None,
    device: str = "auto",
    dtype: str | None = None,
    batch_size: int = 8,
    warmup_batches: int = 1,
    cache_dir: Path | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    wait: bool = False,
) -> dict[str, Any]:
    """Generate every (prompt, seed) item not yet in ``out``, then score the whole run.

    Everything a user can get wrong is checked before work starts: the metric names and what
    each needs (seeds per prompt, weights, references, prompts it can read), the output folder
    against the inputs, and (once the model is loaded, before the first image) the model's
    family and image size against the metrics. ``out`` is locked for the whole call: a second
    process on the same folder is refused in one line, or waits with ``wait``.
    """
    metric_names = parse_metric_names(metrics) if metrics is not None else None  # fail before loading anything
    if batch_size < 1:
        raise BenchkitError(f"--batch-size must be at least 1, got {batch_size}")
    if warmup_batches < 0:
        raise BenchkitError(f"--warmup must be 0 or more, got {warmup_batches}")
    check_seeds(seeds)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    check_separate(out, [("model folder", path) for path in spec.local_paths()]
                   + [("prompt file", prompt_set.file)])
    plan = ScorePlan(records=plan_records(prompt_set), seeds_per_prompt=len(seeds))
    dev = resolve_device(device)
    if metric_names is not None:
        check_metrics(metric_names, plan, MetricContext(cache_dir=cache_dir, device=dev))
    with folder_lock(out, "benchkit eval", wait=wait):
        return _run_eval(spec, prompt_set, seeds, Path(out), metric_names, plan, dev, dtype, batch_size,
                         warmup_batches, cache_dir, overwrite, show_progress)


def check_seeds(seeds: list[int]) -> None:
    """The seed rule of ``prompts.is_seed``, for callers of the Python API (the CLI parses --seeds)."""
    for s in seeds:
        if not is_seed(s):
            raise BenchkitError(f"--seeds: seed {s!r} is not an integer from 0 to 2**63-1; give non-negative seeds such as 0-3")


def plan_records(prompt_set: PromptSet, ids: set[str] | None = None) -> list[dict[str, Any]]:
    """The prompts (of ``ids`` only, when given) as the records metrics check before any image exists."""
    return [{"prompt_id": r.prompt_id, "prompt": r.prompt, "meta": dict(r.meta)} for r in prompt_set.records
            if ids is None or r.prompt_id in ids]


# The default metrics by model family: the toy world's own for the toy; for real models the
# quality metrics that need no reference, each kept only if its weights are present and it can
# run on this prompt set and seed list (what is left out is recorded and shown).
TOY_DEFAULT_METRICS = ["toy-fid", "toy-alignment", "toy-diversity", "latency"]
IMAGE_DEFAULT_METRICS = ["clip-score", "pickscore", "hpsv2", "lpips-diversity", "latency"]
DEFAULT_METRICS = TOY_DEFAULT_METRICS  # what nightly configs without `metrics` have always meant


def default_metrics(plan: ScorePlan, ctx: MetricContext, timed: bool = True) -> tuple[list[str], dict[str, str]]:
    """(metrics that can run on ``plan``, {left-out metric: why}) for the plan's family."""
    from metrics import REGISTRY

    candidates = TOY_DEFAULT_METRICS if plan.family == TOY_FAMILY else IMAGE_DEFAULT_METRICS
    chosen, left_out = [], {}
    for name in candidates:
        if name == "latency" and not timed:
            continue
        try:
            REGISTRY[name].check(plan, ctx)
        except BenchkitError as exc:
            left_out[name] = str(exc)
            continue
        chosen.append(name)
    if not chosen:
        raise BenchkitError("none of the default metrics can run here (" + "; ".join(f"{k}: {v}" for k, v in left_out.items())
                            + "); pass --metrics with metrics that can (see `benchkit metrics`)")
    return chosen, left_out


def _run_eval(spec: ModelSpec, prompt_set: PromptSet, seeds: list[int], out: Path, metric_names: list[str] | None,
              plan: ScorePlan, dev: torch.device, dtype: str | None, batch_size: int, warmup_batches: int,
              cache_dir: Path, overwrite: bool, show_progress: bool) -> dict[str, Any]:
    world = current_world(dev)
    dev = world.device(dev)
    show_progress = show_progress and world.is_main
    dt_ = model_dtype(dtype, spec.dtype, dev)  # the spec's dtype applies on cuda/mps
    reset_peak_memory(dev)
    model = load_model(spec, dev, dt_, cache_dir)
    generator = make_generator(model, spec.recipe)
    # what only the loaded model tells: its family and image size, checked before the first image
    plan = dataclasses.replace(plan, family=model.family, image_sizes={(generator.height, generator.width)})
    ctx = MetricContext(cache_dir=cache_dir, device=dev)
    left_out: dict[str, str] = {}
    if metric_names is None:
        metric_names, left_out = default_metrics(plan, ctx)
    else:
        check_metrics(metric_names, plan, ctx)

    identity = {
        "spec_hash": spec_hash(spec, model.weights_sha256),
        "prompt_set_sha256": prompt_set.sha256,
        "prompt_subset": prompt_set.subset,
        "seeds": seeds,
        "dtype": dtype_name(dt_),
        "device_type": dev.type,
    }
    manifest = {
        "benchkit_run": 1,
        "created": now(),
        "spec": spec.to_dict(),
        "model": {"path": str(model.path), "weights_sha256": model.weights_sha256, "files": model.weight_files,
                  "size_bytes": model.size_bytes, "resolution": [generator.height, generator.width]},
        "prompt_set": prompt_set.describe(),
        "seeds": seeds,
        "seed_policy": "per item: sha256(prompt_id, seed) -> torch.Generator(cpu)",
        "device": dev.type,
        "dtype": dtype_name(dt_),
        "batch_size": batch_size,
        "warmup_batches": warmup_batches,
        "hardware": fingerprint(include_dtype_support=False),
        "git_sha": git_sha(),
        "command": "eval",
    }
    if left_out:
        manifest["metrics_left_out"] = left_out  # defaults that could not run here, and why
    manifest["model"].update(describe_model(model, generator))  # family, lora, vae dtype, compile, frames
    manifest["runtime"] = runtime_settings(dev, dt_)  # what ran: dtype, TF32, sync and memory APIs
    session: dict[str, Any] = {"started": now(), "pid": os.getpid(), "load_seconds": model.load_seconds,
                               "first_load_in_process": model.first_load_in_process, "generated": 0,
                               "batch_size": batch_size,
                               # CPU kernels round differently with another thread count: a resume on a
                               # different count is visible here
                               "threads": torch.get_num_threads()}
    if world.distributed:
        session.update(world.describe())
    if world.is_main:  # one process creates, repairs and folds the run; the others wait for it
        run = RunDir.open(out, identity, manifest, overwrite=overwrite)
        done = run.recover()
        data = run.manifest()
        data["sessions"].append({**session, "resumed_with": len(done)})
        data["status"] = "running"
        run.update_manifest(**data)
    world.barrier()
    if not world.is_main:
        run = RunDir.open(out, identity, manifest)
        done = {f"{r['prompt_id']}_{r['seed']}": r for r in run.records()}
        data = run.manifest()
    session["resumed_with"] = len(done)
    items = make_items(prompt_set, seeds)
    todo = world.shard([it for it in items if it.key not in done])
    session_no = len(data["sessions"])

    if todo:
        run.check_free_space(len(todo), generator.height * generator.width * 3)
        if warmup_batches > 0:
            start = time.perf_counter()
            for _ in range(warmup_batches):
                generator.generate(todo[:batch_size])
            synchronize(dev)
            session["warmup_seconds"] = time.perf_counter() - start
            session["warmup_images"] = len(todo[:batch_size])
            if generator.last_stages:  # the first (cold) run's stage split, beside the warm ones in records
                session["warmup_stages"] = generator.last_stages
        with progress_bar(show_progress) as bar:
            what = f"generate {spec.name}" + (f" (rank 0 of {world.size})" if world.distributed else "")
            task = bar.add_task(what, total=len(done) + len(todo), completed=len(done), info="")
            for index, batch in enumerate(_batches(todo, batch_size)):
                synchronize(dev)
                start = time.perf_counter()
                images = generator.generate(batch)
                synchronize(dev)
                seconds = time.perf_counter() - start
                batch_id = f"s{session_no}-r{world.rank}-b{index}" if world.distributed else f"s{session_no}-b{index}"
                records = [
                    {"prompt_id": it.prompt_id, "prompt": it.prompt, "seed": it.seed, "meta": dict(it.meta),
                     "seconds": seconds / len(batch), "batch_id": batch_id, "batch_seconds": seconds,
                     "batch_size": len(batch)}
                    for it in batch
                ]
                attach_outputs(run.path, records, generator)  # stage seconds; video files of video models
                run.write_batch(records, images, rank=world.rank if world.distributed else None)
                session["generated"] += len(batch)
                bar.update(task, advance=len(batch), info=f"{seconds / len(batch) * 1000:.1f} ms/img")
    peak, kind = peak_memory_bytes(dev)
    session.update(peak_memory_bytes=peak, peak_memory_kind=kind, finished=now())
    sessions = world.gather(session)
    calls = max(world.gather(generator.unet_calls_per_image))
    if world.is_main:
        done = run.recover(verify_hashes=False)  # folds the ranks' shard files into samples.jsonl
        # item order, whichever rank or session made each image: scoring chunks follow this order
        order = {it.key: i for i, it in enumerate(items)}
        run.replace_records(sorted(done.values(), key=lambda r: order.get(f"{r['prompt_id']}_{r['seed']}", len(order))))
        data = run.manifest()
        data["sessions"][-1:] = sessions
        # measured when this session generated; else keep what an earlier session measured
        data["model"]["unet_calls_per_image"] = calls or data["model"].get("unet_calls_per_image") or _calls_from_recipe(spec)
        run.update_manifest(**data)
    world.barrier()

    results = score_run(run, metric_names, cache_dir, dev, show_progress, world=world, left_out=left_out)
    if world.is_main:
        run.update_manifest(status="complete", completed=now())
    return results


def _calls_from_recipe(spec: ModelSpec) -> int:
    return spec.recipe.steps * (2 if spec.recipe.uses_cfg else 1)


def score_run(run: RunDir, metric_names: list[str], cache_dir: Path, device: torch.device,
              show_progress: bool = True, batch_size: int = 256, world: World | None = None,
              left_out: dict[str, str] | None = None) -> dict[str, Any]:
    """Compute metrics over every committed image of a run and write results.json.

    Images are scored in chunks of ``batch_size``; each chunk's metric state is computed from
    empty and merged into the totals in chunk order. With several ranks, rank r scores chunk r
    of each round of ``size`` chunks and rank 0 merges the round's states in the same order, so
    sharded scores equal one process's scores exactly, not just to rounding.
    """
    world = world or World()
    manifest = run.manifest()
    records = run.records()
    if not records:
        raise BenchkitError(f"{run.path} has no images to score")
    ctx = MetricContext(cache_dir=cache_dir, device=device, manifest=manifest)
    metric_objs = build_metrics(metric_names, ctx)
    empty = [m.state_dict() for m in metric_objs]
    fields = list((manifest.get("prompt_set") or {}).get("group_fields") or [])
    if len({r["seed"] for r in records}) > 1:
        fields.append(SEED_FIELD)
    breakdown = Breakdown(fields, metric_names, ctx)
    need_images = any(m.needs_images for m in metric_objs)

    def score_chunk(recs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        images = [read_image(run.path / r["file"]) for r in recs] if need_images else []
        batch = SampleBatch(images, recs)
        fresh = [m.with_state(e) for m, e in zip(metric_objs, empty)]
        for metric in fresh:
            metric.update(batch)
        part = Breakdown(fields, metric_names, ctx)
        part.update(batch)
        return [m.state_dict() for m in fresh], part.state_dict()

    chunks = [records[s : s + batch_size] for s in range(0, len(records), batch_size)]
    with progress_bar(show_progress and world.is_main) as bar:
        task = bar.add_task("score", total=len(records), info=f"{len(metric_names)} metrics")
        for first in range(0, len(chunks), world.size):
            round_ = chunks[first : first + world.size]
            mine = score_chunk(round_[world.rank]) if world.rank < len(round_) else None
            for part in world.gather(mine):
                if part is not None and world.is_main:
                    for metric, state in zip(metric_objs, part[0], strict=True):
                        metric.merge(metric.with_state(state))
                    breakdown.merge_state(part[1])
            bar.update(task, advance=sum(len(c) for c in round_))
    if not world.is_main:
        outcome = world.broadcast(None)
        if "error" in outcome:  # rank 0 failed to compute: fail here too, with its message
            raise BenchkitError(outcome["error"])
        return outcome["results"]
    try:
        values = [v.to_dict() for metric in metric_objs for v in metric.compute()]
    except BenchkitError as exc:
        world.broadcast({"error": str(exc)})
        raise
    results = {
        "run": {
            "path": str(run.path),
            "name": manifest.get("spec", {}).get("name"),
            "label": manifest.get("label") or _label(manifest),
            "spec_hash": manifest.get("identity", {}).get("spec_hash"),
            "prompt_set": manifest.get("prompt_set"),
            "seeds": manifest.get("seeds"),
            "n_images": len(records),
            "device": manifest.get("device"),
            "dtype": manifest.get("dtype"),
            "benchkit": (manifest.get("hardware") or {}).get("versions", {}).get("benchkit"),
            "scored": now(),
        },
        "metrics": values,
        "breakdowns": breakdown.compute(),
    }
    if left_out:
        results["run"]["metrics_left_out"] = left_out  # default metrics that could not run, and why
    if world.distributed:
        results["run"]["scored_by"] = {"world_size": world.size, "backend": world.describe()["backend"]}
    run.write_results(results)
    world.broadcast({"results": results})
    return results


def _label(manifest: dict[str, Any]) -> str:
    spec = manifest.get("spec") or {}
    recipe = spec.get("recipe") or {}
    if not recipe:
        return spec.get("name") or Path(manifest.get("source", "run")).name
    from benchkit.spec import Recipe

    r = Recipe(**{**recipe, "timesteps": tuple(recipe["timesteps"]) if recipe.get("timesteps") else None})
    return f"{spec.get('name')} · {r.label()}"
