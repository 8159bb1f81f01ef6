"""Z-Image (Tongyi-MAI): a single-stream DiT over FLUX-VAE latents in 2x2 patches, conditioned on a
Qwen3 decoder's hidden states (the prompt wrapped in its chat template).

Z-Image-Turbo is its few-step distilled model: 9 steps, no guidance (its card says this makes 8
transformer forwards; diffusers 0.42.1's pipeline calls the transformer once per step, 9 times, as
benchkit's measured NFE shows). The transformer takes one latent per row as a list and sees time as
1 - sigma; the pipeline keeps the latents unpacked (B, 16, H/8, W/8), so benchkit's per-item noise
is passed as is.
"""

from benchkit.models.families import register_family
from benchkit.models.families.base import Family

ZIMAGE = register_family()(Family(
    name="zimage",
    description="Z-Image: single-stream DiT over 2x2 latent patches, Qwen3 text encoder, flow matching",
    pipeline_class="ZImagePipeline",
    denoiser="transformer",
    conditioning="qwen3",
    latent_patch=2,
    default_size=(1024, 1024),  # the pipeline's own default (height = height or 1024)
    lora_targets=("to_q", "to_k", "to_v", "to_out.0", "w1", "w2", "w3"),
))
