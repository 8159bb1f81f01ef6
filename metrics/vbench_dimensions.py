"""The first VBench dimensions (Vchitect/VBench, the ``vbench`` 0.1.5 package) as benchkit metrics.

Each value is what VBench's own function reports for the same clips (tests/test_vbench_dimensions.py
runs the package's functions beside these metrics with the same random weights):

- ``vbench-subject-consistency`` (vbench/subject_consistency.py): DINO ViT-B/16 (facebookresearch/dino's
  ``dino_vitb16``, as ``torch.hub`` loads it) CLS features of every frame, after VBench's ``dino_transform``
  (utils.py:49-54: tensor resize of the short side to 224, bilinear, no antialias, no crop; /255;
  ImageNet mean/std). Frame i > 0 scores the mean of max(0, cos) with frame i-1 and with frame 0; the value
  is the sum over every video of these, over the number of such frames (subject_consistency.py:49-68).
- ``vbench-background-consistency`` (background_consistency.py): the same with OpenAI CLIP ViT-B/32 image
  embeddings after ``clip_transform(224)`` (utils.py:33-39: tensor bicubic resize to 224, no antialias,
  centre crop 224, /255, CLIP mean/std).
- ``vbench-temporal-flickering`` (temporal_flickering.py): per clip, (255 - mean absolute difference of
  consecutive frames) / 255, averaged over clips. VBench scores it on static-scene prompts; benchkit scores
  every clip given (its prompt set picks them).
- ``vbench-aesthetic-quality`` (aesthetic_quality.py): LAION's linear aesthetic predictor
  (``sa_0_4_vit_l_14_linear.pth``, LAION-AI/aesthetic-predictor: not the improved-aesthetic-predictor MLP of
  the ``aesthetic`` metric) on L2-normalised OpenAI CLIP ViT-L/14 embeddings after ``clip_transform(224)``,
  divided by 10, averaged over each clip's frames, then over clips.
- ``vbench-imaging-quality`` (imaging_quality.py): pyiqa's MUSIQ with the SPAQ weights on every frame, after
  VBench's default ``longer`` preprocessing (frames whose long side is over 512 resized to 512 on it, bilinear,
  no antialias; /255); mean over each clip's frames, then over clips, divided by 100. The network is pyiqa's
  own class (``pip install --no-deps pyiqa``), as VBench calls it, loaded from the weights file as data.

Every frame of a clip is scored (VBench's ``load_video`` without ``num_frames``). Per-clip results are the
state, keyed by item, so chunks, ranks and breakdown groups merge exactly. CLIP is the transformers port of
OpenAI's weights (the same tensors; OpenAI's ``.pt`` files are TorchScript archives, which benchkit does not
load) in float32: VBench's ``clip.load`` keeps CLIP in fp16 on a GPU, so its GPU numbers differ in the
last digits. DINO runs on timm's ViT blocks with DINO's own position-embedding resampling (below), which
transformers' and timm's ports do differently on non-square frames.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import Metric, MetricContext, MetricValue, NotApplicable, SampleBatch, ScorePlan, item_key, prompt_of
from metrics.clips import batch_clip, clip_path, decoder_name
from metrics.model_cache import cached_model
from metrics.raft_flow import RAFT_MIN_SIDE, raft_for
from metrics.scorers import hf_features
from metrics.vbench_static_filter import is_static, select_static, static_pair_scores, static_thresholds
from metrics.weights import ResolvedWeight, library_versions, resolve

PROTOCOL = "VBench 0.1.5 protocol"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
FRAMES = "every frame of the clip (vbench.utils.load_video without num_frames)"


def probed_dimensions(record: dict[str, Any]) -> list[str] | None:
    """The VBench dimensions a prompt probes (the ``dimension`` field of the vbench and vbench-long sets), or None
    for a prompt from elsewhere (VBench's custom-input mode scores it for every dimension)."""
    suite = (record.get("meta") or {}).get("dimension")
    return [suite] if isinstance(suite, str) else (list(suite) if isinstance(suite, list) else None)


def check_video_plan(name: str, plan: ScorePlan) -> None:
    """One line when the run's model makes images: there are no clips to score."""
    if plan.media == "image":
        raise BenchkitError(f"{name} scores clips, and {plan.family or 'this run'}'s model makes images; use it on a video "
                            "model's run (`benchkit families` lists which make video)")


def vbench_video(frames: np.ndarray) -> torch.Tensor:
    """What ``vbench.utils.load_video`` hands the transforms (utils.py:173-175): float32 (T, 3, H, W), 0-255."""
    return torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2)


def dino_transform(video: torch.Tensor, size: int = 224) -> torch.Tensor:
    """``vbench.utils.dino_transform(224)``: short side to ``size`` (bilinear, no antialias, no crop), /255, ImageNet mean/std."""
    from torchvision.transforms import functional as TF
    from torchvision.transforms import InterpolationMode

    x = TF.resize(video, size, interpolation=InterpolationMode.BILINEAR, antialias=False)
    return TF.normalize(x.float().div(255.0), IMAGENET_MEAN, IMAGENET_STD)


def clip_transform(video: torch.Tensor, size: int = 224) -> torch.Tensor:
    """``vbench.utils.clip_transform(224)``: short side to ``size`` (bicubic, no antialias, no clamping), centre crop,
    /255, CLIP mean/std."""
    from torchvision.transforms import functional as TF
    from torchvision.transforms import InterpolationMode

    x = TF.center_crop(TF.resize(video, size, interpolation=InterpolationMode.BICUBIC, antialias=False), size)
    return TF.normalize(x.float().div(255.0), CLIP_MEAN, CLIP_STD)


def consistency_sum(features: torch.Tensor) -> tuple[float, int]:
    """(sum over frames i > 0 of (max(0, cos(f_i-1, f_i)) + max(0, cos(f_0, f_i))) / 2, number of such frames),
    VBench's per-clip accumulation (subject_consistency.py:49-63, background_consistency.py:44-57)."""
    if len(features) < 2:
        raise BenchkitError("a clip needs at least 2 frames for a consistency score")
    f = F.normalize(features.float(), dim=-1, p=2)
    previous = F.cosine_similarity(f[:-1], f[1:]).clamp(min=0.0)
    first = F.cosine_similarity(f[:1].expand_as(f[1:]), f[1:]).clamp(min=0.0)
    return float(((previous.double() + first.double()) / 2).sum()), len(f) - 1


def flicker_score(frames: np.ndarray) -> float:
    """(255 - mean over consecutive frame pairs of their mean absolute difference) / 255 (temporal_flickering.py:
    192-211), in exact integer arithmetic where VBench sums float32."""
    if len(frames) < 2:
        raise BenchkitError("a clip needs at least 2 frames for a temporal flickering score")
    pixels = frames[0].size
    pair_means = [np.abs(b.astype(np.int16) - a.astype(np.int16)).sum(dtype=np.int64) / pixels
                  for a, b in zip(frames[:-1], frames[1:])]
    return (255.0 - float(np.mean(pair_means))) / 255.0


# ---- DINO ViT-B/16 (facebookresearch/dino vision_transformer.py, hubconf.py dino_vitb16) -------------------

def dino_position_embedding(pos_embed: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """DINO's ``interpolate_pos_encoding`` (vision_transformer.py:174-194) for a ``height`` x ``width`` input:
    unchanged for a square input with the trained grid; else the grid resampled bicubically by the scale factors
    ((side // patch) + 0.1) / grid, as DINO passes them (a resample to a target size, as timm and transformers
    do, gives other numbers)."""
    n = pos_embed.shape[1] - 1
    rows, cols = height // patch, width // patch
    if rows * cols == n and height == width:
        return pos_embed
    dim, side = pos_embed.shape[-1], math.sqrt(n)
    grid = pos_embed[:, 1:].reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side), mode="bicubic")
    if tuple(grid.shape[-2:]) != (rows, cols):
        raise BenchkitError(f"DINO position grid resampled to {tuple(grid.shape[-2:])} for {rows}x{cols} patches")
    return torch.cat([pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)


class DinoBackbone(torch.nn.Module):
    """DINO's ``VisionTransformer.forward`` (vision_transformer.py:196-214): patch tokens, CLS, DINO's position
    embedding for the input's size, the blocks, the final norm, the CLS token; on timm's blocks, whose
    parameter names are DINO's."""

    def __init__(self, vit: torch.nn.Module, patch: int):
        super().__init__()
        self.vit, self.patch = vit, patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        tokens = vit.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([vit.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        tokens = tokens + dino_position_embedding(vit.pos_embed, x.shape[-2], x.shape[-1], self.patch)
        return vit.norm(vit.blocks(tokens))[:, 0]


def load_dino(weight: ResolvedWeight, device: torch.device) -> DinoBackbone:
    """A DINO ViT from its backbone-only checkpoint, its shape read from the tensors (64-wide heads, as DINO's ViTs)."""
    from timm.models.vision_transformer import VisionTransformer

    from benchkit.core.safe_load import load_state_dict_file

    where = f"weights '{weight.name}' at {weight.hashed_file}"
    state = load_state_dict_file(weight.hashed_file)
    pos, proj = state.get("pos_embed"), state.get("patch_embed.proj.weight")
    if not isinstance(pos, torch.Tensor) or not isinstance(proj, torch.Tensor) or pos.dim() != 3 or proj.dim() != 4:
        raise BenchkitError(f"{where}: no DINO ViT backbone (pos_embed, patch_embed.proj.weight missing); use the "
                            "backbone-only dino_vitbase16_pretrain.pth, not the full training checkpoint")
    dim, patch, grid = pos.shape[-1], proj.shape[-1], math.isqrt(pos.shape[1] - 1)
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    hidden = state.get("blocks.0.mlp.fc1.weight")
    if grid * grid != pos.shape[1] - 1 or dim % 64 or depth == 0 or hidden is None:
        raise BenchkitError(f"{where}: not a DINO ViT (position grid {pos.shape[1] - 1}, width {dim}, {depth} blocks)")
    vit = VisionTransformer(img_size=grid * patch, patch_size=patch, embed_dim=dim, depth=depth, num_heads=dim // 64,
                            mlp_ratio=hidden.shape[0] / dim, qkv_bias=True, num_classes=0,
                            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
    try:
        vit.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BenchkitError(f"{where}: does not fit a DINO ViT ({str(exc).splitlines()[0][:200]})") from None
    return DinoBackbone(vit, patch).float().eval().to(device)


def dino_for(ctx: MetricContext) -> tuple[DinoBackbone, dict[str, str]]:
    """The registry's DINO ViT-B/16 on ``ctx``'s device, from the one model cache, and {weight name: sha256}."""
    weight = resolve("dino-vitb16")
    model = cached_model(("dino-vit", str(weight.hashed_file), weight.sha256, str(ctx.device)),
                         lambda: load_dino(weight, ctx.device))
    return model, {weight.name: weight.sha256}


# ---- CLIP (transformers ports of OpenAI's weights) and the linear aesthetic head -------------------------

def load_hf_clip_model(weight: ResolvedWeight, device: torch.device):
    from transformers import CLIPModel

    try:
        return CLIPModel.from_pretrained(str(weight.path)).float().eval().to(device)
    except (OSError, ValueError) as exc:
        raise BenchkitError(f"weights '{weight.name}' at {weight.path} do not load as a transformers CLIPModel "
                            f"({str(exc).splitlines()[0][:200]}); check the folder (see `benchkit weights`)") from None


def load_linear_head(weight: ResolvedWeight, input_size: int, device: torch.device) -> torch.nn.Linear:
    """``nn.Linear(768, 1)`` with the file's state dict (aesthetic_quality.py:284-288)."""
    from benchkit.core.safe_load import load_state_dict_file

    where = f"weights '{weight.name}' at {weight.hashed_file}"
    state = load_state_dict_file(weight.hashed_file)
    w = state.get("weight")
    if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[0] != 1 or set(state) != {"weight", "bias"}:
        raise BenchkitError(f"{where}: not a linear aesthetic head (a state dict of weight [1, d] and bias [1])")
    if w.shape[1] != input_size:
        raise BenchkitError(f"{where}: the head takes {w.shape[1]}-d features but the CLIP model gives {input_size}-d "
                            "ones; the two files do not belong together")
    head = torch.nn.Linear(input_size, 1)
    head.load_state_dict(state)
    return head.float().eval().to(device)


# ---- MUSIQ (pyiqa.archs.musiq_arch, as vbench/imaging_quality.py builds it) ---------------------------------

def musiq_transform(video: torch.Tensor, longest: int = 512) -> torch.Tensor:
    """``vbench.imaging_quality.transform(images, 'longer')`` (imaging_quality.py:17-37, VBench's default mode):
    a clip whose long side is over ``longest`` resized to (int(s*h), int(s*w)), s = longest / long side (bilinear,
    no antialias); /255."""
    from torchvision.transforms import functional as TF

    h, w = video.shape[-2:]
    if max(h, w) > longest:
        scale = longest / max(h, w)
        video = TF.resize(video, [int(scale * h), int(scale * w)], antialias=False)
    return video / 255.0


def load_musiq(weight: ResolvedWeight, device: torch.device) -> torch.nn.Module:
    """pyiqa's MUSIQ with the file's weights, its sizes read from the tensors (64-wide heads, as MUSIQ's)."""
    from benchkit.core.safe_load import load_state_dict_file

    try:
        from pyiqa.archs.musiq_arch import MUSIQ
    except ImportError as exc:
        raise BenchkitError(f"vbench-imaging-quality runs pyiqa's MUSIQ ({exc}); pip install --no-deps pyiqa==0.1.16") from None
    where = f"weights '{weight.name}' at {weight.hashed_file}"
    state = {k.removeprefix("module."): v for k, v in load_state_dict_file(weight.hashed_file).items()}
    enc = "transformer_encoder."
    try:
        embedding = state["embedding.weight"]
        hidden, patch = embedding.shape[0], 4 * math.isqrt(embedding.shape[1] // 256)
        layers = len({k.split(".")[2] for k in state if k.startswith(enc + "transformer.")})
        config = {"patch_size": patch, "hidden_size": hidden, "num_heads": max(1, hidden // 64), "num_layers": layers,
                  "mlp_dim": state[enc + "transformer.encoderblock_0.mlp.fc1.weight"].shape[0],
                  "num_scales": state[enc + "scaleembed_input.scale_emb"].shape[0],
                  "spatial_pos_grid_size": math.isqrt(state[enc + "posembed_input.position_emb"].shape[1]),
                  "num_class": (state.get("head.weight") if "head.weight" in state else state["head.0.weight"]).shape[0]}
        model = MUSIQ(pretrained=False, **config)
        model.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError, AttributeError) as exc:
        raise BenchkitError(f"{where}: not a pyiqa MUSIQ state dict ({str(exc).splitlines()[0][:200]})") from None
    return model.float().eval().to(device)


# ---- the metrics ------------------------------------------------------------------------------------------

class VBenchDimension(Metric):
    """One VBench dimension: a per-clip result kept per item, reduced as VBench reduces it."""

    dimension: ClassVar[str]  # VBench's name for it
    protocol = PROTOCOL + ": the package's compute_* code path, every frame, per-clip results averaged over clips"
    unit = "score"
    higher_is_better = True
    reads_clips = True
    micro_batch: ClassVar[int] = 16  # frames per network call (numbers do not depend on it beyond float rounding)
    min_side: ClassVar[int] = 0  # frames with a shorter side cannot be scored (its network's limit): refused before work
    min_side_why: ClassVar[str] = ""

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.weights_sha256: dict[str, str] = {}
        self.add_state("videos", {}, merge="update")  # item key -> per-clip result (a list of floats)
        self.add_state("decoders", {}, merge="update")  # item key -> what decoded its clip

    # what a dimension checks each clip for that its prompt must name (a scene, a style, an action, a camera motion):
    # the end of the line that says none of the run's prompts does; None: the prompt text alone will do
    prompt_need: ClassVar[str | None] = None

    @classmethod
    def names_what_it_checks(cls, record: dict[str, Any]) -> bool:
        """Whether ``record``'s prompt names what the dimension checks its clip for (see ``prompt_need``)."""
        return True

    @classmethod
    def in_suite(cls, record: dict[str, Any]) -> bool:
        """VBench's prompt suite: a prompt from a VBench set (its ``dimension`` field) is scored only for the
        dimensions it probes (vbench/utils.py load_dimension_info); a custom prompt for every dimension."""
        suite = probed_dimensions(record)
        return suite is None or cls.dimension in suite

    @classmethod
    def check_prompts(cls, plan: ScorePlan) -> None:
        """One line (NotApplicable: a group member is left out) when no prompt the dimension would score names what
        it checks; VBench prompts of other dimensions only are the suite check's line."""
        candidates = [r for r in plan.records if cls.in_suite(r)]
        if cls.prompt_need and candidates and not any(cls.names_what_it_checks(r) for r in candidates):
            raise NotApplicable(f"{cls.name} {cls.prompt_need}")

    @classmethod
    def check(cls, plan: ScorePlan, ctx: MetricContext) -> None:
        check_video_plan(cls.name, plan)  # before the weights are looked for and hashed
        cls.check_prompts(plan)
        small = sorted(size for size in plan.image_sizes or () if min(size) < cls.min_side)
        if small:
            raise NotApplicable(f"{cls.name} needs frames of at least {cls.min_side}x{cls.min_side} px ({cls.min_side_why}); "
                                f"this model makes {small[0][0]}x{small[0][1]}: generate larger clips or drop {cls.name}")
        suites = [probed_dimensions(r) for r in plan.records]
        if plan.records and all(s is not None for s in suites) and not any(cls.dimension in s for s in suites):
            raise NotApplicable(f"{cls.name}: none of the {len(plan.records)} VBench prompts probes {cls.dimension} (VBench "
                                f"scores each dimension on its own prompts); add `--dimension {cls.dimension}` prompts or "
                                f"drop {cls.name}")
        super().check(plan, ctx)

    def scores(self, record: dict[str, Any]) -> bool:
        """In the dimension's prompt suite, and naming what it checks the clip for."""
        return self.in_suite(record) and self.names_what_it_checks(record)

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), "a video model's clips (mp4 needs PyAV: pip install av)"]

    def describe(self) -> dict[str, Any]:
        """What the variant says besides the protocol, dimension and weights."""
        raise NotImplementedError

    def score_clip(self, frames: np.ndarray) -> list[float]:
        raise NotImplementedError

    def score_item(self, record: dict[str, Any], frames: np.ndarray) -> list[float]:
        """The per-clip result; a dimension that needs more than the frames (the prompt, the input image) reads it
        from the sample record."""
        return self.score_clip(frames)

    def kept_keys(self, keys: list[str]) -> list[str]:
        """The scored clips (item keys, sorted) the value is computed over: all of them, but for temporal
        flickering, whose VBench protocol keeps only static clips."""
        return keys

    def reduce(self, results: list[list[float]]) -> tuple[float, dict[str, Any]]:
        """(the value, extra) from the per-clip results in item order: by default their mean."""
        values = np.array([r[0] for r in results], dtype=np.float64)
        return float(values.mean()), {"std_over_clips": float(values.std(ddof=1)) if len(values) > 1 else 0.0}

    def update(self, batch: SampleBatch) -> None:
        # a breakdown group's copy of this metric scores a subset of the same batch: each clip is scored once
        done = batch.memo.setdefault(f"{self.name}:" + ",".join(f"{k}={v}" for k, v in sorted(self.weights_sha256.items())), {})
        root = self.ctx.run_dir
        for i, record in enumerate(batch.records):
            if not self.scores(record):
                continue
            key = item_key(record)
            if key not in done:
                path = clip_path(record, root)
                frames = batch_clip(batch, i, root)
                try:
                    result = [float(v) for v in self.score_item(record, frames)]
                except BenchkitError as exc:
                    raise BenchkitError(f"{self.name}: clip {path}: {exc}") from None
                done[key] = (result, decoder_name(path))
            self.videos[key], self.decoders[key] = done[key]

    def compute(self) -> list[MetricValue]:
        if not self.videos:
            raise BenchkitError(f"{self.name} has no clips to score (a VBench prompt set scores {self.dimension} only on "
                                f"its own prompts: add `--dimension {self.dimension}` prompts)")
        keys = self.kept_keys(sorted(self.videos))
        value, extra = self.reduce([self.videos[k] for k in keys])
        per_prompt = Counter(prompt_of(k) for k in keys)
        extra["samples_per_prompt"] = sorted(set(per_prompt.values()))  # VBench's standard suite: 5
        variant = {"protocol": PROTOCOL, "dimension": self.dimension, **self.describe(), "frames": FRAMES,
                   "decoders": sorted(set(self.decoders.values())), "weights_sha256": dict(self.weights_sha256),
                   "scale": self.scale}
        return [MetricValue(self.name, value, self.unit, True, len(keys), variant, {"clips": len(keys), **extra})]


class _PairConsistency(VBenchDimension):
    """Subject and background consistency: features per frame, then VBench's frame-pair similarity."""

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def transform(self, video: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def score_clip(self, frames: np.ndarray) -> list[float]:
        pixels = self.transform(vbench_video(frames))
        feats = torch.cat([self.features(pixels[s : s + self.micro_batch].to(self.ctx.device)).float().cpu()
                           for s in range(0, len(pixels), self.micro_batch)])
        total, pairs = consistency_sum(feats)
        return [total, pairs]

    def reduce(self, results: list[list[float]]) -> tuple[float, dict[str, Any]]:
        """Sum over clips of the frame similarities over the number of frames scored (VBench's ``sim / cnt``, one
        process; its multi-GPU path for subject consistency averages per-clip means instead: equal when clips have
        equally many frames)."""
        total, pairs = sum(r[0] for r in results), sum(int(r[1]) for r in results)
        per_clip = np.array([r[0] / r[1] for r in results])
        spread = float(per_clip.std(ddof=1)) if len(per_clip) > 1 else 0.0
        return total / pairs, {"frames_scored": pairs, "std_over_clips": spread}


@register_metric()
class VBenchSubjectConsistency(_PairConsistency):
    name = "vbench-subject-consistency"
    dimension = "subject_consistency"
    weights = ("dino-vitb16",)
    description = "VBench subject consistency: DINO ViT-B/16 feature similarity of each frame to the previous and the first"
    scale = "mean of max(0, cosine), 0-1 (VBench's raw value, before its normalisation)"

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.model, self.weights_sha256 = dino_for(ctx)

    def transform(self, video):
        return dino_transform(video)

    def features(self, pixels):
        return self.model(pixels)

    def describe(self):
        return {"model": "DINO ViT-B/16 (facebookresearch/dino dino_vitb16), CLS token after the final norm",
                "image": "tensor resize of the short side to 224, bilinear, antialias=False, no crop; /255; ImageNet "
                         "mean/std (vbench.utils.dino_transform)",
                "reduction": "sum over clips of per-frame (max(0,cos prev)+max(0,cos first))/2, over frames scored",
                "dtype": "float32", "libraries": library_versions("timm", "torch", "torchvision", "av")}


@register_metric()
class VBenchBackgroundConsistency(_PairConsistency):
    name = "vbench-background-consistency"
    dimension = "background_consistency"
    weights = ("clip-vit-base-patch32",)
    description = "VBench background consistency: CLIP ViT-B/32 embedding similarity of each frame to the previous and the first"
    scale = "mean of max(0, cosine), 0-1 (VBench's raw value, before its normalisation)"

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        weight = resolve("clip-vit-base-patch32")
        self.model = cached_model(("hf_clip_model", str(weight.path), weight.sha256, str(ctx.device)),
                                  lambda: load_hf_clip_model(weight, ctx.device))
        self.weights_sha256 = {weight.name: weight.sha256}

    def transform(self, video):
        return clip_transform(video)

    def features(self, pixels):
        return hf_features(self.model.get_image_features(pixel_values=pixels))

    def describe(self):
        return {"model": "OpenAI CLIP ViT-B/32 (transformers openai/clip-vit-base-patch32), image embeddings",
                "image": "tensor resize of the short side to 224, bicubic, antialias=False; centre crop 224; /255; "
                         "CLIP mean/std (vbench.utils.clip_transform)",
                "reduction": "sum over clips of per-frame (max(0,cos prev)+max(0,cos first))/2, over frames scored",
                "dtype": "float32", "libraries": library_versions("transformers", "torch", "torchvision", "av")}


@register_metric()
class VBenchTemporalFlickering(VBenchDimension):
    """Scored, as VBench scores it, on the clips its static filter keeps (metrics/vbench_static_filter.py): per clip
    the state is ``[flicker score, static (1/0), thres, count_num, temporal-flickering scope (1/0), pair scores...]``."""

    name = "vbench-temporal-flickering"
    dimension = "temporal_flickering"
    weights = ("raft-things",)
    min_side, min_side_why = RAFT_MIN_SIDE, "the static filter's RAFT has four correlation levels"
    protocol = (PROTOCOL + ": static_filter.py's RAFT filter (a VBench prompt's first 5 static clips, every static clip of "
                "another prompt), then compute_temporal_flickering's code path on those clips")
    description = ("VBench temporal flickering: 1 - mean absolute difference of consecutive frames / 255, mean over the "
                   "clips VBench's static filter keeps")
    scale = "0-1, 1 = no change between frames (VBench's raw value, before its normalisation)"
    pairs_per_call: ClassVar[int] = 4

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.model, self.weights_sha256 = raft_for(ctx)

    def score_item(self, record: dict[str, Any], frames: np.ndarray) -> list[float]:
        return self.score_clip(frames, capped=probed_dimensions(record) is not None)

    @torch.no_grad()
    def score_clip(self, frames: np.ndarray, capped: bool = False) -> list[float]:  # type: ignore[override]
        flicker = flicker_score(frames)
        thres, count_num = static_thresholds(frames.shape[1], frames.shape[2], len(frames))
        scores = static_pair_scores(self.model, frames, self.ctx.device, self.pairs_per_call)
        return [flicker, float(is_static(scores, thres, count_num)), thres, count_num, float(capped), *scores]

    def kept_keys(self, keys: list[str]) -> list[str]:
        kept, self.filter_info = select_static({k: (bool(self.videos[k][1]), bool(self.videos[k][4])) for k in keys})
        if not kept:
            raise NotApplicable(f"{self.name}: none of the {len(keys)} clips is static by VBench's static filter (RAFT flow "
                                "under 3*min(H,W)/256 px), and VBench scores temporal flickering on static clips only")
        return kept

    def compute(self) -> list[MetricValue]:
        values = super().compute()
        flicker = np.array([r[0] for r in self.videos.values()], dtype=np.float64)
        no_flow = sum(1 for r in self.videos.values() if any(not np.isfinite(s) for s in r[STATIC_HEADER:]))
        for value in values:
            value.extra.update(self.filter_info, unfiltered_mean=float(flicker.mean()), clips_without_flow=no_flow)
        return values

    def describe(self):
        return {"model": "none for the score (pixel differences); RAFT (princeton-vl raft-things.pth on torchvision's "
                         "raft_large, 20 updates) for the static filter",
                "static_filter": "every frame; consecutive pairs plus (first, last) and (last, first); top 2% flow "
                                 "magnitude; static when at most round(2*frames/16) consecutive pairs pass 3*min(H,W)/256 "
                                 "and neither wrap pair passes twice that times the count (static_filter.py)",
                "selection": "per VBench prompt its first 5 static clips in file-name order (index by ascending seed); "
                             "every static clip of another prompt",
                "reduction": "per clip (255 - mean over frame pairs of mean |difference|)/255; mean over the kept clips",
                "dtype": "float32", "libraries": library_versions("numpy", "torch", "torchvision", "av")}


STATIC_HEADER = 5  # VBenchTemporalFlickering's per-clip state before the pair scores


@register_metric()
class VBenchAestheticQuality(VBenchDimension):
    name = "vbench-aesthetic-quality"
    dimension = "aesthetic_quality"
    weights = ("clip-vit-large-patch14", "laion-aesthetic-linear-l14")
    description = "VBench aesthetic quality: LAION linear aesthetic predictor on CLIP ViT-L/14, /10, mean over frames then clips"
    scale = "LAION aesthetic rating / 10 (~0-1; VBench's raw value)"
    micro_batch = 32  # VBench's batch_size (aesthetic_quality.py:22)

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        from metrics.clip_score import load_hf_clip

        clip_weight, head_weight = resolve("clip-vit-large-patch14"), resolve("laion-aesthetic-linear-l14")
        # the same cache key as the aesthetic and clip-score-l14 metrics': one CLIP ViT-L/14 in memory
        self.model, _ = cached_model(("hf_clip", str(clip_weight.path), clip_weight.sha256, str(ctx.device)),
                                     lambda: load_hf_clip(clip_weight, ctx.device))
        dim = int(self.model.config.projection_dim)
        self.head = cached_model(("aesthetic-linear-head", str(head_weight.hashed_file), head_weight.sha256, dim,
                                  str(ctx.device)), lambda: load_linear_head(head_weight, dim, ctx.device))
        self.weights_sha256 = {w.name: w.sha256 for w in (clip_weight, head_weight)}

    @torch.no_grad()
    def score_clip(self, frames):
        video = vbench_video(frames)
        scores = []
        for s in range(0, len(video), self.micro_batch):
            pixels = clip_transform(video[s : s + self.micro_batch]).to(self.ctx.device)
            emb = F.normalize(hf_features(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1, p=2)
            scores.append(self.head(emb).squeeze(-1).float().cpu())
        return [float(torch.cat(scores).double().div(10).mean())]

    def describe(self):
        return {"model": "LAION aesthetic-predictor sa_0_4_vit_l_14_linear (nn.Linear(768, 1)) on OpenAI CLIP ViT-L/14 "
                         "(transformers openai/clip-vit-large-patch14) L2-normalised image embeddings",
                "image": "tensor resize of the short side to 224, bicubic, antialias=False; centre crop 224; /255; "
                         "CLIP mean/std (vbench.utils.clip_transform)",
                "reduction": "per frame head output / 10; mean over each clip's frames, then over clips",
                "dtype": "float32", "libraries": library_versions("transformers", "torch", "torchvision", "av")}


@register_metric()
class VBenchImagingQuality(VBenchDimension):
    name = "vbench-imaging-quality"
    dimension = "imaging_quality"
    weights = ("musiq-spaq",)
    description = "VBench imaging quality: MUSIQ (SPAQ) score of every frame, mean over frames then clips, /100"
    scale = "MUSIQ-SPAQ opinion score / 100 (~0-1; VBench's raw value)"

    @classmethod
    def check(cls, plan: ScorePlan, ctx: MetricContext) -> None:
        import importlib.util

        check_video_plan(cls.name, plan)
        if importlib.util.find_spec("pyiqa") is None:
            raise BenchkitError(f"{cls.name} runs pyiqa's MUSIQ, as VBench does; pip install --no-deps pyiqa==0.1.16")
        super().check(plan, ctx)

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), "pyiqa (pip install --no-deps pyiqa==0.1.16)"]

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        weight = resolve("musiq-spaq")
        self.model = cached_model(("musiq", str(weight.hashed_file), weight.sha256, str(ctx.device)),
                                  lambda: load_musiq(weight, ctx.device))
        self.weights_sha256 = {weight.name: weight.sha256}

    @torch.no_grad()
    def score_clip(self, frames):
        video = musiq_transform(vbench_video(frames))
        # one frame a call, as VBench (MUSIQ cuts each frame into patches at three scales itself)
        scores = [float(self.model(video[i : i + 1].to(self.ctx.device))) for i in range(len(video))]
        return [sum(scores) / len(scores)]

    def reduce(self, results):
        values = np.array([r[0] for r in results], dtype=np.float64) / 100.0
        return float(values.mean()), {"std_over_clips": float(values.std(ddof=1)) if len(values) > 1 else 0.0}

    def describe(self):
        return {"model": "MUSIQ (pyiqa.archs.musiq_arch.MUSIQ) with the SPAQ weights, multi-scale 224/384 + original",
                "image": "VBench 'longer' mode: long side over 512 resized to 512 (bilinear, antialias=False); /255",
                "reduction": "per clip mean MUSIQ score over frames; mean over clips / 100",
                "dtype": "float32", "libraries": library_versions("pyiqa", "torch", "torchvision", "av")}
