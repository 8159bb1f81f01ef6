"""VBench's 16 text-to-video dimensions and how its leaderboard combines them into Quality,
Semantic and Total, so that numbers from the official toolkit read the same in benchkit.

Every constant is VBench's own, cited to ``scripts/constant.py`` of Vchitect/VBench@45e79ec
(the commit benchkit's vbench prompt sets come from); the formulas are those of
``scripts/cal_final_score.py`` there. One deliberate difference: that script counts a
dimension missing from the results as 0 (cal_final_score.py:37-39), which makes a partial
evaluation look like a bad model. Here an aggregate is computed only when all of its
dimensions are present; otherwise it is returned as ``*_partial`` with the missing
dimensions named, its value the same weighted mean over the dimensions that are present.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchkit.core.errors import BenchkitError

SOURCE = "Vchitect/VBench@45e79ec scripts/constant.py, scripts/cal_final_score.py"
QUALITY, SEMANTIC = "quality", "semantic"


@dataclass(frozen=True)
class Dimension:
    """One VBench dimension: its names, its normalisation bounds, its weight and its group."""

    name: str  # as results files and `--dimension` name it (vbench/__init__.py:19)
    label: str  # as scripts/constant.py names it (TASK_INFO, constant.py:1-18)
    low: float  # NORMALIZE_DIC "Min" (constant.py:64-81)
    high: float  # NORMALIZE_DIC "Max"
    weight: float  # DIM_WEIGHT (constant.py:32-49)
    group: str  # QUALITY_LIST (constant.py:100-107) or SEMANTIC_LIST (constant.py:109-119)

    @property
    def metric(self) -> str:
        """The name of its value in results.json, computed here or imported: vbench-subject-consistency."""
        return "vbench-" + self.name.replace("_", "-")

    def normalize(self, value: float) -> float:
        """(x - Min) / (Max - Min), unweighted (cal_final_score.py:48; the weight is applied in the aggregate)."""
        return (value - self.low) / (self.high - self.low)


# In TASK_INFO's order (constant.py:1-18). Columns: bounds from constant.py:65-80, weight from constant.py:33-48.
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("subject_consistency", "subject consistency", 0.1462, 1.0, 1, QUALITY),  # :65, :33, :101
    Dimension("background_consistency", "background consistency", 0.2615, 1.0, 1, QUALITY),  # :66, :34, :102
    Dimension("temporal_flickering", "temporal flickering", 0.6293, 1.0, 1, QUALITY),  # :67, :35, :103
    Dimension("motion_smoothness", "motion smoothness", 0.706, 0.9975, 1, QUALITY),  # :68, :36, :104
    Dimension("dynamic_degree", "dynamic degree", 0.0, 1.0, 0.5, QUALITY),  # :69, :39, :107
    Dimension("aesthetic_quality", "aesthetic quality", 0.0, 1.0, 1, QUALITY),  # :70, :37, :105
    Dimension("imaging_quality", "imaging quality", 0.0, 1.0, 1, QUALITY),  # :71, :38, :106
    Dimension("object_class", "object class", 0.0, 1.0, 1, SEMANTIC),  # :72, :40, :110
    Dimension("multiple_objects", "multiple objects", 0.0, 1.0, 1, SEMANTIC),  # :73, :41, :111
    Dimension("human_action", "human action", 0.0, 1.0, 1, SEMANTIC),  # :74, :42, :112
    Dimension("color", "color", 0.0, 1.0, 1, SEMANTIC),  # :75, :43, :113
    Dimension("spatial_relationship", "spatial relationship", 0.0, 1.0, 1, SEMANTIC),  # :76, :44, :114
    Dimension("scene", "scene", 0.0, 0.8222, 1, SEMANTIC),  # :77, :45, :115
    Dimension("appearance_style", "appearance style", 0.0009, 0.2855, 1, SEMANTIC),  # :78, :46, :116
    Dimension("temporal_style", "temporal style", 0.0, 0.364, 1, SEMANTIC),  # :79, :47, :117
    Dimension("overall_consistency", "overall consistency", 0.0, 0.364, 1, SEMANTIC),  # :80, :48, :118
)
BY_NAME: dict[str, Dimension] = {d.name: d for d in DIMENSIONS}

# The aggregates sum in the order of QUALITY_LIST / SEMANTIC_LIST (constant.py:100-119), as the official
# script does, so that a full set of dimensions gives its numbers to the last bit.
QUALITY_DIMENSIONS = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
                      "aesthetic_quality", "imaging_quality", "dynamic_degree")
SEMANTIC_DIMENSIONS = ("object_class", "multiple_objects", "human_action", "color", "spatial_relationship", "scene",
                       "appearance_style", "temporal_style", "overall_consistency")
QUALITY_WEIGHT = 4  # constant.py:96
SEMANTIC_WEIGHT = 1  # constant.py:95
GROUP_WEIGHT = {QUALITY: QUALITY_WEIGHT, SEMANTIC: SEMANTIC_WEIGHT}


def dimension_name(key: str) -> str:
    """The dimension a results key names: 'subject_consistency' (results files) or 'subject consistency' (constant.py)."""
    name = str(key).strip().replace(" ", "_")
    if name not in BY_NAME:
        raise BenchkitError(f"'{key}' is not one of VBench's 16 text-to-video dimensions ({', '.join(BY_NAME)})")
    return name


def _weighted_mean(names: list[str], normalized: dict[str, float], weight: dict[str, float]) -> float:
    """sum(w * n) / sum(w), summed in the given order (cal_final_score.py:49, 52-64)."""
    return sum(normalized[n] * weight[n] for n in names) / sum(weight[n] for n in names)


def _aggregate(members: tuple[str, ...], normalized: dict[str, float], weight: dict[str, float]) -> dict[str, Any]:
    present = [n for n in members if n in normalized]
    return {"value": _weighted_mean(present, normalized, weight) if present else None,
            "present": present, "missing": [n for n in members if n not in normalized]}


def vbench_scores(dim_values: dict[str, float]) -> dict[str, Any]:
    """Normalised dimensions and Quality, Semantic and Total from raw VBench dimension scores.

    ``dim_values``: {dimension: raw score} with any subset of the 16 dimensions, keyed as results
    files or constant.py name them. Returns ``normalized`` ({dimension: score}, in TASK_INFO
    order), ``quality``, ``semantic`` and ``total`` when all their dimensions are present, else
    ``quality_partial`` (and so on): {"value", "present", "missing"}, the value the same weighted
    mean over the dimensions present (None when none is), never a missing dimension as 0.
    Total is (4 Quality + Semantic) / 5 (cal_final_score.py:66-67), which is one weighted mean of
    the 16 dimensions; its partial form renormalises those weights over the dimensions present.
    """
    raw: dict[str, float] = {}
    for key, value in dim_values.items():
        name = dimension_name(key)
        if name in raw:
            raise BenchkitError(f"dimension {name} is given twice ('{key}' and another spelling)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BenchkitError(f"dimension {name}: score {value!r} is not a finite number")
        raw[name] = float(value)
    normalized = {d.name: d.normalize(raw[d.name]) for d in DIMENSIONS if d.name in raw}
    weight = {d.name: d.weight for d in DIMENSIONS}
    out: dict[str, Any] = {"normalized": normalized,
                           "missing": [d.name for d in DIMENSIONS if d.name not in raw]}
    groups = {QUALITY: _aggregate(QUALITY_DIMENSIONS, normalized, weight),
              SEMANTIC: _aggregate(SEMANTIC_DIMENSIONS, normalized, weight)}
    for group, agg in groups.items():
        if agg["missing"]:
            out[f"{group}_partial"] = agg
        else:
            out[group] = agg["value"]
    if not out["missing"]:
        out["total"] = ((out[QUALITY] * QUALITY_WEIGHT + out[SEMANTIC] * SEMANTIC_WEIGHT)
                        / (QUALITY_WEIGHT + SEMANTIC_WEIGHT))
    else:
        # the same total as one weighted mean: each dimension's share of its group, times the group's weight
        group_sum = {g: sum(weight[n] for n in members)
                     for g, members in ((QUALITY, QUALITY_DIMENSIONS), (SEMANTIC, SEMANTIC_DIMENSIONS))}
        share = {d.name: GROUP_WEIGHT[d.group] * d.weight / group_sum[d.group] for d in DIMENSIONS}
        out["total_partial"] = _aggregate(QUALITY_DIMENSIONS + SEMANTIC_DIMENSIONS, normalized, share)
    return out


def run_aggregates(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The normalised dimensions and Quality / Semantic / Total (or their ``-partial`` forms, naming what is
    missing) of the VBench dimensions a run computed itself, as results.json entries beside them."""
    by_metric = {d.metric: d for d in DIMENSIONS}
    mine = {by_metric[v["name"]].name: v for v in values if v.get("name") in by_metric}
    if not mine:
        return []
    scores = vbench_scores({name: v["value"] for name, v in mine.items()})
    protocol = {k: v for k, v in next(iter(mine.values())).get("variant", {}).items() if k in ("protocol", "libraries")}
    variant = {**protocol, "normalization": SOURCE}
    out = []
    for name, normalized in scores["normalized"].items():
        dim = BY_NAME[name]
        out.append({"name": f"{dim.metric}-normalized", "value": normalized, "unit": "normalized", "higher_is_better": True,
                    "n": mine[name]["n"], "variant": variant, "extra": {"raw": mine[name]["value"], "min": dim.low,
                                                                       "max": dim.high}})
    for key in (QUALITY, SEMANTIC, "total"):
        full = key in scores
        agg = scores.get(f"{key}_partial") or {"value": scores.get(key), "missing": [], "present": list(scores["normalized"])}
        if agg["value"] is None:
            continue  # not one of its dimensions was computed
        out.append({"name": f"vbench-{key}" if full else f"vbench-{key}-partial", "value": agg["value"], "unit": "normalized",
                    "higher_is_better": True, "n": max(v["n"] for v in mine.values()),
                    "variant": {**variant, **({} if full else {"missing": agg["missing"]})},
                    "extra": {"dimensions": [n for n in agg["present"]], "missing": agg["missing"]}})
    return out
