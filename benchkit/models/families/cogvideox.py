"""CogVideoX: a text-to-video 3-D transformer with a T5 encoder and a causal video VAE."""

from benchkit.models.families import register_family
from benchkit.models.families.base import Family

COGVIDEOX = register_family()(Family(
    name="cogvideox",
    description="CogVideoX text-to-video: 3-D transformer, T5 text encoder, causal video VAE",
    pipeline_class="CogVideoXPipeline",
    denoiser="transformer",
    media="video",
    conditioning="t5",
))
