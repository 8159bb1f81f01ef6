"""CogVideoX: a text-to-video 3-D transformer with a T5 encoder and a causal video VAE, and its
image-to-video variant, whose transformer takes the first frame's VAE latents beside the noise."""

import dataclasses

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

COGVIDEOX_I2V = register_family()(dataclasses.replace(
    COGVIDEOX,
    name="cogvideox-i2v",
    description="CogVideoX image-to-video: the first frame (the prompt's image) encoded by the VAE beside the noise",
    pipeline_class="CogVideoXImageToVideoPipeline",
    image_input=True,
))
