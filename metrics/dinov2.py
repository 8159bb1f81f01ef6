"""FD-DINOv2, KD-DINOv2 and PRDC on DINOv2 features, under dgm-eval's protocol (Stein et al., "Exposing
flaws of generative model evaluation metrics and their unfair treatment of diffusion models", NeurIPS 2023;
github.com/layer6ai-labs/dgm-eval, commit 74c79f7).

The image path, as dgm-eval's default DINOv2 encoder runs it (``--clean_resize`` off):

- the file is read with PIL and ``convert('RGB')`` (dgm_eval/dataloaders.py:44);
- ``torchvision.transforms.Resize((224, 224), BICUBIC)`` on the PIL image, i.e. PIL's own bicubic
  resize of the uint8 image to 224x224, aspect ratio not kept, no crop (dgm_eval/models/dinov2.py:54-57);
- ``ToTensor`` (x / 255 in float32) and ``Normalize`` with the ImageNet mean and std (dinov2.py:48-49, 59);
- the network is torch.hub's ``facebookresearch/dinov2`` ``dinov2_vitl14`` (dinov2.py:33-43, ViT-L/14 the
  default arch); its ``forward`` returns the final-LayerNorm CLS token (``head`` is the identity:
  dinov2/models/vision_transformer.py:166-167, 264-266, 325-330 in facebookresearch/dinov2 b8931f7), which
  dgm-eval keeps as is (dgm_eval/representations.py:49-64, ``normalized=False``).

That network is loaded here from the Hugging Face layout of the same weights (facebook/dinov2-large) with
transformers' ``Dinov2Model``, whose ``pooler_output`` is that CLS token. One thing differs and is put
back: at 224 px the 37x37 position embeddings of the 518-px checkpoint are resampled to 16x16. The hub
model does it with ``F.interpolate(scale_factor=((16 + 0.1) / 37, ...), mode="bicubic", antialias=False)``
(vision_transformer.py:180-212 with hub/backbones.py:27-28: ``interpolate_offset=0.1``); transformers 5
passes ``size=(16, 16)`` instead, which samples the grid at other points and moves every feature. The
hub's call is installed on the loaded model (:func:`hub_position_encoding`).

Values, as dgm-eval computes them from the two feature sets (dgm_eval/__main__.py:154-170):

- ``fd-dinov2``: the Frechet distance (dgm_eval/metrics/fd.py:66-76; here :mod:`metrics.frechet`'s
  eigenvalue form of the same number);
- ``kd-dinov2``: the mean over 100 subsets of min(1000, n_real, n_gen) of the unbiased MMD^2 with the
  polynomial kernel (x.y / d + 1)^3 (dgm_eval/metrics/mmd.py:5-55: sklearn's ``polynomial_kernel`` with
  gamma None = 1/d, coef0 1, degree 3), the real subset drawn first: the estimator, kernel and draw
  order of clean-fid's KID, so :func:`metrics.fid.kernel_distance` computes it. dgm-eval draws from
  numpy's global generator; a seeded one here, so a rerun gives the same number;
- ``prdc-dinov2``: precision, recall, density, coverage (k = 5) of :mod:`metrics.prdc` on the same
  features (dgm-eval first subsamples each side to 10,000; all images here).

All three read one feature view (one DINOv2 pass per image, stored by content) and need ``--reference``
(a run or an image folder): there is no standard cached DINOv2 reference.
"""

from __future__ import annotations

import json
import math
import types
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from benchkit.core.errors import BenchkitError
from metrics import preprocess as pp
from metrics import register_metric
from metrics.base import FeatureMoments, MetricContext, MetricValue, ReferenceFeatureMetric
from metrics.feature_store import FeatureView
from metrics.features import get_extractor, register_extractor
from metrics.fid import KID_SEED, KID_SUBSET_SIZE, KID_SUBSETS, kernel_distance
from metrics.frechet import frechet_distance
from metrics.uncertainty import frechet_interval
from metrics.model_cache import cached_model
from metrics.prdc import PRDCMetric
from metrics.weights import library_versions, resolve

WEIGHT = "dinov2-large"
EXTRACTOR = "dinov2-vitl14"
PROTOCOL = "dgm-eval"
SIZE = 224
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # dgm_eval/models/dinov2.py:48-49
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
INTERPOLATE_OFFSET = 0.1  # dinov2 hub/backbones.py:28
PREPROCESSING = "dinov2:dgm-eval:pil-bicubic-224x224:to-tensor:imagenet-normalize"
STEPS = ("RGB; PIL bicubic to 224x224 (no crop, aspect not kept); /255 in float32; (x - ImageNet mean) / std "
         "(dgm-eval's DINOv2 transform, clean_resize off)")


def dgm_eval_input(image: np.ndarray) -> np.ndarray:
    """One uint8 image -> dgm-eval's DINOv2 input, float32 3x224x224: torchvision's Resize on a PIL image
    is PIL's ``resize(BICUBIC)``; ToTensor divides by 255 and Normalize subtracts and divides, all in
    float32, so the same steps in numpy give the same bits."""
    rgb = Image.fromarray(pp.to_rgb_uint8(image))
    x = np.asarray(rgb.resize((SIZE, SIZE), Image.BICUBIC)).astype(np.float32) / np.float32(255)
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def hub_position_encoding(self, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``DinoVisionTransformer.interpolate_pos_encoding`` as torch.hub's DINOv2 runs it (offset 0.1, a scale
    factor, no antialias: dinov2/models/vision_transformer.py:180-212), bound to a transformers
    ``Dinov2Embeddings`` in place of its own (which resamples to an exact size)."""
    pos = self.position_embeddings
    n_grid = pos.shape[1] - 1
    if embeddings.shape[1] - 1 == n_grid and height == width:
        return pos
    dtype = embeddings.dtype
    pos = pos.float()
    side = int(math.sqrt(n_grid))
    if side * side != n_grid:
        raise BenchkitError(f"DINOv2 position embeddings of {n_grid} patches are not a square grid")
    rows, cols = height // self.patch_size, width // self.patch_size
    dim = pos.shape[-1]
    grid = torch.nn.functional.interpolate(
        pos[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2),
        scale_factor=((rows + INTERPOLATE_OFFSET) / side, (cols + INTERPOLATE_OFFSET) / side),
        mode="bicubic", antialias=False)
    if tuple(grid.shape[-2:]) != (rows, cols):
        raise BenchkitError(f"DINOv2 position embeddings resampled to {tuple(grid.shape[-2:])}, not {(rows, cols)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
    return torch.cat((pos[:, :1], grid), dim=1).to(dtype)


def load_dinov2(path, device: torch.device):
    """A transformers Dinov2Model from a local Hub-layout folder, with the hub's position interpolation.
    Every weight must come from the file: a folder of another model is refused, not half-initialised."""
    from transformers import Dinov2Model

    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        model_type = None
    if model_type != "dinov2":
        raise BenchkitError(f"weights '{WEIGHT}' at {path}: config.json is not a DINOv2 one (model_type {model_type!r}); "
                            "give the facebook/dinov2-large folder (see `benchkit weights`)")
    try:
        model, info = Dinov2Model.from_pretrained(str(path), output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise BenchkitError(f"weights '{WEIGHT}' at {path} do not load as a transformers Dinov2Model "
                            f"({str(exc).splitlines()[0][:200]}); check the folder (see `benchkit weights`)") from None
    bad = [*info.get("missing_keys", ()), *info.get("mismatched_keys", ())]
    if bad:
        raise BenchkitError(f"weights '{WEIGHT}' at {path} lack {len(bad)} DINOv2 tensors (e.g. {min(map(str, bad))}); "
                            "give the complete facebook/dinov2-large folder")
    model = model.float().eval().to(device)
    model.embeddings.interpolate_pos_encoding = types.MethodType(hub_position_encoding, model.embeddings)
    return model


@register_extractor(EXTRACTOR)
class DINOv2Extractor:
    """DINOv2 ViT-L/14 CLS features (the final LayerNorm's CLS token) of dgm-eval's prepared inputs."""

    name = EXTRACTOR

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.weight = resolve(WEIGHT)
        self.model = load_dinov2(self.weight.path, device)
        self.dim = int(self.model.config.hidden_size)
        self.device = device
        self.weights_sha256 = self.weight.sha256

    @torch.no_grad()
    def __call__(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """float32 3x224x224 arrays (:func:`dgm_eval_input`) -> float64 N x dim."""
        out = []
        # One image per forward on CPU (as the Inception extractor): kernels round differently by
        # batch size, and the stored features must not depend on how a run was batched.
        step = 1 if self.device.type == "cpu" else 32
        for start in range(0, len(inputs), step):
            x = torch.from_numpy(np.stack(inputs[start : start + step])).to(self.device)
            out.append(self.model(pixel_values=x).pooler_output.double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim))


def dinov2(device: torch.device) -> DINOv2Extractor:
    """The DINOv2 extractor on ``device``, through the registry and the model cache (one load per process)."""
    w = resolve(WEIGHT)
    return cached_model(("extractor", EXTRACTOR, str(w.hashed_file), w.sha256, str(device)),
                        lambda: get_extractor(EXTRACTOR)(device))



class DINOv2View:
    """The one feature view FD-DINOv2, KD-DINOv2 and PRDC-DINOv2 share: dgm-eval's input, DINOv2's CLS token."""

    extractor: DINOv2Extractor

    def view(self) -> FeatureView:
        return FeatureView(self.extractor.name, self.extractor.weights_sha256, PREPROCESSING, self.extractor.dim)

    def preprocessors(self):
        return {PREPROCESSING: dgm_eval_input}

    def prepare_one(self, image: np.ndarray) -> np.ndarray:
        return dgm_eval_input(image)

    def extract(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        return self.extractor(prepared)

    def about_features(self) -> dict[str, Any]:
        return {"protocol": PROTOCOL, "preprocessing": STEPS, "extractor": self.extractor.name,
                "extractor_sha256": self.extractor.weights_sha256, "weights_sha256": {WEIGHT: self.extractor.weights_sha256},
                "features": f"DINOv2 ViT-L/14 final-LayerNorm CLS token ({self.extractor.dim}-d), float32; position "
                            "embeddings resampled as torch.hub's dinov2 (bicubic, scale factor (16+0.1)/37, no antialias)",
                "libraries": library_versions("transformers", "torch", "numpy", "scipy", "pillow")}


@register_metric()
class FDDinov2(DINOv2View, ReferenceFeatureMetric):
    """Frechet distance and KD of DINOv2 features against --reference (dgm-eval's fd and kd)."""

    name = "fd-dinov2"
    protocol = PROTOCOL
    description = ("FD-DINOv2 and KD-DINOv2 (dgm-eval): Frechet distance and unbiased polynomial MMD of DINOv2 ViT-L/14 "
                   "CLS features against --reference")
    weights = (WEIGHT,)
    scale = "Frechet distance of DINOv2 features, 0 up; KD (unbiased polynomial MMD^2, x1) beside it"
    higher_is_better = False
    requires_reference = True

    @classmethod
    def value_names(cls) -> tuple[str, ...]:
        return ("fd-dinov2", "kd-dinov2")


    def __init__(self, ctx: MetricContext):
        self.extractor = dinov2(ctx.device)
        super().__init__(ctx)

    def compute(self) -> list[MetricValue]:
        gen = self.run_features()
        real, about = self.reference()
        stats = []
        for feats in (gen, real):
            moments = FeatureMoments(feats.shape[1])
            moments.update(feats)
            stats.append(moments.mean_cov())
        (mu_g, s_g), (mu_r, s_r) = stats
        n = len(gen)
        variant = {**self.about_features(), **about, "reference_n": len(real),
                   "precision": "float64 statistics; frechet via symmetric eigendecomposition"}
        kd_variant = {"subsets": KID_SUBSETS, "subset_size": min(n, len(real), KID_SUBSET_SIZE), "seed": KID_SEED,
                      "kernel": "(x.y/d + 1)^3", "estimator": "unbiased MMD^2, reference subset drawn first (dgm-eval mmd.py)"}
        fd = frechet_distance(mu_g, s_g, mu_r, s_r)
        return [
            MetricValue("fd-dinov2", fd, "fd", False, n, {**variant, "scale": "Frechet distance (squared DINOv2-feature units)"},
                        {"interval": frechet_interval(self.feats, fd, mu_r, s_r, strata=self.ctx.strata)}
                        if self.ctx.frechet_intervals else {}),
            MetricValue("kd-dinov2", kernel_distance(gen, real), "kd", False, n,
                        {**variant, "scale": "KD x1 (dgm-eval's kd_value; some papers print x1000)", "kd": kd_variant}),
        ]


@register_metric()
class PRDCDinov2(DINOv2View, PRDCMetric):
    """PRDC (k=5) on the DINOv2 view: the features FD-DINOv2 reads, so one pass serves both."""

    name = "prdc-dinov2"
    description = "precision, recall, density, coverage (k=5) of DINOv2 ViT-L/14 CLS features (dgm-eval) against --reference"
    weights = (WEIGHT,)
    protocol = PROTOCOL
    requires_reference = True

    @classmethod
    def value_name(cls, key: str) -> str:
        return f"{key}-dinov2"

    def __init__(self, ctx: MetricContext):
        self.extractor = dinov2(ctx.device)
        super().__init__(ctx)

