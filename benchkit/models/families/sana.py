"""SANA and SANA-Sprint: a linear-attention DiT over a 32x deep-compression autoencoder (DC-AE),
conditioned on a Gemma-2 decoder's hidden states.

SANA samples with classifier-free guidance (flow DPM-Solver as shipped); SANA-Sprint is its
continuous-time consistency student (1-4 steps, SCM scheduler) with the guidance scale embedded.
Both pipelines snap the requested size to an aspect-ratio bin by default; benchkit turns that
off so every image is made at exactly the recipe's size (a square 1024 px recipe is its own bin).
"""

from benchkit.models.families import register_family
from benchkit.models.families.base import Family

_COMMON = {
    "denoiser": "transformer",
    "conditioning": "gemma",
    # the linear-attention blocks' projections and the cross-attention (the released SANA LoRAs' targets)
    "lora_targets": ("to_q", "to_k", "to_v", "to_out.0", "conv_inverted", "conv_depth", "conv_point"),
    "pipeline_kwargs": {"use_resolution_binning": False},
}

SANA = register_family()(Family(
    name="sana",
    description="SANA: linear DiT over a 32x DC-AE, Gemma-2 text encoder, classifier-free guidance",
    pipeline_class="SanaPipeline",
    **_COMMON,
))

SANA_SPRINT = register_family()(Family(
    name="sana-sprint",
    description="SANA-Sprint: SANA's 1-4 step consistency student (SCM scheduler), guidance embedded",
    pipeline_class="SanaSprintPipeline",
    guidance="embedded",
    **_COMMON,
))
