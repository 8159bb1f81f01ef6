"""Per-group metric breakdowns: each group's value equals the metric computed on that subset."""

import json

import pytest
import torch

from benchkit.core.items import meta_values
from benchkit.toy.data import DIGIT_WORDS, load_digits_uint8
from benchkit.toy.metrics import ToyAlignment, ToyFID
from metrics import MetricContext, SampleBatch
from metrics.breakdown import Breakdown
from reports.render import breakdown_tables
from reports.runs import load_runs


@pytest.fixture()
def ctx(tmp_path):
    return MetricContext(cache_dir=tmp_path / "cache", device=torch.device("cpu"))


def test_meta_values():
    assert meta_values({"category": "Animals"}, "category") == ["Animals"]
    assert meta_values({"dimension": ["color", "scene"]}, "dimension") == ["color", "scene"]
    assert meta_values({}, "category") == [] and meta_values(None, "x") == [] and meta_values({"x": ""}, "x") == []


def test_groups_equal_metrics_on_subsets(ctx):
    images, labels = load_digits_uint8()
    images, labels = images[:120], labels[:120]
    parity = ["even" if l % 2 == 0 else "odd" for l in labels]
    records = [{"prompt_id": f"p{i}", "prompt": f"digit {DIGIT_WORDS[l]}", "seed": 0,
                "meta": {"parity": p, "tags": ["all", p]}} for i, (l, p) in enumerate(zip(labels, parity))]
    bd = Breakdown(["parity", "tags"], ["toy-fid", "toy-alignment", "latency"], ctx)
    for start in (0, 50):  # two batches, as score_run feeds them
        end = start + 50 if start == 0 else 120
        bd.update(SampleBatch(list(images[start:end]), records[start:end]))
    out = {(g["field"], g["value"]): g for g in bd.compute()}
    assert sorted(out) == [("parity", "even"), ("parity", "odd"), ("tags", "all"), ("tags", "even"), ("tags", "odd")]
    for value in ("even", "odd"):
        idx = [i for i, p in enumerate(parity) if p == value]
        for cls in (ToyFID, ToyAlignment):
            direct = cls(ctx)
            direct.update(SampleBatch([images[i] for i in idx], [records[i] for i in idx]))
            expected = direct.compute()[0].value
            got = {m["name"]: m["value"] for m in out[("parity", value)]["metrics"]}[cls.name]
            assert got == pytest.approx(expected, rel=1e-12)
        assert out[("parity", value)]["n"] == len(idx)
    assert out[("tags", "all")]["n"] == 120
    assert all(m["name"] != "latency_image_p50" for g in out.values() for m in g["metrics"])


def test_uncomputable_group_is_skipped_with_reason(ctx):
    images, _ = load_digits_uint8()
    recs = [{"prompt_id": "a", "prompt": "zero", "seed": 0, "meta": {"g": "x"}},
            {"prompt_id": "b", "prompt": "one", "seed": 0, "meta": {"g": "x"}}]
    bd = Breakdown(["g"], ["toy-diversity", "toy-alignment"], ctx)
    bd.update(SampleBatch(list(images[:2]), recs))
    (group,) = bd.compute()
    assert [m["name"] for m in group["metrics"]] == ["toy-alignment"]
    assert "2 seeds per prompt" in group["skipped"]["toy-diversity"]


def test_seed_groups_leave_out_diversity(ctx):
    """A group of one seed has no pairs of seeds: diversity metrics are not even built for it."""
    from metrics.breakdown import SEED_FIELD

    images, _ = load_digits_uint8()
    recs = [{"prompt_id": p, "prompt": w, "seed": s, "meta": {}} for p, w in (("a", "zero"), ("b", "one")) for s in (0, 1)]
    bd = Breakdown([SEED_FIELD], ["toy-diversity", "toy-alignment"], ctx)
    bd.update(SampleBatch(list(images[:4]), recs))
    groups = bd.compute()
    assert [g["value"] for g in groups] == ["0", "1"]
    for g in groups:
        assert [m["name"] for m in g["metrics"]] == ["toy-alignment"] and g["skipped"] == {} and g["n"] == 2


def write_run(root, name, groups):
    run = root / name
    (run / "images").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"spec": {"name": name}, "status": "complete"}))
    (run / "samples.jsonl").write_text("")
    breakdowns = [{"field": "category", "value": v, "n": 4, "skipped": {},
                   "metrics": [{"name": "toy-fid", "value": fid, "unit": "fid", "higher_is_better": False, "n": 4,
                                "variant": {}, "extra": {}}]} for v, fid in groups.items()]
    (run / "results.json").write_text(json.dumps({"run": {"label": name}, "metrics": [], "breakdowns": breakdowns}))
    return run


def test_report_breakdown_table(tmp_path):
    a = write_run(tmp_path, "a", {"Animals": 10.0, "Food": 30.0})
    b = write_run(tmp_path, "b", {"Animals": 20.0, "Food": 5.0, "Arts": 7.0})
    ((caption, (headers, rows)),) = breakdown_tables(load_runs([a, b]))
    assert caption.startswith("toy-fid") and caption.endswith("by category")
    assert headers == ["category", "a", "b"]
    table = {r[0].text: [(c.text, c.bold) for c in r[1:]] for r in rows}
    assert table == {"Animals": [("10", True), ("20", False)], "Arts": [("–", False), ("7", False)],
                     "Food": [("30", False), ("5", True)]}
