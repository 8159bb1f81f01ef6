"""LTX-Video: a video DiT over single voxels of a 32x spatial, 8x temporal, 128-channel VAE, conditioned on T5.

Its pipeline takes latents as a token sequence (one token per latent voxel, patch 1 x 1 x 1), with
per-channel statistics kept as buffers on the VAE. From 0.9.1 on the VAE's decoder is timestep
conditioned: the pipeline mixes a little per-item noise into the latents and tells the decoder the
``decode_timestep`` (the cards use 0.03-0.05). Rotary positions depend on the frame rate, so the
recipe's fps is passed as the pipeline's ``frame_rate``. Flow matching with a resolution-dependent
shift and classifier-free guidance (3 by default; the distilled models run without it).
"""

import dataclasses
from importlib import import_module

from benchkit.models.families import register_family
from benchkit.models.families.base import Family, LatentPacking


def _pack(pipe, latents):
    return pipe._pack_latents(latents, pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size)


def _unpack(pipe, latents, shape):
    p, pt = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
    return pipe._unpack_latents(latents, shape[2] // pt, shape[3] // p, shape[4] // p, p, pt)


LTX_VIDEO = register_family()(Family(
    name="ltx",
    description="LTX-Video: video DiT over a 32x-compressed VAE's voxels, T5 text encoder, timestep-conditioned decoder",
    pipeline_class="LTXPipeline",
    denoiser="transformer",
    media="video",
    conditioning="t5",
    packing=LatentPacking(_pack, _unpack),
    default_size=(512, 704),  # LTXPipeline's defaults
    default_frames=161,
    lora_targets=("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"),
))

# LTX-Video 0.9.5+ as diffusers ships it (0.9.7/0.9.8 distilled): the condition pipeline, here without
# conditions (text to video). It takes explicit timesteps (the distilled lists), draws its noise from the
# generators (given latents would be re-noised as a video to continue), returns unpacked latents and decodes
# them itself; its scheduler has no dynamic shift (the pipeline passes no mu).
# Named, not imported (as the command family's implementation is): generators read loaded models, and
# loading reads this family table, so an import here would be a cycle.
_TWO_PASS = "benchkit.models.two_pass_generation"


def _generator(model, recipe):
    """One pass, or two around the latent upsampler when the recipe has a second_pass (the distilled models)."""
    return import_module(_TWO_PASS).condition_generator(model, recipe)


LTX_VIDEO_CONDITION = register_family()(dataclasses.replace(
    LTX_VIDEO,
    name="ltx-condition",
    description="LTX-Video 0.9.5+ (condition pipeline, as the 0.9.7/0.9.8 distilled models ship): text to video",
    pipeline_class="LTXConditionPipeline",
    packing=None,
    draws_own_noise=True,
    pipeline_decodes=True,
    generator=_generator,
))
