"""HunyuanVideo text-to-video (and image-to-video): a dual- then single-stream DiT over (1, 2, 2) patches of a causal 3-D VAE
(4x time, 8x space), conditioned on a Llama decoder's hidden states of the prompt in a system
template plus a pooled CLIP vector.

It is guidance-distilled: ``guidance_scale`` (6 by default) enters the transformer as an input, one
call per step; real CFG is the pipeline's ``true_cfg_scale`` with a negative prompt. Latents are
channels first, (B, C, F, H, W); the pipeline's own defaults (720 x 1280, 129 frames) are the family's.
"""

import dataclasses

from benchkit.models.families import register_family
from benchkit.models.families.base import Family

HUNYUAN_VIDEO = register_family()(Family(
    name="hunyuanvideo",
    description="HunyuanVideo text-to-video: guidance-distilled video DiT, Llama + pooled CLIP, causal 3-D VAE",
    pipeline_class="HunyuanVideoPipeline",
    denoiser="transformer",
    media="video",
    conditioning="llama-clip-pooled",
    guidance="embedded",
    video_latents="cfhw",
    default_size=(720, 1280),
    default_frames=129,
    lora_targets=("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
                  "proj_mlp", "proj_out", "ff.net.0.proj", "ff.net.2"),
))

def _image_frames(pipe) -> int:
    """The decoded frames of the image's own latent frame, which the 33-channel model's pipeline drops."""
    return pipe.vae_scale_factor_temporal if pipe.transformer.config.image_condition_type == "latent_concat" else 0


# everything of HunyuanVideo T2V, plus the input image. The transformer's config says how it is used:
# "token_replace" (HunyuanVideo-I2V: 16 channels, the image's latents replace the first frame's tokens,
# guidance embedded) or "latent_concat" (HunyuanVideo-I2V-33ch: noise, image latents and a mask, 33 channels).
# Its LLaVA text encoder reads the image too; true CFG's negative is the prompt with a black image.
HUNYUAN_VIDEO_I2V = register_family()(dataclasses.replace(
    HUNYUAN_VIDEO,
    name="hunyuanvideo-i2v",
    description="HunyuanVideo image-to-video: the prompt's image as the first frame and in LLaVA's prompt",
    pipeline_class="HunyuanVideoImageToVideoPipeline",
    conditioning="llava-clip-pooled",
    image_input=True,
    needed_components=("image_processor",),
    one_image_per_call=True,  # its pipeline's image argument is one image
    pipeline_decodes=True,  # "latent_concat" returns latents without the image's frame and trims its decoded frames
    trimmed_frames=_image_frames,
))
