"""ImageReward against the ``image-reward`` package's own ``ImageReward.score`` / ``inference_rank``: the package
builds its model from its classes (BLIP_Pretrain's ViT, at reduced sizes, and med's BertModel from a reduced
med_config.json; ImageReward's MLP) and loads, strictly, the same random ImageReward.pt (a plain state dict in
the release's layout) that benchkit reads.

The package does not import as published with transformers 5 (evalscope issue 864): ``_image_reward_package``
stands in the few helpers it imports or calls that transformers removed, and points its tokenizer at a local
folder (it would download bert-base-uncased). Nothing of the package's scoring path is replaced.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from metric_models import TINY_BLIP_VIT, TINY_MED_CONFIG, save_bert_tokenizer, save_tiny_image_reward
from PIL import Image

from benchkit.core.errors import BenchkitError
from metrics import MetricContext, build_metrics
from metrics.base import SampleBatch

PROMPTS = ["a cat", "A watercolor of a lighthouse at dusk", "two dogs " * 40, "a red cube", "a man sitting next to a table"]


def _images():
    rng = np.random.default_rng(3)
    sizes = [(64, 96), (224, 224), (90, 90), (300, 200)]  # down- and up-scaled, one already 224
    images = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes]
    ramp = np.linspace(0, 255, 160, dtype=np.float64)
    images.append((ramp[None, :] * 0.5 + ramp[:120, None] * 0.5).astype(np.uint8))  # grayscale HxW
    return images


def _patch_transformers_drift() -> None:
    """transformers 5 removed what image-reward 1.5's med.py imports from ``transformers.modeling_utils``
    (apply_chunking_to_forward, prune_linear_layer: now in pytorch_utils; find_pruneable_heads_and_indices:
    only used to prune heads, never here) and the PreTrainedModel helpers its BertModel calls; each is
    supplied only when missing, with transformers 4's behaviour."""
    import transformers.modeling_utils as tmu
    import transformers.pytorch_utils as tpu

    for name in ("apply_chunking_to_forward", "prune_linear_layer"):
        if not hasattr(tmu, name):
            setattr(tmu, name, getattr(tpu, name))
    if not hasattr(tmu, "find_pruneable_heads_and_indices"):
        def find_pruneable_heads_and_indices(*args, **kwargs):
            raise NotImplementedError("head pruning is not used by ImageReward")
        tmu.find_pruneable_heads_and_indices = find_pruneable_heads_and_indices


def _patch_med_bert(med) -> None:
    from transformers import PreTrainedModel

    if hasattr(PreTrainedModel, "get_head_mask"):  # transformers 4: nothing to do
        return

    def init_weights(self):  # transformers 5 needs post_init() (which calls init_weights back) before it
        if not hasattr(self, "all_tied_weights_keys"):
            self.post_init()
        else:
            PreTrainedModel.init_weights(self)

    def invert_attention_mask(self, mask):  # transformers 4's, as med.py's BertModel.forward calls it
        ext = mask[:, None, :, :] if mask.dim() == 3 else mask[:, None, None, :]
        ext = ext.to(dtype=self.dtype)
        return (1.0 - ext) * torch.finfo(self.dtype).min

    med.BertModel.init_weights = init_weights
    med.BertModel.get_head_mask = lambda self, head_mask, n: [None] * n if head_mask is None else head_mask
    med.BertModel.invert_attention_mask = invert_attention_mask


def _image_reward_package(tokenizer_dir):
    """image-reward's ImageReward class, imported without ImageReward/__init__ (which imports ReFL: datasets,
    diffusers; and models/__init__: OpenAI clip), with its tokenizer read from ``tokenizer_dir``."""
    spec = importlib.util.find_spec("ImageReward")
    if spec is None:
        pytest.skip("image-reward not installed: pip install --no-deps image-reward==1.5 fairscale==0.4.13")
    if importlib.util.find_spec("fairscale") is None:
        pytest.skip("fairscale not installed (image-reward's ViT imports it): pip install --no-deps fairscale==0.4.13")
    root = spec.submodule_search_locations[0]
    for name, sub in (("ImageReward", ""), ("ImageReward.models", "/models")):
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [root + sub]
            sys.modules[name] = pkg
    _patch_transformers_drift()
    import ImageReward.ImageReward as package
    import ImageReward.models.BLIP.blip as blip
    import ImageReward.models.BLIP.med as med
    from transformers import BertTokenizer

    _patch_med_bert(med)

    class LocalBertTokenizer(BertTokenizer):
        """bert-base-uncased from disk; transformers 5 renamed additional_special_tokens_ids (init_tokenizer reads it)."""

        @classmethod
        def from_pretrained(cls, name, *args, **kwargs):
            assert name == "bert-base-uncased"
            return super().from_pretrained(str(tokenizer_dir))

        @property
        def additional_special_tokens_ids(self):
            return self.convert_tokens_to_ids(list(getattr(self, "extra_special_tokens", None) or
                                                   self.special_tokens_map.get("additional_special_tokens", [])))

    blip.BertTokenizer = LocalBertTokenizer
    return package


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """<weights>/imagereward-v1.0 (ImageReward.pt, med_config.json) and the tokenizer folder, tiny and random."""
    weights = tmp_path_factory.mktemp("imagereward") / "weights"
    save_bert_tokenizer(weights / "bert-base-uncased-tokenizer")
    save_tiny_image_reward(weights / "imagereward-v1.0", seed=5)
    return weights


@pytest.fixture(scope="module")
def package_model(weights):
    """The package's ImageReward with the tiny ViT (its own VisionTransformer class) and med config, holding the
    saved weights, loaded strictly (the helper's layout is the package's, name for name and shape for shape)."""
    package = _image_reward_package(weights / "bert-base-uncased-tokenizer")
    import ImageReward.models.BLIP.blip_pretrain as blip_pretrain
    import ImageReward.models.BLIP.vit as vit

    def tiny_vit(name, image_size, *args, **kwargs):  # BLIP_Pretrain hard-codes vit='large': same class, smaller
        assert name == "large"
        return vit.VisionTransformer(img_size=image_size, patch_size=TINY_BLIP_VIT["patch_size"],
                                     embed_dim=TINY_BLIP_VIT["embed_dim"], depth=TINY_BLIP_VIT["depth"],
                                     num_heads=TINY_BLIP_VIT["num_heads"]), TINY_BLIP_VIT["embed_dim"]

    folder = weights / "imagereward-v1.0"
    original = blip_pretrain.create_vit
    blip_pretrain.create_vit = tiny_vit
    try:
        model = package.ImageReward(med_config=str(folder / "med_config.json"), device="cpu")
    finally:
        blip_pretrain.create_vit = original
    state = torch.load(folder / "ImageReward.pt", map_location="cpu", weights_only=True)  # as utils.load, strict here
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture()
def ctx(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(weights))
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    return MetricContext(cache_dir=tmp_path / "cache")


def test_preprocessing_is_the_packages(package_model):
    """benchkit's per-image transform (run in the scorer's workers) gives the package's tensors bit for bit."""
    from metrics.image_reward import IMAGE_SIZE
    from metrics.aesthetic import openai_clip_input

    for image in _images():
        ours = openai_clip_input(image, IMAGE_SIZE)
        theirs = package_model.preprocess(Image.fromarray(image))
        assert ours.shape == theirs.shape == (3, 224, 224)
        assert torch.equal(ours, theirs)


@torch.no_grad()
def test_scores_match_image_reward_score(package_model, ctx):
    model = package_model
    images = _images()
    expected = [model.score(p, Image.fromarray(im)) for p, im in zip(PROMPTS, images)]  # one (prompt, image) at a time
    ranked = model.score(PROMPTS[1], [Image.fromarray(im) for im in images])  # inference_rank: one prompt, a list

    batch = SampleBatch(images, [{"prompt_id": f"p{i}", "prompt": p, "seed": 0} for i, p in enumerate(PROMPTS)])
    (metric,) = build_metrics(["image-reward"], ctx)
    metric.update(batch)
    (value,) = metric.compute()
    got = [metric.scores[f"p{i}\x1f0"] for i in range(len(images))]
    diff = np.abs(np.array(got) - np.array(expected)).max()
    print(f"image-reward vs ImageReward.score: max |diff| {diff:.2e}; scores {np.round(expected, 4).tolist()}")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.diff(np.sort(expected)).min() > 1e-3 and np.ptp(expected) > 0.1  # every image its own score, far apart
    assert value.value == pytest.approx(np.mean(expected), abs=1e-5)

    scorer = metric.scorer  # the same prompt for every image, as inference_rank scores them
    same = scorer(images, [PROMPTS[1]] * len(images))
    np.testing.assert_allclose(same, ranked, rtol=0, atol=1e-5)
    assert np.abs(same - np.array(got)).max() > 1e-3  # the prompt matters

    variant = value.variant
    assert variant["normalisation"]["mean"] == model.mean and variant["normalisation"]["std"] == model.std
    assert set(variant["weights_sha256"]) == {"imagereward-v1.0", "bert-base-uncased-tokenizer"}
    assert variant["vision"] == {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 16}
    assert "transformers" in variant["libraries"]


def test_prepared_inputs_give_the_same_scores(ctx):
    """The preprocessors() path (the scorer's workers) and the direct path agree; the function pickles."""
    images = _images()[:3]
    records = [{"prompt_id": f"p{i}", "prompt": p, "seed": 1} for i, p in enumerate(PROMPTS[:3])]
    (direct,) = build_metrics(["image-reward"], ctx)
    direct.update(SampleBatch(images, records))
    (worker,) = build_metrics(["image-reward"], ctx)
    (key, fn), = worker.preprocessors().items()
    fn = pickle.loads(pickle.dumps(fn))
    worker.update(SampleBatch([], records, {key: [fn(im) for im in images]}))
    assert worker.scores == direct.scores


def test_missing_or_mismatched_weights_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path / "empty"))
    ctx = MetricContext(cache_dir=tmp_path / "cache")
    with pytest.raises(BenchkitError, match=r"weights 'imagereward-v1.0' not found.*hf download THUDM/ImageReward") as exc:
        build_metrics(["image-reward"], ctx)
    assert "\n" not in str(exc.value)

    bad = tmp_path / "bad"  # a med_config.json that does not belong to the checkpoint
    save_tiny_image_reward(bad / "imagereward-v1.0", seed=1)
    (bad / "imagereward-v1.0" / "med_config.json").write_text(json.dumps({**TINY_MED_CONFIG, "num_hidden_layers": 3}))
    save_bert_tokenizer(bad / "bert-base-uncased-tokenizer")
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(bad))
    with pytest.raises(BenchkitError, match=r"text encoder does not load \(missing encoder\.layer\.2\.") as exc:
        build_metrics(["image-reward"], ctx)
    assert "\n" not in str(exc.value)
