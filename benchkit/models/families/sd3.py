"""Stable Diffusion 3: a rectified-flow MMDiT transformer, two CLIP encoders and an optional T5."""

from benchkit.models.families import register_family
from benchkit.models.families.base import Family

SD3 = register_family()(Family(
    name="sd3",
    description="Stable Diffusion 3: flow-matching MMDiT transformer, CLIP x2 + optional T5, VAE",
    pipeline_class="StableDiffusion3Pipeline",
    denoiser="transformer",
    conditioning="clip-t5",
    lora_targets=("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"),
))
