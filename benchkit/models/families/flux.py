"""FLUX.1 (schnell, dev) and its distilled LoRAs: a rectified-flow MMDiT over 2x2-packed latents.

Conditioned on T5 token embeddings plus a pooled CLIP vector; FLUX.1-dev is guidance-distilled, so
``guidance_scale`` enters the transformer as an input (one call per step) and real CFG is the
pipeline's ``true_cfg_scale`` with a negative prompt. FLUX.1-schnell is timestep-distilled (4 steps,
no guidance). The pipeline computes the dynamic shift (``mu``) from the image's token count.
"""

from benchkit.models.families import register_family
from benchkit.models.families.base import PATCHES_2X2, Family

FLUX = register_family()(Family(
    name="flux",
    description="FLUX.1 schnell/dev: flow-matching MMDiT over packed latents, T5 + pooled CLIP, guidance embedding",
    pipeline_class="FluxPipeline",
    denoiser="transformer",
    conditioning="t5-clip-pooled",
    guidance="embedded",
    packing=PATCHES_2X2,
    latent_patch=2,
    # the double- and single-stream blocks' attention and projections (Hyper-SD's and Turbo-Alpha's LoRAs)
    lora_targets=("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
                  "proj_mlp", "proj_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2"),
))
