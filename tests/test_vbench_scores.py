"""VBench's Quality / Semantic / Total as its official scripts compute them, without their one flaw
(a missing dimension counted as 0).

The reference is Vchitect/VBench@45e79ec scripts/cal_final_score.py with scripts/constant.py.
They are not in the `vbench` wheel, so the tests that run them need a checkout of that repository:
set VBENCH_REPO to it (`git clone https://github.com/Vchitect/VBench`). Without one, the same
formula and constants, transcribed below with their file:line, are the reference (and where a
checkout is present the transcription itself is checked against constant.py).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchkit.core.errors import BenchkitError
from metrics.vbench_scores import BY_NAME, DIMENSIONS, vbench_scores

# scripts/constant.py, transcribed: TASK_INFO (1-18), DIM_WEIGHT (32-49), NORMALIZE_DIC (64-81),
# SEMANTIC_WEIGHT / QUALITY_WEIGHT (95-96), QUALITY_LIST (100-107), SEMANTIC_LIST (109-119).
TASK_INFO = ["subject consistency", "background consistency", "temporal flickering", "motion smoothness",
             "dynamic degree", "aesthetic quality", "imaging quality", "object class", "multiple objects",
             "human action", "color", "spatial relationship", "scene", "appearance style", "temporal style",
             "overall consistency"]
DIM_WEIGHT = {**{k: 1 for k in TASK_INFO}, "dynamic degree": 0.5}
NORMALIZE_DIC = {**{k: {"Min": 0.0, "Max": 1.0} for k in TASK_INFO},
                 "subject consistency": {"Min": 0.1462, "Max": 1.0}, "background consistency": {"Min": 0.2615, "Max": 1.0},
                 "temporal flickering": {"Min": 0.6293, "Max": 1.0}, "motion smoothness": {"Min": 0.706, "Max": 0.9975},
                 "scene": {"Min": 0.0, "Max": 0.8222}, "appearance style": {"Min": 0.0009, "Max": 0.2855},
                 "temporal style": {"Min": 0.0, "Max": 0.364}, "overall consistency": {"Min": 0.0, "Max": 0.364}}
SEMANTIC_WEIGHT, QUALITY_WEIGHT = 1, 4
QUALITY_LIST = ["subject consistency", "background consistency", "temporal flickering", "motion smoothness",
                "aesthetic quality", "imaging quality", "dynamic degree"]
SEMANTIC_LIST = ["object class", "multiple objects", "human action", "color", "spatial relationship", "scene",
                 "appearance style", "temporal style", "overall consistency"]


def transcribed_formula(upload: dict[str, float]) -> tuple[dict[str, float], float, float, float]:
    """cal_final_score.py:42-67 over the transcription above: weighted normalised scores, Quality, Semantic, Total."""
    norm = {k: (upload[k] - NORMALIZE_DIC[k]["Min"]) / (NORMALIZE_DIC[k]["Max"] - NORMALIZE_DIC[k]["Min"]) * DIM_WEIGHT[k]
            for k in TASK_INFO}
    quality = sum(norm[k] for k in QUALITY_LIST) / sum(DIM_WEIGHT[k] for k in QUALITY_LIST)
    semantic = sum(norm[k] for k in SEMANTIC_LIST) / sum(DIM_WEIGHT[k] for k in SEMANTIC_LIST)
    return norm, quality, semantic, (quality * QUALITY_WEIGHT + semantic * SEMANTIC_WEIGHT) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)


def official_results(seed: int = 0, drop: tuple[str, ...] = (), prompts: tuple[str, ...] = ("a prompt",)) -> dict[str, list]:
    """A results file as `vbench evaluate` writes it ({dimension: [mean, [per-video results]]}), plausible scores."""
    rng = np.random.default_rng(seed)
    out = {}
    for label in TASK_INFO:
        key = label.replace(" ", "_")
        if key in drop:
            continue
        lo, hi = NORMALIZE_DIC[label]["Min"], NORMALIZE_DIC[label]["Max"]
        per_video = [{"video_path": f"/videos/{p}-{i}.mp4", "video_results": float(lo + rng.uniform(0.2, 0.9) * (hi - lo))}
                     for p in prompts for i in range(5)]
        out[key] = [sum(v["video_results"] for v in per_video) / len(per_video), per_video]
    return out


@pytest.fixture()
def official(monkeypatch):
    """scripts/cal_final_score.py of a VBench checkout (VBENCH_REPO), imported as the script imports itself."""
    scripts = Path(os.environ.get("VBENCH_REPO", "/nonexistent")) / "scripts"
    if not (scripts / "cal_final_score.py").is_file():
        pytest.skip("set VBENCH_REPO to a Vchitect/VBench checkout to run its scripts/cal_final_score.py")
    monkeypatch.syspath_prepend(str(scripts))
    for name in ("constant", "cal_final_score"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("cal_final_score")
    yield module
    for name in ("constant", "cal_final_score"):
        sys.modules.pop(name, None)


def run_official(module, results: dict, tmp_path: Path, monkeypatch) -> tuple[dict, float, float, float]:
    """The script's own path: its submission() reads a zip of results files, then its three score functions."""
    (tmp_path / "model_eval_results.json").write_text(json.dumps(results))
    with zipfile.ZipFile(tmp_path / "evaluation_results.zip", "w") as z:
        z.write(tmp_path / "model_eval_results.json", "model_eval_results.json")
    monkeypatch.chdir(tmp_path)  # submission() extracts into ./<model_name>
    upload = module.submission("model", str(tmp_path / "evaluation_results.zip"))
    norm = module.get_nomalized_score(upload)
    quality, semantic = module.get_quality_score(norm), module.get_semantic_score(norm)
    return norm, quality, semantic, module.get_final_score(quality, semantic)


def test_constants_are_constant_py(official):
    """Ours and the transcription above, both against the checkout's constant.py."""
    assert [d.label for d in DIMENSIONS] == official.TASK_INFO == TASK_INFO
    assert {d.label: d.weight for d in DIMENSIONS} == official.DIM_WEIGHT == DIM_WEIGHT
    assert {d.label: {"Min": d.low, "Max": d.high} for d in DIMENSIONS} == official.NORMALIZE_DIC == NORMALIZE_DIC
    assert [d.label for d in DIMENSIONS if d.group == "quality"] == sorted(official.QUALITY_LIST, key=TASK_INFO.index)
    assert [d.label for d in DIMENSIONS if d.group == "semantic"] == sorted(official.SEMANTIC_LIST, key=TASK_INFO.index)
    assert (official.QUALITY_LIST, official.SEMANTIC_LIST) == (QUALITY_LIST, SEMANTIC_LIST)
    assert (official.QUALITY_WEIGHT, official.SEMANTIC_WEIGHT) == (QUALITY_WEIGHT, SEMANTIC_WEIGHT)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_results_match_the_official_script(official, tmp_path, monkeypatch, seed):
    results = official_results(seed)
    norm, quality, semantic, total = run_official(official, results, tmp_path, monkeypatch)
    ours = vbench_scores({k: v[0] for k, v in results.items()})
    assert ours["quality"] == pytest.approx(quality, rel=1e-12)
    assert ours["semantic"] == pytest.approx(semantic, rel=1e-12)
    assert ours["total"] == pytest.approx(total, rel=1e-12)
    assert {k: v * BY_NAME[k].weight for k, v in ours["normalized"].items()} == pytest.approx(
        {k.replace(" ", "_"): v for k, v in norm.items()}, rel=1e-12)  # the script folds the weight into the score
    assert ours["missing"] == [] and not any(k.endswith("_partial") for k in ours)


def test_a_missing_dimension_is_partial_where_the_script_counts_it_as_zero(official, tmp_path, monkeypatch):
    results = official_results(3, drop=("color",))
    _, _, semantic_with_zero, total_with_zero = run_official(official, results, tmp_path, monkeypatch)
    ours = vbench_scores({k: v[0] for k, v in results.items()})
    assert "semantic" not in ours and "total" not in ours
    assert ours["semantic_partial"]["missing"] == ["color"] and ours["total_partial"]["missing"] == ["color"]
    assert ours["semantic_partial"]["value"] > semantic_with_zero  # the script's number is pulled down by the 0
    assert ours["total_partial"]["value"] > total_with_zero


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_results_match_the_transcribed_formula(seed):
    """Always runs: the formula of cal_final_score.py:42-67 over constant.py's numbers, transcribed above."""
    results = official_results(seed)
    upload = {k.replace("_", " "): v[0] for k, v in results.items()}  # cal_final_score.py:29
    norm, quality, semantic, total = transcribed_formula(upload)
    ours = vbench_scores({k: v[0] for k, v in results.items()})
    assert (ours["quality"], ours["semantic"], ours["total"]) == pytest.approx((quality, semantic, total), rel=1e-12)
    assert {BY_NAME[k].label: v * BY_NAME[k].weight for k, v in ours["normalized"].items()} == pytest.approx(norm, rel=1e-12)
    assert vbench_scores(upload) == ours  # constant.py's spelling ("subject consistency") reads the same


def test_partial_aggregates_are_means_of_what_is_present_never_zeros():
    """With every normalised score equal, any mean of them is that score; counting a missing one as 0 is not."""
    level = 0.7
    raw = {d.name: d.low + level * (d.high - d.low) for d in DIMENSIONS}
    for dropped in (["dynamic_degree"], ["scene", "color"], ["subject_consistency", "object_class"]):
        ours = vbench_scores({k: v for k, v in raw.items() if k not in dropped})
        assert "total" not in ours and sorted(ours["total_partial"]["missing"]) == sorted(dropped)
        assert ours["total_partial"]["value"] == pytest.approx(level, rel=1e-12)
        for group in ("quality", "semantic"):
            if any(BY_NAME[d].group == group for d in dropped):
                assert group not in ours and ours[f"{group}_partial"]["value"] == pytest.approx(level, rel=1e-12)
                assert sorted(ours[f"{group}_partial"]["missing"]) == sorted(d for d in dropped if BY_NAME[d].group == group)
            else:
                assert f"{group}_partial" not in ours and ours[group] == pytest.approx(level, rel=1e-12)


def test_partial_total_keeps_the_official_weights_of_what_is_present():
    """Semantic missing entirely: the Total's weights over the quality dimensions make it the Quality."""
    results = official_results(4)
    quality_only = {k: v[0] for k, v in results.items() if BY_NAME[k].group == "quality"}
    ours = vbench_scores(quality_only)
    _, quality, _, _ = transcribed_formula({k.replace("_", " "): v[0] for k, v in results.items()})
    assert ours["quality"] == pytest.approx(quality, rel=1e-12)
    assert ours["semantic_partial"]["value"] is None and ours["semantic_partial"]["present"] == []
    assert ours["total_partial"]["value"] == pytest.approx(quality, rel=1e-12)


@pytest.mark.parametrize("bad, message", [
    ({"subject_consistency": 0.9, "warp_speed": 0.5}, "'warp_speed' is not one of VBench's 16"),
    ({"subject_consistency": 0.9, "subject consistency": 0.8}, "given twice"),
    ({"color": float("nan")}, "not a finite number"),
    ({"color": "0.5"}, "not a finite number"),
    ({"color": True}, "not a finite number"),
])
def test_bad_dimension_values_are_one_line_errors(bad, message):
    with pytest.raises(BenchkitError, match=message):
        vbench_scores(bad)


RECORDED = json.loads((Path(__file__).parent / "data" / "vbench" / "reference_scores.json").read_text())


@pytest.mark.parametrize("case", sorted(RECORDED["cases"]))
def test_scores_equal_what_the_official_script_computed(case):
    """VBench's own cal_final_score.py, run by tests/data/vbench/make_reference.py at the recorded commit on these
    dimension means (with VBENCH_REPO set the tests above run it live): Quality, Semantic and Total reproduced, and
    a missing dimension reported as partial where the script's numbers count it as 0."""
    recorded = RECORDED["cases"][case]
    ours = vbench_scores(recorded["dimension_means"])
    theirs = {k.replace(" ", "_"): v for k, v in recorded["normalized_times_weight"].items()}
    assert {k: v * BY_NAME[k].weight for k, v in ours["normalized"].items()} == pytest.approx(
        {k: theirs[k] for k in ours["normalized"]}, rel=1e-12)
    assert set(theirs) - set(ours["normalized"]) == set(ours["missing"])
    assert all(theirs[k] == 0 for k in ours["missing"])  # the script's 0 for what was not scored
    if case.startswith("full"):
        for key in ("quality", "semantic", "total"):
            assert ours[key] == pytest.approx(recorded[key], rel=1e-12)
    else:
        assert ours["quality"] == pytest.approx(recorded["quality"], rel=1e-12)  # color is a semantic dimension
        assert ours["semantic_partial"]["missing"] == ["color"]
        assert ours["semantic_partial"]["value"] > recorded["semantic"] and ours["total_partial"]["value"] > recorded["total"]
