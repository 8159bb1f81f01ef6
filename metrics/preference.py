"""Human-preference scores: PickScore and HPSv2 (v2.0 and v2.1), each with its version and scale.

- ``pickscore``: PickScore_v1 (a transformers CLIPModel) with the CLIP-ViT-H-14 processor,
  images as PIL, text padded and truncated to 77; score ``logit_scale.exp() * cos`` (~18-24),
  as in the PickScore README (softmax only when ranking several images of one prompt).
- ``hpsv2`` / ``hpsv2.0``: open_clip ViT-H-14 carrying the HPS checkpoint's state_dict;
  the image is resized on its long side to 224 and zero-padded to a square (not cropped);
  the prompt goes through open_clip's 77-token tokenizer; score = cosine (~0.25-0.35), the
  number ``hpsv2.score`` returns (the HPSv2 benchmark tables print it x100). ``hpsv2`` is
  v2.1, the version recent papers use; ``hpsv2.0`` is the package's default. The two are not
  comparable, so the version is in the metric name and the variant.

Both run in fp32. hpsv2 runs under CUDA autocast on a GPU, which moves its scores by about
1e-3; on CPU the two paths agree to float rounding (tests/test_metric_preference.py).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchkit.core.errors import BenchkitError
from metrics import preprocess as pp
from metrics import register_metric
from metrics.clip_score import CONTEXT, hf_processor_pixels, load_open_clip
from metrics.model_cache import cached_model
from metrics.scorers import MeanScoreMetric, Scorer, hf_features
from metrics.weights import library_versions, resolve


class PickScoreScorer(Scorer):
    def __init__(self, device: torch.device):
        from transformers import CLIPModel, CLIPProcessor

        self.model_weight = resolve("pickscore-v1")
        self.processor_weight = resolve("clip-vit-h-14-processor")
        self.device = device

        def build():
            try:
                model = CLIPModel.from_pretrained(str(self.model_weight.path)).float().eval().to(device)
                processor = CLIPProcessor.from_pretrained(str(self.processor_weight.path))
            except (OSError, ValueError) as exc:
                raise BenchkitError(f"PickScore weights at {self.model_weight.path} / processor at "
                                    f"{self.processor_weight.path} do not load ({str(exc).splitlines()[0][:200]})") from None
            return model, processor

        self.model, self.processor = cached_model(
            ("pickscore", str(self.model_weight.path), self.model_weight.sha256, str(self.processor_weight.path), str(device)),
            build)
        self.preprocess = functools.partial(hf_processor_pixels, processor=self.processor, as_pil=True)
        self.weights_sha256 = {"pickscore-v1": self.model_weight.sha256,
                               "clip-vit-h-14-processor": self.processor_weight.sha256}
        self.variant = {"model": "yuvalkirstain/PickScore_v1", "processor": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                        "formula": "logit_scale.exp() * cos(image, text)", "dtype": "float32",
                        "libraries": library_versions("transformers", "torch")}

    @torch.no_grad()
    def forward(self, inputs: list[Any], prompts: list[str]) -> np.ndarray:
        text_inputs = self.processor(text=prompts, padding=True, truncation=True, max_length=CONTEXT, return_tensors="pt")
        img = hf_features(self.model.get_image_features(pixel_values=torch.stack(inputs).to(self.device)))
        txt = hf_features(self.model.get_text_features(input_ids=text_inputs["input_ids"].to(self.device),
                                                       attention_mask=text_inputs["attention_mask"].to(self.device)))
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        return (self.model.logit_scale.exp() * (img * txt).sum(-1)).double().cpu().numpy()


@register_metric()
class PickScore(MeanScoreMetric):
    name = "pickscore"
    protocol = 'PickScore README: PickScore_v1 with the CLIP-ViT-H-14 processor, logit_scale x cosine'
    weights = ("pickscore-v1", "clip-vit-h-14-processor")
    description = "Mean PickScore_v1 (logit_scale x cosine, ~18-24)"
    unit = "pickscore"
    scale = "logit_scale.exp() x cosine"

    def build_scorer(self, device):
        return PickScoreScorer(device)


def hps_input(image: np.ndarray, size: int, mean, std) -> torch.Tensor:
    """HPSv2's image path (:func:`metrics.preprocess.hps_pad_square`) on a uint8 image."""
    return pp.hps_pad_square(Image.fromarray(pp.to_rgb_uint8(image)), size, list(mean), list(std))


class HPSv2Scorer(Scorer):
    arch = "ViT-H-14"

    def __init__(self, device: torch.device, version: str):
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
        from open_clip.tokenizer import tokenize

        self.weight = resolve("hps" + version)  # hpsv2.0 / hpsv2.1
        self.device = device
        self.model, loaded_as = cached_model(("hps", str(self.weight.hashed_file), self.weight.sha256, str(device)),
                                             lambda: load_open_clip(self.weight, self.arch, device))
        self.size = self.model.visual.image_size
        self.size = self.size[0] if isinstance(self.size, (tuple, list)) else self.size
        self.mean = getattr(self.model.visual, "image_mean", None) or OPENAI_DATASET_MEAN
        self.std = getattr(self.model.visual, "image_std", None) or OPENAI_DATASET_STD
        self.tokenize = tokenize
        self.preprocess = functools.partial(hps_input, size=self.size, mean=tuple(self.mean), std=tuple(self.std))
        self.weights_sha256 = {self.weight.name: self.weight.sha256}
        self.variant = {"model": f"open_clip {self.arch} + HPS {version} checkpoint", "hps_version": version,
                        "loaded_as": loaded_as,
                        "image": f"long side to {self.size} (bicubic on the float tensor), zero pad to square, CLIP mean/std",
                        "text": "open_clip tokenizer, 77 tokens", "formula": "cos(image, text)", "dtype": "float32",
                        "libraries": library_versions("open_clip_torch", "torch", "torchvision")}

    @torch.no_grad()
    def forward(self, inputs: list[torch.Tensor], prompts: list[str]) -> np.ndarray:
        x = torch.stack(inputs).to(self.device)
        img = self.model.encode_image(x, normalize=True)
        txt = self.model.encode_text(self.tokenize(prompts, context_length=CONTEXT).to(self.device), normalize=True)
        return (img * txt).sum(-1).double().cpu().numpy()


@register_metric()
class HPSv21(MeanScoreMetric):
    name = "hpsv2"
    protocol = 'hpsv2 package: open_clip ViT-H-14 + HPS v2.1, long side 224 and zero-pad to square, cosine'
    weights = ("hpsv2.1",)
    description = "Mean HPS v2.1 (cosine ~0.25-0.35; benchmark tables print x100)"
    unit = "cosine"
    scale = "cosine (x1); HPSv2 benchmark tables use x100"
    version = "v2.1"

    def build_scorer(self, device):
        return HPSv2Scorer(device, self.version)


@register_metric()
class HPSv20(HPSv21):
    name = "hpsv2.0"
    protocol = 'hpsv2 package: open_clip ViT-H-14 + HPS v2.0, long side 224 and zero-pad to square, cosine'
    weights = ("hpsv2.0",)
    description = "Mean HPS v2.0 (hpsv2.score's default; not comparable with v2.1)"
    version = "v2.0"
