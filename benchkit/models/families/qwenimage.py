"""Qwen-Image: a 20B MMDiT over 2x2-packed latents of a video-style VAE (one frame), conditioned on
Qwen2.5-VL's last hidden states of the prompt wrapped in a system template.

Its pipeline's classifier-free guidance is ``true_cfg_scale`` with a negative prompt (a second
transformer call per step); ``guidance_scale`` only reaches a guidance-distilled transformer, which
the released one is not. Qwen-Image-Lightning's LoRAs run 4 or 8 steps with true CFG off and their
own scheduler config (shift 3 as a fixed dynamic shift).
"""

from benchkit.models.families import register_family
from benchkit.models.families.base import PATCHES_2X2, Family

QWEN_IMAGE = register_family()(Family(
    name="qwenimage",
    description="Qwen-Image: MMDiT over packed latents of a one-frame video VAE, Qwen2.5-VL text encoder, true CFG",
    pipeline_class="QwenImagePipeline",
    denoiser="transformer",
    conditioning="qwen2.5-vl",
    guidance="embedded",
    packing=PATCHES_2X2,
    latent_patch=2,
    lora_targets=("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
                  "img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2"),
))
