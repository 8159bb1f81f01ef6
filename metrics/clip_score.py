"""CLIP score in the two variants papers report, each named in every result.

- ``clip-score``: the GigaGAN/DMD2 protocol. open_clip ViT-g-14 ``laion2b_s12b_b42k`` in fp32;
  the image is cropped to its short side, LANCZOS-resized to 256, then open_clip's eval
  transform (bicubic to 224 on the short side, centre crop, CLIP mean/std); the caption is
  tokenised to 77 tokens, "A photo depicts " is spliced in after the start token, the result
  is cut to 77 and the last position forced to the end token when it holds text (so long
  captions keep their end token, which CLIP pools at). Score: the plain mean cosine (~0.3).
- ``clip-score-l14``: torchmetrics' CLIPScore. transformers ``openai/clip-vit-large-patch14``
  with its processor, score ``max(mean(100 * cos), 0)``. Unlike torchmetrics 1.9, which cuts
  long captions' input ids at 77 and so drops the end token (torchmetrics#2883), captions are
  truncated by the tokenizer, which keeps it.
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
from metrics.model_cache import cached_model
from metrics.scorers import MeanScoreMetric, Scorer, hf_features
from metrics.weights import ResolvedWeight, library_versions, resolve

PREFIX = "A photo depicts "
CONTEXT = 77
EOT = 49407


def load_open_clip(weight: ResolvedWeight, arch: str, device: torch.device):
    """An open_clip model from a local weight, never from the network.

    A folder with ``open_clip_config.json`` (the Hub layout, or a custom architecture) is
    built from that config; a bare checkpoint file is loaded into ``arch``. Either way the
    checkpoint goes through open_clip's own ``load_checkpoint`` (which unwraps ``state_dict``
    and converts third-party layouts).
    """
    import logging

    import open_clip

    folder = weight.hashed_file.parent
    name = f"local-dir:{folder}" if (folder / "open_clip_config.json").is_file() else arch
    try:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # open_clip warns "initialized randomly" before we load the checkpoint
        try:
            model = open_clip.create_model(name, pretrained=None, load_weights=False)
        finally:
            root.setLevel(level)
        open_clip.load_checkpoint(model, str(weight.hashed_file))
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise BenchkitError(f"weights '{weight.name}' at {weight.hashed_file} do not load into open_clip {arch} "
                            f"({str(exc).splitlines()[0][:200]}); check the file (see `benchkit weights`)") from None
    return model.float().eval().to(device), name


def prefixed_tokens(captions: list[str], prefix: str = PREFIX) -> torch.Tensor:
    """GigaGAN/DMD2's token splice: [SOT] + prefix + caption tokens, cut to 77, end token kept."""
    from open_clip.tokenizer import tokenize

    tokens = tokenize(captions, context_length=CONTEXT)  # truncates with the end token kept
    prefix_ids = tokenize([prefix], context_length=CONTEXT)[0]
    body = prefix_ids[1 : int((prefix_ids == EOT).nonzero()[0, 0])]  # between SOT and EOT
    spliced = torch.cat([tokens[:, :1], body.expand(len(captions), -1), tokens[:, 1:]], dim=1)[:, :CONTEXT].clone()
    last = spliced[:, CONTEXT - 1]
    last[last > 0] = EOT
    return spliced


def open_clip_dmd2_input(image: np.ndarray, transform) -> torch.Tensor:
    """GigaGAN/DMD2's image path: crop to the short side, LANCZOS 256, then open_clip's eval transform."""
    return transform(Image.fromarray(pp.crop_lanczos(256)(pp.to_rgb_uint8(image))))


def hf_processor_pixels(image: np.ndarray, processor, as_pil: bool = False) -> torch.Tensor:
    """One image's ``pixel_values`` from a transformers (CLIP) processor: a uint8 CHW tensor (as
    torchmetrics passes it) or, with ``as_pil``, a PIL image (as PickScore's README does)."""
    rgb = pp.to_rgb_uint8(image)
    item = Image.fromarray(rgb) if as_pil else torch.from_numpy(rgb).permute(2, 0, 1)
    return processor(images=[item], return_tensors="pt")["pixel_values"][0]


class OpenClipDMD2Scorer(Scorer):
    weight_name = "clip-vit-g-14-laion2b-s12b-b42k"
    arch = "ViT-g-14"

    def __init__(self, device: torch.device):
        import open_clip
        from open_clip.transform import PreprocessCfg, image_transform_v2

        self.weight = resolve(self.weight_name)
        self.device = device
        self.model, model_name = cached_model(("open_clip", str(self.weight.hashed_file), self.weight.sha256, str(device)),
                                              lambda: load_open_clip(self.weight, self.arch, device))
        cfg = open_clip.get_model_preprocess_cfg(self.model)
        self.transform = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
        self.preprocess = functools.partial(open_clip_dmd2_input, transform=self.transform)
        self.weights_sha256 = {self.weight_name: self.weight.sha256}
        self.variant = {
            "model": f"open_clip {self.arch} laion2b_s12b_b42k", "loaded_as": model_name, "protocol": "gigagan-dmd2",
            "image": "center-crop long edge; PIL LANCZOS 256; open_clip eval transform " + str(cfg),
            "text": f"prefix {PREFIX!r} spliced after SOT, 77 tokens, EOT kept", "dtype": "float32",
            "libraries": library_versions("open_clip_torch", "torch", "pillow"),
        }

    @torch.no_grad()
    def forward(self, inputs: list[torch.Tensor], prompts: list[str]) -> np.ndarray:
        x = torch.stack(inputs).to(self.device)
        img = self.model.encode_image(x)
        txt = self.model.encode_text(prefixed_tokens(prompts).to(self.device))
        return torch.nn.functional.cosine_similarity(img, txt, dim=1).double().cpu().numpy()


@register_metric()
class ClipScore(MeanScoreMetric):
    name = "clip-score"
    protocol = "GigaGAN/DMD2: open_clip ViT-g-14 laion2b_s12b_b42k, crop + PIL LANCZOS 256, 'A photo depicts ' after SOT, end token kept"
    weights = ("clip-vit-g-14-laion2b-s12b-b42k",)
    description = "Mean CLIP cosine, open_clip ViT-g-14 laion2b_s12b_b42k with the 'A photo depicts ' prefix (GigaGAN/DMD2)"
    unit = "cosine"
    scale = "cosine (x1)"

    def build_scorer(self, device):
        return OpenClipDMD2Scorer(device)


def load_hf_clip(weight: ResolvedWeight, device: torch.device, processor_dir=None):
    from transformers import CLIPModel, CLIPProcessor

    try:
        model = CLIPModel.from_pretrained(str(weight.path)).float().eval().to(device)
        processor = CLIPProcessor.from_pretrained(str(processor_dir or weight.path))
    except (OSError, ValueError) as exc:
        raise BenchkitError(f"weights '{weight.name}' at {weight.path} do not load as a transformers CLIPModel "
                            f"({str(exc).splitlines()[0][:200]}); check the folder (see `benchkit weights`)") from None
    return model, processor


def hf_clip_cosine(model, processor, images: list[np.ndarray], prompts: list[str], device: torch.device,
                   pixels: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Cosine of image and text embeddings; images as uint8 CHW tensors, as torchmetrics passes them
    (or their ``pixel_values``, one per image, already made by :func:`hf_processor_pixels`)."""
    if pixels is None:
        pixels = [hf_processor_pixels(im, processor) for im in images]
    pixels = torch.stack(pixels).to(device)
    text = processor(text=prompts, padding=True, truncation=True, max_length=CONTEXT, return_tensors="pt")
    img = hf_features(model.get_image_features(pixel_values=pixels))
    txt = hf_features(model.get_text_features(input_ids=text["input_ids"].to(device),
                                              attention_mask=text["attention_mask"].to(device)))
    img = img / img.norm(p=2, dim=-1, keepdim=True)
    txt = txt / txt.norm(p=2, dim=-1, keepdim=True)
    return (img * txt).sum(-1)


class HFClipL14Scorer(Scorer):
    weight_name = "clip-vit-large-patch14"

    def __init__(self, device: torch.device):
        self.weight = resolve(self.weight_name)
        self.device = device
        self.model, self.processor = cached_model(("hf_clip", str(self.weight.path), self.weight.sha256, str(device)),
                                                  lambda: load_hf_clip(self.weight, device))
        self.preprocess = functools.partial(hf_processor_pixels, processor=self.processor)
        self.weights_sha256 = {self.weight_name: self.weight.sha256}
        self.variant = {"model": "transformers openai/clip-vit-large-patch14", "protocol": "torchmetrics-clipscore",
                        "image": "CLIPProcessor (bicubic short side 224, centre crop)",
                        "text": "CLIPProcessor, truncated to 77 with the end token kept", "dtype": "float32",
                        "libraries": library_versions("transformers", "torch")}

    @torch.no_grad()
    def forward(self, inputs: list[Any], prompts: list[str]) -> np.ndarray:
        return (100 * hf_clip_cosine(self.model, self.processor, [], prompts, self.device, pixels=inputs)).double().cpu().numpy()


@register_metric()
class ClipScoreL14(MeanScoreMetric):
    name = "clip-score-l14"
    protocol = 'torchmetrics CLIPScore: transformers CLIP ViT-L/14, max(100 cos, 0), long captions truncated keeping the end token'
    weights = ("clip-vit-large-patch14",)
    description = "torchmetrics-style CLIPScore: max(mean(100 x cosine), 0) with transformers CLIP ViT-L/14"
    unit = "100xcosine"
    scale = "100 x cosine, mean clamped at 0 (torchmetrics)"

    def build_scorer(self, device):
        return HFClipL14Scorer(device)

    def finish(self, mean: float) -> float:
        return max(mean, 0.0)
