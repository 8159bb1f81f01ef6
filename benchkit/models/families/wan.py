"""Wan 2.1 / 2.2 text-to-video (and 2.1 image-to-video): a DiT over (1, 2, 2) patches of Wan's causal 3-D VAE latents (4x in
time, 8x in space, per-channel statistics), conditioned on UMT5; flow matching sampled with UniPC
on flow sigmas (shift 3 at 480p, 5 at 720p), classifier-free guidance with a negative prompt.

The pipeline lays latents out channels first, (B, C, F, H, W), unlike CogVideoX; with no sample
size in the transformer's config, its own defaults (480 x 832, 81 frames) are the family's.
"""

import dataclasses

from benchkit.models.families import register_family
from benchkit.models.families.base import Family

WAN = register_family()(Family(
    name="wan",
    description="Wan 2.1/2.2 text-to-video: video DiT, UMT5 text encoder, causal 3-D VAE, flow matching",
    pipeline_class="WanPipeline",
    denoiser="transformer",
    media="video",
    conditioning="umt5",
    video_latents="cfhw",
    default_size=(480, 832),
    default_frames=81,
    vae_float32=True,  # the cards load AutoencoderKLWan in float32 ("for better decoding quality")
    # the self- and cross-attention projections and the feed-forward (lightx2v's step-distill LoRAs)
    lora_targets=("to_q", "to_k", "to_v", "to_out.0", "add_k_proj", "add_v_proj", "ffn.net.0.proj", "ffn.net.2"),
))

# everything of Wan T2V, plus the input image: its VAE latents and CLIP vision embedding condition the clip
WAN_I2V = register_family()(dataclasses.replace(
    WAN,
    name="wan-i2v",
    description="Wan 2.1 image-to-video: the prompt's image as the first frame (VAE latents + CLIP vision embeddings)",
    pipeline_class="WanImageToVideoPipeline",
    image_input=True,
    needed_components=("image_encoder", "image_processor"),
    one_image_per_call=True,  # its pipeline's image argument is one image
))
