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

import numpy as np
import torch

from benchkit.core.distributed import World
from benchkit.core.errors import BenchkitError
from benchkit.core.progress import progress_bar
from benchkit.core.provenance import now
from benchkit.core.rundir import RunDir
from benchkit.models.families import IMAGE_DEFAULT_METRICS, get_family
from metrics import Metric, MetricContext, NotApplicable, SampleBatch, ScorePlan, build_metrics
from metrics.feature_store import FeatureStore, file_sha256
from metrics.vbench_scores import run_aggregates
from metrics.breakdown import SEED_FIELD, Breakdown
from metrics.clips import CLIP_CHUNK, attach_decoded, clip_path, read_clip
from metrics.loading import check_workers, load_chunks
from metrics.uncertainty import Strata
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
              left_out: dict[str, str] | None = None, workers: int | None = None,
              reference: Any = None, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compute metrics over every committed image of a run and write results.json.

    Images are scored in chunks of ``batch_size`` (see :func:`score_records`); ``workers``
    DataLoader processes decode and prepare them (None: :func:`metrics.loading.default_workers`,
    0: in this process). Neither changes a number. Extractor features are cached in the run's
    ``features/`` folder (and looked up in the cache's), so a second pass reuses them.
    ``reference``: the ImageReference of ``--reference``. ``previous``: the run's earlier
    results.json, whose values (and breakdowns) are kept beside the new ones unless a new value
    has the same name (a rescore).
    """
    world = world or World()
    workers = check_workers(workers)
    manifest = run.manifest()
    records = run.records()
    if not records:
        raise BenchkitError(f"{run.path} has no images to score")
    fields = list((manifest.get("prompt_set") or {}).get("group_fields") or [])
    ctx = MetricContext(cache_dir=cache_dir, device=device, manifest=manifest, reference=reference, run_dir=run.path,
                        strata=Strata.of_records(records, fields))
    metric_objs = build_metrics(metric_names, ctx)
    if len({r["seed"] for r in records}) > 1:
        fields.append(SEED_FIELD)
    breakdown = Breakdown(fields, metric_names, ctx)
    store = FeatureStore([Path(cache_dir)], write_root=run.path)
    score_records(run.path, records, metric_objs, breakdown, batch_size=batch_size, world=world, workers=workers,
                  show_progress=show_progress, store=store)
    if not world.is_main:
        outcome = world.broadcast(None)
        if "error" in outcome:  # rank 0 failed to compute: fail here too, with its message
            raise BenchkitError(outcome["error"])
        return outcome["results"]
    left_out = dict(left_out or {})
    try:
        computed = []
        for metric in metric_objs:
            try:
                computed += [v.to_dict() for v in metric.compute()]
            except NotApplicable as exc:  # nothing left to score once its protocol filtered (temporal flickering's static clips)
                left_out[metric.name] = str(exc)
        values = _kept(previous, "metrics", computed + run_aggregates(computed))
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
        "breakdowns": _kept_breakdowns(previous, breakdown.compute()),
    }
    if left_out:
        results["run"]["metrics_left_out"] = left_out  # default metrics that could not run, and why
    # speed only: the numbers do not depend on them
    results["run"]["scoring"] = {"workers": workers, "chunk": batch_size, "features_stored_before": store.hits,
                                 "features_computed": store.added}
    if reference is not None:
        results["run"]["reference"] = reference.describe()
    if world.distributed:
        results["run"]["scored_by"] = {"world_size": world.size, "backend": world.describe()["backend"]}
    kept = _item_scores(metric_objs, computed)
    if kept:
        run.write_item_scores({**{k: v for k, v in run.item_scores().items() if k not in kept}, **kept})
    run.write_results(results)
    world.broadcast({"results": results})
    return results


def _item_scores(metric_objs: list[Metric], computed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each per-image metric's scores by prompt and seed (what `compare --paired` pairs), with its direction."""
    direction = {v["name"]: v.get("higher_is_better") for v in computed}
    out: dict[str, dict[str, Any]] = {}
    for metric in metric_objs:
        scores = metric.item_scores()
        if not scores or metric.name not in direction:
            continue
        nested: dict[str, dict[str, float]] = {}
        for key in sorted(scores):
            prompt_id, _, seed = key.partition("\x1f")
            nested.setdefault(prompt_id, {})[seed] = float(scores[key])
        out[metric.name] = {"higher_is_better": direction[metric.name], "scores": nested}
    return out


def _kept(previous: dict[str, Any] | None, key: str, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The earlier values under ``key`` whose names the new ones do not have, then the new ones."""
    names = {v["name"] for v in new}
    old = (previous or {}).get(key) or []
    return [v for v in old if isinstance(v, dict) and v.get("name") not in names] + new


def _kept_breakdowns(previous: dict[str, Any] | None, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group's earlier values kept beside its new ones (a rescore adds metrics to every group)."""
    old = {(g.get("field"), g.get("value")): g for g in (previous or {}).get("breakdowns") or [] if isinstance(g, dict)}
    out = []
    for group in new:
        before = old.pop((group["field"], group["value"]), None)
        if before is not None:
            group = {**group, "metrics": _kept(before, "metrics", group["metrics"]),
                     "skipped": {**(before.get("skipped") or {}), **group["skipped"]}}
        out.append(group)
    return out + list(old.values())


def rescore_run(path: Path, metric_names: list[str], cache_dir: Path, device: torch.device, reference: Path | None = None,
                show_progress: bool = True, workers: int | None = None, wait: bool = False) -> dict[str, Any]:
    """Score a finished run again with ``metric_names``, keeping its other values.

    The images are not generated again and the model is not loaded; extractor features stored by
    earlier passes (the run's ``features/``) are read back, so a metric on an extractor already
    used costs its own arithmetic, not another pass over the images.
    """
    from benchkit.core.lock import folder_lock
    from benchkit.core.outpaths import check_separate
    from benchkit.core.rundir import read_json
    from metrics import check_metrics, grouped_only, parse_metric_names
    from metrics.reference_sets import open_reference

    names = parse_metric_names(metric_names)
    run = RunDir(Path(path))
    if not run.manifest_path.is_file() or run.kind() not in ("eval", "score"):
        raise BenchkitError(f"{run.path} is not a benchkit run (no eval or score manifest.json); give a run folder")
    manifest = run.manifest()
    if manifest.get("status") != "complete":
        raise BenchkitError(f"{run.path} is not finished; rerun its `benchkit eval` (it resumes) before rescoring it")
    if "latency" in names:
        raise BenchkitError("latency is measured while generating; `benchkit rescore` only scores the images")
    check_separate(run.path, [("--reference", reference)], flag="RUN")
    records = run.records()
    if not records:
        raise BenchkitError(f"{run.path} has no images to score")
    ref = open_reference(reference, cache_dir, show_progress) if reference is not None else None
    seeds: dict[str, int] = {}
    for r in records:
        seeds[r["prompt_id"]] = seeds.get(r["prompt_id"], 0) + 1
    unique = {r["prompt_id"]: {"prompt_id": r["prompt_id"], "prompt": r["prompt"], "meta": dict(r.get("meta") or {})}
              for r in records}
    model = manifest.get("model") or {}
    resolution = model.get("resolution")
    media = "video" if any(r.get("video") for r in records) else "image"  # what the run holds, whatever made it
    plan = ScorePlan(records=list(unique.values()), seeds_per_prompt=min(seeds.values()), family=model.get("family"), media=media,
                     image_sizes={tuple(resolution)} if resolution else None)
    not_applicable = check_metrics(names, plan, MetricContext(cache_dir=cache_dir, device=device, manifest=manifest,
                                                              reference=ref), optional=grouped_only(metric_names))
    names = [n for n in names if n not in not_applicable]
    with folder_lock(run.path, "benchkit rescore", wait=wait):
        previous = read_json(run.results_path) if run.results_path.exists() else None
        return score_run(run, names, cache_dir, device, show_progress, workers=workers, reference=ref,
                         previous=previous if isinstance(previous, dict) else None, left_out=not_applicable or None)


def _stored_views(metric_objs: list[Metric]) -> dict[str, Any]:
    """Every feature view the metrics read through the feature store, by id."""
    return {view.id: view for metric in metric_objs for view in metric.feature_views()}


def _lookup(store: FeatureStore, views: dict[str, Any], chunks: list[list[Path]]) -> list[tuple[list[str], dict[str, list]]]:
    """Per chunk: each file's content sha256 and its stored features under each view (None where absent)."""
    out = []
    for paths in chunks:
        try:
            shas = [file_sha256(p) for p in paths]
        except OSError as exc:
            raise BenchkitError(f"cannot read image {exc.filename}: {exc.strerror}") from None
        out.append((shas, {vid: store.lookup(view, shas) for vid, view in views.items()}))
    return out


def _wanted(metric_objs: list[Metric], preprocessors: dict[str, Any], views: dict[str, Any],
            cached: list[tuple[list[str], dict[str, list]]]) -> list[list[frozenset[str]]]:
    """Per chunk and item, the preprocessor keys still needed: a key every reader of which is a
    view whose features of the item are stored is skipped (so is decoding, when none is left)."""
    view_keys = {view.preprocessing for view in views.values()}
    always = {key for metric in metric_objs for key in metric.preprocessors()
              if key not in {v.preprocessing for v in metric.feature_views()}}  # read directly, not through a view
    out = []
    for shas, stored in cached:
        items = []
        for i in range(len(shas)):
            missing = {views[vid].preprocessing for vid, feats in stored.items() if feats[i] is None}
            items.append(frozenset(k for k in preprocessors if k in always or k in missing or k not in view_keys))
        out.append(items)
    return out


def score_records(root: Path, records: list[dict[str, Any]], metric_objs: list[Metric], breakdown: Breakdown | None,
                  batch_size: int = 256, world: World | None = None, workers: int = 0,
                  show_progress: bool = False, store: FeatureStore | None = None) -> None:
    """Feed ``records`` (their ``file`` relative to ``root``) to ``metric_objs`` and ``breakdown``.

    Images go in chunks of ``batch_size``; each chunk's metric state is computed from empty and
    merged into the totals in chunk order. With several ranks, rank r scores chunk r of each round
    of ``size`` chunks and rank 0 merges the round's states in the same order, so sharded scores
    equal one process's scores exactly, not just to rounding. ``workers`` processes decode each
    image once and run every metric's :meth:`~metrics.base.Metric.preprocessors` on it, up to a
    chunk ahead of the networks; the metrics get the same inputs as from a serial pass.

    With a feature ``store``, the features of every view the metrics read (:meth:`Metric.feature_views`)
    are looked up by the image files' sha256 first: a stored image is neither prepared for that view
    nor decoded when nothing else needs it, and features computed here are added to the store.
    """
    world = world or World()
    empty = [m.state_dict() for m in metric_objs]
    imaging = [m for m in metric_objs if m.needs_images and not m.reads_clips]
    clipping = [m for m in metric_objs if m.reads_clips]
    if clipping:  # decoded clips are large: fewer of them per chunk
        batch_size = min(batch_size, CLIP_CHUNK)
    preprocessors: dict[str, Any] = {}
    for metric in imaging:
        preprocessors.update(metric.preprocessors())
    keep_images = any(not m.preprocessors() for m in imaging)  # a metric that reads the decoded images
    chunks = [records[s : s + batch_size] for s in range(0, len(records), batch_size)]
    mine = chunks[world.rank :: world.size]
    views = _stored_views(imaging) if store is not None else {}
    cached = _lookup(store, views, [[root / r["file"] for r in c] for c in mine]) if views else None
    wanted = _wanted(imaging, preprocessors, views, cached) if cached is not None else None
    loaded = (load_chunks([[root / r["file"] for r in c] for c in mine], preprocessors, keep_images, workers,
                          wanted=wanted) if imaging else None)
    lookups = iter(cached) if cached is not None else None
    clip_files = [[clip_path(r, root) for r in c] for c in mine] if clipping else []
    clips = load_chunks(clip_files, {}, True, workers, decode=read_clip) if clipping else None
    clip_chunks = iter(clip_files)

    def score_chunk(recs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        # the chunk's images and prepared inputs fill as the workers deliver them: the networks
        # start on the first items while the rest are still being decoded
        images, prepared = next(loaded) if loaded is not None else ([], {})
        shas, stored = next(lookups) if lookups is not None else (None, {})
        batch = SampleBatch(images, recs, prepared, shas, {vid: list(feats) for vid, feats in stored.items()})
        if clips is not None:  # every clip decoded once, in the workers, for all the clip metrics
            attach_decoded(batch, next(clip_chunks), next(clips)[0])
        fresh = [m.with_state(e) for m, e in zip(metric_objs, empty)]
        for metric in fresh:
            metric.update(batch)
        for view, items in batch.fresh.values() if store is not None else ():  # stored once, for every later pass
            items = sorted(items)
            store.add(view, [shas[i] for i in items], np.stack([batch.features[view.id][i] for i in items]))
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
