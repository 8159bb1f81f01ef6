"""VBench's human action dimension (``vbench`` 0.1.5, vbench/human_action.py) as the metric ``vbench-human-action``.

Each value is what VBench's ``compute_human_action`` reports for the same clips and prompts
(tests/test_vbench_human_action.py runs it beside this metric with the same random weights):

- the clip: 16 frames picked as ``load_video(num_frames=16)`` picks them (utils.py:68-106, 155-158: n frames cut
  into 16 equal runs, the middle of each, rounded down; fewer than 16: each, then the last repeated); each
  resized by OpenCV (``cv2.resize``, INTER_LINEAR, on the uint8 frame; untouched when its short side is already
  256) to a short side of 256, the long side ``int(256 * long / short)``, and centre-cropped to 224 at
  ``int(round((side - 224) / 2))`` (UMT's ``Resize(256, 'bilinear')``, ``CenterCrop(224)``: video_transforms.py:
  973-990, 1127-1169, functional.py:12-74); ``ClipToTensor`` (/255, float32, (3, 16, 224, 224)) and ImageNet
  mean/std (volume_transforms.py:16-67, functional.py:77-89), as human_action.py:63-68 composes them;
- the network: UMT ViT-L/16 fine-tuned on Kinetics-400 (:mod:`metrics.umt`), one clip a call, float32; the sigmoid
  of its 400 logits, the top 5, each probability rounded to 4 decimals and kept when >= 0.85 (human_action.py:
  83-92);
- the action: what VBench reads from the clip's file name ``{prompt}-{index}.mp4`` (:78: lower case, up to the
  first ``-``, after the last ``person is ``, up to the first ``_``), e.g. "A person is riding a bike" -> "riding a
  bike": VBench compares the Kinetics-400 names (third_party/umt/kinetics_400_categories.txt, shipped here as
  metrics/data/kinetics_400_categories.txt, lower case) with that text, not with the prompt's auxiliary info. The
  prompt is the one VBench files the clip under (a ``vbench-long`` clip's short prompt);
- a clip is right when its action is one of the kept classes; the value is the share of clips that are
  (``cor_num / cnt``).

A prompt of VBench's sets is scored when it probes human_action (``-p vbench --dimension human_action``: "A
person is <Kinetics-400 action>"). A prompt from elsewhere is scored only when the action VBench would read from
it is a Kinetics-400 class (VBench's custom mode would count every other clip as wrong, which says nothing of the
clip); a run with none is refused in one line before anything is generated (left out with a note when
``--metrics vbench`` brought the metric in).

Per clip the state holds (right 1/0, the sigmoid probability of the prompt's action, -1 when that is no
Kinetics-400 class), keyed by item.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import MetricContext, MetricValue, ScorePlan
from metrics.model_cache import cached_model
from metrics.vbench_dimensions import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PROTOCOL,
    VBenchDimension,
    check_video_plan,
    probed_dimensions,
)
from metrics.vbench_text_dimensions import middle_frame_indices, vbench_prompt
from metrics.weights import library_versions, resolve

UMT_WEIGHT = "umt-l16-k400"
CATEGORIES = Path(__file__).parent / "data" / "kinetics_400_categories.txt"
FRAMES = 16  # load_video(..., num_frames=16) (human_action.py:80)
SHORT_SIDE, CROP = 256, 224  # Resize(256, 'bilinear'), CenterCrop((224, 224)) (human_action.py:64-65)
TOP_K, THRESHOLD, DECIMALS = 5, 0.85, 4  # human_action.py:85-91
MEAN, STD = IMAGENET_MEAN, IMAGENET_STD  # human_action.py:67 (not UMT's own 0.5/0.5 default, modeling_finetune.py:16)


# ---- the action a clip is checked for ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def kinetics_classes() -> tuple[str, ...]:
    """The 400 Kinetics-400 class names by index, lower case (human_action.py ``build_dict``, :31-41)."""
    if not CATEGORIES.is_file():
        raise BenchkitError(f"{CATEGORIES} (Kinetics-400's class names) is missing from this install; reinstall benchkit")
    names: dict[int, str] = {}
    for line in CATEGORIES.read_text().splitlines():
        if line.strip():
            name, index = line.strip().split("\t")
            names[int(index)] = name.lower()
    if sorted(names) != list(range(400)):
        raise BenchkitError(f"{CATEGORIES}: expected Kinetics-400's 400 classes numbered 0-399; reinstall benchkit")
    return tuple(names[i] for i in range(400))


def action_label(prompt: str) -> str:
    """The action VBench reads from the clip ``{prompt}-{index}.mp4`` (human_action.py:78)."""
    name = f"{prompt}-0.mp4"
    return name.split("/")[-1].lower().split("-")[0].split("person is ")[-1].split("_")[0]


def record_action(record: dict[str, Any]) -> str:
    return action_label(vbench_prompt(record))


# ---- the clip as UMT sees it ------------------------------------------------------------------------------------

def resize_frames(frames: np.ndarray, size: int = SHORT_SIDE) -> np.ndarray:
    """UMT's ``resize_clip(clip, 256, 'bilinear')`` on uint8 frames (functional.py:26-74): OpenCV's INTER_LINEAR,
    as VBench runs it (torch's and PIL's bilinear resizes round differently); unchanged when the short side is
    already ``size``."""
    import cv2

    h, w = frames.shape[1:3]
    if (w <= h and w == size) or (h <= w and h == size):
        return frames
    new_h, new_w = (int(size * h / w), size) if w < h else (size, int(size * w / h))
    return np.stack([cv2.resize(np.ascontiguousarray(f), (new_w, new_h), interpolation=cv2.INTER_LINEAR) for f in frames])


def centre_crop(frames: np.ndarray, size: int = CROP) -> np.ndarray:
    """UMT's ``CenterCrop`` (video_transforms.py:1140-1169): the offset is Python's ``round`` (half to even)."""
    h, w = frames.shape[1:3]
    if size > h or size > w:
        raise BenchkitError(f"a {h}x{w} frame is smaller than the {size}x{size} crop")
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    return frames[:, top : top + size, left : left + size]


def normalise(clip: torch.Tensor) -> torch.Tensor:
    """(3, T, H, W) in 0-1, less the mean over the std per channel, in float32 (functional.py:77-89)."""
    mean = torch.as_tensor(MEAN, dtype=clip.dtype)[:, None, None, None]
    std = torch.as_tensor(STD, dtype=clip.dtype)[:, None, None, None]
    return (clip - mean) / std


def umt_clip(frames: np.ndarray) -> torch.Tensor:
    """The (3, 16, 224, 224) float32 input VBench makes of a clip (human_action.py:63-68, 80)."""
    picked = frames[middle_frame_indices(FRAMES, len(frames))]
    cropped = centre_crop(resize_frames(picked))
    clip = torch.from_numpy(np.ascontiguousarray(cropped)).permute(3, 0, 1, 2).float().div(255)  # ClipToTensor
    return normalise(clip)


def kept_classes(probabilities: torch.Tensor) -> list[int]:
    """The top-5 classes whose sigmoid probability, rounded to 4 decimals, is at least 0.85 (human_action.py:84-92)."""
    values, indices = torch.topk(probabilities[None], TOP_K, dim=1)
    rounded = [round(v, DECIMALS) for v in values.squeeze().tolist()]
    return [i for v, i in zip(rounded, indices.squeeze().tolist()) if v >= THRESHOLD]


# ---- the metric -------------------------------------------------------------------------------------------------

@register_metric()
class VBenchHumanAction(VBenchDimension):
    name = "vbench-human-action"
    dimension = "human_action"
    weights = (UMT_WEIGHT,)
    description = ("VBench human action: share of clips whose prompt's action is among UMT's top-5 Kinetics-400 "
                   "classes with probability >= 0.85")
    scale = "share of clips, 0-1 (VBench's raw value, before its normalisation)"
    protocol = (PROTOCOL + ": the package's compute_* code path, 16 'middle' frames, the action read from the prompt, "
                "share of clips whose action is a top-5 class at >= 0.85")
    frames_used = ("16 frames: vbench.utils.get_frame_indices(16, n, sample='middle') (n split into 16 runs, the middle "
                   "of each rounded down; under 16 frames each, then the last repeated)")
    micro_batch = 1  # one clip a call, as VBench

    prompt_need = ("checks each clip for the Kinetics-400 action its prompt names (\"A person is <action>\"), and none "
                   "of these prompts names one; use VBench's prompts: -p vbench --dimension human_action")

    @classmethod
    def check(cls, plan: ScorePlan, ctx: MetricContext) -> None:
        import importlib.util

        check_video_plan(cls.name, plan)
        cls.check_prompts(plan)  # nothing to score: left out (or one line) before OpenCV is asked for
        if any(cls.in_suite(r) for r in plan.records) and importlib.util.find_spec("cv2") is None:
            raise BenchkitError(f"{cls.name} resizes frames with OpenCV, as VBench does (other resizes round differently); "
                                "pip install opencv-python-headless")
        super().check(plan, ctx)

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), "OpenCV (pip install opencv-python-headless)",
                "prompts naming a Kinetics-400 action (-p vbench --dimension human_action); other clips are left out"]

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        from metrics.umt import load_umt

        weight = resolve(UMT_WEIGHT)
        classes = len(kinetics_classes())
        self.model = cached_model(("umt", str(weight.hashed_file), weight.sha256, str(ctx.device)),
                                  lambda: load_umt(weight.hashed_file, ctx.device, weight.name, num_classes=classes))
        self.weights_sha256 = {weight.name: weight.sha256}

    @classmethod
    def names_what_it_checks(cls, record: dict[str, Any]) -> bool:
        """A VBench prompt (it probes human_action, see in_suite); a prompt from elsewhere whose action is a
        Kinetics-400 class."""
        return probed_dimensions(record) is not None or record_action(record) in kinetics_classes()

    @torch.no_grad()
    def logits(self, frames: np.ndarray) -> torch.Tensor:
        """UMT's 400 Kinetics-400 logits for the clip, float32 on the CPU."""
        return self.model(umt_clip(frames)[None].to(self.ctx.device)).float().cpu()[0]

    def score_item(self, record: dict[str, Any], frames: np.ndarray) -> list[float]:
        classes = kinetics_classes()
        action = record_action(record)
        probabilities = torch.sigmoid(self.logits(frames))
        right = action in {classes[i] for i in kept_classes(probabilities)}
        return [float(right), float(probabilities[classes.index(action)]) if action in classes else -1.0]

    def reduce(self, results: list[list[float]]) -> tuple[float, dict[str, Any]]:
        right = [r[0] for r in results]
        known = [r[1] for r in results if r[1] >= 0]
        return float(np.mean(right)), {"clips_right": int(sum(right)),
                                       "mean_action_probability": float(np.mean(known)) if known else None,
                                       "clips_whose_action_is_no_class": len(results) - len(known)}

    def compute(self) -> list[MetricValue]:
        values = super().compute()
        for v in values:
            v.variant["frames"] = self.frames_used
        return values

    def describe(self) -> dict[str, Any]:
        import cv2

        return {"model": "UMT ViT-L/16 fine-tuned on Kinetics-400, 16 frames at 224 px (OpenGVLab/unmasked_teacher "
                         "l16_ptk710_ftk710_ftk400_f16_res224.pth, metrics/umt.py), sigmoid of the 400 logits",
                "image": "OpenCV INTER_LINEAR resize of the uint8 frames to a short side of 256, centre crop 224, /255, "
                         "ImageNet mean/std (UMT's Resize, CenterCrop, ClipToTensor, Normalize)",
                "action": "the prompt VBench files the clip under, as human_action.py:78 reads it from "
                          "'{prompt}-{index}.mp4': lower case, before the first '-', after 'person is ', before '_'",
                "decision": f"the action among the top {TOP_K} Kinetics-400 classes whose probability rounded to "
                            f"{DECIMALS} decimals is >= {THRESHOLD}",
                "reduction": "share of clips right (cor_num / cnt)",
                "dtype": "float32",
                "libraries": {**library_versions("torch", "timm", "numpy", "av"), "opencv": cv2.__version__}}
