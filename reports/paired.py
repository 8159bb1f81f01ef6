"""`benchkit compare --paired`: a candidate against a baseline on the same prompts and seeds, item by item.

A distilled student and its teacher make one image each from every (prompt, seed), so their numbers can be
compared pair by pair instead of as two independent samples. For each per-image score both runs kept
(item_scores.json): the mean difference with a paired bootstrap interval (the same prompts, then the same
seeds within them, resampled for both runs at once, so what both share cancels), and per-prompt wins (the
prompt's seed-mean score better, worse or equal) with the exact sign test and a Clopper-Pearson interval of the
win rate. Per item: the distance between the two images (metrics.pair_distances). Per prompt and per stratum
(the prompt set's first group field): where the candidate loses most, with both runs' images. Distribution
distances of the candidate with the baseline run as reference (`benchkit rescore CAND --reference BASE`) are
picked up from the candidate's results.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from benchkit.core.errors import BenchkitError
from benchkit.core.rundir import RunDir, read_image
from metrics.base import item_key, prompt_of
from metrics.pair_distances import PAIR_DISTANCES, usable_distances
from metrics.uncertainty import LEVEL, Strata, interval
from reports.runs import RunSummary

WORST = 5  # prompts listed where the candidate loses most, per score
_CHUNK = 64


@dataclass
class PairedScore:
    """One per-image score of both runs over their shared items."""

    name: str
    higher_is_better: bool
    baseline: float  # item means over the shared items
    candidate: float
    delta: float  # candidate - baseline
    interval: dict[str, Any]  # of delta: paired two-stage bootstrap
    verdict: str  # better | worse | within noise
    wins: int  # prompts whose seed-mean score is better in the candidate
    losses: int
    ties: int
    win_rate: float  # (wins + ties / 2) / prompts
    win_rate_interval: tuple[float, float]  # Clopper-Pearson of wins / (wins + losses)
    sign_test_p: float  # exact two-sided binomial test of wins against losses
    worst_prompts: list[dict[str, Any]] = field(default_factory=list)
    by_stratum: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PairedDistance:
    """How far the candidate's image is from the baseline's of the same (prompt, seed), over the shared items."""

    name: str
    unit: str
    mean: float
    interval: dict[str, Any]
    farthest_prompts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PairedComparison:
    baseline: str
    candidate: str
    items: int
    prompts: int
    scores: list[PairedScore]
    distances: list[PairedDistance]
    left_out: dict[str, str]  # distances or scores not measured, and why
    distribution: list[dict[str, Any]]  # the candidate's values with the baseline run as reference

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def regressed(self) -> bool:
        return any(s.verdict == "worse" for s in self.scores)


def _flat(nested: dict[str, dict[str, float]]) -> dict[str, float]:
    return {item_key({"prompt_id": p, "seed": s}): float(v) for p, seeds in nested.items() for s, v in seeds.items()}


def _prompt_means(values: dict[str, float]) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for key, v in values.items():
        groups[prompt_of(key)].append(v)
    return {p: float(np.mean(v)) for p, v in groups.items()}


@dataclass
class _Pairing:
    """The two runs, their records by item key, the items they share and the baseline's strata."""

    baseline: RunSummary
    candidate: RunSummary

    def __post_init__(self) -> None:
        self.base_recs = {item_key(r): r for r in self.baseline.records}
        self.cand_recs = {item_key(r): r for r in self.candidate.records}
        self.keys = sorted(set(self.base_recs) & set(self.cand_recs))
        self.prompt_text = {prompt_of(k): r.get("prompt", "") for k, r in self.base_recs.items()}
        fields = (self.baseline.manifest.get("prompt_set") or {}).get("group_fields") or []
        self.strata = Strata.of_records(self.baseline.records, list(fields))

    def image(self, run: RunSummary, key: str) -> np.ndarray:
        records = self.base_recs if run is self.baseline else self.cand_recs
        return read_image(run.path / records[key]["file"])

    def prompt_entry(self, prompt: str, what: str, value: float) -> dict[str, Any]:
        """One prompt of a worst or farthest list: its text, ``what`` (delta or distance) and both runs' images."""

        def files(run: RunSummary, records: dict[str, dict[str, Any]]) -> list[str]:
            return [str(run.path / r["file"]) for k, r in sorted(records.items()) if prompt_of(k) == prompt]

        return {"prompt_id": prompt, "prompt": self.prompt_text.get(prompt, ""), what: value,
                "baseline_images": files(self.baseline, self.base_recs),
                "candidate_images": files(self.candidate, self.cand_recs)}


def _score(pair: _Pairing, name: str, hib: bool, base: dict[str, float], cand: dict[str, float],
           keys: list[str]) -> PairedScore:
    diff = {k: cand[k] - base[k] for k in keys}
    iv = interval(diff, strata=pair.strata)
    sign = 1.0 if hib else -1.0
    verdict = "within noise"  # the interval of the difference holds 0
    if not iv["low"] <= 0 <= iv["high"]:
        verdict = "better" if (iv["low"] > 0) == hib else "worse"
    by_prompt = _prompt_means(diff)
    gains = {p: sign * d for p, d in by_prompt.items()}  # > 0: the candidate is better on the prompt
    wins, losses = sum(g > 0 for g in gains.values()), sum(g < 0 for g in gains.values())
    ties = len(gains) - wins - losses
    decided = wins + losses
    if decided:
        test = stats.binomtest(wins, decided, 0.5)
        ci = test.proportion_ci(confidence_level=LEVEL, method="exact")
        p_value, rate_ci = float(test.pvalue), (float(ci.low), float(ci.high))
    else:
        p_value, rate_ci = 1.0, (0.0, 1.0)
    worst = sorted(gains, key=lambda p: (gains[p], p))[:WORST]
    worst_prompts = [pair.prompt_entry(p, "delta", by_prompt[p]) for p in worst if gains[p] < 0]
    by_stratum = []
    if pair.strata is not None:
        groups: dict[str, list[float]] = defaultdict(list)
        for p, d in by_prompt.items():
            groups[pair.strata.of_prompt.get(p, "")].append(d)
        by_stratum = sorted(({"field": pair.strata.field, "value": v, "delta": float(np.mean(ds)), "prompts": len(ds)}
                             for v, ds in groups.items()), key=lambda g: sign * g["delta"])
    return PairedScore(name, hib, float(np.mean([base[k] for k in keys])), float(np.mean([cand[k] for k in keys])),
                       float(np.mean(list(diff.values()))), iv, verdict, wins, losses, ties,
                       (wins + ties / 2) / len(gains), rate_ci, p_value, worst_prompts, by_stratum)


def _distances(pair: _Pairing, device: torch.device, names: list[str] | None,
               left_out: dict[str, str]) -> list[PairedDistance]:
    keys = pair.keys
    chosen, skipped = usable_distances(pair.image(pair.baseline, keys[0]).shape, device, names)
    left_out.update(skipped)
    if not chosen:
        return []
    values: dict[str, dict[str, float]] = {name: {} for name in chosen}
    for start in range(0, len(keys), _CHUNK):
        part = keys[start : start + _CHUNK]
        a = [pair.image(pair.baseline, k) for k in part]
        b = [pair.image(pair.candidate, k) for k in part]
        for k, x, y in zip(part, a, b):
            if x.shape != y.shape:
                raise BenchkitError(f"{pair.candidate.path / pair.cand_recs[k]['file']} is {y.shape[:2]} and the "
                                    f"baseline's image of the same prompt and seed is {x.shape[:2]}: "
                                    "paired distances need images of one size")
        for name, fn in chosen.items():
            for k, v in zip(part, fn(a, b)):
                values[name][k] = float(v)
    out = []
    for name, per_item in values.items():
        by_prompt = _prompt_means(per_item)
        far = sorted(by_prompt, key=lambda p: (-by_prompt[p], p))[:WORST]
        out.append(PairedDistance(name, PAIR_DISTANCES[name].unit, float(np.mean(list(per_item.values()))),
                                  interval(per_item, strata=pair.strata),
                                  [pair.prompt_entry(p, "distance", by_prompt[p]) for p in far]))
    return out


def _distribution(baseline: RunSummary, candidate: RunSummary) -> list[dict[str, Any]]:
    """The candidate's values measured with the baseline run as --reference."""
    base = baseline.path.resolve()
    out = []
    for m in candidate.results.get("metrics") or []:
        ref = (m.get("variant") or {}).get("reference_path")
        if ref and Path(ref).resolve() == base:
            out.append({"name": m["name"], "value": m["value"], "unit": m.get("unit", ""),
                        "interval": (m.get("extra") or {}).get("interval")})
    return out


def paired_comparison(baseline: RunSummary, candidate: RunSummary, device: torch.device = torch.device("cpu"),
                      distances: list[str] | None = None) -> PairedComparison:
    """Pair ``candidate``'s images with ``baseline``'s by (prompt, seed); one line when they share too little."""
    pair = _Pairing(baseline, candidate)
    keys = pair.keys
    prompts = {prompt_of(k) for k in keys}
    if len(prompts) < 2:
        raise BenchkitError(f"{candidate.path} and {baseline.path} share {len(keys)} (prompt, seed) items over "
                            f"{len(prompts)} prompts; a paired comparison needs the same prompts and seeds in both "
                            "(at least 2 prompts): evaluate them with the same --prompts and --seeds")
    base_scores, cand_scores = RunDir(baseline.path).item_scores(), RunDir(candidate.path).item_scores()
    left_out: dict[str, str] = {}
    scores = []
    for name in sorted(set(base_scores) | set(cand_scores)):
        if name not in base_scores or name not in cand_scores:
            missing = baseline.path if name not in base_scores else candidate.path
            left_out[name] = f"no per-image scores in {missing} (rescore it with --metrics {name})"
            continue
        b, c = _flat(base_scores[name]["scores"]), _flat(cand_scores[name]["scores"])
        shared = [k for k in keys if k in b and k in c]
        if len({prompt_of(k) for k in shared}) < 2:
            left_out[name] = "fewer than 2 prompts scored in both runs"
            continue
        hib = base_scores[name].get("higher_is_better")
        scores.append(_score(pair, name, True if hib is None else bool(hib), b, c, shared))
    dists = _distances(pair, device, distances, left_out)
    return PairedComparison(str(baseline.path), str(candidate.path), len(keys), len(prompts), scores, dists, left_out,
                            _distribution(baseline, candidate))
