"""Feature extractors: a registry of image -> feature-vector networks for FID-style metrics.

An extractor takes uint8 images and returns float features; it names itself and the sha256
of its weights, which go into the metric's variant and the reference-statistics cache key.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
import torch

from benchkit.core.registry import Registry


class FeatureExtractor(Protocol):
    name: str
    weights_sha256: str
    dim: int

    def __call__(self, images: list[np.ndarray]) -> np.ndarray: ...


def to_grayscale(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:  # ITU-R 601 luma, as PIL's convert("L")
        return np.rint(image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
    return image


EXTRACTORS: Registry[Callable[[torch.device], FeatureExtractor]] = Registry("feature extractor")
register_extractor = EXTRACTORS.register


def get_extractor(name: str) -> Callable[[torch.device], FeatureExtractor]:
    """The extractor class (or factory) registered as ``name``; call it with a device."""
    return EXTRACTORS.get_or_fail(name)
