"""The toy world: a pixel-space 8x8 digits UNet with one text encoder, sampled by benchkit's own loop.

Its metrics (toy FID, alignment, diversity), their feature extractor and its distillation
reward register through the same points as everyone else's, from :mod:`benchkit.toy.metrics`.
"""

from __future__ import annotations

from pathlib import Path

import benchkit.toy.metrics  # noqa: F401,E402  (registers the toy metrics, extractor and reward)
from benchkit.models.families import register_family
from benchkit.models.families.base import UNET_LORA_TARGETS, Family


def _teacher_dir() -> Path:
    from benchkit.toy import TEACHER_DIR

    return TEACHER_DIR


def _layout(index) -> bool:
    """A pixel-space UNet and one text encoder, no VAE."""
    return "unet" in index and "text_encoder" in index and "text_encoder_2" not in index and "vae" not in index


TOY = register_family()(Family(
    name="toy",
    description="benchkit's embedded toy world: 8x8 grey digits from a pixel-space UNet (builtin:toy-digits)",
    pipeline_class=None,
    lora_targets=UNET_LORA_TARGETS,
    default_metrics=("toy-fid", "toy-alignment", "toy-diversity", "latency"),
    layout=_layout,
    builtins={"builtin:toy-digits": _teacher_dir},
    signature_size=(8, 8),
    pairs_batch_size=100,
))
