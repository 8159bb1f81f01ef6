"""VBench's motion smoothness (vbench 0.1.5, ``vbench/motion_smoothness.py``) as the metric ``vbench-motion-smoothness``.

Per clip (``MotionSmoothness.motion_score``, motion_smoothness.py:111-153): the even frames (0, 2, 4, ...) go in;
AMT-S (metrics/amt.py) interpolates the frame halfway (``embt`` = 0.5, :107) between each two consecutive ones;
each interpolation is compared with the odd frame it stands for (1, 3, ...; an even-length clip's last frame is
not used): the mean absolute pixel difference (``cv2.absdiff`` then ``np.mean``, :165-167), averaged over the
interpolated frames (:156-162); the clip scores (255 - that) / 255 (:152). The value is the mean over clips
(:171-179; its multi-GPU path, :189-191, gives the same).

As VBench (``vbench/third_party/amt/utils/utils.py``): frames go in as uint8 / 255.0 in float32 (``img2tensor``,
:80-83), padded by edge replication to multiples of 16, split evenly between the sides (``InputPadder``, :54-78),
one pair per network call; an interpolation comes out cropped back, * 255, clipped to 0-255 and truncated (not
rounded) to uint8 (``tensor2img``, :86-89). Frames are compared as decoded (RGB; VBench reads them with OpenCV,
benchkit with PyAV: the same pixels).

Scale: always 1 (no downscaling, padding ``int(16 / 1)`` = 16). VBench's ``initialization`` (:93-105) applies a
VRAM rule only when ``device == 'cuda'``, the string; its launchers (vbench/launch/evaluate.py:111, and the
repository's evaluate.py) pass ``torch.device('cuda')``, which never equals a string, so VBench's own runs take
the no-resize branch on GPUs as on CPUs. Even on that path the rule keeps scale 1 unless a frame has more than
about 2.3 megapixels (24 GB card) or 4.3 (80 GB).

Clips need at least 3 frames (two inputs; VBench asserts it, :123) and both sides at least 113 px: padded to
128, AMT-S's 4-level correlation pyramid (raft.py:159-163) then keeps 2 cells at its coarsest level; at 112 px
or less that level is 1 cell wide, its sampling divides by zero (raft.py:14-15) and VBench's AMT-S returns NaN,
which it casts to uint8 and scores without a word. benchkit refuses such clips in one line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import MetricContext
from metrics.model_cache import cached_model
from metrics.vbench_dimensions import VBenchDimension
from metrics.weights import library_versions, resolve

DIVISOR = 16  # InputPadder's divisor at scale 1: int(16 / scale) (motion_smoothness.py:131)
MIN_SIDE = 113  # padded to 128: the correlation pyramid's coarsest level is 2 cells (see the module docstring)
EMBT = 0.5  # the time of the interpolated frame between its two inputs (motion_smoothness.py:107)


def pad_amounts(height: int, width: int, divisor: int = DIVISOR) -> tuple[int, int, int, int]:
    """``InputPadder``'s (left, right, top, bottom) padding to multiples of ``divisor`` (utils.py:56-60)."""
    pad_ht = (((height // divisor) + 1) * divisor - height) % divisor
    pad_wd = (((width // divisor) + 1) * divisor - width) % divisor
    return pad_wd // 2, pad_wd - pad_wd // 2, pad_ht // 2, pad_ht - pad_ht // 2


def to_uint8(pred: torch.Tensor) -> np.ndarray:
    """``tensor2img`` (utils.py:86-89): (1, 3, H, W) in 0-1 -> (H, W, 3) uint8, * 255 then truncated."""
    return (pred * 255.0).detach().squeeze(0).permute(1, 2, 0).cpu().numpy().clip(0, 255).astype(np.uint8)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """``np.mean(cv2.absdiff(a, b))`` for uint8 frames, in exact integer arithmetic (the same float64)."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(dtype=np.int64) / a.size


@torch.no_grad()
def motion_smoothness(frames: np.ndarray, model: torch.nn.Module, device: torch.device, embt: float = EMBT) -> float:
    """One clip's score: (255 - mean |odd frame - AMT-S's interpolation of it|) / 255 (motion_smoothness.py:111-162)."""
    t, h, w = frames.shape[:3]
    if t < 3:
        raise BenchkitError(f"motion smoothness needs at least 3 frames (two to interpolate between); the clip has {t}")
    if min(h, w) < MIN_SIDE:
        raise BenchkitError(f"AMT-S needs frames of at least {MIN_SIDE}x{MIN_SIDE} px (its correlation pyramid runs out "
                            f"below that, and VBench's AMT-S returns NaN); the clip's are {h}x{w}")
    left, right, top, bottom = pad_amounts(h, w)

    def network_input(frame: np.ndarray) -> torch.Tensor:  # img2tensor, then InputPadder.pad
        x = torch.tensor(frame).permute(2, 0, 1).unsqueeze(0) / 255.0
        return F.pad(x, [left, right, top, bottom], mode="replicate").to(device)

    t_half = torch.tensor(embt).float().view(1, 1, 1, 1).to(device)
    diffs, previous = [], network_input(frames[0])
    for k in range((t - 1) // 2):  # the odd frames between two even ones: 1, 3, ..., up to the last even frame
        following = network_input(frames[2 * k + 2])
        pred = model(previous, following, t_half).cpu()
        if not torch.isfinite(pred).all():
            raise BenchkitError("AMT-S returned non-finite values; check the weights file")
        diffs.append(mean_abs_diff(frames[2 * k + 1], to_uint8(pred[..., top : pred.shape[-2] - bottom, left : pred.shape[-1] - right])))
        previous = following
    return (255.0 - float(np.mean(np.array(diffs)))) / 255.0


def load_amt(weight, device: torch.device) -> torch.nn.Module:
    from metrics.amt import load_amt_s

    return load_amt_s(weight.hashed_file, f"weights '{weight.name}' at {weight.hashed_file}").to(device)


@register_metric()
class VBenchMotionSmoothness(VBenchDimension):
    name = "vbench-motion-smoothness"
    dimension = "motion_smoothness"
    weights = ("amt-s",)
    min_side, min_side_why = MIN_SIDE, "AMT-S's correlation pyramid runs out below that, and VBench's AMT-S returns NaN"
    description = ("VBench motion smoothness: AMT-S interpolates the odd frames from the even ones; 1 - mean |difference| "
                   "/ 255, mean over clips")
    scale = "0-1, 1 = every odd frame is exactly AMT-S's interpolation of its neighbours (VBench's raw value, before its normalisation)"

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        weight = resolve("amt-s")
        self.model = cached_model(("amt-s", str(weight.hashed_file), weight.sha256, str(ctx.device)),
                                  lambda: load_amt(weight, ctx.device))
        self.weights_sha256 = {weight.name: weight.sha256}

    def score_clip(self, frames: np.ndarray) -> list[float]:
        return [motion_smoothness(frames, self.model, self.ctx.device)]

    def describe(self) -> dict[str, Any]:
        return {"model": "AMT-S (MCG-NKU/AMT amt-s.pth; corr_radius 3, corr_lvls 4, num_flows 3), as vendored by vbench 0.1.5",
                "inputs": "even frames (0, 2, ...) as uint8/255 float32, edge-padded to multiples of 16; one pair per call, "
                          "embt 0.5",
                "image": "interpolation cropped, *255, clipped and truncated to uint8 (tensor2img); compared with the odd "
                         "frames (1, 3, ...)",
                "reduction": "per clip (255 - mean over interpolated frames of mean |difference|)/255; mean over clips",
                "amt_scale": "1 (no VRAM downscaling: VBench's launchers pass torch.device('cuda'), which its "
                             "device == 'cuda' test never matches, so they run at 1 too)",
                "min_frame_side_px": MIN_SIDE, "dtype": "float32", "libraries": library_versions("torch", "numpy", "av")}
