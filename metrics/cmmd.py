"""CMMD (Jayasumana et al., "Rethinking FID: Towards a Better Evaluation Metric for Image Generation",
CVPR 2024): the MMD between CLIP image embeddings of two image sets under a Gaussian RBF kernel, as the
authors' code computes it (github.com/google-research/google-research, ``cmmd/``; line numbers below are of
io_util.py at 1963839, embedding.py at 5b09c22, distance.py at 4c42994; scenic's CLIP at 03c3032).

The image path of the original, step by step:

- the file is opened with PIL, centre-cropped to its short side with floor offsets
  (``top = (h - l) // 2``, ``left = (w - l) // 2``: io_util.py:38-44; torchvision's ``center_crop``
  rounds the offsets instead, so odd margins differ by a pixel) and resized to 336x336 by PIL
  ``BICUBIC`` on the uint8 image, which antialiases (io_util.py:45-46; 336 is the model's input size,
  embedding.py:44 and scenic's ``IMAGE_RESOLUTION['vit_l14_336px']``); a grayscale image is tiled to
  three channels (io_util.py:80-82);
- float32, divided by 255.0 (io_util.py:57, 139);
- ``jax.image.resize(..., 336, 'bicubic')`` (embedding.py:26-29): a no-op here, since the image is
  336 already (jax skips dimensions whose size does not change);
- CLIP's mean/std normalisation in float32 (scenic clip model.py ``normalize_image``; jit-compiled, the
  division by the std constant becomes a multiplication by its reciprocal, as here);
- OpenAI CLIP ViT-L/14-336's image embedding, L2-normalised (scenic clip layers.py ``encode_image``
  with ``normalize=True``; the same network as transformers' ``openai/clip-vit-large-patch14-336``,
  whose ``get_image_features`` is that embedding before normalisation).

The PyTorch port sayakpaul/cmmd-pytorch resizes with a non-antialiased interpolation instead
(cmmd-pytorch issue 4); this module follows the original.

The distance (distance.py:25-90): sigma 10 (gamma = 1 / (2 sigma^2)), the biased (V-statistic)
estimator ``mean k(x, x') + mean k(y, y') - 2 mean k(x, y)`` over all pairs, diagonals included, with
squared distances written ``-2 x.y + |x|^2 + |y|^2``, times 1000. Computed here in float64 and in row
blocks (the original computes whole n x n matrices in float32), so 30k x 30k never sits in memory.

Deliberate differences: all images of both sides are used (the original drops each side's remainder
after batches of 32, io_util.py:130-131); images are decoded to RGB as every benchkit metric reads them
(the original passes PIL's array as is, so an RGBA file fails its 3-channel spec and a palette file is
embedded as its index plane); and a reference is required (``--reference``: a run or an image folder),
there being no standard cached one.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from benchkit.core.errors import BenchkitError
from metrics import preprocess as pp
from metrics import register_metric
from metrics.base import MetricContext, MetricValue, ReferenceFeatureMetric
from metrics.feature_store import FeatureView
from metrics.features import get_extractor, register_extractor
from metrics.model_cache import cached_model
from metrics.scorers import hf_features
from metrics.weights import library_versions, resolve

WEIGHT = "clip-vit-large-patch14-336"
EXTRACTOR = "clip-vit-l14-336-normalized"
SIZE = 336
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)  # scenic clip model.py IMAGE_MEAN
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
# XLA compiles normalize_image's division by the constant std into a multiplication by its float32 reciprocal
# (checked on jax's CPU backend: bit for bit); the same here, so the inputs equal the original's exactly
CLIP_INV_STD = np.float32(1) / CLIP_STD
SIGMA = 10.0  # distance.py _SIGMA
SCALE = 1000.0  # distance.py _SCALE
BLOCK = 2048  # rows per kernel block: 2048 x 30k float64 is 0.5 GB
PREPROCESSING = "cmmd:center-crop-floor:pil-bicubic-336:div255:clip-normalize"
STEPS = ("RGB; centre crop to the short side (floor offsets); PIL bicubic (antialiased) to 336x336; /255 in float32; "
         "(x - CLIP mean) / CLIP std (google-research cmmd io_util.py and embedding.py)")


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The original's crop box (left, top, right, bottom): the short side, floor offsets."""
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    return left, top, left + side, top + side


def cmmd_input(image: np.ndarray) -> np.ndarray:
    """One uint8 image -> the original's CLIP input, float32 3x336x336 (normalised, channels first)."""
    im = Image.fromarray(pp.to_rgb_uint8(image))
    im = im.crop(center_crop_box(*im.size)).resize((SIZE, SIZE), resample=Image.BICUBIC)
    x = np.asarray(im).astype(np.float32) / 255.0
    x = (x - CLIP_MEAN) * CLIP_INV_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _rbf_mean(a: np.ndarray, b: np.ndarray, gamma: float) -> float:
    """mean over all pairs of exp(-gamma (-2 a.b + |a|^2 + |b|^2)), in row blocks of ``a``."""
    a_sq = np.einsum("ij,ij->i", a, a)
    b_sq = np.einsum("ij,ij->i", b, b)
    total = 0.0
    for start in range(0, len(a), BLOCK):
        rows = slice(start, start + BLOCK)
        total += np.exp(-gamma * (-2 * (a[rows] @ b.T) + a_sq[rows, None] + b_sq[None, :])).sum()
    return total / (len(a) * len(b))


def cmmd_distance(x: np.ndarray, y: np.ndarray, sigma: float = SIGMA, scale: float = SCALE) -> float:
    """distance.py's ``mmd(x, y)`` in float64: scale * (mean k_xx + mean k_yy - 2 mean k_xy), RBF kernel."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
        raise BenchkitError(f"CMMD needs two non-empty embedding sets of one dimension, got {x.shape} and {y.shape}")
    gamma = 1 / (2 * sigma**2)
    return float(scale * (_rbf_mean(x, x, gamma) + _rbf_mean(y, y, gamma) - 2 * _rbf_mean(x, y, gamma)))


def load_clip_336(path, device: torch.device):
    """transformers CLIPModel from a local openai/clip-vit-large-patch14-336 folder; every vision weight
    must come from the file, and its vision tower must take 336-px images."""
    from transformers import CLIPModel

    try:
        config = json.loads((path / "config.json").read_text())
        vision = config.get("vision_config") or {}
    except (OSError, ValueError, AttributeError):
        config, vision = {}, {}
    if config.get("model_type") != "clip" or vision.get("image_size") != SIZE:
        raise BenchkitError(f"weights '{WEIGHT}' at {path}: config.json is not a 336-px CLIP's (model_type "
                            f"{config.get('model_type')!r}, vision image_size {vision.get('image_size')!r}); give the "
                            "openai/clip-vit-large-patch14-336 folder (see `benchkit weights`)")
    try:
        model, info = CLIPModel.from_pretrained(str(path), output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise BenchkitError(f"weights '{WEIGHT}' at {path} do not load as a transformers CLIPModel "
                            f"({str(exc).splitlines()[0][:200]}); check the folder (see `benchkit weights`)") from None
    bad = [k for k in (*info.get("missing_keys", ()), *info.get("mismatched_keys", ()))
           if str(k).startswith(("vision_model", "visual_projection"))]
    if bad:
        raise BenchkitError(f"weights '{WEIGHT}' at {path} lack {len(bad)} CLIP vision tensors (e.g. {min(map(str, bad))}); "
                            "give the complete openai/clip-vit-large-patch14-336 folder")
    return model.float().eval().to(device)


@register_extractor(EXTRACTOR)
class CLIP336Extractor:
    """L2-normalised CLIP ViT-L/14-336 image embeddings of :func:`cmmd_input`'s prepared images."""

    name = EXTRACTOR

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.weight = resolve(WEIGHT)
        self.model = load_clip_336(self.weight.path, device)
        self.dim = int(self.model.config.projection_dim)
        self.device = device
        self.weights_sha256 = self.weight.sha256

    @torch.no_grad()
    def __call__(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """float32 3x336x336 arrays -> float64 N x dim unit vectors (normalised in float32, as the original)."""
        out = []
        step = 1 if self.device.type == "cpu" else 32  # per image on CPU: features independent of batching
        for start in range(0, len(inputs), step):
            x = torch.from_numpy(np.stack(inputs[start : start + step])).to(self.device)
            emb = hf_features(self.model.get_image_features(pixel_values=x)).float()
            out.append((emb / emb.norm(dim=-1, keepdim=True)).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim))


def clip_336(device: torch.device) -> CLIP336Extractor:
    """CMMD's extractor on ``device``, through the registry and the model cache."""
    w = resolve(WEIGHT)
    return cached_model(("extractor", EXTRACTOR, str(w.hashed_file), w.sha256, str(device)),
                        lambda: get_extractor(EXTRACTOR)(device))


@register_metric()
class CMMD(ReferenceFeatureMetric):
    """CMMD of the run's images against --reference's, on CLIP ViT-L/14-336 embeddings."""

    name = "cmmd"
    protocol = 'google-research CMMD: crop, PIL bicubic 336, CLIP ViT-L/14-336 embeddings, RBF MMD sigma 10, x1000'
    description = "CMMD (google-research): RBF-kernel MMD (sigma 10, x1000) of CLIP ViT-L/14-336 embeddings against --reference"
    weights = (WEIGHT,)
    scale = "MMD^2 x 1000 (the paper's units), 0 up"
    higher_is_better = False
    requires_reference = True


    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)  # declares the per-item embeddings: the MMD needs them all
        self.extractor = clip_336(ctx.device)

    def view(self) -> FeatureView:
        return FeatureView(self.extractor.name, self.extractor.weights_sha256, PREPROCESSING, self.extractor.dim)

    def preprocessors(self):
        return {PREPROCESSING: cmmd_input}

    def extract(self, prepared) -> np.ndarray:
        return self.extractor(prepared)

    def prepare_one(self, image: np.ndarray) -> np.ndarray:
        return cmmd_input(image)

    def compute(self) -> list[MetricValue]:
        gen = self.run_features()
        real, about = self.reference()
        variant = {
            "protocol": "google-research cmmd", "preprocessing": STEPS, "extractor": self.extractor.name,
            "extractor_sha256": self.extractor.weights_sha256, "weights_sha256": {WEIGHT: self.extractor.weights_sha256},
            "features": f"CLIP ViT-L/14-336 image embeddings ({self.extractor.dim}-d), L2-normalised in float32",
            "kernel": f"Gaussian RBF, sigma {SIGMA:g}", "estimator": "biased (V-statistic, diagonals included), as distance.py",
            "scale": f"MMD^2 x {SCALE:g}", "precision": "float64 (the original computes in float32)",
            "images": "all on both sides (the original drops the remainder of batches of 32)",
            **about, "reference_n": len(real), "libraries": library_versions("transformers", "torch", "numpy", "pillow"),
        }
        return [MetricValue(self.name, cmmd_distance(real, gen), "cmmd", False, len(gen), variant)]
