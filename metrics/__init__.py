"""Metrics: the Metric protocol, a registry by name, and the metric implementations."""

from __future__ import annotations

from benchkit.errors import BenchkitError
from metrics.base import Metric, MetricContext, MetricValue, SampleBatch
from metrics.latency import Latency
from metrics.toy import ToyAlignment, ToyDiversity, ToyFID

REGISTRY: dict[str, type[Metric]] = {cls.name: cls for cls in (ToyFID, ToyAlignment, ToyDiversity, Latency)}


def parse_metric_names(text: str | list[str]) -> list[str]:
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    for name in names:
        if name not in REGISTRY:
            raise BenchkitError(f"unknown metric '{name}'; available: {', '.join(REGISTRY)}")
    if not names:
        raise BenchkitError("--metrics is empty; available: " + ", ".join(REGISTRY))
    return names


def build_metrics(names: list[str], ctx: MetricContext) -> list[Metric]:
    return [REGISTRY[name](ctx) for name in parse_metric_names(names)]


__all__ = ["Metric", "MetricContext", "MetricValue", "SampleBatch", "REGISTRY", "build_metrics", "parse_metric_names"]
