"""PickScore against the PickScore README formula, HPSv2 (v2.0 and v2.1) against the hpsv2
package's own code path (its vendored open_clip, transform and tokenizer), on tiny random models."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest
import torch
from metric_models import TINY_OPEN_CLIP, save_clip_processor, save_tiny_hf_clip
from PIL import Image

from metrics import MetricContext, build_metrics
from metrics.base import SampleBatch


def _batch():
    rng = np.random.default_rng(7)
    sizes = [(64, 96), (224, 224), (90, 90), (300, 200)]  # (224, 224): hpsv2 neither resizes nor pads
    images = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes]
    prompts = ["a cat", "a watercolor of a lighthouse at dusk", "two dogs " * 40, "a red cube"]
    return SampleBatch(images, [{"prompt_id": f"p{i}", "prompt": p, "seed": 0} for i, p in enumerate(prompts)])


@pytest.fixture()
def ctx(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    return MetricContext(cache_dir=tmp_path / "cache")


@torch.no_grad()
def test_pickscore_matches_the_readme_formula(ctx, tmp_path):
    from transformers import AutoModel, AutoProcessor

    weights = tmp_path / "weights"
    save_tiny_hf_clip(weights / "pickscore-v1", seed=3, with_processor=False)
    save_clip_processor(weights / "clip-vit-h-14-processor")
    batch = _batch()
    (metric,) = build_metrics(["pickscore"], ctx)
    metric.update(batch)
    (value,) = metric.compute()

    processor = AutoProcessor.from_pretrained(str(weights / "clip-vit-h-14-processor"))
    model = AutoModel.from_pretrained(str(weights / "pickscore-v1")).eval()
    scores = []
    for image, rec in zip(batch.images, batch.records):  # yuvalkirstain/PickScore README, one prompt at a time
        image_inputs = processor(images=[Image.fromarray(image)], padding=True, truncation=True, max_length=77, return_tensors="pt")
        text_inputs = processor(text=rec["prompt"], padding=True, truncation=True, max_length=77, return_tensors="pt")
        image_embs = model.get_image_features(**image_inputs).pooler_output
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        text_embs = model.get_text_features(**text_inputs).pooler_output
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        scores.append(float((model.logit_scale.exp() * (text_embs @ image_embs.T))[0, 0]))
    assert value.value == pytest.approx(np.mean(scores), rel=1e-5)
    assert value.variant["scale"] == "logit_scale.exp() x cosine" and set(value.variant["weights_sha256"]) == {
        "pickscore-v1", "clip-vit-h-14-processor"}


def _hpsv2_open_clip():
    """hpsv2's vendored open_clip, imported without hpsv2/__init__ (which needs `clint` for downloads)."""
    if "hpsv2" not in sys.modules:
        spec = importlib.util.find_spec("hpsv2")
        if spec is None:
            pytest.skip("hpsv2 not installed: pip install --no-deps hpsv2x==1.2.0 (its deps pin old pytest/protobuf)")
        pkg = types.ModuleType("hpsv2")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["hpsv2"] = pkg
    import hpsv2.src.open_clip as hps_open_clip

    return hps_open_clip


@pytest.mark.parametrize("version", ["v2.1", "v2.0"])
@torch.no_grad()
def test_hpsv2_matches_the_hpsv2_code_path(ctx, tmp_path, version):
    hps_open_clip = _hpsv2_open_clip()
    config = tmp_path / "tiny-hps.json"
    config.write_text(json.dumps(TINY_OPEN_CLIP))
    hps_open_clip.add_model_config(config)
    torch.manual_seed(11 if version == "v2.1" else 12)
    # hpsv2.img_score.initialize_model, with the tiny architecture in place of ViT-H-14
    model, _, preprocess_val = hps_open_clip.create_model_and_transforms(
        "tiny-hps", None, precision="amp", device="cpu", jit=False, force_quick_gelu=False, force_custom_text=False,
        force_patch_dropout=False, force_image_size=None, pretrained_image=False, image_mean=None, image_std=None,
        light_augmentation=True, aug_cfg={}, output_dict=True, with_score_predictor=False, with_region_predictor=False)
    folder = tmp_path / "weights" / f"hps{version}"
    folder.mkdir(parents=True)
    name = "HPS_v2.1_compressed.pt" if version == "v2.1" else "HPS_v2_compressed.pt"
    # the published checkpoints are fp16 state dicts under 'state_dict'
    torch.save({"state_dict": {k: v.half() for k, v in model.state_dict().items()}}, folder / name)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_OPEN_CLIP}))
    batch = _batch()

    checkpoint = torch.load(folder / name, map_location="cpu")  # hpsv2.img_score.score from here on
    model.load_state_dict(checkpoint["state_dict"])
    tokenizer = hps_open_clip.get_tokenizer("tiny-hps")
    model.eval()
    expected = []
    for image, rec in zip(batch.images, batch.records):
        pixel = preprocess_val(Image.fromarray(image)).unsqueeze(0)
        text = tokenizer([rec["prompt"]])
        outputs = model(pixel, text)
        logits_per_image = outputs["image_features"] @ outputs["text_features"].T
        expected.append(float(torch.diagonal(logits_per_image)[0]))

    (metric,) = build_metrics(["hpsv2" if version == "v2.1" else "hpsv2.0"], ctx)
    metric.update(batch)
    (value,) = metric.compute()
    got = [metric.scores[f"p{i}\x1f0"] for i in range(len(batch.images))]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert value.value == pytest.approx(np.mean(expected), rel=1e-5, abs=1e-7)
    assert value.variant["hps_version"] == version and value.variant["weights_sha256"] == {
        f"hps{version}": metric.scorer.weight.sha256}


def test_hps_padding_by_hand():
    """Long side to 224, zero padding (before normalisation) centred, no crop."""
    from metrics.preprocess import hps_pad_square

    image = Image.fromarray(np.full((56, 112, 3), 255, np.uint8))  # 2:1 -> 112x224 content, 56 rows of pad each side
    x = hps_pad_square(image, 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert x.shape == (3, 224, 224)
    assert (x[:, :56] == 0).all() and (x[:, 168:] == 0).all()
    assert torch.allclose(x[:, 60:164], torch.ones(1), atol=1e-5)
    # already 224 on the long side: not resized, still padded (hpsv2 would pass 224x150 on and fail)
    y = hps_pad_square(Image.fromarray(np.full((224, 150, 3), 255, np.uint8)), 224, (0.0,) * 3, (1.0,) * 3)
    assert y.shape == (3, 224, 224) and (y[:, :, :37] == 0).all() and (y[:, :, 37:187] == 1).all() and (y[:, :, 187:] == 0).all()
