"""VBench-I2V's image-conditioned dimensions (VBench++, Vchitect/VBench vbench2_beta_i2v/) as benchkit metrics.

- ``vbench-i2v-subject`` (vbench2_beta_i2v/i2v_subject.py:19-60): DINO ViT-B/16 CLS features of the input image and
  of every frame, after VBench-I2V's "internet" transforms (utils.py:56-70: resize of the short side to 256, bicubic,
  centre crop 224; the image through PIL and ToTensor, the frames as a float tensor / 255; ImageNet mean/std). Per
  clip: 0.4 x the largest max(0, cos(image, frame)) over the frames + 0.3 x the mean and 0.3 x the smallest
  max(0, cos(frame i-1, frame i)); the value is the mean over clips.

VBench-I2V reads the input image from its own crop folder; benchkit reads the image the clip was generated from
(the record's ``input_image``, checked by sha256 when the run was made), which is the same file when the run used
`-p vbench-i2v --image-dir .../crop/<ratio>`. The resizes are torchvision's, as VBench calls them, so the frames'
bicubic resize antialiases as the installed torchvision's tensor Resize does by default (torchvision >= 0.17).

``i2v_background`` (DreamSim) is metrics/vbench_i2v_background.py, built on this module's score; ``camera_motion``
(CoTracker2) metrics/vbench_camera_motion.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import MetricContext
from metrics.vbench_dimensions import IMAGENET_MEAN, IMAGENET_STD, VBenchDimension, dino_for, vbench_video
from metrics.weights import library_versions

I2V_PROTOCOL = "VBench-I2V (vbench2_beta_i2v @ 45e79ec) protocol"
MAX_WEIGHT, MEAN_WEIGHT, MIN_WEIGHT = 0.4, 0.3, 0.3  # i2v_subject.py:23-25
# the dimensions vbench2_i2v_full_info.json has prompts for: the image-conditioned ones, then VBench's quality ones
I2V_SUITE = ("i2v_subject", "i2v_background", "camera_motion", "subject_consistency", "background_consistency",
             "motion_smoothness", "dynamic_degree", "aesthetic_quality", "imaging_quality", "temporal_flickering")


def input_image(metric: str, record: dict[str, Any], transform) -> torch.Tensor:
    """``transform`` of the PIL image the clip was generated from (the record's ``input_image``); one line when the
    record has none or the file cannot be read."""
    from PIL import Image

    source = record.get("input_image")
    if not source:
        raise BenchkitError(f"{metric} compares each clip with its input image, and this clip has none; score an "
                            "image-to-video run (a prompt set with an 'image' column, or --images-from)")
    try:
        with Image.open(Path(source)) as im:
            return transform(im)
    except OSError as exc:
        raise BenchkitError(f"input image {source}: not readable ({exc}); it was there when the run was made") from None


def internet_image_transform(image) -> torch.Tensor:
    """``dino_transform_Image_internet()`` (utils.py:64-70) on a PIL image: (1, 3, 224, 224)."""
    from torchvision import transforms as T

    pipeline = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                          T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return pipeline(image.convert("RGB")).unsqueeze(0)


def internet_frames_transform(video: torch.Tensor) -> torch.Tensor:
    """``dino_transform_internet()`` (utils.py:56-62) on float (T, 3, H, W) frames in 0-255."""
    from torchvision import transforms as T

    pipeline = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                          T.Lambda(lambda x: x.float().div(255.0)), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return pipeline(video)


def i2v_subject_score(image_features: torch.Tensor, frame_features: torch.Tensor) -> float:
    """i2v_subject.py:36-56 on the features: max(0, cos) of every frame with the image and with the frame before."""
    if len(frame_features) < 2:
        raise BenchkitError("a clip needs at least 2 frames for an i2v subject score")
    image = F.normalize(image_features.float(), dim=-1, p=2)
    frames = F.normalize(frame_features.float(), dim=-1, p=2)
    conformity = F.cosine_similarity(image.expand_as(frames), frames).clamp(min=0.0).double()
    consecutive = F.cosine_similarity(frames[:-1], frames[1:]).clamp(min=0.0).double()
    return float(MAX_WEIGHT * conformity.max() + MEAN_WEIGHT * consecutive.mean() + MIN_WEIGHT * consecutive.min())


@register_metric()
class VBenchI2VSubject(VBenchDimension):
    name = "vbench-i2v-subject"
    dimension = "i2v_subject"
    protocol = I2V_PROTOCOL + ": i2v_subject.py's code path, every frame, per-clip results averaged over clips"
    weights = ("dino-vitb16",)
    description = ("VBench-I2V video-image subject consistency: DINO ViT-B/16 similarity of the frames to the input image "
                   "and to each other")
    scale = "0.4 max + 0.3 mean + 0.3 min of max(0, cosine), 0-1 (VBench-I2V's raw value)"

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.model, self.weights_sha256 = dino_for(ctx)

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), "an image-to-video run (each clip's input image)"]

    def describe(self) -> dict[str, Any]:
        return {"protocol": I2V_PROTOCOL,
                "model": "DINO ViT-B/16 (facebookresearch/dino dino_vitb16), CLS token after the final norm",
                "image": "short side to 256 (bicubic), centre crop 224, /255, ImageNet mean/std; the input image through "
                         "PIL, the frames as tensors (vbench2_beta_i2v.utils dino_transform[_Image]_internet)",
                "reduction": "per clip 0.4 max cos(image, frame) + 0.3 mean + 0.3 min cos(frame i-1, frame i), each "
                             "max(0, .); mean over clips",
                "dtype": "float32", "libraries": library_versions("timm", "torch", "torchvision", "av")}

    @torch.no_grad()
    def score_item(self, record: dict[str, Any], frames: np.ndarray) -> list[float]:
        image = input_image(self.name, record, internet_image_transform)
        pixels = internet_frames_transform(vbench_video(frames))
        device = self.ctx.device
        image_features = self.model(image.to(device)).float().cpu()
        frame_features = torch.cat([self.model(pixels[s : s + self.micro_batch].to(device)).float().cpu()
                                    for s in range(0, len(pixels), self.micro_batch)])
        return [i2v_subject_score(image_features, frame_features)]
