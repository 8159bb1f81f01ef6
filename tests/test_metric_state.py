"""Declared metric state (torchmetrics' add_state): what crosses chunks and ranks, and how it merges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchkit.toy.metrics import ToyAlignment, ToyDiversity, ToyFID
from metrics import MetricContext, SampleBatch
from metrics.base import MERGE_RULES, FeatureMoments, Metric
from metrics.features import EXTRACTORS


def _batch(start: int, n: int) -> SampleBatch:
    from benchkit.toy.data import load_digits_uint8

    images, labels = load_digits_uint8()
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    records = [{"prompt_id": f"digit{labels[i]}", "prompt": f"a handwritten digit {names[labels[i]]}", "seed": i, "meta": {}}
               for i in range(start, start + n)]
    return SampleBatch(list(images[start : start + n]), records)


def test_the_toy_metrics_declare_their_state(tmp_path):
    ctx = MetricContext(cache_dir=tmp_path)
    assert set(ToyFID(ctx).state_dict()) == {"moments", "feats"}
    assert set(ToyAlignment(ctx).state_dict()) == {"probs", "correct"}
    assert set(ToyDiversity(ctx).state_dict()) == {"by_prompt"}


@pytest.mark.parametrize("cls", [ToyFID, ToyAlignment, ToyDiversity])
def test_merging_declared_state_equals_one_pass(cls, tmp_path):
    """Three chunks scored from empty state and merged in order give one pass's numbers: counts,
    variants and per-item values exactly, float sums and FID's moments up to rounding (they add in
    another order than one pass; a fixed chunking is bit-stable, see tests/test_score_chunks.py)."""
    ctx = MetricContext(cache_dir=tmp_path)
    whole = cls(ctx)
    whole.update(_batch(0, 90))
    merged = cls(ctx)
    empty = merged.state_dict()
    for start in (0, 30, 60):
        part = merged.with_state(empty)
        part.update(_batch(start, 30))
        merged.merge(merged.with_state(part.state_dict()))  # as another rank's state arrives
    got, want = [v.to_dict() for v in merged.compute()], [v.to_dict() for v in whole.compute()]
    for g, w in zip(got, want):
        assert g["value"] == pytest.approx(w["value"], rel=1e-10)
        g["value"] = w["value"]
        if "interval" in w["extra"]:  # FID's is placed around the value, which moments give up to rounding
            got_iv, want_iv = g["extra"]["interval"], w["extra"]["interval"]
            numbers = [k for k, v in want_iv.items() if isinstance(v, float)]
            assert [got_iv[k] for k in numbers] == pytest.approx([want_iv[k] for k in numbers], rel=1e-10)
            g["extra"]["interval"] = {**got_iv, **{k: want_iv[k] for k in numbers}}
    assert got == want


def test_state_is_a_snapshot_and_leaves_the_models_behind(tmp_path):
    ctx = MetricContext(cache_dir=tmp_path)
    metric = ToyAlignment(ctx)
    before = metric.state_dict()
    metric.update(_batch(0, 10))
    assert before == {"probs": {}, "correct": 0} and len(metric.probs) == 10
    twin = metric.with_state(before)
    assert twin.extractor is metric.extractor and twin.probs == {} and len(metric.probs) == 10
    with pytest.raises(ValueError, match="declared"):
        metric.with_state({"correct": 3})


def test_merge_rules():
    assert MERGE_RULES["sum"](2, 3) == 5
    assert MERGE_RULES["extend"]([1], [2, 3]) == [1, 2, 3]
    assert MERGE_RULES["update"]({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}
    assert MERGE_RULES["update_each"]({"p": {0: 1}}, {"p": {1: 2}, "q": {0: 3}}) == {"p": {0: 1, 1: 2}, "q": {0: 3}}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    a, b, whole = FeatureMoments(3), FeatureMoments(3), FeatureMoments(3)
    a.update(x[:15])
    b.update(x[15:])
    whole.update(x)
    merged = MERGE_RULES["moments"](a, b)
    assert merged.n == 40 and np.allclose(merged.mean_cov()[1], np.cov(x, rowvar=False))
    by_view = MERGE_RULES["moments"]({"v": FeatureMoments(3)}, {"v": whole})
    assert by_view["v"].n == 40


def test_an_unknown_merge_rule_is_refused(tmp_path):
    class Bad(Metric):
        name = "bad"

        def __init__(self, ctx):
            super().__init__(ctx)
            self.add_state("x", 0, merge="max")

    with pytest.raises(ValueError, match="unknown merge rule 'max'"):
        Bad(MetricContext(cache_dir=Path(tmp_path)))


def test_one_extractor_registry_and_one_model_cache(tmp_path):
    """FID's Inception and the toy classifier are both registered extractors; a network is loaded
    once per process and shared by every metric that uses it."""
    assert {"clean-fid-inception-2015-12-05", "toy-digits-classifier"} <= set(EXTRACTORS)
    ctx = MetricContext(cache_dir=tmp_path)
    assert ToyFID(ctx).extractor is ToyAlignment(ctx).extractor is ToyDiversity(ctx).extractor
