"""`benchkit compare`: a candidate run against a baseline, metric by metric, with noise bands.

A difference only counts when it leaves its tolerance band. The band is, in order:
an explicit ``--tolerance NAME=VALUE`` (absolute, or relative with ``%``); else the
seed-to-seed spread of the metric (runs with several seeds store one value per seed), as
``sigma * s * sqrt(1/n_b + 1/n_c)`` with ``s`` the pooled standard deviation of the per-seed
values; else, for timing metrics, 10% of the baseline; else zero (any change counts).
Numbers whose variants differ (protocol, weights, scale; for timing also device, dtype,
batch size and hardware) are refused rather than compared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchkit.errors import BenchkitError
from metrics.breakdown import SEED_FIELD
from reports.render import CONTEXT_VARIANT_KEYS
from reports.runs import RunSummary

TIMING_METRICS = frozenset({"latency_image_p50", "latency_image_p90", "latency_batch_p50", "latency_batch_p90",
                            "throughput", "cold_start", "warmup", "peak_memory"})
TIMING_DEFAULT_RELATIVE = 0.10
EXIT_REGRESSION = 1
EXIT_NOT_COMPARABLE = 3


@dataclass(frozen=True)
class Tolerance:
    value: float
    relative: bool

    def band(self, baseline: float) -> float:
        return abs(baseline) * self.value if self.relative else self.value


def parse_tolerances(items: list[str]) -> dict[str, Tolerance]:
    """'toy-fid=0.5' (absolute) or 'latency_image_p50=15%' (relative to the baseline)."""
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            relative = raw.endswith("%")
            value = float(raw[:-1]) / 100 if relative else float(raw)
            if value < 0 or math.isnan(value):
                raise ValueError
        except ValueError:
            raise BenchkitError(f"--tolerance '{item}': write NAME=VALUE or NAME=PERCENT%, e.g. toy-fid=0.5 or throughput=10%") from None
        out[name] = Tolerance(value, relative)
    return out


@dataclass
class MetricComparison:
    name: str
    unit: str
    higher_is_better: bool | None
    baseline: float
    candidate: float
    delta: float
    band: float | None
    band_source: str
    verdict: str  # better | worse | within noise | changed | not comparable
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_values(run: RunSummary, name: str) -> list[float]:
    return [float(m["value"]) for g in run.results.get("breakdowns") or [] if g["field"] == SEED_FIELD
            for m in g["metrics"] if m["name"] == name]


def seed_noise_band(base: list[float], cand: list[float], sigma: float) -> float | None:
    """sigma * pooled per-seed std * sqrt(1/n_b + 1/n_c); None without two seeds on each side."""
    if len(base) < 2 or len(cand) < 2:
        return None
    pooled = ((len(base) - 1) * np.var(base, ddof=1) + (len(cand) - 1) * np.var(cand, ddof=1)) / (len(base) + len(cand) - 2)
    return float(sigma * math.sqrt(pooled) * math.sqrt(1 / len(base) + 1 / len(cand)))


def variant_difference(name: str, base: dict[str, Any], cand: dict[str, Any]) -> list[str]:
    """Variant keys that differ; for timing metrics where they ran is part of what they measure."""
    ignore = set() if name in TIMING_METRICS else set(CONTEXT_VARIANT_KEYS)
    return sorted(k for k in set(base) | set(cand) if k not in ignore and base.get(k) != cand.get(k))


def _verdict(delta: float, band: float, higher_is_better: bool | None) -> str:
    if abs(delta) <= band:
        return "within noise"
    if higher_is_better is None:
        return "changed"
    return "better" if (delta > 0) == higher_is_better else "worse"


def compare_runs(baseline: RunSummary, candidate: RunSummary, tolerances: dict[str, Tolerance] | None = None,
                 sigma: float = 2.0, metrics: list[str] | None = None) -> list[MetricComparison]:
    tolerances = tolerances or {}
    base_m, cand_m = baseline.metrics, candidate.metrics
    names = [n for n in base_m if n in cand_m and (metrics is None or n in metrics)]
    if metrics:
        missing = [n for n in metrics if n not in names]
        if missing:
            raise BenchkitError(f"metric '{missing[0]}' is not in both {baseline.path} and {candidate.path}")
    out = []
    for name in names:
        b, c = base_m[name], cand_m[name]
        bv, cv = float(b["value"]), float(c["value"])
        common = dict(name=name, unit=b.get("unit", ""), higher_is_better=b.get("higher_is_better"),
                      baseline=bv, candidate=cv, delta=cv - bv)
        differs = variant_difference(name, b.get("variant") or {}, c.get("variant") or {})
        if differs:
            out.append(MetricComparison(**common, band=None, band_source="", verdict="not comparable",
                                        reason="variant differs in " + ", ".join(differs)))
            continue
        if name in tolerances:
            band, source = tolerances[name].band(bv), "--tolerance"
        elif (spread := seed_noise_band(seed_values(baseline, name), seed_values(candidate, name), sigma)) is not None:
            band, source = spread, f"seed spread x{sigma:g}"
        elif name in TIMING_METRICS:
            band, source = abs(bv) * TIMING_DEFAULT_RELATIVE, "timing default 10%"
        else:
            band, source = 0.0, "none: any change counts"
        out.append(MetricComparison(**common, band=band, band_source=source, verdict=_verdict(cv - bv, band, common["higher_is_better"])))
    return out


def exit_code(comparisons: list[MetricComparison]) -> int:
    """1 on any regression (what a CI gate stops on), else 3 if something could not be compared, else 0."""
    verdicts = {c.verdict for c in comparisons}
    if "worse" in verdicts:
        return EXIT_REGRESSION
    return EXIT_NOT_COMPARABLE if "not comparable" in verdicts else 0
