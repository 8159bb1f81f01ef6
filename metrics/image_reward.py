"""ImageReward v1.0 (Xu et al. 2023, THUDM/ImageReward), the number ``ImageReward.score`` returns.

- ``image-reward``: BLIP's ViT-L/16 image encoder (224 px) feeds a BERT-base text encoder with
  cross-attention (BLIP's ``med``, configured by the checkpoint's ``med_config.json``); the [CLS]
  feature goes through a linear MLP head 768-1024-128-64-16-1, and the reward is
  ``(raw - 0.16717362830052426) / 1.0333394966054072`` (the package's constants: ~N(0, 1) over its
  training prompts; typical images -2..2). The prompt is bert-base-uncased WordPiece (plus BLIP's
  [DEC] and [ENC] tokens), padded and truncated to 35 tokens; the image goes through the
  package's transform (OpenAI CLIP's: PIL bicubic short side 224, centre crop, CLIP mean/std).

Written against transformers' BLIP classes (``BlipVisionModel``, ``BlipTextModel``, ports of the
same BLIP code) rather than the ``image-reward`` package's, because the package does not import
with transformers 5 (its ``med.py`` imports helpers transformers removed, evalscope issue 864),
its ``__init__`` pulls in OpenAI ``clip``, ``datasets``, ``diffusers`` and fairscale and pins
``timm==0.6.13``, and it fetches its tokenizer from the Hub when built. The checkpoint's BLIP
names are mapped onto them (:func:`blip_to_transformers`); tests/test_metric_image_reward.py
compares the scores with the package's own ``ImageReward.score``.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.aesthetic import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, load_head, openai_clip_input
from metrics.model_cache import cached_model
from metrics.scorers import MeanScoreMetric, Scorer
from metrics.weights import ResolvedWeight, library_versions, resolve

REWARD_MEAN = 0.16717362830052426  # ImageReward.ImageReward.ImageReward.mean
REWARD_STD = 1.0333394966054072  # ImageReward.ImageReward.ImageReward.std
MAX_TOKENS = 35  # the package's tokenizer call: padding="max_length", truncation=True, max_length=35
IMAGE_SIZE = 224  # BLIP_Pretrain(image_size=224, vit="large") and _transform(224)
HEAD_DIM = 64  # BLIP's ViTs (base 768/12, large 1024/16): the head count is not in the state dict

_VISION_RENAMES = (  # BLIP's VisionTransformer (timm layout) -> transformers BlipVisionModel
    (r"^cls_token$", "embeddings.class_embedding"),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embedding."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
    (r"^blocks\.(\d+)\.mlp\.", r"encoder.layers.\1.mlp."),
    (r"^norm\.", "post_layernorm."),
)


def blip_to_transformers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(vision, text) state dicts for transformers' BlipVisionModel / BlipTextModel from ImageReward.pt's
    ``blip.visual_encoder.*`` and ``blip.text_encoder.*`` (med's BertModel already uses BlipTextModel's names)."""
    vision, text = {}, {}
    for key, value in state.items():
        if key.startswith("blip.visual_encoder."):
            name = key[len("blip.visual_encoder."):]
            for pattern, repl in _VISION_RENAMES:
                new, n = re.subn(pattern, repl, name)
                if n:
                    name = new
                    break
            vision[name] = value
        elif key.startswith("blip.text_encoder.") and not key.endswith("embeddings.position_ids"):
            text[key[len("blip.text_encoder."):]] = value
    return vision, text


def vision_config_from_state(vision: dict[str, torch.Tensor], where: str) -> dict[str, Any]:
    """BLIP ViT's sizes read off its tensors (ViT-L/16 in the release; smaller in tests)."""
    try:
        patch = vision["embeddings.patch_embedding.weight"]
        positions = vision["embeddings.position_embedding"].shape[1]
        width, size = int(patch.shape[0]), int(patch.shape[-1])
        depth = len({k.split(".")[2] for k in vision if k.startswith("encoder.layers.")})
        mlp = int(vision["encoder.layers.0.mlp.fc1.weight"].shape[0])
    except (KeyError, IndexError, AttributeError) as exc:
        raise BenchkitError(f"{where}: no BLIP image encoder in it ({exc} missing); this is not ImageReward.pt") from None
    grid = int(round((positions - 1) ** 0.5))
    if grid * grid != positions - 1 or grid * size != IMAGE_SIZE or width % HEAD_DIM:
        raise BenchkitError(f"{where}: a {grid}x{grid}-patch, {width}-wide image encoder; ImageReward's is "
                            f"{IMAGE_SIZE // 16}x{IMAGE_SIZE // 16} patches of 16 px, width a multiple of {HEAD_DIM}")
    return {"hidden_size": width, "intermediate_size": mlp, "num_hidden_layers": depth,
            "num_attention_heads": width // HEAD_DIM, "image_size": IMAGE_SIZE, "patch_size": size,
            "hidden_act": "gelu", "layer_norm_eps": 1e-6}  # timm's nn.GELU (erf) and BLIP's LayerNorm eps


def text_config_from_med(med: dict[str, Any], encoder_width: int, where: str) -> dict[str, Any]:
    """BlipTextConfig arguments from med_config.json (BLIP_Pretrain sets encoder_width to the ViT's width)."""
    if med.get("position_embedding_type", "absolute") != "absolute":
        raise BenchkitError(f"{where}: position_embedding_type {med['position_embedding_type']!r}; ImageReward's is 'absolute'")
    try:
        return {"vocab_size": int(med["vocab_size"]), "hidden_size": int(med["hidden_size"]),
                "intermediate_size": int(med["intermediate_size"]), "num_hidden_layers": int(med["num_hidden_layers"]),
                "num_attention_heads": int(med["num_attention_heads"]),
                "max_position_embeddings": int(med["max_position_embeddings"]),
                "hidden_act": str(med.get("hidden_act", "gelu")), "layer_norm_eps": float(med.get("layer_norm_eps", 1e-12)),
                "pad_token_id": int(med.get("pad_token_id", 0)), "encoder_hidden_size": encoder_width,
                "is_decoder": True,  # builds the cross-attention layers; forward runs bidirectional (is_decoder=False)
                "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchkitError(f"{where}: not a BERT config ({exc!r} missing or not a number)") from None


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str, where: str) -> None:
    missing, unexpected = [], []
    own = module.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if not mismatched:
        result = module.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    missing = [k for k in missing if not k.endswith("position_ids")]  # a buffer transformers makes itself
    if missing or unexpected or mismatched:
        parts = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)) if keys]
        raise BenchkitError(f"{where}: its {what} does not load ({'; '.join(parts)}); this is not ImageReward.pt "
                            "with its med_config.json")


class ImageRewardNet(torch.nn.Module):
    """BLIP's image encoder and cross-attention text encoder with ImageReward's MLP head."""

    def __init__(self, vision, text, head):
        super().__init__()
        self.vision, self.text, self.head = vision, text, head

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        image_embeds = self.vision(pixel_values=pixel_values).last_hidden_state
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.text(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds,
                        encoder_attention_mask=image_atts, is_decoder=False)
        raw = self.head(out.last_hidden_state[:, 0, :].float())[:, 0]
        return (raw - REWARD_MEAN) / REWARD_STD


def load_tokenizer(weight: ResolvedWeight):
    """BLIP's ``init_tokenizer``: bert-base-uncased plus [DEC] (bos) and [ENC], read from a local folder."""
    from transformers import BertTokenizer

    try:
        tokenizer = BertTokenizer.from_pretrained(str(weight.path))
    except (OSError, ValueError) as exc:
        raise BenchkitError(f"weights '{weight.name}' at {weight.path} do not load as a BertTokenizer "
                            f"({str(exc).splitlines()[0][:200]}); check the folder (see `benchkit weights`)") from None
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def load_image_reward(weight: ResolvedWeight, tokenizer_weight: ResolvedWeight, device: torch.device):
    """(network, tokenizer, vision config) from ImageReward.pt (a plain state dict, read as data) and med_config.json."""
    from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

    from benchkit.core.safe_load import load_state_dict_file

    where = f"weights '{weight.name}' at {weight.path}"
    state = load_state_dict_file(weight.hashed_file)
    try:
        med = json.loads((weight.path / "med_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise BenchkitError(f"{where}: med_config.json is not readable JSON ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(med, dict):
        raise BenchkitError(f"{where}: med_config.json is not a JSON object")
    vision_state, text_state = blip_to_transformers(state)
    vision_cfg = vision_config_from_state(vision_state, where)
    text_cfg = text_config_from_med(med, vision_cfg["hidden_size"], where)
    head = load_head(state, "mlp.layers.", where, text_cfg["hidden_size"], "text encoder (med_config.json)")
    vision = BlipVisionModel(BlipVisionConfig(**vision_cfg))
    text = BlipTextModel(BlipTextConfig(**text_cfg), add_pooling_layer=False)
    _load_strict(vision, vision_state, "image encoder", where)
    _load_strict(text, text_state, "text encoder", where)
    tokenizer = load_tokenizer(tokenizer_weight)
    if len(tokenizer) > text_cfg["vocab_size"]:
        raise BenchkitError(f"{where}: the tokenizer at {tokenizer_weight.path} has {len(tokenizer)} tokens with [DEC] and "
                            f"[ENC], more than med_config.json's vocab_size {text_cfg['vocab_size']}; use bert-base-uncased's")
    net = ImageRewardNet(vision, text, head).float().eval().to(device)
    return net, tokenizer, vision_cfg


class ImageRewardScorer(Scorer):
    weight_name = "imagereward-v1.0"
    tokenizer_name = "bert-base-uncased-tokenizer"

    def __init__(self, device: torch.device):
        self.weight = resolve(self.weight_name)
        self.tokenizer_weight = resolve(self.tokenizer_name)
        self.device = device
        self.net, self.tokenizer, vision_cfg = cached_model(
            ("image-reward", str(self.weight.path), self.weight.sha256, str(self.tokenizer_weight.path),
             self.tokenizer_weight.sha256, str(device)),
            lambda: load_image_reward(self.weight, self.tokenizer_weight, device))
        self.preprocess = functools.partial(openai_clip_input, size=IMAGE_SIZE)
        self.weights_sha256 = {self.weight_name: self.weight.sha256, self.tokenizer_name: self.tokenizer_weight.sha256}
        self.variant = {
            "model": "THUDM/ImageReward v1.0: BLIP ViT + BERT cross-attention + MLP head",
            "protocol": "ImageReward.score (image-reward 1.5)",
            "normalisation": {"mean": REWARD_MEAN, "std": REWARD_STD, "formula": "(mlp([CLS]) - mean) / std"},
            "image": f"PIL bicubic short side {IMAGE_SIZE}, centre crop {IMAGE_SIZE}, mean {list(OPENAI_CLIP_MEAN)} "
                     f"std {list(OPENAI_CLIP_STD)}",
            "text": f"bert-base-uncased WordPiece + [DEC]/[ENC], padded and truncated to {MAX_TOKENS} tokens",
            "vision": {k: vision_cfg[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size")},
            "implementation": "transformers BlipVisionModel + BlipTextModel", "dtype": "float32",
            "libraries": library_versions("transformers", "torch", "torchvision", "pillow"),
        }

    @torch.no_grad()
    def forward(self, inputs: list[torch.Tensor], prompts: list[str]) -> np.ndarray:
        text = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        rewards = self.net(torch.stack(inputs).to(self.device), text["input_ids"].to(self.device),
                           text["attention_mask"].to(self.device))
        return rewards.double().cpu().numpy()


@register_metric()
class ImageReward(MeanScoreMetric):
    name = "image-reward"
    protocol = 'ImageReward v1.0 (image-reward package): BLIP + MLP head, 35 tokens, (raw - mean) / std'
    weights = ("imagereward-v1.0", "bert-base-uncased-tokenizer")
    description = "Mean ImageReward v1.0 (BLIP reward model, z-scored with the package's mean/std; ~-2..2)"
    unit = "reward"
    scale = "(raw - 0.1672) / 1.0333, as ImageReward.score returns it"

    def build_scorer(self, device):
        return ImageRewardScorer(device)
