"""Metrics: the Metric protocol, a registry by name, and the metric implementations."""

from __future__ import annotations

from importlib import import_module

from benchkit.core.errors import BenchkitError
from benchkit.core.registry import Registry
from metrics.base import Metric, MetricContext, MetricValue, NotApplicable, SampleBatch, ScorePlan

# Every metric by name: benchkit's own below, the model families' (the toy world's) through plugins.
REGISTRY: Registry[type[Metric]] = Registry("metric", "see `benchkit metrics`")
register_metric = REGISTRY.register


# benchkit's own metric modules: importing one registers its metrics (@register_metric). They
# import their networks' libraries (open_clip, lpips, transformers) only when a metric is built.
BUILTIN_MODULES = ("metrics.latency", "metrics.fid", "metrics.clip_score", "metrics.preference", "metrics.mps",
                   "metrics.diversity", "metrics.vendi", "metrics.prdc", "metrics.aesthetic", "metrics.image_reward",
                   "metrics.geneval", "metrics.dinov2", "metrics.cmmd", "metrics.vbench_dimensions",
                   "metrics.vbench_i2v", "metrics.vbench_i2v_background", "metrics.vbench_camera_motion",
                   "metrics.vbench_motion_smoothness",
                   "metrics.vbench_dynamic_degree", "metrics.vbench_text_dimensions",
                   "metrics.vbench_human_action", "metrics.vbench_scene")
for _module in BUILTIN_MODULES:
    import_module(_module)


def metric_groups() -> dict[str, list[str]]:
    """Names that stand for several metrics: ``vbench`` is every one of VBench's 16 dimensions benchkit computes,
    ``vbench-i2v`` every dimension VBench-I2V reports (its image-conditioned ones and the quality ones), so both
    follow as dimensions are added."""
    from metrics.vbench_i2v import I2V_SUITE
    from metrics.vbench_scores import BY_NAME

    def having(dimensions) -> list[str]:
        return [name for name, cls in REGISTRY.items() if getattr(cls, "dimension", None) in dimensions]

    return {"vbench": having(BY_NAME), "vbench-i2v": having(I2V_SUITE)}


def parse_metric_names(text: str | list[str]) -> list[str]:
    given = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    groups = metric_groups()
    names = list(dict.fromkeys(n for name in given for n in groups.get(name, [name])))
    for name in names:
        if name not in REGISTRY:
            raise BenchkitError(f"unknown metric '{name}'; available: {', '.join(REGISTRY)} (or the group "
                                f"{', '.join(groups)})")
    if not names:
        raise BenchkitError("--metrics is empty; available: " + ", ".join(REGISTRY))
    return names


def build_metrics(names: list[str], ctx: MetricContext) -> list[Metric]:
    """The named metrics (an empty list is allowed: a breakdown group may have none that apply)."""
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parse_metric_names(unknown)  # raises the one-line "unknown metric" error
    return [REGISTRY[name](ctx) for name in names]


def describe_metrics() -> list[dict]:
    """One row per registered metric: what it measures, what it needs, and whether its weights are here."""
    from metrics.weights import status_rows

    weights = {r["name"]: r["status"] for r in status_rows()}
    rows = []
    for name, cls in REGISTRY.items():
        protocol = getattr(cls, "protocol", None)
        protocol = getattr(protocol, "description", protocol)  # an FID protocol object, or a toy protocol string
        better = {True: "higher", False: "lower", None: None}[cls.higher_is_better]
        rows.append({"name": name, "description": cls.description, "protocol": protocol if isinstance(protocol, str) else None,
                     "scale": cls.scale or None, "better": better, "values": list(cls.value_names()),
                     "weights": {w: weights.get(w, "unknown") for w in cls.weights}, "needs": cls.needs(),
                     "takes_reference": cls.takes_reference,
                     "ready": all(weights.get(w) == "present" for w in cls.weights)})
    return rows


def grouped_only(given: str | list[str] | None) -> set[str]:
    """The metrics ``given`` names only through a group (``vbench``), not by their own name."""
    if given is None:
        return set()
    raw = [n.strip() for n in (given.split(",") if isinstance(given, str) else given) if n.strip()]
    groups = metric_groups()
    return {m for name in raw for m in groups.get(name, [])} - set(raw)


def check_metrics(names: list[str], plan: ScorePlan, ctx: MetricContext, optional: set[str] | None = None) -> dict[str, str]:
    """Every metric's preconditions on ``plan``, before any image is generated or scored. A metric in ``optional``
    (one a group brought in) that has nothing to score in the plan is left out instead: {name: why} is returned,
    and the caller drops those names and records why."""
    names = parse_metric_names(names)
    left_out: dict[str, str] = {}
    for name in names:
        if name in (optional or ()):
            try:
                REGISTRY[name].check(plan, ctx)
            except NotApplicable as exc:
                left_out[name] = str(exc)
    names = [n for n in names if n not in left_out]
    if not names:
        raise BenchkitError(f"none of the metrics has anything to score on these prompts ({', '.join(left_out)}: the "
                            "VBench prompts probe other dimensions); pick prompts with --dimension, or other metrics")
    if ctx.reference is not None and not any(REGISTRY[name].takes_reference for name in names):
        takers = ", ".join(name for name, cls in REGISTRY.items() if cls.takes_reference)
        raise BenchkitError(f"--reference is given but none of {', '.join(names)} compares with a reference; add one of "
                            f"{takers} to --metrics, or drop --reference")
    for name in names:
        REGISTRY[name].check(plan, ctx)
    return left_out


__all__ = ["register_metric", "Metric", "MetricContext", "MetricValue", "SampleBatch", "ScorePlan", "REGISTRY", "build_metrics",
           "check_metrics", "describe_metrics", "parse_metric_names"]
