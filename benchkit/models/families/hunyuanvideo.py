"""HunyuanVideo text-to-video: a dual- then single-stream DiT over (1, 2, 2) patches of a causal 3-D VAE
(4x time, 8x space), conditioned on a Llama decoder's hidden states of the prompt in a system
template plus a pooled CLIP vector.

It is guidance-distilled: ``guidance_scale`` (6 by default) enters the transformer as an input, one
call per step; real CFG is the pipeline's ``true_cfg_scale`` with a negative prompt. Latents are
channels first, (B, C, F, H, W); the pipeline's own defaults (720 x 1280, 129 frames) are the family's.
"""

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
