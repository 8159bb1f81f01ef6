"""Stable Diffusion XL: a latent UNet with added (pooled text, size) conditions and two CLIP encoders."""

from benchkit.models.families import register_family
from benchkit.models.families.base import UNET_LORA_TARGETS, Family

SDXL = register_family()(Family(
    name="sdxl",
    description="Stable Diffusion XL: latent UNet, two CLIP text encoders (pooled + time ids), VAE",
    pipeline_class="StableDiffusionXLPipeline",
    conditioning="clip-pooled",
    lora_targets=UNET_LORA_TARGETS,
    layout=lambda index: "unet" in index and "vae" in index and "text_encoder_2" in index,
))
