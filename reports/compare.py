"""`benchkit compare`: a candidate run against a baseline, metric by metric, with noise bands.

A difference only counts when it leaves its tolerance band. The band is, in order:
an explicit ``--tolerance NAME=VALUE`` (absolute, or relative with ``%``); else, when both
values carry bootstrap intervals (results.json ``extra.interval``, see metrics/uncertainty.py),
their half-widths on the sides that face each other combined as independent errors,
``sqrt(h_b^2 + h_c^2)`` (non-overlapping intervals always count; this also counts a gap
the two intervals only just cover); else the seed-to-seed spread of the metric (runs with several seeds store one value per seed), as
``sigma * s * sqrt(1/n_b + 1/n_c)`` with ``s`` the pooled standard deviation of the per-seed
values; else, for timing metrics, 10% of the baseline; else zero (any change counts).
Numbers whose variants differ (protocol, weights, scale; for timing also device, dtype,
batch size and hardware) are refused rather than compared. So are quality numbers measured
on different samples: another prompt set (sha256), another subset of it, other seeds or
another image count, since a score over 2 prompts says nothing about one over 4. Such
refusals become ordinary comparisons, with the difference still named, when asked for
(``allow_different_samples``, the CLI's ``--allow-different-prompts``). Other seeds alone do
not refuse a metric with intervals on both sides: its intervals resample seeds, so they
already say how far another set of seeds may move it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchkit.core.errors import BenchkitError
from metrics.breakdown import SEED_FIELD
from reports.runs import CONTEXT_VARIANT_KEYS, RunSummary

TIMING_METRICS = frozenset({"latency_image_p50", "latency_image_p90", "latency_batch_p50", "latency_batch_p90",
                            "throughput", "cold_start", "warmup", "peak_memory"})
# Metrics of the model and the machine rather than of the images: the samples behind them do not
# decide comparability (timing is refused on its own variant keys instead).
SAMPLE_FREE_METRICS = TIMING_METRICS | {"model_size", "nfe"}
TIMING_DEFAULT_RELATIVE = 0.10
ALLOW_FLAG = "--allow-different-prompts"
EXIT_REGRESSION = 1
EXIT_NOT_COMPARABLE = 3
SEEDS_DIFFER = "seed list differs"  # sample_difference's phrase for other seeds alone


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
    baseline_interval: tuple[float, float] | None = None
    candidate_interval: tuple[float, float] | None = None

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


def interval_bounds(found: Any) -> tuple[float, float] | None:
    """(low, high) of a recorded interval ({"low", "high", ...}), or None when there is none to read."""
    try:
        return (float(found["low"]), float(found["high"])) if found else None
    except (KeyError, TypeError, ValueError):
        return None


def interval_of(metric: dict[str, Any]) -> tuple[float, float] | None:
    """(low, high) of a value's bootstrap interval, when results.json has one."""
    return interval_bounds((metric.get("extra") or {}).get("interval"))


def interval_band(bv: float, b: tuple[float, float], cv: float, c: tuple[float, float]) -> float:
    """sqrt(h_b^2 + h_c^2) of the half-widths that face each other (an interval need not be symmetric)."""
    hb, hc = (b[1] - bv, cv - c[0]) if cv >= bv else (bv - b[0], c[1] - cv)
    return float(math.hypot(max(hb, 0.0), max(hc, 0.0)))


def variant_difference(name: str, base: dict[str, Any], cand: dict[str, Any]) -> list[str]:
    """Variant keys that differ; for timing metrics where they ran is part of what they measure."""
    ignore = set() if name in TIMING_METRICS else set(CONTEXT_VARIANT_KEYS)
    return sorted(k for k in set(base) | set(cand) if k not in ignore and base.get(k) != cand.get(k))


def measures_samples(name: str) -> bool:
    """Quality metrics are computed from the generated images, so they depend on which ones."""
    return name not in SAMPLE_FREE_METRICS and not name.startswith("latency_")


def _seed_text(seeds: Any) -> str:
    """[0, 1, 2, 3, 7] -> '0-3,7': short enough for one line, exact enough to see the difference."""
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        return repr(seeds)
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if j == i else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts) or "none"


def samples_of(run: RunSummary) -> dict[str, Any]:
    """What a run's quality numbers were measured on: results.json's run block, else the manifest."""
    info = run.results.get("run") or {}
    prompt_set = info.get("prompt_set") or run.manifest.get("prompt_set") or {}
    return {"name": prompt_set.get("name"), "sha256": prompt_set.get("sha256"), "subset": prompt_set.get("subset"),
            "count": prompt_set.get("count"), "seeds": info.get("seeds", run.manifest.get("seeds")),
            "n_images": info.get("n_images")}


def sample_difference(baseline: RunSummary, candidate: RunSummary) -> list[str]:
    """How the samples of two runs differ, one phrase each; a field only one side records is not a difference."""
    b, c = samples_of(baseline), samples_of(candidate)
    for side in (b, c):  # an image depends on its (prompt, seed), not on the order seeds were listed in
        if isinstance(side["seeds"], list) and all(isinstance(s, int) for s in side["seeds"]):
            side["seeds"] = sorted(side["seeds"])

    def differ(key: str) -> bool:
        return b[key] is not None and c[key] is not None and b[key] != c[key]

    out = []
    if differ("sha256"):
        hashes = f"sha256 {str(b['sha256'])[:12]} vs {str(c['sha256'])[:12]}"
        out.append(f"prompt set differs: {b['name']} vs {c['name']} ({hashes})" if b["name"] != c["name"]
                   else f"prompt set {b['name']} differs in content ({hashes})")
    elif differ("subset"):
        out.append(f"prompt subset differs: {b['subset']} vs {c['subset']}")
    elif differ("count"):
        out.append(f"prompt count differs: {b['count']} vs {c['count']}")
    if differ("seeds"):
        out.append(f"{SEEDS_DIFFER}: {_seed_text(b['seeds'])} vs {_seed_text(c['seeds'])}")
    if not out and differ("n_images"):
        out.append(f"image count differs: {b['n_images']} vs {c['n_images']}")
    return out


def _verdict(delta: float, band: float, higher_is_better: bool | None) -> str:
    if abs(delta) <= band:
        return "within noise"
    if higher_is_better is None:
        return "changed"
    return "better" if (delta > 0) == higher_is_better else "worse"


def compare_runs(baseline: RunSummary, candidate: RunSummary, tolerances: dict[str, Tolerance] | None = None,
                 sigma: float = 2.0, metrics: list[str] | None = None,
                 allow_different_samples: bool = False) -> list[MetricComparison]:
    """One comparison per metric both runs have; quality metrics over other samples are refused
    (verdict "not comparable") unless ``allow_different_samples``, which compares them anyway
    and keeps the difference in ``reason``."""
    tolerances = tolerances or {}
    differences = sample_difference(baseline, candidate)
    run_difference = "; ".join(differences)
    seeds_only = len(differences) == 1 and differences[0].startswith(SEEDS_DIFFER)  # what intervals can cover
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
        samples, covered = "", ""
        intervals = interval_of(b), interval_of(c)
        if measures_samples(name):
            samples = run_difference
            if not samples and b.get("n") is not None and c.get("n") is not None and b["n"] != c["n"]:
                samples = f"image count differs: n={b['n']} vs n={c['n']}"
            if seeds_only and None not in intervals:
                samples, covered = "", f"{run_difference}: the intervals resample seeds"
        common.update(baseline_interval=intervals[0], candidate_interval=intervals[1])
        if samples and not allow_different_samples:
            out.append(MetricComparison(**common, band=None, band_source="", verdict="not comparable",
                                        reason=f"{samples} (pass {ALLOW_FLAG} to compare anyway)"))
            continue
        if name in tolerances:
            band, source = tolerances[name].band(bv), "--tolerance"
        elif None not in intervals:
            level = (b.get("extra") or {}).get("interval", {}).get("level", 0.95)
            band, source = interval_band(bv, intervals[0], cv, intervals[1]), f"bootstrap {level:.0%} intervals"
        elif (spread := seed_noise_band(seed_values(baseline, name), seed_values(candidate, name), sigma)) is not None:
            band, source = spread, f"seed spread x{sigma:g}"
        elif name in TIMING_METRICS:
            band, source = abs(bv) * TIMING_DEFAULT_RELATIVE, "timing default 10%"
        else:
            band, source = 0.0, "none: any change counts"
        out.append(MetricComparison(**common, band=band, band_source=source, verdict=_verdict(cv - bv, band, common["higher_is_better"]),
                                    reason=f"compared anyway: {samples}" if samples else covered))
    return out


def exit_code(comparisons: list[MetricComparison]) -> int:
    """1 on any regression (what a CI gate stops on), else 3 if something could not be compared, else 0."""
    verdicts = {c.verdict for c in comparisons}
    if "worse" in verdicts:
        return EXIT_REGRESSION
    return EXIT_NOT_COMPARABLE if "not comparable" in verdicts else 0
