"""VBench-I2V's ``i2v_background`` dimension (Vchitect/VBench vbench2_beta_i2v/i2v_background.py) as a benchkit metric.

``vbench-i2v-background`` (i2v_background.py:20-75): DreamSim's ensemble embedding (metrics/dreamsim.py; VBench-I2V
calls ``dreamsim(pretrained=True)``) of the input image and of every frame, after VBench-I2V's DreamSim transforms
(utils.py:72-82: a resize to 224 x 224, bicubic, no crop; the image through PIL and ToTensor, the frames as a float
tensor, then / 255). Per clip: 0.4 x the largest max(0, cos(image, frame)) over the frames + 0.3 x the mean and
0.3 x the smallest max(0, cos(frame i-1, frame i)), as for i2v subject; the value is the mean over clips.

The input image is the one the clip was generated from (the record's ``input_image``), as for ``vbench-i2v-subject``;
VBench-I2V pairs each video with ``custom_image_path`` or its crop folder's ``image_name``
(utils.py load_i2v_dimension_info). The resizes are torchvision's, as VBench calls them: the frames' bicubic tensor
resize antialiases as the installed torchvision's Resize does by default (torchvision >= 0.17), the image's is PIL's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import MetricContext
from metrics.dreamsim import IMAGE_SIZE, dreamsim_for
from metrics.vbench_dimensions import VBenchDimension, vbench_video
from metrics.vbench_i2v import I2V_PROTOCOL, i2v_subject_score, input_image
from metrics.weights import library_versions


def dreamsim_image_transform(image) -> torch.Tensor:
    """``dreamsim_transform_Image(224)`` (utils.py:78-82) on a PIL image: (1, 3, 224, 224) in [0, 1]."""
    from torchvision import transforms as T

    pipeline = T.Compose([T.Resize((IMAGE_SIZE, IMAGE_SIZE), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor()])
    return pipeline(image.convert("RGB")).unsqueeze(0)


def dreamsim_frames_transform(video: torch.Tensor) -> torch.Tensor:
    """``dreamsim_transform(224)`` (utils.py:72-76) on float (T, 3, H, W) frames in 0-255: bicubic to 224 x 224
    (torchvision's default antialiasing, no clamping), / 255."""
    from torchvision import transforms as T

    pipeline = T.Compose([T.Resize((IMAGE_SIZE, IMAGE_SIZE), interpolation=T.InterpolationMode.BICUBIC),
                          T.Lambda(lambda x: x.float().div(255.0))])
    return pipeline(video)


@register_metric()
class VBenchI2VBackground(VBenchDimension):
    name = "vbench-i2v-background"
    dimension = "i2v_background"
    protocol = I2V_PROTOCOL + ": i2v_background.py's code path, every frame, per-clip results averaged over clips"
    weights = ("dino-vitb16", "dreamsim-ensemble")
    description = ("VBench-I2V video-image background consistency: DreamSim (ensemble) similarity of the frames to the "
                   "input image and to each other")
    scale = "0.4 max + 0.3 mean + 0.3 min of max(0, cosine), 0-1 (VBench-I2V's raw value)"

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.model, self.weights_sha256 = dreamsim_for(ctx)

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), "an image-to-video run (each clip's input image)"]

    def describe(self) -> dict[str, Any]:
        return {"protocol": I2V_PROTOCOL,
                "model": "DreamSim ensemble (dreamsim 0.2.1 dreamsim(pretrained=True)): DINO ViT-B/16 block-11 CLS + "
                         "OpenAI CLIP and OpenCLIP ViT-B/16 embeddings with the ensemble LoRA merged, concatenated, mean "
                         "subtracted and L2-normalised",
                "image": "resize to 224x224 (bicubic), /255, no crop; the input image through PIL, the frames as tensors "
                         "(vbench2_beta_i2v.utils dreamsim_transform[_Image]); each network's mean/std inside DreamSim",
                "reduction": "per clip 0.4 max cos(image, frame) + 0.3 mean + 0.3 min cos(frame i-1, frame i), each "
                             "max(0, .); mean over clips",
                "dtype": "float32", "libraries": library_versions("timm", "torch", "torchvision", "av")}

    @torch.no_grad()
    def score_item(self, record: dict[str, Any], frames: np.ndarray) -> list[float]:
        image = input_image(self.name, record, dreamsim_image_transform)
        if len(frames) < 2:
            raise BenchkitError("a clip needs at least 2 frames for an i2v background score")
        pixels = dreamsim_frames_transform(vbench_video(frames))
        device = self.ctx.device
        image_features = self.model(image.to(device)).float().cpu()
        frame_features = torch.cat([self.model(pixels[s : s + self.micro_batch].to(device)).float().cpu()
                                    for s in range(0, len(pixels), self.micro_batch)])
        return [i2v_subject_score(image_features, frame_features)]
