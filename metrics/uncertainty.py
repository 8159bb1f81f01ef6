"""Bootstrap confidence intervals over a run's items, resampled as the run was sampled: prompts drawn with
replacement, then seeds drawn with replacement within each drawn prompt (a two-stage bootstrap; Davison and
Hinkley 1997, section 3.8). Resampling seeds alone would treat one prompt's seeds as independent draws and give
intervals too narrow whenever prompts differ more than seeds do, which for text-to-image scores they do.

A prompt set built in strata (the toy digits' ten digits, PartiPrompts' categories: its first group field) is
resampled within each stratum, so every resample keeps the set's design; drawing the strata's shares anew would
measure a different benchmark (a toy resample without any 7s) and, for distances to a reference, swamp the
spread of what was generated with the spread of the design.

Seeded (numpy's PCG64 from ``seed``), so a rerun or a resumed run reports the same interval. Percentile intervals:
the statistic is a mean of bounded per-image scores, where the percentile method is what scipy and the evaluation
papers use; it is recorded as the method.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from metrics.base import item_key, prompt_of
from metrics.frechet import weighted_frechet_distances

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
METHOD = ("percentile bootstrap, two-stage: prompts with replacement (within each stratum, when the set has strata), "
          "then seeds with replacement within each prompt")
_BLOCK = 100  # resamples drawn at once (memory: block x prompts x seeds per prompt)


@dataclass(frozen=True)
class Strata:
    """The prompt set's strata: the group field they come from and each prompt's value of it."""

    field: str
    of_prompt: dict[str, str]

    @classmethod
    def of_records(cls, records: list[dict[str, Any]], group_fields: list[str] | None) -> "Strata | None":
        """By the first group field, when the set has one and more than one value of it."""
        if not group_fields:
            return None
        field = group_fields[0]
        of_prompt = {str(r["prompt_id"]): str((r.get("meta") or {}).get(field)) for r in records}
        return cls(field, of_prompt) if len(set(of_prompt.values())) > 1 else None

    def describe(self, prompts: list[str]) -> dict[str, Any]:
        """The field and how many of its values ``prompts`` have (what an interval records)."""
        return {"field": self.field, "count": len({self.of_prompt.get(p) for p in prompts})}


def _item_table(keys: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Item keys (``prompt_id\\x1fseed``, sorted) as their prompts, a (prompts, most seeds) table of item
    positions padded with -1, and each prompt's seed count; prompts in sorted order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for position, key in enumerate(keys):
        groups[prompt_of(key)].append(position)
    counts = np.array([len(v) for v in groups.values()])
    table = np.full((len(groups), counts.max()), -1, dtype=np.int64)
    for row, v in enumerate(groups.values()):
        table[row, : len(v)] = v
    return list(groups), table, counts


def _stratum_rows(prompts: list[str], strata: Strata | None) -> list[np.ndarray] | None:
    """The prompt rows of each stratum; None when there are no strata to resample within: none given, one
    stratum, or a stratum of a single prompt (a stratified bootstrap cannot see its prompts vary)."""
    if strata is None:
        return None
    rows: dict[str, list[int]] = defaultdict(list)
    for row, prompt in enumerate(prompts):
        rows[strata.of_prompt.get(prompt, "")].append(row)
    if len(rows) < 2 or min(len(r) for r in rows.values()) < 2:
        return None
    return [np.array(rows[k]) for k in sorted(rows)]


def resample_counts(keys: list[str], resamples: int = RESAMPLES, seed: int = SEED,
                    strata: Strata | None = None) -> Iterator[np.ndarray]:
    """Blocks of two-stage resamples of the sorted items ``keys``: each block a (resamples in block, items)
    array of how often each item was drawn. Two runs over the same items get the same draws (a paired bootstrap)."""
    prompts_, table, counts = _item_table(keys)
    prompts, width = table.shape
    groups = _stratum_rows(prompts_, strata) or [np.arange(prompts)]
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, _BLOCK):
        n = min(_BLOCK, resamples - start)
        # stage 1: prompts, each stratum's from its own (one stratum: rng.integers(0, prompts, (n, prompts)))
        rows = np.concatenate([g[rng.integers(0, len(g), size=(n, len(g)))] for g in groups], axis=1)
        drawn_counts = counts[rows]  # each drawn prompt keeps its own number of seeds
        # stage 2: seeds within each drawn prompt, uniform over its own seeds (floor(u * count) < count)
        picks = np.floor(rng.random((n, prompts, width)) * drawn_counts[..., None]).astype(np.int64)
        items = np.take_along_axis(table[rows], picks, axis=2)  # never -1: picks < the drawn prompt's count
        used = np.arange(width)[None, None, :] < drawn_counts[..., None]  # a prompt with fewer seeds draws fewer
        flat = (items + np.arange(n)[:, None, None] * len(keys))[used]
        yield np.bincount(flat, minlength=n * len(keys)).reshape(n, len(keys))


def bootstrap_means(values: dict[str, float], resamples: int = RESAMPLES, seed: int = SEED,
                    strata: Strata | None = None) -> np.ndarray:
    """The item mean of each of ``resamples`` two-stage resamples of ``values``."""
    keys = sorted(values)
    column = np.array([float(values[k]) for k in keys], dtype=np.float64)
    return np.concatenate([(c @ column) / c.sum(axis=1) for c in resample_counts(keys, resamples, seed, strata)])


def _about(keys: list[str], strata: Strata | None) -> dict[str, Any]:
    prompts = sorted({prompt_of(k) for k in keys})
    out: dict[str, Any] = {"prompts": len(prompts), "items": len(keys)}
    if _stratum_rows(prompts, strata) is not None:
        out["strata"] = strata.describe(prompts)
    return out


def interval(values: dict[str, float], finish: Callable[[float], float] = float, resamples: int = RESAMPLES,
             level: float = LEVEL, seed: int = SEED, strata: Strata | None = None) -> dict[str, Any]:
    """The ``level`` percentile interval of ``finish(mean)`` over the run's items, and how it was made."""
    stats = np.array([finish(m) for m in bootstrap_means(values, resamples, seed, strata)])
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return {"low": float(low), "high": float(high), "level": level, "method": METHOD, "resamples": resamples,
            "seed": seed, **_about(sorted(values), strata)}


def prompt_interval(per_prompt: dict[str, float], strata: Strata | None = None) -> dict[str, Any]:
    """The interval of a mean over prompts of one value each (a diversity across each prompt's seeds):
    prompts resampled; the seeds are inside each prompt's value."""
    return interval({item_key({"prompt_id": p, "seed": "*"}): float(v) for p, v in per_prompt.items()}, strata=strata)


FRECHET_METHOD = ("two-stage bootstrap (prompts with replacement, within strata when the set has them, then seeds "
                  "within each prompt) of the Frechet "
                  "distance to the fixed reference; percentile interval moved by the resamples' median excess over "
                  "the run's value, since repeating images in a resample raises the distance by itself")
FRECHET_RESAMPLES_WIDE = 200  # features wider than WIDE: each resample is an eigendecomposition of up to 2048 x 2048
WIDE = 256


def frechet_interval(feats: dict[str, np.ndarray], value: float, mu_r: np.ndarray, sigma_r: np.ndarray,
                     resamples: int | None = None, level: float = LEVEL, seed: int = SEED,
                     strata: Strata | None = None) -> dict[str, Any]:
    """The ``level`` interval of a Frechet distance (FID, FD-DINOv2) from the run's per-item features ``feats``
    (keys ``prompt_id\\x1fseed``) to the reference's fixed (mu_r, sigma_r); ``value`` is the run's distance.

    A resample holds each drawn image as often as it was drawn, which shrinks its spread and raises the
    distance (the same finite-sample bias that makes FID depend on N); the percentile interval is moved by
    the resamples' median excess (recorded as ``bias``) so that it brackets the run's value, and the
    bootstrap supplies only the spread. The low end stays at 0 or above. The reference is held fixed: its
    own sampling noise (a reference run's) is not in the interval.
    """
    keys = sorted(feats)
    x = np.stack([np.asarray(feats[k], np.float64) for k in keys])
    if resamples is None:
        resamples = RESAMPLES if x.shape[1] <= WIDE else FRECHET_RESAMPLES_WIDE
    stats = np.concatenate([weighted_frechet_distances(x, c, mu_r, sigma_r)
                            for c in resample_counts(keys, resamples, seed, strata)])
    bias = float(np.median(stats)) - float(value)
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2]) - bias
    return {"low": max(float(low), 0.0), "high": float(high), "level": level, "method": FRECHET_METHOD,
            "resamples": resamples, "seed": seed, "bias": bias, **_about(keys, strata)}
