"""Issue 18: paired comparisons (`compare --paired`) and the bootstrap intervals behind them.

The paired statistics are recomputed here from the runs' own files (item_scores.json, the PNGs) with plain
numpy and the binomial formula, so the command's numbers are checked against an independent computation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchkit.evaluate import run_eval
from benchkit.models.presets import PRESETS
from benchkit.models.spec import load_spec_file
from metrics.frechet import frechet_distance, weighted_frechet_distances
from metrics.uncertainty import Strata, interval, resample_counts
from prompts import load_prompt_set

STUDENT = Path(__file__).resolve().parents[1] / "benchkit" / "toy" / "assets" / "students" / "dmd2-1step" / "spec.toml"


@pytest.mark.parametrize("n, d", [(40, 6), (5, 12)])  # more rows than dimensions, and fewer (the m x m path)
def test_weighted_frechet_is_the_distance_of_the_repeated_rows(n, d):
    rng = np.random.default_rng(n)
    x, ref = rng.normal(size=(n, d)), rng.normal(1.0, 1.5, size=(300, d))
    mu_r, sigma_r = ref.mean(0), np.cov(ref, rowvar=False)
    weights = rng.integers(0, 3, size=(5, n))
    weights[:, :2] += 1  # at least two distinct rows drawn
    got = weighted_frechet_distances(x, weights, mu_r, sigma_r)
    for value, w in zip(got, weights):
        rows = np.repeat(x, w, axis=0)
        assert value == pytest.approx(frechet_distance(rows.mean(0), np.cov(rows, rowvar=False), mu_r, sigma_r), rel=1e-10)


def test_strata_keep_the_design_and_single_prompt_strata_do_not_count():
    keys = [f"p{p}\x1f{s}" for p in range(6) for s in range(3)]
    strata = Strata("digit", {f"p{p}": str(p % 2) for p in range(6)})  # two digits of three prompts each
    for block in resample_counts(keys, 300, strata=strata):
        per_digit = [block[:, [i for i, k in enumerate(keys) if int(k[1]) % 2 == d]].sum(axis=1) for d in (0, 1)]
        assert np.all(per_digit[0] == 9) and np.all(per_digit[1] == 9)  # each digit keeps its 3 prompts x 3 seeds
    values = {k: float(k[1]) for k in keys}  # a prompt's value is its number: the strata's means are 2 and 3
    assert interval(values, strata=strata)["strata"] == {"field": "digit", "count": 2}
    single = Strata("digit", {f"p{p}": str(p) for p in range(6)})  # one prompt a stratum: resampled as no strata
    assert "strata" not in interval(values, strata=single)
    assert interval(values, strata=single)["low"] == interval(values)["low"]


def _run(tmp_path: Path, name: str, spec) -> Path:
    out = tmp_path / name
    run_eval(spec, load_prompt_set("toy-digits").limit(10), [0, 1, 2], out, device="cpu", batch_size=15,
             cache_dir=tmp_path / "cache", show_progress=False, metrics=["toy-fid", "toy-alignment"])
    return out


def test_paired_student_against_teacher(tmp_path, cli):
    teacher = _run(tmp_path, "teacher", PRESETS["toy-digits"].with_recipe(steps=8))
    student = _run(tmp_path, "student", load_spec_file(STUDENT, PRESETS))
    code, _, err = cli("rescore", str(student), "--metrics", "toy-fid", "--reference", str(teacher), "-q",
                       "--cache-dir", str(tmp_path / "cache"))
    assert code in (0, None), err
    code, out, err = cli("compare", str(teacher), str(student), "--paired", "--metrics", "toy-alignment", "--json",
                         "--device", "cpu")
    assert code in (0, 1), err
    paired = json.loads(out)[0]["paired"]
    assert paired["items"] == 30 and paired["prompts"] == 10

    # the per-image score: mean difference, paired interval, wins per prompt, the exact sign test
    [score] = paired["scores"]
    items = {}
    for side, run in (("b", teacher), ("c", student)):
        nested = json.loads((run / "item_scores.json").read_text())["metrics"]["toy-alignment"]["scores"]
        items[side] = {(p, s): v for p, seeds in nested.items() for s, v in seeds.items()}
    assert len(items["b"]) == len(items["c"]) == 30
    diff = {k: items["c"][k] - items["b"][k] for k in items["b"]}
    assert score["delta"] == pytest.approx(np.mean(list(diff.values())), rel=1e-12)
    assert score["interval"]["low"] <= score["delta"] <= score["interval"]["high"]
    per_prompt = {p: np.mean([v for (q, _), v in diff.items() if q == p]) for p, _ in diff}
    wins, losses = sum(v > 0 for v in per_prompt.values()), sum(v < 0 for v in per_prompt.values())
    assert (score["wins"], score["losses"], score["ties"]) == (wins, losses, 10 - wins - losses)
    assert score["win_rate"] == pytest.approx((wins + (10 - wins - losses) / 2) / 10)
    n, k = wins + losses, min(wins, losses)  # two-sided exact binomial test, by the formula
    p_value = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    assert score["sign_test_p"] == pytest.approx(p_value, rel=1e-9)
    low, high = score["win_rate_interval"]
    assert low <= wins / n <= high
    expected = "within noise" if score["interval"]["low"] <= 0 <= score["interval"]["high"] else \
        ("better" if score["interval"]["low"] > 0 else "worse")
    assert score["verdict"] == expected
    for worst in score["worst_prompts"]:
        assert worst["delta"] < 0 and all(Path(f).exists() for f in worst["baseline_images"] + worst["candidate_images"])

    # each image's distance to the teacher's of the same prompt and seed
    distances = {d["name"]: d for d in paired["distances"]}
    assert set(distances) == {"pixel-rmse", "toy-feature-l2"}
    assert "does not apply to 8x8" in paired["left_out"]["lpips-alex"]
    records = {r: [json.loads(line) for line in (r / "samples.jsonl").read_text().splitlines()] for r in (teacher, student)}
    rmse = []
    for rec in records[teacher]:
        twin = next(x for x in records[student] if (x["prompt_id"], x["seed"]) == (rec["prompt_id"], rec["seed"]))
        a, b = (np.asarray(Image.open(run / r["file"]), dtype=np.float64) for run, r in ((teacher, rec), (student, twin)))
        rmse.append(np.sqrt(np.mean((a - b) ** 2)))
    assert distances["pixel-rmse"]["mean"] == pytest.approx(np.mean(rmse), rel=1e-12)
    assert 0 < distances["toy-feature-l2"]["interval"]["low"] <= distances["toy-feature-l2"]["mean"]

    # the distribution distance measured with the teacher's run as reference is picked up
    assert [m["name"] for m in paired["distribution"]] == ["toy-fid"]


def test_paired_refuses_runs_without_shared_items(tmp_path, cli):
    teacher = _run(tmp_path, "teacher", PRESETS["toy-digits"].with_recipe(steps=1))
    other = tmp_path / "other"
    run_eval(PRESETS["toy-digits"].with_recipe(steps=1), load_prompt_set("toy-digits").limit(10), [7], other,
             device="cpu", batch_size=15, cache_dir=tmp_path / "cache", show_progress=False, metrics=["toy-alignment"])
    code, _, err = cli("compare", str(teacher), str(other), "--paired", "--metrics", "toy-alignment")
    assert code == 2 and "share 0 (prompt, seed) items" in err and "Traceback" not in err
    code, _, err = cli("compare", str(teacher), str(teacher), "--paired", "--distances", "lpips-vgg")
    assert code == 2 and "unknown paired distance 'lpips-vgg'" in err
