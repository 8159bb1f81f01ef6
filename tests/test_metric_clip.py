"""CLIP score: the GigaGAN/DMD2 protocol against a direct open_clip computation written as DMD2
writes it, the token splice pinned by hand, and the ViT-L/14 x100 variant against torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metric_models import save_tiny_hf_clip, save_tiny_open_clip
from PIL import Image

from metrics import MetricContext, build_metrics
from metrics.base import SampleBatch

LONG = "a very detailed photograph of " + "a red bicycle leaning on a blue wall, " * 12


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("clipweights")
    save_tiny_open_clip(root / "clip-vit-g-14-laion2b-s12b-b42k", seed=1)
    save_tiny_hf_clip(root / "clip-vit-large-patch14", seed=2)
    return root


@pytest.fixture()
def ctx(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(weights_dir))
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    return MetricContext(cache_dir=tmp_path / "cache")


def _batch(n=3):
    rng = np.random.default_rng(0)
    sizes = [(64, 96), (80, 80), (120, 70)]
    images = [rng.integers(0, 256, (*sizes[i % 3], 3), dtype=np.uint8) for i in range(n)]
    prompts = ["a cat on a mat", "two dogs", LONG][:n]
    return SampleBatch(images, [{"prompt_id": f"p{i}", "prompt": p, "seed": 0} for i, p in enumerate(prompts)])


def test_prefix_splice_by_hand():
    from open_clip.tokenizer import tokenize

    from metrics.clip_score import EOT, prefixed_tokens

    # splicing the prefix's tokens after SOT is the same as tokenising the prefixed caption
    assert torch.equal(prefixed_tokens(["a cat on a mat"]), tokenize(["A photo depicts a cat on a mat"]))
    long = prefixed_tokens([LONG])
    assert long[0, 76] == EOT and (long[0] > 0).all()  # full, and the end token kept at the last position
    assert torch.equal(long[0, :76], tokenize(["A photo depicts " + LONG])[0, :76])
    assert (tokenize([LONG])[0] == EOT).sum() == 1


@torch.no_grad()
def test_clip_score_matches_dmd2_open_clip_code(ctx, weights_dir):
    """DMD2's compute_clip_score, with open_clip.tokenize standing in for OpenAI's clip.tokenize."""
    import open_clip
    import torchvision.transforms as T

    (metric,) = build_metrics(["clip-score"], ctx)
    batch = _batch()
    metric.update(batch)
    (value,) = metric.compute()

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{weights_dir / 'clip-vit-g-14-laion2b-s12b-b42k'}")
    model = model.eval().float()

    def resize_and_center_crop(image_np, resize_size=256):
        image_pil = Image.fromarray(image_np)
        image_pil = T.functional.center_crop(image_pil, min(image_pil.size))
        return image_pil.resize((resize_size, resize_size), Image.LANCZOS)

    imgs = torch.stack([preprocess(resize_and_center_crop(im)) for im in batch.images])
    tokens = open_clip.tokenize([r["prompt"] for r in batch.records])
    prepend_text_token = open_clip.tokenize("A photo depicts ")[:, 1:4]
    new_text_tokens = torch.cat([tokens[:, :1], prepend_text_token.expand(tokens.shape[0], -1), tokens[:, 1:]], dim=1)[:, :77]
    last_cols = new_text_tokens[:, 77 - 1:77]
    last_cols[last_cols > 0] = 49407
    new_text_tokens = torch.cat([new_text_tokens[:, :76], last_cols], dim=1)
    sims = torch.nn.functional.cosine_similarity(model.encode_image(imgs), model.encode_text(new_text_tokens), dim=1)

    assert value.value == pytest.approx(float(sims.mean()), rel=1e-5, abs=1e-7)
    assert value.n == 3 and value.unit == "cosine"
    assert value.variant["weights_sha256"]["clip-vit-g-14-laion2b-s12b-b42k"] == metric.scorer.weight.sha256
    assert "open_clip_torch" in value.variant["libraries"] and value.variant["scale"] == "cosine (x1)"


@torch.no_grad()
def test_clip_score_l14_matches_torchmetrics(ctx, weights_dir):
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    batch = _batch(2)  # short prompts: torchmetrics cuts long ones without their end token (#2883)
    (metric,) = build_metrics(["clip-score-l14"], ctx)
    metric.update(batch)
    (value,) = metric.compute()

    folder = str(weights_dir / "clip-vit-large-patch14")

    class TensorFeatures(torch.nn.Module):
        """transformers 5 returns model outputs from get_*_features; torchmetrics 1.9 expects tensors."""

        def __init__(self, model):
            super().__init__()
            self.model, self.config = model, model.config

        def get_image_features(self, *args, **kwargs):
            return self.model.get_image_features(*args, **kwargs).pooler_output

        def get_text_features(self, *args, **kwargs):
            return self.model.get_text_features(*args, **kwargs).pooler_output

    reference = CLIPScore(model_name_or_path=lambda: (TensorFeatures(CLIPModel.from_pretrained(folder).eval()),
                                                      CLIPProcessor.from_pretrained(folder)))
    reference.update([torch.from_numpy(im).permute(2, 0, 1) for im in batch.images], [r["prompt"] for r in batch.records])
    assert value.value == pytest.approx(float(reference.compute()), rel=1e-5, abs=1e-6)
    assert value.unit == "100xcosine"


def test_missing_clip_weights_name_the_fetch_command(tmp_path, monkeypatch):
    from benchkit.core.errors import BenchkitError

    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(BenchkitError, match=r"weights 'clip-vit-g-14-laion2b-s12b-b42k' not found.*hf download laion/CLIP-ViT-g-14"):
        build_metrics(["clip-score"], MetricContext(cache_dir=tmp_path))
