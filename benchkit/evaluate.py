"""`benchkit eval` as a function: spec + prompt set + seeds + metrics -> a run directory.

Generation appends to the RunDir batch by batch (so a killed run resumes), then metrics are
computed from the images on disk, so a resumed run scores exactly what an uninterrupted one
would. Under torchrun / accelerate launch the missing items are split across ranks, each rank
scores its share of the images, and rank 0 merges the metric states and writes results.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from benchkit.core import settings
from benchkit.core.distributed import World, current_world
from benchkit.core.errors import BenchkitError
from benchkit.core.hardware import (
    dtype_name,
    fingerprint,
    model_dtype,
    peak_memory_bytes,
    reset_peak_memory,
    resolve_device,
    runtime_settings,
    synchronize,
)
from benchkit.core.items import IMAGE_COLUMN, Item
from benchkit.core.lock import folder_lock
from benchkit.core.outpaths import check_separate
from benchkit.core.progress import progress_bar
from benchkit.core.provenance import git_sha, now
from benchkit.core.rundir import MANIFEST, Manifest, RunDir, SampleRecord, Session, committed_records
from benchkit.models.loading import LoadedModel, load_model
from benchkit.models.outputs import attach_outputs, describe_model
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, spec_hash
from benchkit.scoring import default_metrics, plan_records, score_run
from metrics import (
    MetricContext,
    ScorePlan,
    check_metrics,
    grouped_only,
    parse_metric_names,
)
from metrics.loading import check_workers
from metrics.reference_sets import ImageReference, open_reference
from prompts import PromptSet, is_seed


def default_cache_dir() -> Path:
    return settings.cache_dir()


def make_items(prompt_set: PromptSet, seeds: list[int]) -> list[Item]:
    return [
        Item(r.prompt_id, r.prompt, s, tuple(sorted(r.meta.items())))
        for r in prompt_set.records
        for s in seeds
    ]


def images_from_run(run: Path, items: list[Item]) -> tuple[list[Item], dict[str, Any]]:
    """Each item's input image taken from another run's image of the same (prompt, seed): a text-to-image
    model's output as an image-to-video model's first frame, as Magic 1-For-1's recipe makes its inputs.

    Returns the items with their ``image`` set and what the run's identity records of the inputs: the run
    and a hash over the images' own sha256 (the records hold them), so other inputs are another run.
    Everything is checked before any work: the run, an image for every item, no image column as well.
    """
    run = Path(run)
    where = f"--images-from {run}"
    if not (run / MANIFEST).is_file():
        raise BenchkitError(f"{where}: not a benchkit run folder (no {MANIFEST}); give the run whose images are the inputs")
    named = next((it for it in items if dict(it.meta).get(IMAGE_COLUMN)), None)
    if named is not None:
        raise BenchkitError(f"{where}: prompt '{named.prompt_id}' already names an input image in its {IMAGE_COLUMN} "
                            f"column; use one or the other")
    made = {f"{r['prompt_id']}_{r['seed']}": r for r in committed_records(run)}
    out, hashes = [], []
    for it in items:
        rec = made.get(it.key)
        path = run / rec["file"] if rec is not None and rec.get("file") else None
        if path is None or not path.is_file():
            raise BenchkitError(f"{where}: it has no image for prompt '{it.prompt_id}' seed {it.seed}; make the inputs "
                                f"with the same prompts and seeds (and let that run finish)")
        hashes.append((it.key, rec.get("sha256", "")))
        out.append(dataclasses.replace(it, meta=tuple(sorted({**dict(it.meta), IMAGE_COLUMN: str(path.resolve())}.items()))))
    blob = json.dumps(sorted(hashes)).encode()
    return out, {"run": str(run.resolve()), "images_sha256": hashlib.sha256(blob).hexdigest(), "images": len(out)}


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
    workers: int | None = None,
    images_from: Path | None = None,
    reference: Path | None = None,
) -> dict[str, Any]:
    """Generate every (prompt, seed) item not yet in ``out``, then score the whole run.

    Everything a user can get wrong is checked before work starts: the metric names and what
    each needs (seeds per prompt, weights, references, prompts it can read), the output folder
    against the inputs, and (once the model is loaded, before the first image) the model's
    family and image size against the metrics. ``out`` is locked for the whole call: a second
    process on the same folder is refused in one line, or waits with ``wait``. ``workers``:
    DataLoader processes that decode and prepare images for scoring (None: from the CPU count).
    ``images_from``: a run whose image of each (prompt, seed) is that item's input image (image-to-video).
    ``reference``: a run or image folder the reference-taking metrics (FID, PRDC...) compare with.
    """
    metric_names = parse_metric_names(metrics) if metrics is not None else None  # fail before loading anything
    if batch_size < 1:
        raise BenchkitError(f"--batch-size must be at least 1, got {batch_size}")
    if warmup_batches < 0:
        raise BenchkitError(f"--warmup must be 0 or more, got {warmup_batches}")
    check_seeds(seeds)
    workers = check_workers(workers)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    check_separate(out, [("model folder", path) for path in spec.local_paths()]
                   + [("prompt file", prompt_set.file), ("--images-from run", images_from), ("--reference", reference)])
    if images_from is not None:
        images_from_run(images_from, make_items(prompt_set, seeds))  # every input present, before any work
    ref = open_reference(reference, cache_dir, show_progress) if reference is not None else None
    plan = ScorePlan(records=plan_records(prompt_set), seeds_per_prompt=len(seeds))
    dev = resolve_device(device)
    not_applicable: dict[str, str] = {}
    optional = grouped_only(metrics) if metrics is not None else set()  # group members, left out where they cannot score
    if metric_names is not None:
        not_applicable = check_metrics(metric_names, plan, MetricContext(cache_dir=cache_dir, device=dev, reference=ref),
                                       optional=optional)
        metric_names = [n for n in metric_names if n not in not_applicable]
    with folder_lock(out, "benchkit eval", wait=wait):
        return _run_eval(spec, prompt_set, seeds, Path(out), metric_names, plan, dev, dtype, batch_size,
                         warmup_batches, cache_dir, overwrite, show_progress, workers, images_from, ref, not_applicable,
                         optional)


def check_seeds(seeds: list[int]) -> None:
    """The seed rule of ``prompts.is_seed``, for callers of the Python API (the CLI parses --seeds)."""
    for s in seeds:
        if not is_seed(s):
            raise BenchkitError(f"--seeds: seed {s!r} is not an integer from 0 to 2**63-1; give non-negative seeds such as 0-3")


@dataclasses.dataclass
class EvalPlan:
    """Everything decided before the first image: the loaded model, its generator, the metrics
    (checked against the model's family and image size) and the run's identity and manifest."""

    model: LoadedModel
    generator: Any
    metric_names: list[str]
    left_out: dict[str, str]  # default metrics that cannot run here, and why
    identity: dict[str, Any]
    manifest: Manifest
    session: Session  # this process's entry in manifest["sessions"]


def _run_eval(spec: ModelSpec, prompt_set: PromptSet, seeds: list[int], out: Path, metric_names: list[str] | None,
              plan: ScorePlan, dev: torch.device, dtype: str | None, batch_size: int, warmup_batches: int,
              cache_dir: Path, overwrite: bool, show_progress: bool, workers: int | None = None,
              images_from: Path | None = None, reference: ImageReference | None = None,
              not_applicable: dict[str, str] | None = None, optional: set[str] | None = None) -> dict[str, Any]:
    """Plan, generate, fold, score."""
    world = current_world(dev)
    dev = world.device(dev)
    show_progress = show_progress and world.is_main
    ev = _plan(spec, prompt_set, seeds, metric_names, plan, dev, dtype, batch_size, warmup_batches, cache_dir, world,
               reference, not_applicable or {}, optional or set())
    items = make_items(prompt_set, seeds)
    if images_from is not None:
        family = ev.model.family_info
        if not family.image_input and family.load is None:  # an outside program may take images; a diffusers family must
            raise BenchkitError(f"--images-from: {spec.name} is a {family.name} model, which takes no input image; give an "
                                "image-to-video model")
        items, inputs = images_from_run(images_from, items)
        ev.identity["input_images"] = inputs  # other inputs make another run
        ev.manifest["input_images"] = inputs
    if hasattr(ev.generator, "check_items"):  # inputs an item needs beside its prompt (an image-to-video model's image)
        ev.generator.check_items(items)
    run, done, session_no = _open_run(out, ev, world, overwrite)
    if hasattr(ev.generator, "scratch_dir"):  # a generator that works through files (an outside command) does so in the run
        ev.generator.scratch_dir = run.path
    todo = world.shard([it for it in items if it.key not in done])
    calls = _generate(run, ev, todo, len(done), session_no, spec, batch_size, warmup_batches, dev, world, show_progress)
    _fold(run, ev, items, calls, spec, world)
    results = score_run(run, ev.metric_names, cache_dir, dev, show_progress, world=world, left_out=ev.left_out,
                        workers=workers, reference=reference)
    if world.is_main:
        run.update_manifest(status="complete", completed=now())
    return results


def _plan(spec: ModelSpec, prompt_set: PromptSet, seeds: list[int], metric_names: list[str] | None, plan: ScorePlan,
          dev: torch.device, dtype: str | None, batch_size: int, warmup_batches: int, cache_dir: Path,
          world: World, reference: ImageReference | None = None, not_applicable: dict[str, str] | None = None,
          optional: set[str] | None = None) -> EvalPlan:
    """Load the model, make its generator, settle the metrics and write down what the run is."""
    dt_ = model_dtype(dtype, spec.dtype, dev)  # the spec's dtype applies on cuda/mps
    reset_peak_memory(dev)
    model = load_model(spec, dev, dt_, cache_dir)
    generator = make_generator(model, spec.recipe)
    # what only the loaded model tells: its family and image size, checked before the first image
    plan = dataclasses.replace(plan, family=model.family, media=model.family_info.media,
                               image_sizes={(generator.height, generator.width)})
    ctx = MetricContext(cache_dir=cache_dir, device=dev, reference=reference)
    left_out: dict[str, str] = dict(not_applicable or {})  # group members with nothing to score here
    if metric_names is None:
        metric_names, left_out = default_metrics(plan, ctx)
        if reference is not None:
            check_metrics(metric_names, plan, ctx)  # one of the defaults must take the reference
    else:  # now with the model's family and frame size: a group member that cannot score them is left out with why
        dropped = check_metrics(metric_names, plan, ctx, optional=optional)
        left_out.update(dropped)
        metric_names = [n for n in metric_names if n not in dropped]
    identity = {
        "spec_hash": spec_hash(spec, model.weights_sha256),
        "prompt_set_sha256": prompt_set.sha256,
        "prompt_subset": prompt_set.subset,
        "seeds": seeds,
        "dtype": dtype_name(dt_),
        "device_type": dev.type,
    }
    manifest: Manifest = {
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
        manifest["metrics_left_out"] = left_out  # defaults (or group members) that could not run here, and why
    manifest["model"].update(describe_model(model, generator))  # family, lora, vae dtype, compile, frames
    manifest["runtime"] = runtime_settings(dev, dt_)  # what ran: dtype, TF32, sync and memory APIs
    session: Session = {"started": now(), "pid": os.getpid(), "load_seconds": model.load_seconds,
                               "first_load_in_process": model.first_load_in_process, "generated": 0,
                               "batch_size": batch_size,
                               # CPU kernels round differently with another thread count: a resume on a
                               # different count is visible here
                               "threads": torch.get_num_threads()}
    if world.distributed:
        session.update(world.describe())
    return EvalPlan(model, generator, metric_names, left_out, identity, manifest, session)


def _open_run(out: Path, ev: EvalPlan, world: World, overwrite: bool) -> tuple[RunDir, dict[str, Any], int]:
    """(the run, its finished items by key, this session's number): rank 0 creates or repairs the
    run and adds this session; the other ranks open it after."""
    if world.is_main:  # one process creates, repairs and folds the run; the others wait for it
        run = RunDir.open(out, ev.identity, ev.manifest, overwrite=overwrite)
        done = run.recover()
        data = run.manifest()
        data["sessions"].append({**ev.session, "resumed_with": len(done)})
        data["status"] = "running"
        run.update_manifest(**data)
    world.barrier()
    if not world.is_main:
        run = RunDir.open(out, ev.identity, ev.manifest)
        done = {f"{r['prompt_id']}_{r['seed']}": r for r in run.records()}
        data = run.manifest()
    ev.session["resumed_with"] = len(done)
    return run, done, len(data["sessions"])


def _generate(run: RunDir, ev: EvalPlan, todo: list[Item], n_done: int, session_no: int, spec: ModelSpec,
              batch_size: int, warmup_batches: int, dev: torch.device, world: World, show_progress: bool) -> int:
    """Generate this rank's missing items batch by batch into the run; the denoiser calls per image."""
    generator, session = ev.generator, ev.session
    calls = 0  # denoiser calls per image, measured by this session's batches
    if todo:
        run.check_free_space(len(todo), generator.height * generator.width * 3)
        if warmup_batches > 0:
            start = time.perf_counter()
            for _ in range(warmup_batches):
                warm = generator.generate(todo[:batch_size])
            synchronize(dev)
            session["warmup_seconds"] = time.perf_counter() - start
            session["warmup_images"] = len(todo[:batch_size])
            if warm.stages:  # the first (cold) run's stage split, beside the warm ones in records
                session["warmup_stages"] = warm.stages
        with progress_bar(show_progress) as bar:
            what = f"generate {spec.name}" + (f" (rank 0 of {world.size})" if world.distributed else "")
            task = bar.add_task(what, total=n_done + len(todo), completed=n_done, info="")
            for index, batch in enumerate(_batches(todo, batch_size)):
                synchronize(dev)
                start = time.perf_counter()
                generation = generator.generate(batch)
                synchronize(dev)
                seconds = time.perf_counter() - start
                batch_id = f"s{session_no}-r{world.rank}-b{index}" if world.distributed else f"s{session_no}-b{index}"
                records: list[SampleRecord] = [
                    {"prompt_id": it.prompt_id, "prompt": it.prompt, "seed": it.seed, "meta": dict(it.meta),
                     "seconds": seconds / len(batch), "batch_id": batch_id, "batch_seconds": seconds,
                     "batch_size": len(batch)}
                    for it in batch
                ]
                attach_outputs(run.path, records, generation, spec.recipe.fps)  # stage seconds; video files of video models
                run.write_batch(records, generation.images, rank=world.rank if world.distributed else None)
                calls = generation.denoiser_calls
                session["generated"] += len(batch)
                bar.update(task, advance=len(batch), info=f"{seconds / len(batch) * 1000:.1f} ms/img")
    peak, kind = peak_memory_bytes(dev)
    session.update(peak_memory_bytes=peak, peak_memory_kind=kind, finished=now())
    return calls


def _fold(run: RunDir, ev: EvalPlan, items: list[Item], calls: int, spec: ModelSpec, world: World) -> None:
    """Rank 0 folds every rank's images and sessions into the run, in item order."""
    sessions = world.gather(ev.session)
    calls = max(world.gather(calls))
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


def _calls_from_recipe(spec: ModelSpec) -> int:
    return spec.recipe.steps * (2 if spec.recipe.uses_cfg else 1)
