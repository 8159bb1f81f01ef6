"""VBench's dimensions that compare a clip with text (``vbench`` 0.1.5), as benchkit metrics.

Each value is what VBench's own function reports for the same clips and prompts
(tests/test_vbench_text_dimensions.py runs the package's functions beside these metrics with the same random
weights):

- ``vbench-appearance-style`` (vbench/appearance_style.py): OpenAI CLIP ViT-B/32 similarity of every frame with
  the prompt's style text, VBench's ``auxiliary_info['appearance_style']`` (the prompt set's meta: ``-p vbench``
  or ``vbench-long``, e.g. "Van Gogh style"), not the prompt. A frame goes through PIL as VBench's
  ``clip_transform_Image(224)`` does it (utils.py:41-47: PIL bicubic resize of the short side to 224, which
  antialiases, centre crop, ``ToTensor``, CLIP mean/std); the text through ``clip.tokenize`` (77 tokens, never
  cut); per frame ``logit_scale.exp() * cos / 100`` (appearance_style.py:61-63: CLIP's ``logits_per_text`` / 100,
  i.e. the cosine for OpenAI's weights, whose scale is 100). The value is the sum over every frame of every clip
  over the number of frames (``sim / cnt``, one process); a clip's own result is its frames' mean.
  As for every VBench dimension (``VBenchDimension.scores``), a prompt from a VBench set is scored only when it
  probes the dimension; a prompt from elsewhere is scored when its meta names a style, else left out. A run
  whose prompts name none is refused in one line before anything is generated.
- ``vbench-temporal-style`` (temporal_style.py) and ``vbench-overall-consistency`` (overall_consistency.py): the
  same code with ViCLIP ViT-L/14 (InternVid-10M-FLT, :mod:`metrics.viclip`) on 8 frames picked as
  ``read_frames_decord_by_fps(num_frames=8, sample='middle')`` picks them (utils.py:68-106, 179-200: n frames cut into 8
  equal runs, the middle of each, rounded down; fewer than 8 frames: each, then the last repeated), resized as
  uint8 tensors (``clip_transform(224)``: bicubic, no antialias, rounded back to uint8, centre crop, /255, CLIP
  mean/std) and compared by cosine with the prompt (32 tokens, cut when longer); the mean over clips. A
  ``vbench-long`` clip is scored under its short prompt (``meta['short_prompt']``), as VBench's augmented-prompt
  protocol has the long prompt sampled and the clip filed and scored under the original one
  (prompts/augmented_prompts/gpt_enhanced_prompts/README.md). A VBench set's prompts are scored for the
  dimensions they probe; any other prompt for both.

CLIP is the transformers port of OpenAI's ViT-B/32 weights in float32 (VBench's ``clip.load`` keeps fp16 on a
GPU); ViCLIP runs in float32 as in VBench. Per-clip results are the state, keyed by item.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import MetricContext, MetricValue
from metrics.model_cache import cached_model
from metrics.scorers import hf_features
from metrics.vbench_dimensions import (
    CLIP_MEAN,
    CLIP_STD,
    PROTOCOL,
    VBenchDimension,
    clip_transform,
    load_hf_clip_model,
)
from metrics.weights import library_versions, resolve

STYLE_CONTEXT = 77  # clip.tokenize's context (appearance_style.py:51)
VICLIP_FRAMES = 8  # read_frames_decord_by_fps(num_frames=8) (temporal_style.py:55, overall_consistency.py:54)
VICLIP_SIZE = 224  # clip_transform(224)
VICLIP_WEIGHT = "viclip-internvid-10m-flt"
CLIP_WEIGHT = "clip-vit-base-patch32"


# ---- what a clip is compared with ---------------------------------------------------------------------------

def vbench_prompt(record: dict[str, Any]) -> str:
    """The prompt VBench scores a clip under: a ``vbench-long`` clip's short prompt, else the record's prompt
    (as benchkit.vbench_bridge.vbench_prompt files clips for the official toolkit)."""
    meta = record.get("meta") or {}
    return str(meta.get("short_prompt") or record.get("prompt") or "")


def appearance_style_text(record: dict[str, Any]) -> str | None:
    """VBench's ``auxiliary_info['appearance_style']['appearance_style']`` from the record's prompt meta (the
    flattened form ``load_dimension_info`` hands on is taken too); None when the prompt names no style."""
    meta = record.get("meta") or {}
    aux = meta.get("auxiliary_info") if isinstance(meta, dict) else None
    style = aux.get("appearance_style") if isinstance(aux, dict) else None
    if isinstance(style, dict):
        style = style.get("appearance_style")
    return style if isinstance(style, str) and style.strip() else None


# ---- frames -------------------------------------------------------------------------------------------------

def middle_frame_indices(num_frames: int, vlen: int) -> list[int]:
    """``vbench.utils.get_frame_indices(num_frames, vlen, sample='middle')`` (utils.py:68-106)."""
    if vlen < 1:
        raise BenchkitError("a clip with no frames")
    acc = min(num_frames, vlen)
    edges = np.linspace(start=0, stop=vlen, num=acc + 1).astype(int)
    indices = [int((a + (b - 1)) // 2) for a, b in pairwise(edges)]
    if len(indices) < num_frames:  # padded with the last frame
        indices = indices + [indices[-1]] * (num_frames - len(indices))
    return indices


def viclip_frames(frames: np.ndarray) -> torch.Tensor:
    """The (8, 3, 224, 224) input VBench makes of a clip (temporal_style.py:55-57): the 'middle' frames as a uint8
    tensor (decord's torch bridge), through ``clip_transform(224)``; the resize works on uint8, so its result is
    rounded and clamped to 0-255 before /255."""
    picked = torch.from_numpy(np.ascontiguousarray(frames[middle_frame_indices(VICLIP_FRAMES, len(frames))]))
    return clip_transform(picked.permute(0, 3, 1, 2), VICLIP_SIZE)


@lru_cache(maxsize=1)
def _pil_clip_transform():
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    # VBench passes antialias=False, which torchvision ignores (with a warning) for a PIL image: PIL antialiases
    return transforms.Compose([transforms.Resize(224, interpolation=InterpolationMode.BICUBIC, antialias=True),
                               transforms.CenterCrop(224), transforms.ToTensor(), transforms.Normalize(CLIP_MEAN, CLIP_STD)])


def style_frame(frame: np.ndarray) -> torch.Tensor:
    """``clip_transform_Image(224)`` of ``Image.fromarray(frame)`` (appearance_style.py:46-59): on a PIL image the
    resize is PIL's bicubic, antialiased whatever ``antialias`` says."""
    from PIL import Image

    return _pil_clip_transform()(Image.fromarray(np.ascontiguousarray(frame)))


# ---- the metrics --------------------------------------------------------------------------------------------

class _TextDimension(VBenchDimension):
    """A VBench dimension scored on a clip and a text taken from its record."""

    frames_used: ClassVar[str]

    def text_of(self, record: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def score_text_clip(self, frames: np.ndarray, text: str) -> list[float]:
        raise NotImplementedError

    def scores(self, record: dict[str, Any]) -> bool:
        return super().scores(record) and self.text_of(record) is not None

    def score_item(self, record: dict[str, Any], frames: np.ndarray) -> list[float]:
        return self.score_text_clip(frames, self.text_of(record))

    def compute(self) -> list[MetricValue]:
        values = super().compute()
        for v in values:
            v.variant["frames"] = self.frames_used
        return values


@register_metric()
class VBenchAppearanceStyle(_TextDimension):
    name = "vbench-appearance-style"
    dimension = "appearance_style"
    weights = (CLIP_WEIGHT,)
    description = ("VBench appearance style: CLIP ViT-B/32 similarity of every frame with the prompt's VBench style "
                   "text, over all frames")
    scale = "CLIP logit / 100 (the cosine, ~0.2-0.3 for OpenAI's weights; VBench's raw value, before its normalisation)"
    protocol = PROTOCOL + ": the package's compute_* code path, every frame, frame scores summed over clips / frames"
    frames_used = "every frame of the clip (vbench.utils.load_video without num_frames)"

    prompt_need = ("compares each clip with its prompt's VBench appearance style, and none of these prompts names one; "
                   "use VBench's appearance-style prompts: -p vbench (or vbench-long) --dimension appearance_style")

    @classmethod
    def names_what_it_checks(cls, record: dict[str, Any]) -> bool:
        return bool(appearance_style_text(record))

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), ("prompts with VBench's appearance style (-p vbench --dimension appearance_style); "
                                   "clips whose prompt names none are left out")]

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        weight = resolve(CLIP_WEIGHT)
        # the background-consistency metric's key: one CLIP ViT-B/32 in memory
        self.model = cached_model(("hf_clip_model", str(weight.path), weight.sha256, str(ctx.device)),
                                  lambda: load_hf_clip_model(weight, ctx.device))
        self.weights_sha256 = {weight.name: weight.sha256}
        self.text_features: dict[str, torch.Tensor] = {}

    def text_of(self, record):
        return appearance_style_text(record)

    @torch.no_grad()
    def style_features(self, text: str) -> torch.Tensor:
        if text not in self.text_features:
            from metrics.viclip import tokenize

            ids = tokenize([text], STYLE_CONTEXT, truncate=False).long().to(self.ctx.device)
            feats = hf_features(self.model.get_text_features(input_ids=ids)).float()
            self.text_features[text] = feats / feats.norm(dim=1, keepdim=True)
        return self.text_features[text]

    @torch.no_grad()
    def score_text_clip(self, frames, text):
        text_features = self.style_features(text)
        scale = self.model.logit_scale.exp()
        sims: list[float] = []
        for s in range(0, len(frames), self.micro_batch):
            pixels = torch.stack([style_frame(f) for f in frames[s : s + self.micro_batch]]).to(self.ctx.device)
            image = hf_features(self.model.get_image_features(pixel_values=pixels)).float()
            image = image / image.norm(dim=1, keepdim=True)
            logits = (scale * image @ text_features.t())[:, 0]  # CLIP.forward's logits_per_image (= per_text.T)
            sims += [float(v) / 100 for v in logits.cpu()]
        return [sum(sims), len(sims)]

    def reduce(self, results):
        """Every frame's score summed over clips, over the frames scored (VBench's ``sim / cnt`` in one process;
        with several processes VBench averages each clip's last frame instead, appearance_style.py:83)."""
        total, count = sum(r[0] for r in results), sum(int(r[1]) for r in results)
        per_clip = np.array([r[0] / r[1] for r in results])
        return total / count, {"frames_scored": count,
                               "std_over_clips": float(per_clip.std(ddof=1)) if len(per_clip) > 1 else 0.0}

    def compute(self):
        if not self.videos:
            raise BenchkitError(f"{self.name} has no clips to score: none of their prompts names a VBench appearance "
                                "style (use -p vbench --dimension appearance_style)")
        return super().compute()

    def describe(self):
        return {"model": "OpenAI CLIP ViT-B/32 (transformers openai/clip-vit-base-patch32), image-text logit / 100",
                "image": "PIL bicubic resize of the short side to 224 (antialiased), centre crop 224, ToTensor, CLIP "
                         "mean/std (vbench.utils.clip_transform_Image)",
                "text": "the prompt's VBench auxiliary_info appearance_style, clip.tokenize (77 tokens, never cut; "
                        "OpenAI's BPE from open_clip's bpe_simple_vocab_16e6.txt.gz)",
                "reduction": "sum over every frame of every clip / frames scored; clips without a style left out",
                "dtype": "float32",
                "libraries": library_versions("transformers", "torch", "torchvision", "pillow", "open-clip-torch", "ftfy", "av")}


class _ViCLIPDimension(_TextDimension):
    weights = (VICLIP_WEIGHT,)
    scale = "cosine of ViCLIP video and text embeddings (VBench's raw value, before its normalisation)"
    protocol = PROTOCOL + ": the package's compute_* code path, 8 'middle' frames, per-clip cosine averaged over clips"
    frames_used = ("8 frames: vbench.utils.get_frame_indices(8, n, sample='middle') (n split into 8 runs, the middle "
                   "of each rounded down; under 8 frames each, then the last repeated)")
    micro_batch = 1  # one clip a call, as VBench

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        from metrics.viclip import load_viclip

        weight = resolve(VICLIP_WEIGHT)
        self.model = cached_model(("viclip", str(weight.hashed_file), weight.sha256, str(ctx.device)),
                                  lambda: load_viclip(weight.hashed_file, ctx.device, weight.name))
        self.weights_sha256 = {weight.name: weight.sha256}
        self.text_features: dict[str, torch.Tensor] = {}

    def text_of(self, record):
        return vbench_prompt(record)

    @torch.no_grad()
    def prompt_features(self, text: str) -> torch.Tensor:
        if text not in self.text_features:  # get_text_features (temporal_style.py:22-30)
            feats = self.model.encode_text(text).float()
            self.text_features[text] = feats / feats.norm(dim=-1, keepdim=True)
        return self.text_features[text]

    @torch.no_grad()
    def score_text_clip(self, frames, text):
        video = viclip_frames(frames).unsqueeze(0).to(self.ctx.device)
        feats = self.model.encode_vision(video).float()  # get_vid_features (temporal_style.py:32-36)
        feats = feats / feats.norm(dim=-1, keepdim=True)
        return [float((feats @ self.prompt_features(text).T)[0][0].cpu())]

    def describe(self):
        return {"model": "ViCLIP ViT-L/14 (OpenGVLab InternVid-10M-FLT, vbench/third_party/ViCLIP, metrics/viclip.py), "
                         "cosine of video and text embeddings",
                "image": "tensor bicubic resize of the short side to 224 on uint8 frames (antialias=False, rounded), "
                         "centre crop 224, /255, CLIP mean/std (vbench.utils.clip_transform)",
                "text": "the prompt (a vbench-long clip: its short prompt), OpenAI CLIP BPE (open_clip's "
                        "bpe_simple_vocab_16e6.txt.gz), 32 tokens, cut when longer; open_clip's TextTransformer",
                "reduction": "per clip cosine; mean over clips",
                "dtype": "float32", "libraries": library_versions("torch", "torchvision", "open-clip-torch", "ftfy", "av")}


@register_metric()
class VBenchTemporalStyle(_ViCLIPDimension):
    name = "vbench-temporal-style"
    dimension = "temporal_style"
    description = "VBench temporal style: ViCLIP video-text similarity of 8 frames with the prompt, mean over clips"


@register_metric()
class VBenchOverallConsistency(_ViCLIPDimension):
    name = "vbench-overall-consistency"
    dimension = "overall_consistency"
    description = "VBench overall consistency: ViCLIP video-text similarity of 8 frames with the prompt, mean over clips"
