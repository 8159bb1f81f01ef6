"""Scoring a run: every committed image of a run folder through the metrics, into results.json.

Metrics are computed from the images on disk, so a resumed run scores exactly what an
uninterrupted one would; under torchrun each rank scores its share of the chunks and rank 0
merges the metric states in chunk order. Decoding and the metrics' per-image preprocessing run
in DataLoader workers (``workers``), each image decoded once for all metrics; the main process
runs the networks. The numbers do not depend on the worker count. The default metrics come from
the model's family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchkit.core.distributed import World
from benchkit.core.errors import BenchkitError
from benchkit.core.progress import progress_bar
from benchkit.core.provenance import now
from benchkit.core.rundir import RunDir
from benchkit.models.families import IMAGE_DEFAULT_METRICS, get_family
from metrics import Metric, MetricContext, SampleBatch, ScorePlan, build_metrics
from metrics.breakdown import SEED_FIELD, Breakdown
from metrics.loading import check_workers, load_chunks
from prompts import PromptSet


def plan_records(prompt_set: PromptSet, ids: set[str] | None = None) -> list[dict[str, Any]]:
    """The prompts (of ``ids`` only, when given) as the records metrics check before any image exists."""
    return [{"prompt_id": r.prompt_id, "prompt": r.prompt, "meta": dict(r.meta)} for r in prompt_set.records
            if ids is None or r.prompt_id in ids]


def default_metrics(plan: ScorePlan, ctx: MetricContext, timed: bool = True) -> tuple[list[str], dict[str, str]]:
    """(metrics that can run on ``plan``, {left-out metric: why}): the plan's family's default
    metrics (real images' when the family is unknown), each kept only if its weights are present
    and it can run on this prompt set and seed list; what is left out is recorded and shown."""
    from metrics import REGISTRY

    candidates = get_family(plan.family).default_metrics if plan.family else IMAGE_DEFAULT_METRICS
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


def score_run(run: RunDir, metric_names: list[str], cache_dir: Path, device: torch.device,
              show_progress: bool = True, batch_size: int = 256, world: World | None = None,
              left_out: dict[str, str] | None = None, workers: int | None = None) -> dict[str, Any]:
    """Compute metrics over every committed image of a run and write results.json.

    Images are scored in chunks of ``batch_size`` (see :func:`score_records`); ``workers``
    DataLoader processes decode and prepare them (None: :func:`metrics.loading.default_workers`,
    0: in this process). Neither changes a number.
    """
    world = world or World()
    workers = check_workers(workers)
    manifest = run.manifest()
    records = run.records()
    if not records:
        raise BenchkitError(f"{run.path} has no images to score")
    ctx = MetricContext(cache_dir=cache_dir, device=device, manifest=manifest)
    metric_objs = build_metrics(metric_names, ctx)
    fields = list((manifest.get("prompt_set") or {}).get("group_fields") or [])
    if len({r["seed"] for r in records}) > 1:
        fields.append(SEED_FIELD)
    breakdown = Breakdown(fields, metric_names, ctx)
    score_records(run.path, records, metric_objs, breakdown, batch_size=batch_size, world=world, workers=workers,
                  show_progress=show_progress)
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
    results["run"]["scoring"] = {"workers": workers, "chunk": batch_size}  # speed only: the numbers do not depend on them
    if world.distributed:
        results["run"]["scored_by"] = {"world_size": world.size, "backend": world.describe()["backend"]}
    run.write_results(results)
    world.broadcast({"results": results})
    return results


def score_records(root: Path, records: list[dict[str, Any]], metric_objs: list[Metric], breakdown: Breakdown | None,
                  batch_size: int = 256, world: World | None = None, workers: int = 0,
                  show_progress: bool = False) -> None:
    """Feed ``records`` (their ``file`` relative to ``root``) to ``metric_objs`` and ``breakdown``.

    Images go in chunks of ``batch_size``; each chunk's metric state is computed from empty and
    merged into the totals in chunk order. With several ranks, rank r scores chunk r of each round
    of ``size`` chunks and rank 0 merges the round's states in the same order, so sharded scores
    equal one process's scores exactly, not just to rounding. ``workers`` processes decode each
    image once and run every metric's :meth:`~metrics.base.Metric.preprocessors` on it, up to a
    chunk ahead of the networks; the metrics get the same inputs as from a serial pass.
    """
    world = world or World()
    empty = [m.state_dict() for m in metric_objs]
    imaging = [m for m in metric_objs if m.needs_images]
    preprocessors: dict[str, Any] = {}
    for metric in imaging:
        preprocessors.update(metric.preprocessors())
    keep_images = any(not m.preprocessors() for m in imaging)  # a metric that reads the decoded images
    chunks = [records[s : s + batch_size] for s in range(0, len(records), batch_size)]
    mine = chunks[world.rank :: world.size]
    loaded = (load_chunks([[root / r["file"] for r in c] for c in mine], preprocessors, keep_images, workers)
              if imaging else None)

    def score_chunk(recs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        # the chunk's images and prepared inputs fill as the workers deliver them: the networks
        # start on the first items while the rest are still being decoded
        images, prepared = next(loaded) if loaded is not None else ([], {})
        batch = SampleBatch(images, recs, prepared)
        fresh = [m.with_state(e) for m, e in zip(metric_objs, empty)]
        for metric in fresh:
            metric.update(batch)
        part = None
        if breakdown is not None:
            part = Breakdown(breakdown.fields, breakdown.names, breakdown.ctx)
            part.update(batch)
        if not world.distributed:  # merged as they are: no state crosses a process
            return fresh, part
        return [m.state_dict() for m in fresh], part.state_dict() if part is not None else None

    try:
        with progress_bar(show_progress and world.is_main) as bar:
            task = bar.add_task("score", total=len(records), info=f"{len(metric_objs)} metrics")
            for first in range(0, len(chunks), world.size):
                round_ = chunks[first : first + world.size]
                own = score_chunk(round_[world.rank]) if world.rank < len(round_) else None
                if not world.distributed:
                    for metric, done in zip(metric_objs, own[0], strict=True):
                        metric.merge(done)
                    if breakdown is not None:
                        breakdown.merge(own[1])
                for part in world.gather(own) if world.distributed else ():
                    if part is not None and world.is_main:
                        for metric, state in zip(metric_objs, part[0], strict=True):
                            metric.merge(metric.with_state(state))
                        if breakdown is not None:
                            breakdown.merge_state(part[1])
                bar.update(task, advance=sum(len(c) for c in round_))
        if loaded is not None:
            next(loaded, None)  # the last chunk read to its end: a file no metric read still fails here
    finally:
        if loaded is not None:
            loaded.close()  # stops the workers, also when a metric raised


def _label(manifest: dict[str, Any]) -> str:
    spec = manifest.get("spec") or {}
    recipe = spec.get("recipe") or {}
    if not recipe:
        return spec.get("name") or Path(manifest.get("source", "run")).name
    from benchkit.models.spec import Recipe

    from benchkit.models.families import FAMILIES

    r = Recipe(**{**recipe, "timesteps": tuple(recipe["timesteps"]) if recipe.get("timesteps") else None})
    family = FAMILIES.get(spec.get("family") or (manifest.get("model") or {}).get("family") or "")
    return f"{spec.get('name')} · {r.label(embedded_guidance=family is not None and family.guidance == 'embedded')}"
