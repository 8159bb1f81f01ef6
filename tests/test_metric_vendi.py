"""The Vendi score against the vendi-score package (``vendi_score.vendi``) on identical features:
on feature matrices (both of the package's paths, and orders q other than 1), through the metric
(all images, and the mean over prompts of each prompt's seeds), end to end on clean-fid's
Inception architecture with random weights, and on the degenerate cases (identical images give 1,
N orthogonal features give N). Merging chunks and ranks gives one pass's numbers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from vendi_score import vendi as reference

from benchkit.core.errors import BenchkitError
from metrics import REGISTRY, MetricContext, SampleBatch, ScorePlan, build_metrics
from metrics.vendi import (
    Vendi,
    VendiMetric,
    check_order,
    normalize_rows,
    spectrum,
    vendi_from_eigenvalues,
    vendi_score,
)

# vendi-score 0.0.3 tests ``type(K) == scipy.sparse.csr.csr_matrix``, a namespace SciPy deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning")


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path, monkeypatch):
    """Weight hashes are remembered under $BENCHKIT_CACHE; keep the user's cache out of tests."""
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))


def _features(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Correlated features with rows of very different norms (as pool features are), so that both
    the normalisation and the spectrum matter: neither 1 nor n."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=d)
    x = 0.7 * shared + rng.normal(size=(n, d)) * rng.uniform(0.2, 1.5, size=(n, 1))
    return x * rng.uniform(0.01, 100.0, size=(n, 1))


class GivenVendi(VendiMetric):
    """The metric on features carried by the records (``rec["x"]``): the extractor left out."""

    name = "vendi-given"
    protocol = "features as given"
    dim = 24

    def load_extractor(self, ctx):
        return SimpleNamespace(name="given", dim=self.dim, weights_sha256="-")

    def features(self, batch):
        return np.stack([r["x"] for r in batch.records])


def _items(features: np.ndarray, n_prompts: int) -> list[dict]:
    """Row i is prompt i % n_prompts, seed i // n_prompts: a prompt's seeds are spread over the batches."""
    return [{"prompt_id": f"p{i % n_prompts}", "prompt": "x", "seed": i // n_prompts, "x": f}
            for i, f in enumerate(features)]


def _by_prompt(records: list[dict]) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    for r in sorted(records, key=lambda r: r["seed"]):
        out.setdefault(r["prompt_id"], []).append(r["x"])
    return {k: np.stack(v) for k, v in out.items()}


def _values(metric) -> dict[str, dict]:
    return {v.name: v.to_dict() for v in metric.compute()}


# --- the arithmetic, on feature matrices ------------------------------------------------------------

@pytest.mark.parametrize("n,d", [(10, 32), (50, 8)], ids=["n<d:kernel-path", "n>=d:dual-path"])
def test_vendi_of_features_is_the_packages(n, d):
    from sklearn.preprocessing import normalize

    x = _features(n, d)
    got = vendi_score(x)
    assert 1.5 < got < n - 1  # a number the spectrum decides, not a bound
    assert got == pytest.approx(reference.score_X(x), rel=1e-9, abs=1e-9)
    assert got == pytest.approx(reference.score_dual(x), rel=1e-9, abs=1e-9)
    xn = normalize_rows(x)
    np.testing.assert_array_equal(xn, normalize(x, axis=1))
    # the cosine kernel of the raw features, normalised as score_K(normalize=True) does it
    assert got == pytest.approx(reference.score_K(x @ x.T, normalize=True), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("q", [0, 0.5, 2, 3, "inf"])
def test_orders_other_than_one_are_the_packages(q):
    """score_X passes q=1 to score_K whatever q it is given (vendi-score 0.0.3), so the order-q
    reference is score_K on the cosine kernel (n < d) and score_dual (n >= d), which honour q."""
    small, tall = _features(10, 32, seed=1), _features(50, 8, seed=2)
    xs = normalize_rows(small)
    assert vendi_score(small, q) == pytest.approx(reference.score_K(xs @ xs.T, q=q), rel=1e-9, abs=1e-9)
    assert vendi_score(tall, q) == pytest.approx(reference.score_dual(tall, q=q), rel=1e-9, abs=1e-9)
    # the d x d path with the rank's zero eigenvalues dropped is the n x n path, for q < 1 too
    assert vendi_from_eigenvalues(spectrum(xs.T @ xs / 10, 10), q) == pytest.approx(vendi_score(small, q), rel=1e-9)
    # Hill numbers do not increase with the order: q=0 counts eigenvalues, inf is 1 / the largest
    orders = [0, 0.5, 1, 2, 3, "inf"]
    values = [vendi_score(small, o) for o in orders]
    assert all(a >= b - 1e-12 for a, b in zip(values, values[1:])) and values[0] == pytest.approx(10)


def test_degenerate_cases():
    rng = np.random.default_rng(3)
    same = np.tile(rng.uniform(0, 1, 16), (7, 1)) * rng.uniform(0.1, 10, (7, 1))  # one direction, any length
    assert vendi_score(same) == pytest.approx(1.0, abs=1e-9) and reference.score_X(same) == pytest.approx(1.0, abs=1e-9)
    for n, d in ((9, 16), (16, 16)):
        orthogonal = np.eye(d)[:n] * rng.uniform(0.1, 10, (n, 1))
        for q in (1, 2, "inf"):
            assert vendi_score(orthogonal, q) == pytest.approx(n, rel=1e-12)
    for bad in (-1, float("nan"), "two", True):
        with pytest.raises(ValueError, match="order q"):
            check_order(bad)


# --- the metric: all images, and each prompt's seeds ------------------------------------------------

@pytest.mark.parametrize("seeds", [[0, 1, 2], None], ids=["seeds-known", "seeds-unknown"])
def test_metric_equals_the_package_on_the_same_features(tmp_path, seeds):
    x = _features(12, GivenVendi.dim, seed=4)
    records = _items(x, 4)  # 4 prompts x 3 seeds
    metric = GivenVendi(MetricContext(cache_dir=tmp_path, manifest={"seeds": seeds} if seeds else None))
    metric.update(SampleBatch([], records[:8]))  # seeds 0-1 of every prompt
    assert not metric.per_prompt and set(metric.pending) == {"p0", "p1", "p2", "p3"}
    metric.update(SampleBatch([], records[8:11]))  # p0-p2 are complete now
    if seeds:  # a complete prompt is scored at once and its features dropped
        assert set(metric.per_prompt) == {"p0", "p1", "p2"} and set(metric.pending) == {"p3"}
    else:  # unknown seed count: every prompt waits for compute()
        assert not metric.per_prompt and len(metric.pending["p0"]) == 3
    metric.update(SampleBatch([], records[11:]))
    values = _values(metric)
    assert set(values) == set(GivenVendi.value_names()) == {"vendi-given", "vendi-given_per_prompt"}
    overall, per_prompt = values["vendi-given"], values["vendi-given_per_prompt"]
    assert overall["value"] == pytest.approx(reference.score_X(x), rel=1e-9, abs=1e-9)
    expected = np.mean([reference.score_X(rows) for rows in _by_prompt(records).values()])
    assert per_prompt["value"] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert 1.2 < per_prompt["value"] < 3 and per_prompt["value"] < overall["value"] < 12
    for v in (overall, per_prompt):
        assert v["n"] == 12 and v["higher_is_better"] is True and v["unit"] == "vendi"
        assert {k: v["variant"][k] for k in ("extractor", "protocol", "q", "feature_dim", "n")} == {
            "extractor": "given", "protocol": "features as given", "q": 1, "feature_dim": 24, "n": 12}
        assert v["variant"]["kernel"].startswith("cosine")
    assert per_prompt["variant"]["seeds_per_prompt"] == 3 and per_prompt["extra"]["prompts"] == 4


def test_identical_images_give_one_and_orthogonal_features_give_n(tmp_path):
    ctx = MetricContext(cache_dir=tmp_path, manifest={"seeds": [0, 1, 2]})
    rng = np.random.default_rng(5)
    one = np.tile(rng.uniform(0, 1, GivenVendi.dim), (12, 1))
    same = GivenVendi(ctx)
    same.update(SampleBatch([], _items(one, 4)))
    assert [v.value for v in same.compute()] == pytest.approx([1.0, 1.0], abs=1e-9)
    orthogonal = GivenVendi(ctx)
    orthogonal.update(SampleBatch([], _items(np.eye(GivenVendi.dim)[:12] * rng.uniform(0.1, 10, (12, 1)), 4)))
    assert [v.value for v in orthogonal.compute()] == pytest.approx([12.0, 3.0], rel=1e-12)


def test_merging_chunks_and_ranks_equals_one_pass(tmp_path):
    """Chunks from empty state merged in order (as the scorer merges chunks and ranks), and in
    another order, give one pass's values: per-prompt scores to the bit (each prompt's seeds in seed
    order), the overall score to rounding (its d x d sum adds in another order)."""
    x = _features(30, GivenVendi.dim, seed=6)
    records = _items(x, 6)  # 6 prompts x 5 seeds; chunks of 7 split every prompt's seeds
    for manifest in ({"seeds": [0, 1, 2, 3, 4]}, None):
        ctx = MetricContext(cache_dir=tmp_path, manifest=manifest)
        whole = GivenVendi(ctx)
        whole.update(SampleBatch([], records))
        want = _values(whole)
        for order in ([0, 7, 14, 21, 28], [28, 14, 0, 21, 7]):
            merged = GivenVendi(ctx)
            empty = merged.state_dict()
            for start in order:
                part = merged.with_state(empty)
                part.update(SampleBatch([], records[start : start + 7]))
                merged.merge(merged.with_state(part.state_dict()))  # as another rank's state arrives
            if manifest:  # complete prompts were scored during the merges, and only their scores kept
                assert not merged.pending and len(merged.per_prompt) == 6
            got = _values(merged)
            assert merged.per_prompt == whole.per_prompt and len(whole.per_prompt) == 6  # bit for bit
            assert got["vendi-given_per_prompt"] == want["vendi-given_per_prompt"]
            assert got["vendi-given"]["value"] == pytest.approx(want["vendi-given"]["value"], rel=1e-12)
            got["vendi-given"]["value"] = want["vendi-given"]["value"]
            assert got == want
            assert merged.n_images == 30 and np.allclose(merged.scatter, normalize_rows(x).T @ normalize_rows(x))


def test_toy_variant_on_the_toy_digits_merges_as_one_pass(tmp_path):
    """The toy world's variant (benchkit/toy/metrics.py: a ToyMetric on the toy digits classifier), on real
    digits: the package's numbers on the classifier's own features, and shards merged as one pass."""
    from benchkit.toy.data import load_digits_uint8
    from benchkit.toy.metrics import ToyVendi
    from metrics import REGISTRY

    assert REGISTRY["toy-vendi"] is ToyVendi

    images, labels = load_digits_uint8()
    records = [{"prompt_id": f"digit{labels[i]}", "prompt": "x", "seed": i} for i in range(90)]
    ctx = MetricContext(cache_dir=tmp_path)
    whole = ToyVendi(ctx)
    whole.update(SampleBatch(list(images[:90]), records))
    merged = ToyVendi(ctx)
    empty = merged.state_dict()
    for start in (0, 30, 60):
        part = merged.with_state(empty)
        part.update(SampleBatch(list(images[start : start + 30]), records[start : start + 30]))
        merged.merge(merged.with_state(part.state_dict()))
    want, got = _values(whole), _values(merged)
    assert got["toy-vendi"]["value"] == pytest.approx(want["toy-vendi"]["value"], rel=1e-12)
    assert got["toy-vendi_per_prompt"] == want["toy-vendi_per_prompt"]
    feats = whole.extractor(list(images[:90]))
    assert want["toy-vendi"]["value"] == pytest.approx(reference.score_X(feats), rel=1e-9, abs=1e-9)
    per_digit = [reference.score_X(feats[labels[:90] == k]) for k in set(labels[:90])]
    assert want["toy-vendi_per_prompt"]["value"] == pytest.approx(np.mean(per_digit), rel=1e-9, abs=1e-9)
    # ten digits look more different from one another than the copies of one digit do
    assert want["toy-vendi_per_prompt"]["value"] < want["toy-vendi"]["value"]
    assert want["toy-vendi"]["variant"]["feature_dim"] == whole.extractor.dim
    assert want["toy-vendi"]["variant"]["protocol"].startswith("toy-v1")


# --- the registered metric: clean-fid's Inception ----------------------------------------------------

def test_vendi_on_clean_fids_inception_is_the_packages(tmp_path, monkeypatch):
    """`vendi` end to end on the real Inception architecture with random weights: the package's
    score_X of clean-fid's own features (its clean resizer and Inception wrapper) of the same
    images. One prompt's three seeds are one image: its score is 1."""
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.utils import ResizeDataset
    from metric_models import save_random_inception

    torch.set_num_threads(1)  # (conftest restores it)
    path = save_random_inception(tmp_path / "inception")
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({"fid-inception": str(path)}))
    rng = np.random.default_rng(7)
    stripes, gradient = np.zeros((40, 48, 3), np.uint8), np.zeros((40, 48, 3), np.uint8)
    stripes[:, ::4] = 255
    gradient[..., 0], gradient[20:, :, 2] = np.linspace(0, 255, 48).astype(np.uint8)[None], 200
    images = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), stripes, gradient]  # p0: three unlike images
    images += [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)] * 3  # p1: one image three times
    records = [{"prompt_id": f"p{i // 3}", "prompt": "x", "seed": i % 3} for i in range(6)]
    (metric,) = build_metrics(["vendi"], MetricContext(cache_dir=tmp_path, manifest={"seeds": [0, 1, 2]}))
    metric.update(SampleBatch(images[:4], records[:4]))
    assert set(metric.per_prompt) == {"p0"} and set(metric.pending) == {"p1"}
    metric.update(SampleBatch(images[4:], records[4:]))
    values = _values(metric)

    resize = ResizeDataset([], mode="clean").fn_resize
    model = InceptionV3W(str(path.parent), download=False)
    with torch.no_grad():
        feats = np.concatenate([model(torch.from_numpy(resize(im).transpose(2, 0, 1).copy())[None]).numpy()
                                for im in images]).astype(np.float64)
    assert values["vendi"]["value"] == pytest.approx(reference.score_X(feats), rel=1e-9, abs=1e-9)
    p0 = reference.score_X(feats[:3])
    assert p0 > 1.02 and reference.score_X(feats[3:]) == pytest.approx(1.0, abs=1e-9)
    assert values["vendi_per_prompt"]["value"] == pytest.approx((p0 + 1.0) / 2, rel=1e-9, abs=1e-9)
    variant = values["vendi"]["variant"]
    assert (variant["extractor"], variant["protocol"], variant["q"], variant["feature_dim"], variant["n"]) == (
        "clean-fid-inception-2015-12-05", "clean-fid", 1, 2048, 6)
    assert variant["weights_sha256"]["fid-inception"] == variant["extractor_sha256"] == metric.extractor.weights_sha256
    assert variant["libraries"]["clean-fid"] == "0.1.35" and "clean-fid clean resize" in variant["preprocessing"]
    # FID's clean-fid protocol prepares the very same inputs under the same key: a run resizes once for both
    (fid,) = build_metrics(["fid"], MetricContext(cache_dir=tmp_path))
    assert set(metric.preprocessors()) == set(fid.preprocessors())


def test_needs_two_seeds_per_prompt(tmp_path):
    assert REGISTRY["vendi"] is Vendi and Vendi.value_names() == ("vendi", "vendi_per_prompt")
    assert Vendi.needs() == ["2+ seeds per prompt"] and Vendi.compares_seeds
    with pytest.raises(BenchkitError, match="at least 2 per prompt"):
        Vendi.check(ScorePlan(records=[], seeds_per_prompt=1), MetricContext(cache_dir=tmp_path))
    single = GivenVendi(MetricContext(cache_dir=tmp_path))
    single.update(SampleBatch([], _items(_features(3, GivenVendi.dim), 3)))  # three prompts, one seed each
    with pytest.raises(BenchkitError, match="needs at least 2 seeds per prompt"):
        single.compute()
