"""A PartiPrompts eval with 4 seeds (the ADM diversity protocol's shape) yields per-category tables."""

import json

from benchkit.evaluate import run_eval
from benchkit.models.presets import PRESETS
from prompts import load_prompt_set
from reports import write_report


def test_partiprompts_four_seeds_per_category_breakdown(tmp_path):
    prompts = load_prompt_set("partiprompts").sample(24, seed=0)
    run = tmp_path / "run"
    results = run_eval(PRESETS["toy-digits"].with_recipe(steps=2), prompts, [0, 1, 2, 3], run,
                       metrics=["toy-fid", "toy-diversity"], device="cpu", batch_size=24,
                       cache_dir=tmp_path / "cache", show_progress=False)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["prompt_set"]["subset"] == "sample 24 of 1632 seed 0"
    assert manifest["prompt_set"]["group_fields"] == ["category", "challenge"]
    categories = {r.meta["category"] for r in prompts.records}
    by_category = {g["value"]: g for g in results["breakdowns"] if g["field"] == "category"}
    assert set(by_category) == categories
    assert sum(g["n"] for g in by_category.values()) == 24 * 4
    for group in by_category.values():
        assert "toy-diversity" in {m["name"] for m in group["metrics"]}  # 4 seeds per prompt in every group
    md = write_report([run], tmp_path / "report")["markdown"].read_text()
    assert "by category" in md and "by challenge" in md
    for category in categories:
        assert f"| {category} |" in md
