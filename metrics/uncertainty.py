"""Bootstrap confidence intervals over a run's items, resampled as the run was sampled: prompts drawn with
replacement, then seeds drawn with replacement within each drawn prompt (a two-stage bootstrap; Davison and
Hinkley 1997, section 3.8). Resampling seeds alone would treat one prompt's seeds as independent draws and give
intervals too narrow whenever prompts differ more than seeds do, which for text-to-image scores they do.

Seeded (numpy's PCG64 from ``seed``), so a rerun or a resumed run reports the same interval. Percentile intervals:
the statistic is a mean of bounded per-image scores, where the percentile method is what scipy and the evaluation
papers use; it is recorded as the method.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
METHOD = "percentile bootstrap, two-stage: prompts with replacement, then seeds with replacement within each prompt"
_BLOCK = 100  # resamples drawn at once (memory: block x prompts x seeds per prompt)


def _by_prompt(values: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-item values (keys ``prompt_id\\x1fseed``) as a (prompts, most seeds) array padded with 0, and each
    prompt's seed count; prompts and seeds in sorted key order."""
    groups: dict[str, list[float]] = defaultdict(list)
    for key in sorted(values):
        groups[key.split("\x1f")[0]].append(float(values[key]))
    counts = np.array([len(v) for v in groups.values()])
    table = np.zeros((len(groups), counts.max()), dtype=np.float64)
    for row, v in enumerate(groups.values()):
        table[row, : len(v)] = v
    return table, counts


def bootstrap_means(values: dict[str, float], resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """The item mean of each of ``resamples`` two-stage resamples of ``values``."""
    table, counts = _by_prompt(values)
    prompts, width = table.shape
    rng = np.random.default_rng(seed)
    out = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, _BLOCK):
        n = min(_BLOCK, resamples - start)
        rows = rng.integers(0, prompts, size=(n, prompts))  # stage 1: prompts
        drawn_counts = counts[rows]  # each drawn prompt keeps its own number of seeds
        # stage 2: seeds within each drawn prompt, uniform over its own seeds (floor(u * count) < count)
        picks = np.floor(rng.random((n, prompts, width)) * drawn_counts[..., None]).astype(np.int64)
        taken = np.take_along_axis(table[rows], picks, axis=2)
        used = np.arange(width)[None, None, :] < drawn_counts[..., None]  # a prompt with fewer seeds draws fewer
        out[start : start + n] = (taken * used).sum(axis=(1, 2)) / drawn_counts.sum(axis=1)
    return out


def interval(values: dict[str, float], finish: Callable[[float], float] = float, resamples: int = RESAMPLES,
             level: float = LEVEL, seed: int = SEED) -> dict[str, Any]:
    """The ``level`` percentile interval of ``finish(mean)`` over the run's items, and how it was made."""
    stats = np.array([finish(m) for m in bootstrap_means(values, resamples, seed)])
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    prompts = len({k.split("\x1f")[0] for k in values})
    return {"low": float(low), "high": float(high), "level": level, "method": METHOD, "resamples": resamples,
            "seed": seed, "prompts": prompts, "items": len(values)}
