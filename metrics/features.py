"""Feature extractors: a registry of image -> feature-vector networks for FID-style metrics.

An extractor takes uint8 images and returns float features; it names itself and the sha256
of its weights, which go into the metric's variant and the reference-statistics cache key.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Protocol

import numpy as np
import torch


class FeatureExtractor(Protocol):
    name: str
    weights_sha256: str
    dim: int

    def __call__(self, images: list[np.ndarray]) -> np.ndarray: ...


def to_grayscale(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:  # ITU-R 601 luma, as PIL's convert("L")
        return np.rint(image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
    return image


class ToyDigitsExtractor:
    """Penultimate features of benchkit's toy digits classifier (the toy world's Inception)."""

    name = "toy-digits-classifier"

    def __init__(self, device: torch.device = torch.device("cpu")):
        from benchkit.toy import CLASSIFIER_DIR
        from benchkit.toy.classifier import FEATURE_DIM, load_classifier

        self.model = load_classifier(CLASSIFIER_DIR).to(device)
        self.device = device
        self.dim = FEATURE_DIM
        self.weights_sha256 = hashlib.sha256((CLASSIFIER_DIR / "model.safetensors").read_bytes()).hexdigest()

    def _input(self, images: list[np.ndarray]) -> torch.Tensor:
        from benchkit.errors import BenchkitError
        from benchkit.toy.classifier import images_to_input

        wrong = next((im.shape for im in images if im.shape[:2] != (8, 8)), None)
        if wrong is not None:  # resizing a real image to 8x8 grey would score it as a digit, silently
            raise BenchkitError(f"the toy digits classifier reads only 8x8 digits, got an image of {wrong[0]}x{wrong[1]}; "
                                "toy metrics are for the toy world")
        return images_to_input(np.stack([to_grayscale(im) for im in images])).to(self.device)

    def _per_image(self, fn, images: list[np.ndarray]) -> torch.Tensor:
        # One image per forward: CPU conv/GEMM kernels round differently for different batch
        # sizes, and per-image calls make features bit-identical however runs are batched or
        # sharded. The toy network is small enough (0.2 s for 1,797 digits) to afford it.
        x = self._input(images)
        return torch.cat([fn(x[i : i + 1]) for i in range(len(x))]).double().cpu()

    @torch.no_grad()
    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        return self._per_image(self.model.features, images).numpy()

    @torch.no_grad()
    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        return torch.softmax(self._per_image(self.model, images), dim=1).numpy()


EXTRACTORS: dict[str, Callable[[torch.device], FeatureExtractor]] = {
    ToyDigitsExtractor.name: ToyDigitsExtractor,
}
