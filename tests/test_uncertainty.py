"""Bootstrap intervals of the per-image score metrics: scipy's bootstrap where they coincide (one seed a prompt),
the prompt-level bootstrap where seeds add nothing, and why seeds alone would not do."""

from __future__ import annotations

import numpy as np
from scipy import stats

from metrics.base import MetricContext, SampleBatch
from metrics.scorers import MeanScoreMetric, Scorer
from metrics.uncertainty import METHOD, bootstrap_means, interval


def _items(table: list[list[float]]) -> dict[str, float]:
    return {f"p{p:03d}\x1f{s}": v for p, row in enumerate(table) for s, v in enumerate(row)}


def _scipy(sample: np.ndarray, resamples: int) -> tuple[float, float]:
    res = stats.bootstrap((sample,), np.mean, n_resamples=resamples, method="percentile", confidence_level=0.95,
                          random_state=np.random.default_rng(7))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def test_one_seed_a_prompt_is_scipys_percentile_bootstrap():
    sample = np.random.default_rng(0).normal(0.3, 0.05, 300)
    got = interval(_items([[v] for v in sample]), resamples=20000)
    low, high = _scipy(sample, 20000)
    width = high - low
    print(f"benchkit [{got['low']:.5f}, {got['high']:.5f}] scipy [{low:.5f}, {high:.5f}]")
    assert abs(got["low"] - low) < 0.04 * width and abs(got["high"] - high) < 0.04 * width  # Monte Carlo error
    assert got["low"] < sample.mean() < got["high"] and got["method"] == METHOD and got["resamples"] == 20000


def test_prompts_are_resampled_before_seeds():
    """Prompt effects much larger than seed noise: the two-stage interval is the bootstrap of the prompt means
    (scipy), and resampling the 5 seeds of every prompt as independent items would be about sqrt(5) too narrow."""
    rng = np.random.default_rng(1)
    prompt_effect = rng.normal(0.0, 1.0, 80)
    table = [[e + rng.normal(0, 0.01) for _ in range(5)] for e in prompt_effect]
    got = interval(_items(table), resamples=20000)
    low, high = _scipy(np.array([np.mean(r) for r in table]), 20000)
    assert abs(got["low"] - low) < 0.05 * (high - low) and abs(got["high"] - high) < 0.05 * (high - low)
    flat = interval({f"i{i}\x1f0": v for i, v in enumerate(np.ravel(table))}, resamples=4000)  # every item a 'prompt'
    ratio = (got["high"] - got["low"]) / (flat["high"] - flat["low"])
    print(f"two-stage width / items-as-independent width: {ratio:.2f} (sqrt(5) = {np.sqrt(5):.2f})")
    assert 1.8 < ratio < 2.7 and got["prompts"] == 80 and got["items"] == 400


def test_seeded_and_ragged():
    table = [[1.0, 2.0, 3.0], [4.0], [2.0, 2.5], [0.5, 1.5, 1.0]]
    values = _items(table)
    assert interval(values) == interval(values) and interval(values, seed=1) != interval(values)
    # prompts with fewer seeds draw only their own: with every value 10, every resample's mean is exactly 10
    assert np.all(bootstrap_means({k: 10.0 for k in values}, resamples=500) == 10.0)
    # and each resample is a mean of drawn items: within the values' range, centred near the item mean
    means = bootstrap_means(values, resamples=4000)
    assert means.min() >= 0.5 and means.max() <= 4.0 and abs(means.mean() - np.mean(np.concatenate(table))) < 0.15


class _Echo(Scorer):
    """Each image's mean pixel / 255 as its score."""

    weights_sha256 = {"echo": "0" * 64}
    variant = {"model": "echo"}

    def __call__(self, images, prompts):
        return np.array([im.mean() / 255.0 for im in images])


class _EchoMetric(MeanScoreMetric):
    name = "echo-score"

    def build_scorer(self, device):
        return _Echo()


def test_score_metrics_report_their_interval(tmp_path):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(12)]
    records = [{"prompt_id": f"p{i // 3}", "prompt": "x", "seed": i % 3} for i in range(12)]
    metric = _EchoMetric(MetricContext(cache_dir=tmp_path))
    metric.update(SampleBatch(images, records))
    (value,) = metric.compute()
    ci = value.extra["interval"]
    assert ci["low"] <= value.value <= ci["high"] and ci["prompts"] == 4 and ci["items"] == 12
    assert ci == interval(metric.scores) and ci["low"] < ci["high"]  # seeded: the same run reports the same interval
