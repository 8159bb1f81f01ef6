"""MPS, the Multi-dimensional Preference Score (Kwai-Kolors/MPS, Zhang et al., CVPR 2024), "overall" model.

Only the overall model has been released. It is a transformers CLIP ViT-H-14 with a
condition-masked cross-attention head (``Cross_model``). Per image, benchkit follows
``infer_one_sample`` in the repo's ``eval_overall_mps_on_{imagereward,hpdv2}.py``. Those are the
scripts behind the paper's benchmark numbers, and they score one image at a time:

1. Image: the CLIP-ViT-H-14 ``CLIPImageProcessor`` (shortest side 224, bicubic, centre crop,
   CLIP mean/std). Prompt and condition: that repo's tokenizer, ``padding="max_length"`` to 77,
   truncated, no attention mask.
2. Features as ``XCLIPModel`` in the repo's ``trainer/models/clip_model.py`` computes them:
   ``text_f = text_projection(text last_hidden_state)`` (B, 77, d). ``eos = text_projection(pooled)``,
   pooled at ``argmax(input_ids)``; that is transformers 4.27's rule, which the eval scripts pin
   with ``text_model.eos_token_id = 2``. ``image_f = visual_projection(vision last_hidden_state)``,
   taken before post_layernorm (B, 257, d). ``cond_f`` is ``text_f`` of ``CONDITION``.
3. ``sim[b, p] = max_c <text_f[b, p], cond_f[b, c]>``, divided by its maximum.
   ``mask = 0 where sim > 0.3 else -inf``: image tokens attend only to prompt tokens that are
   close to some condition word.
4. ``feat = Cross_model(image_f, text_f, mask)[:, 0]`` and
   ``score = logit_scale.exp() * cos(eos, feat)``, a logit-scale number (about 0-15 on real images,
   as the research notes report; not measured here, the real weights cannot be fetched offline).

Differences from the reference code:
- Step 3 divides by each sample's own maximum. The reference calls ``.max()`` over the whole
  batch, which with its batch of one is the same thing. Here an image's score does not depend
  on the other images in its batch.
- The model's own ``forward`` (the README's ``infer_example``) uses a 0.01 threshold. This module
  uses the eval scripts' 0.3. The threshold is recorded in the variant.
- The model runs in float32. The reference runs in float16 on CUDA.

The checkpoint ``MPS_overall_checkpoint.pth`` is a whole pickled model (``torch.save(model)``,
classes from the repo's ``trainer/models``). It is never unpickled as code: ``load_checkpoint``
reads it with torch's weights-only unpickler, allowlisting every class the pickle names as an
inert stub (``torch.serialization.safe_globals``), keeps only the tensors and the CLIP config
values, and refuses any global outside torch, transformers and the repo's ``trainer`` package.
The networks are then rebuilt from benchkit's own code: a transformers ``CLIPModel`` and
``CrossModel`` below.
"""

from __future__ import annotations

import functools
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from benchkit.core.errors import BenchkitError
from benchkit.core.safe_load import weights_only_reason
from metrics import preprocess as pp
from metrics import register_metric
from metrics.clip_score import CONTEXT
from metrics.model_cache import cached_model
from metrics.scorers import MeanScoreMetric, Scorer
from metrics.weights import library_versions, resolve

# The "overall" condition, verbatim from the MPS README and the eval scripts (Kwai-Kolors/MPS @be9027f).
CONDITION = ("light, color, clarity, tone, style, ambiance, artistry, shape, face, hair, hands, limbs, structure, "
             "instance, texture, quantity, attributes, position, number, location, word, things.")
THRESHOLD = 0.3  # eval_overall_mps_on_*.py; the model's own forward uses 0.01


# ---------------------------------------------------------------------------------------------
# Cross_model, rewritten from the architecture in Kwai-Kolors/MPS trainer/models/cross_modeling.py
# (a PaLM/CoCa-style stack: per layer, cross-attention with a parallel SwiGLU feed-forward, then a
# parallel self-attention + feed-forward block with rotary positions and multi-query attention).
# The module and parameter names match the checkpoint's, so its state dict loads strictly.
# ---------------------------------------------------------------------------------------------


class _BiaslessLayerNorm(nn.Module):
    """LayerNorm with a learnt gain and a fixed zero bias. The bias is a buffer, so it is in the checkpoint."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.register_buffer("bias", torch.zeros(dim))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias)


class _SwiGLU(nn.Module):
    def forward(self, x):
        x, gate = x.chunk(2, dim=-1)
        return F.silu(gate) * x


class _Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x, *args):
        return self.fn(x, *args) + x


class _Rotary(nn.Module):
    def __init__(self, dim_head: int):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim_head, 2).float() / dim_head)))

    def forward(self, n: int) -> torch.Tensor:
        freqs = torch.outer(torch.arange(n, device=self.inv_freq.device, dtype=self.inv_freq.dtype), self.inv_freq)
        return torch.cat((freqs, freqs), dim=-1)


def _rotate(t: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotary embedding: t*cos + rotate_half(t)*sin, where rotate_half swaps the two halves and negates the second."""
    first, second = t.chunk(2, dim=-1)
    return t * pos.cos() + torch.cat((-second, first), dim=-1) * pos.sin()


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-query attention: q (b, h, n, d) against one shared key/value head (b, m, d)."""
    sim = q @ k.unsqueeze(1).transpose(-1, -2)
    if bias is not None:
        sim = sim + bias
    attn = (sim - sim.amax(dim=-1, keepdim=True)).softmax(dim=-1)
    out = attn @ v.unsqueeze(1)  # (b, h, n, d)
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


class _ParallelBlock(nn.Module):
    """Self-attention and a SwiGLU feed-forward computed from one fused projection, then summed."""

    def __init__(self, dim: int, dim_head: int, heads: int, ff_mult: int):
        super().__init__()
        self.norm = _BiaslessLayerNorm(dim)
        self.heads, self.dim_head = heads, dim_head
        self.fused_dims = (heads * dim_head, dim_head, dim_head, dim * ff_mult * 2)
        self.rotary_emb = _Rotary(dim_head)
        self.fused_attn_ff_proj = nn.Linear(dim, sum(self.fused_dims), bias=False)
        self.attn_out = nn.Linear(heads * dim_head, dim, bias=False)
        self.ff_out = nn.Sequential(_SwiGLU(), nn.Linear(dim * ff_mult, dim, bias=False))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v, ff = self.fused_attn_ff_proj(self.norm(x)).split(self.fused_dims, dim=-1)
        q = q.reshape(b, n, self.heads, self.dim_head).transpose(1, 2)
        pos = self.rotary_emb(n)
        q, k = _rotate(q, pos) * self.dim_head ** -0.5, _rotate(k, pos)
        return self.attn_out(_attend(q, k, v)) + self.ff_out(ff)


class _CrossAttention(nn.Module):
    """Image tokens (queries) attend to prompt tokens under an additive mask, plus a parallel SwiGLU feed-forward."""

    def __init__(self, dim: int, dim_head: int, heads: int, ff_mult: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        self.norm = _BiaslessLayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, dim_head * 2, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)
        self.ff = nn.Sequential(nn.Linear(dim, dim * ff_mult * 2, bias=False), _SwiGLU(),
                                nn.Linear(dim * ff_mult, dim, bias=False))

    def forward(self, x, context, mask):
        b, n, _ = x.shape
        x = self.norm(x)
        q = self.to_q(x).reshape(b, n, self.heads, self.dim_head).transpose(1, 2) * self.dim_head ** -0.5
        k, v = self.to_kv(context).chunk(2, dim=-1)
        return self.to_out(_attend(q, k, v, mask.unsqueeze(1))) + self.ff(x)


class CrossModel(nn.Module):
    """MPS's Cross_model: ``layer_num`` x (cross-attention to the prompt, then parallel self-attention)."""

    def __init__(self, dim: int = 1024, layer_num: int = 4, dim_head: int = 64, heads: int = 16, ff_mult: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([_Residual(_CrossAttention(dim, dim_head, heads, ff_mult)),
                           _Residual(_ParallelBlock(dim, dim_head, heads, ff_mult))])
            for _ in range(layer_num))

    def forward(self, query_tokens, context_tokens, mask):
        for cross, block in self.layers:
            query_tokens = block(cross(query_tokens, context_tokens, mask))
        return query_tokens

    @staticmethod
    def hyperparameters(state: dict[str, torch.Tensor]) -> dict[str, int]:
        """dim, layer_num, dim_head, heads and ff_mult, read from the weight shapes. The pickle stores only some of them."""
        to_q = state["layers.0.0.fn.to_q.weight"]
        dim_head = state["layers.0.0.fn.to_kv.weight"].shape[0] // 2
        layer_num = len({k.split(".")[1] for k in state if k.startswith("layers.")})
        return {"dim": to_q.shape[1], "layer_num": layer_num, "dim_head": dim_head, "heads": to_q.shape[0] // dim_head,
                "ff_mult": state["layers.0.0.fn.ff.2.weight"].shape[1] // to_q.shape[1]}


# ---------------------------------------------------------------------------------------------
# The checkpoint loader: torch's weights-only unpickler, with the model classes as inert stubs.
# ---------------------------------------------------------------------------------------------

# Globals the pickle may name beyond what torch's weights-only unpickler resolves by default
# (tensor rebuilds, storages, dtypes, plain containers): classes and functions of these packages,
# the repo's model classes, torch.nn modules, transformers modules, configs and activations.
# Each is allowlisted for this one load as an inert stub under its own name; nothing else is.
_STUB_PACKAGES = ("trainer", "transformers", "torch")


class _Stub:
    """Inert stand-in for a class or function named in the pickle. It keeps its arguments and state and runs nothing."""

    target = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def _stub_allowlist(path: Path) -> list[tuple[type, str]]:
    """(stub, "module.Name") for every global of the checkpoint outside torch's weights-only defaults.
    The pickle is only disassembled here; a global outside ``_STUB_PACKAGES`` refuses the file."""
    if not zipfile.is_zipfile(path):  # torch.save's format since torch 1.6; the release is one
        raise BenchkitError(f"MPS checkpoint {path} is not a torch.save zip archive (damaged, or an old or foreign "
                            "format); fetch it again (see `benchkit weights`)")
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except pickle.UnpicklingError as exc:  # an opcode the weights-only unpickler does not run
        raise BenchkitError(f"MPS checkpoint {path}: refusing its pickle ({weights_only_reason(exc)}); this is not the "
                            "MPS_overall_checkpoint.pth release, do not use it") from None
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise BenchkitError(f"MPS checkpoint {path} does not load ({weights_only_reason(exc)}); "
                            "fetch it again (see `benchkit weights`)") from None
    refused = sorted(n for n in names if n.split(".")[0] not in _STUB_PACKAGES)
    if refused:
        raise BenchkitError(f"MPS checkpoint {path}: refusing global {refused[0]} (only torch, transformers and MPS's "
                            "trainer classes may appear); this is not the MPS_overall_checkpoint.pth release, do not use it")
    return [(type(n.rsplit(".", 1)[-1], (_Stub,), {"target": n, "__module__": __name__}), n) for n in sorted(names)]


def _module_tensors(obj: Any, prefix: str = "", out: dict | None = None) -> dict[str, torch.Tensor]:
    """The persistent parameters and buffers of a stubbed nn.Module tree, as ``state_dict()`` would list them."""
    out = {} if out is None else out
    state = getattr(obj, "state", None)
    if not isinstance(state, dict):
        return out
    for key, value in (state.get("_parameters") or {}).items():
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
    skip = state.get("_non_persistent_buffers_set") or set()
    for key, value in (state.get("_buffers") or {}).items():
        if isinstance(value, torch.Tensor) and key not in skip:
            out[prefix + key] = value
    for key, child in (state.get("_modules") or {}).items():
        _module_tensors(child, f"{prefix}{key}.", out)
    return out


def _plain(obj: Any) -> dict[str, Any]:
    """The plain (number/string/bool) attributes of a stubbed config object."""
    state = getattr(obj, "state", None)
    return {k: v for k, v in state.items() if isinstance(v, (bool, int, float, str))} if isinstance(state, dict) else {}


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(CLIP config dict, CLIP state dict, Cross_model state dict) from an MPS ``torch.save(model)`` file, without running its code."""
    path = Path(path)
    stubs = _stub_allowlist(path)
    try:
        with torch.serialization.safe_globals(stubs):
            root = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BenchkitError(f"MPS checkpoint {path}: refusing its pickle ({weights_only_reason(exc)}; only torch, "
                            "transformers and MPS's trainer classes may appear); this is not the "
                            "MPS_overall_checkpoint.pth release, do not use it") from None
    except (RuntimeError, OSError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise BenchkitError(f"MPS checkpoint {path} does not load ({weights_only_reason(exc)}); "
                            "fetch it again (see `benchkit weights`)") from None
    modules = root.state.get("_modules", {}) if isinstance(getattr(root, "state", None), dict) else {}
    if not {"model", "cross_model"} <= set(modules):
        raise BenchkitError(f"MPS checkpoint {path} is not a pickled MPS model (expected submodules 'model' and "
                            "'cross_model', as trainer.models.clip_model.CLIPModel has)")
    clip_state = {k: v for k, v in _module_tensors(modules["model"]).items() if not k.endswith("position_ids")}
    cross_state = _module_tensors(modules["cross_model"])
    config = _plain(modules["model"].state.get("config"))
    config["text_config"] = _plain(modules["model"].state["config"].state.get("text_config"))
    config["vision_config"] = _plain(modules["model"].state["config"].state.get("vision_config"))
    return config, clip_state, cross_state


_TEXT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "projection_dim", "num_hidden_layers",
              "num_attention_heads", "max_position_embeddings", "hidden_act", "layer_norm_eps",
              "pad_token_id", "bos_token_id", "eos_token_id")
_VISION_KEYS = ("hidden_size", "intermediate_size", "projection_dim", "num_hidden_layers", "num_attention_heads",
                "num_channels", "image_size", "patch_size", "hidden_act", "layer_norm_eps")


def build_models(path: Path, device: torch.device):
    """The CLIP backbone (transformers CLIPModel) and CrossModel with the checkpoint's weights, in float32."""
    from transformers import CLIPConfig, CLIPModel

    config, clip_state, cross_state = load_checkpoint(path)
    try:
        clip_config = CLIPConfig(
            text_config={k: config["text_config"][k] for k in _TEXT_KEYS if k in config["text_config"]},
            vision_config={k: config["vision_config"][k] for k in _VISION_KEYS if k in config["vision_config"]},
            **{k: config[k] for k in ("projection_dim", "logit_scale_init_value") if k in config})
        clip = CLIPModel(clip_config)
        clip.load_state_dict({k: v.float() for k, v in clip_state.items()}, strict=True)
        cross = CrossModel(**CrossModel.hyperparameters(cross_state))
        cross.load_state_dict({k: v.float() for k, v in cross_state.items()}, strict=True)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise BenchkitError(f"MPS checkpoint {path}: its weights do not fit the MPS architecture "
                            f"({str(exc).splitlines()[0][:200]})") from None
    return clip.eval().to(device), cross.eval().to(device)


# ---------------------------------------------------------------------------------------------
# Scoring.
# ---------------------------------------------------------------------------------------------


def mps_pixels(image, image_processor) -> torch.Tensor:
    """One image's ``pixel_values`` from the CLIP-ViT-H-14 image processor, the image as PIL (as MPS passes it)."""
    return image_processor(images=[Image.fromarray(pp.to_rgb_uint8(image))], return_tensors="pt")["pixel_values"][0]


class MPSScorer(Scorer):
    def __init__(self, device: torch.device):
        from transformers import CLIPProcessor

        self.weight = resolve("mps")
        self.processor_weight = resolve("clip-vit-h-14-processor")
        self.device = device

        def build():
            clip, cross = build_models(self.weight.hashed_file, device)
            try:
                processor = CLIPProcessor.from_pretrained(str(self.processor_weight.path))
            except (OSError, ValueError) as exc:
                raise BenchkitError(f"processor at {self.processor_weight.path} does not load "
                                    f"({str(exc).splitlines()[0][:200]})") from None
            return clip, cross, processor

        self.clip, self.cross, self.processor = cached_model(
            ("mps", str(self.weight.hashed_file), self.weight.sha256, str(self.processor_weight.path), str(device)), build)
        self.preprocess = functools.partial(mps_pixels, image_processor=self.processor.image_processor)
        self.weights_sha256 = {"mps": self.weight.sha256, "clip-vit-h-14-processor": self.processor_weight.sha256}
        self.variant = {"model": "Kwai-Kolors/MPS MPS_overall_checkpoint.pth (CLIP ViT-H-14 + Cross_model)",
                        "processor": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "condition": CONDITION,
                        "mask_threshold": THRESHOLD, "mask_normalisation": "per-sample max",
                        "formula": "logit_scale.exp() * cos(text EOS, Cross_model(image tokens | masked prompt)[CLS])",
                        "loader": "restricted unpickler (tensors and config values only)", "dtype": "float32",
                        "libraries": library_versions("transformers", "torch")}

    def _tokens(self, texts: list[str]) -> torch.Tensor:
        return self.processor.tokenizer(texts, max_length=CONTEXT, padding="max_length", truncation=True,
                                        return_tensors="pt").input_ids.to(self.device)

    def _text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected per-token features and the projected EOS feature (pooled at argmax id, transformers 4.27)."""
        hidden = self.clip.text_model(input_ids=ids).last_hidden_state
        pooled = hidden[torch.arange(len(ids), device=ids.device), ids.argmax(dim=-1)]
        return self.clip.text_projection(hidden), self.clip.text_projection(pooled)

    @torch.no_grad()
    def forward(self, inputs: list[torch.Tensor], prompts: list[str]):
        pixels = torch.stack(inputs).to(self.device)
        text_f, eos = self._text(self._tokens(prompts))
        cond_f, _ = self._text(self._tokens([CONDITION]).expand(len(prompts), -1))
        image_f = self.clip.visual_projection(self.clip.vision_model(pixel_values=pixels).last_hidden_state)

        sim = torch.einsum("bpd,bcd->bcp", text_f, cond_f).amax(dim=1, keepdim=True)  # (B, 1, prompt tokens)
        sim = sim / sim.amax(dim=(1, 2), keepdim=True)
        mask = torch.where(sim > THRESHOLD, 0.0, float("-inf")).expand(-1, image_f.shape[1], -1)
        feat = self.cross(image_f, text_f, mask)[:, 0]
        feat = feat / feat.norm(dim=-1, keepdim=True)
        eos = eos / eos.norm(dim=-1, keepdim=True)
        return (self.clip.logit_scale.exp() * (eos * feat).sum(-1)).double().cpu().numpy()


@register_metric()
class MPS(MeanScoreMetric):
    name = "mps"
    protocol = "Kolors MPS eval scripts: CLIP ViT-H-14 + condition-masked cross-attention head, 'overall' condition, fp32"
    weights = ("mps", "clip-vit-h-14-processor")
    description = "Mean MPS overall (Kolors multi-dimensional preference; logit_scale x cosine, ~0-15)"
    unit = "mps"
    scale = "logit_scale.exp() x cosine"

    def build_scorer(self, device):
        return MPSScorer(device)
