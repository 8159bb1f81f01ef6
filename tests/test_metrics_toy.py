"""Toy metrics against hand computations and against the real digits they are calibrated on."""

import numpy as np
import pytest
import torch

from benchkit.toy.data import DIGIT_WORDS, digit_of_prompt, load_digits_uint8
from benchkit.toy.metrics import ToyAlignment, ToyDiversity, ToyFID
from metrics import REGISTRY, MetricContext, SampleBatch


@pytest.fixture()
def ctx(tmp_path):
    return MetricContext(cache_dir=tmp_path / "cache", device=torch.device("cpu"))


def digits_batch(n=300, wrong=False):
    images, labels = load_digits_uint8()
    records = [
        {"prompt_id": f"p{i}", "prompt": f"a handwritten digit {DIGIT_WORDS[(l + wrong) % 10]}", "seed": 0}
        for i, l in enumerate(labels[:n])
    ]
    return SampleBatch(list(images[:n]), records)


def test_digit_of_prompt():
    assert digit_of_prompt("a handwritten digit seven") == 7
    assert digit_of_prompt("the digit 3") == 3
    assert digit_of_prompt("Seven") == 7
    assert digit_of_prompt("a photo of a cat") is None
    assert digit_of_prompt("one or two") is None
    assert digit_of_prompt("version 2.5") is None


def test_alignment_on_real_digits(ctx):
    right = ToyAlignment(ctx)
    right.update(digits_batch())
    value = right.compute()[0]
    assert value.value > 0.95 and value.extra["accuracy"] > 0.97
    wrong = ToyAlignment(ctx)
    wrong.update(digits_batch(wrong=True))
    assert wrong.compute()[0].value < 0.05


def test_alignment_hand_computed(ctx, monkeypatch):
    metric = ToyAlignment(ctx)
    probs = np.zeros((2, 10))
    probs[0, 7], probs[0, 1] = 0.6, 0.4
    probs[1, 2], probs[1, 3] = 0.3, 0.7
    monkeypatch.setattr(metric.extractor, "probabilities", lambda images: probs)
    metric.update(SampleBatch([None, None], [{"prompt_id": "a", "prompt": "seven", "seed": 0},
                                             {"prompt_id": "b", "prompt": "digit 2", "seed": 0}]))
    v = metric.compute()[0]
    assert v.value == pytest.approx((0.6 + 0.3) / 2) and v.extra["accuracy"] == 0.5


def test_diversity_hand_computed(ctx, monkeypatch):
    metric = ToyDiversity(ctx)
    feats = {("a", 0): [0.0, 0.0], ("a", 1): [3.0, 0.0], ("a", 2): [0.0, 4.0], ("b", 0): [1.0, 1.0], ("b", 1): [1.0, 2.0]}
    records = [{"prompt_id": p, "prompt": "x", "seed": s} for p, s in feats]
    monkeypatch.setattr(type(metric.extractor), "__call__", lambda self, images: np.array([feats[k] for k in feats]))
    monkeypatch.setattr(metric.extractor, "dim", 2)
    metric.update(SampleBatch([None] * 5, records))
    # prompt a: distances 3, 4, 5 -> mean 4; prompt b: 1 -> mean over prompts 2.5
    assert metric.compute()[0].value == pytest.approx(2.5)


def test_fid_of_reference_against_itself_is_zero(ctx):
    images, _ = load_digits_uint8()
    metric = ToyFID(ctx)
    metric.update(SampleBatch(list(images), [{}] * len(images)))
    # zero up to the rounding of square roots of near-zero eigenvalues
    assert abs(metric.compute()[0].value) < 1e-6
    half = ToyFID(ctx)
    half.update(SampleBatch(list(images[:200]), [{}] * 200))
    assert half.compute()[0].value > 0.01  # a small sample is measurably off


def test_reference_cache_is_keyed_by_extractor(ctx):
    metric = ToyFID(ctx)
    *_, key, cached = metric.digits_reference()
    assert not cached
    *_, key2, cached2 = metric.digits_reference()
    assert cached2 and key2 == key
    metric.extractor.weights_sha256, original = "0" * 64, metric.extractor.weights_sha256
    try:
        *_, key3, cached3 = metric.digits_reference()
        assert key3 != key and not cached3
    finally:
        metric.extractor.weights_sha256 = original


@pytest.mark.parametrize("name", ["toy-fid", "toy-alignment", "toy-diversity"])
def test_merge_of_shards_equals_whole(ctx, name):
    images, labels = load_digits_uint8()
    recs = [{"prompt_id": f"p{i % 7}", "prompt": DIGIT_WORDS[l], "seed": i // 7} for i, l in enumerate(labels[:140])]
    whole, a, b = (REGISTRY[name](ctx) for _ in range(3))
    whole.update(SampleBatch(list(images[:140]), recs))
    a.update(SampleBatch(list(images[:60]), recs[:60]))
    b.update(SampleBatch(list(images[60:140]), recs[60:]))
    a.merge(b)
    assert a.compute()[0].value == pytest.approx(whole.compute()[0].value, rel=1e-9)
