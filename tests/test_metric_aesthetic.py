"""The aesthetic metric against simple-aesthetics-predictor's ``AestheticsPredictorV2Linear`` (the LAION v2 head on
transformers' CLIPVisionModelWithProjection, built as its ``convert_v2_linear_from_openai_clip`` builds it, minus
the download), fed by open_clip's port of OpenAI CLIP's eval transform (what improved-aesthetic-predictor's
simple_inference.py runs), on identical random weights: a CLIP ViT-L/14-shaped folder (patch 14, 224 px, 768-d
projection; tiny widths) and a head in the .pth's own format.

simple-aesthetics-predictor rather than pyiqa's ``laion_aes``: it installs alone (``--no-deps``, pure Python) and
reads the transformers layout of the ``clip-vit-large-patch14`` weight benchkit already registers, while pyiqa
needs OpenAI ``clip`` (hard-wired to download ViT-L/14) and a heavy import chain, and resizes tensors rather
than PIL images (its own docs note the scores then differ from the original's).
"""

from __future__ import annotations

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from metric_models import save_aesthetic_head, save_tiny_hf_clip_l14
from PIL import Image

from benchkit.core.errors import BenchkitError
from metrics import MetricContext, build_metrics
from metrics.base import SampleBatch

HEAD = "sac+logos+ava1-l14-linearMSE.pth"


def _images():
    rng = np.random.default_rng(11)
    images = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in [(64, 96), (224, 224), (90, 90), (300, 200)]]
    ramp = np.linspace(0, 255, 160)
    images.append((ramp[None, :] * 0.7 + ramp[:120, None] * 0.3).astype(np.uint8))  # grayscale HxW
    images.append(np.full((80, 120, 3), (200, 40, 90), np.uint8))  # flat colour
    return images


def _batch(seed: int = 0) -> SampleBatch:
    images = _images()
    return SampleBatch(images, [{"prompt_id": f"p{i}", "prompt": "any", "seed": seed} for i in range(len(images))])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("aesthetic") / "weights"
    save_tiny_hf_clip_l14(root / "clip-vit-large-patch14", seed=4)
    save_aesthetic_head(root / HEAD, seed=9)
    return root


@pytest.fixture()
def ctx(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(weights))
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    return MetricContext(cache_dir=tmp_path / "cache")


def _reference_transform():
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.transform import image_transform

    return image_transform(224, is_train=False, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)


@torch.no_grad()
def test_scores_match_simple_aesthetics_predictor(weights, ctx):
    try:
        from aesthetics_predictor import AestheticsPredictorV2Linear
    except ImportError:
        pytest.skip("simple-aesthetics-predictor not installed: pip install --no-deps simple-aesthetics-predictor==0.1.2")
    model = AestheticsPredictorV2Linear.from_pretrained(str(weights / "clip-vit-large-patch14")).eval()
    state = torch.load(weights / HEAD, map_location="cpu", weights_only=True)
    model.layers.load_state_dict(OrderedDict((k.replace("layers.", ""), v) for k, v in state.items()))
    transform = _reference_transform()
    pixels = torch.stack([transform(Image.fromarray(im)) for im in _images()])
    expected = model(pixel_values=pixels).logits[:, 0].double().numpy()

    batch = _batch()
    (metric,) = build_metrics(["aesthetic"], ctx)
    metric.update(batch)
    (value,) = metric.compute()
    got = np.array([metric.scores[f"p{i}\x1f0"] for i in range(len(batch.images))])
    print(f"aesthetic vs AestheticsPredictorV2Linear: max |diff| {np.abs(got - expected).max():.2e}; "
          f"scores {np.round(expected, 4).tolist()}")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.diff(np.sort(expected)).min() > 1e-3 and np.ptp(expected) > 0.05  # every image its own score, far apart
    assert value.value == pytest.approx(expected.mean(), abs=1e-5)
    assert set(value.variant["weights_sha256"]) == {"clip-vit-large-patch14", "laion-aesthetic-v2"}
    assert value.variant["embedding"] == "L2-normalised" and "transformers" in value.variant["libraries"]


def test_preprocessing_is_openai_clips(ctx):
    """benchkit's per-image transform equals open_clip's OpenAI eval transform bit for bit, and pickles (it runs
    in the scorer's workers); prepared inputs give the direct path's scores."""
    from metrics.aesthetic import openai_clip_input

    transform = _reference_transform()
    for image in _images():
        assert torch.equal(openai_clip_input(image), transform(Image.fromarray(image)))
    (direct,) = build_metrics(["aesthetic"], ctx)
    direct.update(_batch())
    (worker,) = build_metrics(["aesthetic"], ctx)
    (key, fn), = worker.preprocessors().items()
    fn = pickle.loads(pickle.dumps(fn))
    batch = _batch()
    worker.update(SampleBatch([], batch.records, {key: [fn(im) for im in batch.images]}))
    assert worker.scores == direct.scores


def test_shares_clip_with_clip_score_l14(ctx):
    aesthetic, clip_score = build_metrics(["aesthetic", "clip-score-l14"], ctx)
    assert aesthetic.scorer.model is clip_score.scorer.model


def test_missing_or_mismatched_head_is_one_line(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    folder = tmp_path / "w"
    save_tiny_hf_clip_l14(folder / "clip-vit-large-patch14", seed=4)
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(folder))
    ctx = MetricContext(cache_dir=tmp_path / "cache")
    with pytest.raises(BenchkitError, match=r"weights 'laion-aesthetic-v2' not found.*curl -L") as exc:
        build_metrics(["aesthetic"], ctx)
    assert "\n" not in str(exc.value)

    torch.save({"layers.0.weight": torch.zeros(1024, 512), "layers.0.bias": torch.zeros(1024)}, folder / HEAD)
    with pytest.raises(BenchkitError, match=r"takes 512-d features but the CLIP backbone gives 768-d") as exc:
        build_metrics(["aesthetic"], ctx)
    assert "\n" not in str(exc.value)
