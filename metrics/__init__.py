"""Metrics: the Metric protocol, a registry by name, and the metric implementations."""

from __future__ import annotations

from benchkit.core.errors import BenchkitError
from benchkit.core.registry import Registry
from metrics.base import Metric, MetricContext, MetricValue, SampleBatch, ScorePlan

# Every metric by name: benchkit's own below, the model families' (the toy world's) through plugins.
REGISTRY: Registry[type[Metric]] = Registry("metric", "see `benchkit metrics`")
register_metric = REGISTRY.register


def _register_paper_metrics() -> None:
    """FID/KID protocols, CLIP score, PickScore, HPSv2, MPS and LPIPS diversity (models load lazily)."""
    from metrics.clip_score import ClipScore, ClipScoreL14
    from metrics.diversity import LPIPSDiversity, LPIPSDiversityVGG
    from metrics.fid import FID_METRICS
    from metrics.latency import Latency
    from metrics.mps import MPS
    from metrics.preference import HPSv20, HPSv21, PickScore

    for cls in (Latency, *FID_METRICS, ClipScore, ClipScoreL14, PickScore, HPSv21, HPSv20, MPS, LPIPSDiversity, LPIPSDiversityVGG):
        register_metric()(cls)


_register_paper_metrics()


def parse_metric_names(text: str | list[str]) -> list[str]:
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    for name in names:
        if name not in REGISTRY:
            raise BenchkitError(f"unknown metric '{name}'; available: {', '.join(REGISTRY)}")
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
        rows.append({"name": name, "description": cls.description, "protocol": protocol if isinstance(protocol, str) else None,
                     "weights": {w: weights.get(w, "unknown") for w in cls.weights}, "needs": cls.needs(),
                     "ready": all(weights.get(w) == "present" for w in cls.weights)})
    return rows


def check_metrics(names: list[str], plan: ScorePlan, ctx: MetricContext) -> None:
    """Every metric's preconditions on ``plan``, before any image is generated or scored."""
    for name in parse_metric_names(names):
        REGISTRY[name].check(plan, ctx)


__all__ = ["register_metric", "Metric", "MetricContext", "MetricValue", "SampleBatch", "ScorePlan", "REGISTRY", "build_metrics",
           "check_metrics", "describe_metrics", "parse_metric_names"]
