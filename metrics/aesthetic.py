"""LAION aesthetic predictor v2 (christophschuhmann/improved-aesthetic-predictor), as its
``simple_inference.py`` runs it.

- ``aesthetic``: the ``sac+logos+ava1-l14-linearMSE.pth`` head, an MLP 768 -> 1024 -> 128 -> 64
  -> 16 -> 1 with dropouts and no activations, on the L2-normalised OpenAI CLIP ViT-L/14 image
  embedding (after the visual projection). The image goes through OpenAI CLIP's own eval
  transform: PIL bicubic resize of the short side to 224, centre crop 224, CLIP mean/std.
  Score: the head's output, an AVA-style rating (~1-10, LAION-Aesthetics thresholds at 5-6.5).

The CLIP backbone is the transformers ``openai/clip-vit-large-patch14`` folder (the same weights
as OpenAI's ``ViT-L-14.pt``, converted), shared with ``clip-score-l14``; the head is a plain state
dict read as data. Runs in fp32 (the reference script gets CLIP in fp16 on a GPU from clip.load;
the two are not bit-identical there). The parity test (tests/test_metric_aesthetic.py) compares with the
``simple-aesthetics-predictor`` package's ``AestheticsPredictorV2Linear``.
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
from metrics.clip_score import load_hf_clip
from metrics.model_cache import cached_model
from metrics.scorers import MeanScoreMetric, Scorer, hf_features
from metrics.weights import ResolvedWeight, library_versions, resolve

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@functools.lru_cache(maxsize=None)
def _openai_clip_transform(size: int):
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size), ToTensor(),
                    Normalize(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)])


def openai_clip_input(image: np.ndarray, size: int = 224) -> torch.Tensor:
    """OpenAI CLIP's eval transform (``clip.clip._transform``, copied verbatim by ImageReward): PIL
    bicubic resize of the short side to ``size``, centre crop, to [0, 1], CLIP mean/std. The RGB
    conversion comes first here, after the resize there: the same pixels, as resizing acts per channel."""
    return _openai_clip_transform(size)(Image.fromarray(pp.to_rgb_uint8(image)))


def linear_mlp_head(input_size: int) -> torch.nn.Sequential:
    """improved-aesthetic-predictor's ``MLP.layers`` (its ReLUs are commented out; ImageReward's head is
    the same module): Linear/Dropout at the indices its state dicts name (layers.0, .2, .4, .6, .7)."""
    nn = torch.nn
    return nn.Sequential(nn.Linear(input_size, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                         nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))


def load_head(state: dict[str, Any], prefix: str, where: str, input_size: int | None = None,
              encoder: str = "CLIP backbone") -> torch.nn.Sequential:
    """The MLP head from the ``prefix``-named tensors of ``state``; one line when they do not fit it."""
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    first = own.get("0.weight")
    if not isinstance(first, torch.Tensor) or first.dim() != 2:
        raise BenchkitError(f"{where}: no MLP head ({prefix}0.weight missing); this is not the expected checkpoint")
    if input_size is not None and first.shape[1] != input_size:
        raise BenchkitError(f"{where}: the MLP head takes {first.shape[1]}-d features but the {encoder} gives "
                            f"{input_size}-d ones; the two files do not belong together")
    head = linear_mlp_head(first.shape[1])
    try:
        head.load_state_dict(own, strict=True)
    except RuntimeError as exc:
        raise BenchkitError(f"{where}: the MLP head does not fit {first.shape[1]}-1024-128-64-16-1 "
                            f"({str(exc).splitlines()[0][:200]}); this is not the expected checkpoint") from None
    return head.float().eval()


def load_aesthetic_head(weight: ResolvedWeight, input_size: int, device: torch.device) -> torch.nn.Sequential:
    from benchkit.core.safe_load import load_state_dict_file

    state = load_state_dict_file(weight.hashed_file)
    return load_head(state, "layers.", f"weights '{weight.name}' at {weight.hashed_file}", input_size).to(device)


class AestheticScorer(Scorer):
    clip_weight_name = "clip-vit-large-patch14"
    head_weight_name = "laion-aesthetic-v2"
    size = 224

    def __init__(self, device: torch.device):
        self.clip_weight = resolve(self.clip_weight_name)
        self.head_weight = resolve(self.head_weight_name)
        self.device = device
        # the same cache key as clip-score-l14's: one CLIP ViT-L/14 in memory when both run
        self.model, _ = cached_model(("hf_clip", str(self.clip_weight.path), self.clip_weight.sha256, str(device)),
                                     lambda: load_hf_clip(self.clip_weight, device))
        dim = int(self.model.config.projection_dim)
        self.head = cached_model(("aesthetic-head", str(self.head_weight.hashed_file), self.head_weight.sha256, dim,
                                  str(device)), lambda: load_aesthetic_head(self.head_weight, dim, device))
        self.preprocess = functools.partial(openai_clip_input, size=self.size)
        self.weights_sha256 = {self.clip_weight_name: self.clip_weight.sha256, self.head_weight_name: self.head_weight.sha256}
        self.variant = {
            "model": "LAION improved-aesthetic-predictor v2 (sac+logos+ava1-l14-linearMSE) on OpenAI CLIP ViT-L/14",
            "protocol": "improved-aesthetic-predictor simple_inference.py",
            "backbone": "transformers CLIPModel openai/clip-vit-large-patch14, image_embeds (after the visual projection)",
            "image": f"OpenAI CLIP preprocess: PIL bicubic short side {self.size}, centre crop {self.size}, "
                     f"mean {list(OPENAI_CLIP_MEAN)} std {list(OPENAI_CLIP_STD)}",
            "embedding": "L2-normalised", "head": "MLP 768-1024-128-64-16-1, no activations", "dtype": "float32",
            "libraries": library_versions("transformers", "torch", "torchvision", "pillow"),
        }

    @torch.no_grad()
    def forward(self, inputs: list[torch.Tensor], prompts: list[str]) -> np.ndarray:
        x = torch.stack(inputs).to(self.device)
        emb = hf_features(self.model.get_image_features(pixel_values=x)).float()
        norm = emb.norm(p=2, dim=-1, keepdim=True)
        emb = emb / torch.where(norm == 0, torch.ones_like(norm), norm)  # as the script's numpy `normalized`
        return self.head(emb)[:, 0].double().cpu().numpy()


@register_metric()
class Aesthetic(MeanScoreMetric):
    name = "aesthetic"
    protocol = 'LAION aesthetic predictor v2: MLP on L2-normalised OpenAI CLIP ViT-L/14 image embeddings, CLIP eval transform'
    weights = ("clip-vit-large-patch14", "laion-aesthetic-v2")
    description = "Mean LAION aesthetic score v2 (MLP on L2-normalised CLIP ViT-L/14 image embeddings, ~1-10)"
    unit = "score"
    scale = "AVA-style rating (~1-10); prompt-independent"

    def build_scorer(self, device):
        return AestheticScorer(device)
