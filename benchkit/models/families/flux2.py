"""FLUX.2 [dev]: a rectified-flow MMDiT over 2x2-patchified latents of a 32-channel VAE (128 channels per
token), conditioned on Mistral Small 3.x hidden states of three layers (10, 20, 30) of the prompt in a chat
template; guidance-distilled, so ``guidance_scale`` (4) enters the transformer as an input, one call per step.

Its pipeline draws the noise already patchified, (B, 128, H/16, W/16), from the per-item generators it is
given, and normalises latents with the VAE's batch-norm running statistics while unpacking them by their
position ids, so benchkit lets it draw its own noise and decode. The shift ``mu`` is the pipeline's empirical
function of the image's token count and the step count; given sigmas are shifted too (the Turbo LoRA's card
passes sigmas it calls pre-shifted; the pipeline shifts them again, and so does benchkit, as the card does).
"""

from benchkit.models.families import register_family
from benchkit.models.families.base import Family

FLUX2 = register_family()(Family(
    name="flux2",
    description="FLUX.2 [dev]: flow-matching MMDiT over patchified latents, Mistral 3 text encoder, guidance embedding",
    pipeline_class="Flux2Pipeline",
    denoiser="transformer",
    conditioning="mistral3",
    guidance="embedded",
    latent_patch=2,
    draws_own_noise=True,  # drawn (B, 128, H/16, W/16) from the per-item generators, as benchkit's per-item noise
    pipeline_decodes=True,  # batch-norm statistics and position-id unpacking are the pipeline's
    lora_targets=("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
                  "to_qkv_mlp_proj", "ff.linear_in", "ff.linear_out", "ff_context.linear_in", "ff_context.linear_out"),
))
