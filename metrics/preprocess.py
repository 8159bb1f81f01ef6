"""Image preprocessing of the published protocols, step by step and named.

Each function takes and returns what the reference code passes between its steps (uint8
HxWx3 arrays, PIL images or float arrays), so a protocol is the exact composition the paper's
script runs, and tests can pin each step on small hand-checked images:

- ``center_crop_long_edge``: BigGAN's CenterCropLongEdge, i.e. torchvision's ``center_crop``
  to the short side (offsets rounded as torchvision rounds them), used by GigaGAN and DMD2;
- ``lanczos_resize``: PIL LANCZOS on the uint8 image (DMD2's ``eval_res``);
- ``clean_resize_299``: clean-fid's own clean-mode resizer (PIL bicubic per channel in float,
  no quantisation), taken from clean-fid rather than re-implemented;
- ``center_crop_299``: DMD2's patch-FID crop (no resize);
- ``hps_pad_square``: HPSv2's ``ResizeMaxSize``: longest side to 224, bicubic on the float
  tensor, zero padding to a square (not a crop).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 uint8 -> HxWx3 (as PIL's convert('RGB'), which drops alpha)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def center_crop_long_edge(image: Image.Image) -> Image.Image:
    import torchvision.transforms.functional as TF

    return TF.center_crop(image, min(image.size))


def lanczos_resize(image: Image.Image, size: int) -> Image.Image:
    return image.resize((size, size), Image.LANCZOS)


def center_crop_299(image: Image.Image) -> Image.Image:
    """DMD2 patch FID: a centre 299x299 crop when both sides reach 299; smaller images pass unchanged."""
    import torchvision.transforms.functional as TF

    if image.size[0] >= 299 and image.size[1] >= 299:
        return TF.center_crop(image, 299)
    return image


def clean_resize_299(image: np.ndarray) -> np.ndarray:
    """clean-fid's clean-mode resizer: uint8 HxWx3 -> float32 299x299x3 in [0, 255]."""
    return _clean_resizer()(image)


_RESIZER = None


def _clean_resizer():
    global _RESIZER
    if _RESIZER is None:
        from cleanfid.resize import build_resizer

        _RESIZER = build_resizer("clean")
    return _RESIZER


def _crop_lanczos(image: np.ndarray, size: int) -> np.ndarray:
    return np.array(lanczos_resize(center_crop_long_edge(Image.fromarray(image)), size))


def crop_lanczos(size: int):
    """GigaGAN/DMD2: crop to the short side, then LANCZOS to ``size`` (uint8 in, uint8 out).

    A ``functools.partial`` of a module function, so it pickles into DataLoader workers."""
    return functools.partial(_crop_lanczos, size=size)


def patch_299(image: np.ndarray) -> np.ndarray:
    return np.array(center_crop_299(Image.fromarray(image)))


def identity(image: np.ndarray) -> np.ndarray:
    return image


def hps_pad_square(image: Image.Image, size: int, mean, std) -> torch.Tensor:
    """HPSv2's evaluation transform (``image_transform(..., resize_longest_max=True)``).

    Written out because open_clip_torch 3.x no longer has ``ResizeMaxSize`` and the hpsv2 wheel
    cannot be installed alongside (it pins old pytest and protobuf); the parity test runs the
    hpsv2 package's own transform on the same images. ``F.resize`` on a float tensor uses
    torchvision's default antialias (True since 0.17), exactly as the hpsv2 code does when run
    on the installed torchvision. One deliberate difference: hpsv2 skips the padding along with
    the resize when the long side is already ``size``, so a non-square image of that size
    reaches the model unpadded and fails there; it is padded here.
    """
    import torchvision.transforms.functional as TF

    x = TF.to_tensor(image.convert("RGB"))
    height, width = x.shape[1:]
    scale = size / float(max(height, width))
    new_size = [height, width]
    if scale != 1.0:
        new_size = [round(dim * scale) for dim in (height, width)]
        x = TF.resize(x, new_size, TF.InterpolationMode.BICUBIC)
    pad_h, pad_w = size - new_size[0], size - new_size[1]
    if pad_h or pad_w:
        x = TF.pad(x, padding=[pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
    return TF.normalize(x, mean, std)
