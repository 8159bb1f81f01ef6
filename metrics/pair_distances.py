"""Distances between two images of the same (prompt, seed): how far a student's image is from its teacher's.

A paired comparison (`benchkit compare --paired`) measures, item by item, how far the candidate's image is from
the baseline's made from the same prompt and seed. Each distance here says which images it applies to and loads
its network only when asked; one whose weights are not on this machine is left out with the reason, not guessed.

- ``pixel-rmse``: root mean squared difference of the uint8 pixels (any images of one size).
- ``lpips-alex``: LPIPS v0.1 on AlexNet (the lpips package, backbone from a local file; metrics.diversity).
- ``dinov2-cosine``: 1 - cosine similarity of DINOv2 ViT-L/14 CLS features (dgm-eval's input; metrics.dinov2).
- ``toy-feature-l2`` (registered by the toy world): L2 distance of the toy classifier's features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from benchkit.core.registry import Registry

Distance = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], np.ndarray]  # (images a, images b) -> one per pair


@dataclass(frozen=True)
class PairDistance:
    name: str
    description: str
    unit: str
    applies: Callable[[tuple[int, ...]], bool]  # from an image's shape
    build: Callable[[torch.device], Distance]  # raises BenchkitError when its weights are missing


# Every paired distance by name: these below, the toy world's through its plugin.
PAIR_DISTANCES: Registry[PairDistance] = Registry("paired distance", "see `benchkit compare --help`")


def register_pair_distance(distance: PairDistance) -> PairDistance:
    return PAIR_DISTANCES.register()(distance)


def _pixel_rmse(device: torch.device) -> Distance:
    def distance(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([float(np.sqrt(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))) for x, y in zip(a, b)])

    return distance


def _lpips(device: torch.device) -> Distance:
    from metrics.diversity import load_lpips, to_lpips_input

    model, _ = load_lpips("alex", device)

    @torch.no_grad()
    def distance(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([float(model(to_lpips_input(x).to(device), to_lpips_input(y).to(device)).item())
                         for x, y in zip(a, b)])

    return distance


def _dinov2_cosine(device: torch.device) -> Distance:
    from metrics.dinov2 import dgm_eval_input, dinov2

    extractor = dinov2(device)

    def distance(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
        fa = extractor([dgm_eval_input(x) for x in a])
        fb = extractor([dgm_eval_input(y) for y in b])
        cos = (fa * fb).sum(1) / (np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1) + 1e-12)
        return 1.0 - cos

    return distance


def _rgb(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[2] == 3 and min(shape[:2]) >= 32


register_pair_distance(PairDistance("pixel-rmse", "RMS difference of the 0-255 pixels", "pixels",
                                    lambda shape: True, _pixel_rmse))
register_pair_distance(PairDistance("lpips-alex", "LPIPS v0.1, AlexNet backbone", "lpips", _rgb, _lpips))
register_pair_distance(PairDistance("dinov2-cosine", "1 - cosine of DINOv2 ViT-L/14 CLS features", "cosine distance",
                                    _rgb, _dinov2_cosine))


def usable_distances(shape: tuple[int, ...], device: torch.device,
                     names: list[str] | None = None) -> tuple[dict[str, Distance], dict[str, str]]:
    """The distances that apply to images of ``shape`` and can load here, and why each other one was left out.
    Named ones (``names``) must exist; one that does not apply or cannot load is left out with its reason."""
    for name in names or []:
        PAIR_DISTANCES.get_or_fail(name)
    chosen, left_out = {}, {}
    for name, d in PAIR_DISTANCES.items():
        if names is not None and name not in names:
            continue
        if not d.applies(shape):
            left_out[name] = f"does not apply to {'x'.join(map(str, shape))} images"
            continue
        try:
            chosen[name] = d.build(device)
        except BenchkitError as exc:  # its weights are not here: said, not guessed
            left_out[name] = str(exc)
    return chosen, left_out
