"""Stable Diffusion 1.x / 2.x: a latent UNet, one CLIP text encoder, a VAE."""

from benchkit.models.families import register_family
from benchkit.models.families.base import UNET_LORA_TARGETS, Family

SD15 = register_family()(Family(
    name="sd15",
    description="Stable Diffusion 1.x/2.x: latent UNet, CLIP text encoder, VAE",
    pipeline_class="StableDiffusionPipeline",
    lora_targets=UNET_LORA_TARGETS,
    layout=lambda index: "unet" in index and "vae" in index and "text_encoder_2" not in index,
))
