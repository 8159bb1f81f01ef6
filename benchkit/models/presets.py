"""Named model specs (presets) and resolving a user's `--model` argument to a spec.

Each preset is the model card's own recipe (see ``shared/research/distillers.md``): few-step
models only reach their published quality with the exact scheduler, spacing, timesteps,
guidance and LoRA scale, and a near miss silently gives worse numbers. Weights are never
downloaded: ``base`` is a Hugging Face repo id read from the local HF cache (or a local
folder), other files are ``hf://owner/name/path`` references; `benchkit models` says which
are present. A user's TOML spec can ``extends`` any preset and override any field.

Every preset's ``source`` names its card and how its recipe was checked (``PROVENANCE``:
the card itself, verbatim copies of the card's snippet, or partly, with the unverified values
named); values that could not be checked are kept and marked UNVERIFIED in a comment.
"""

from __future__ import annotations

from pathlib import Path

from benchkit.core.errors import BenchkitError
from benchkit.models.spec import (
    MODEL_DEFAULT_SCHEDULER,
    ModelSpec,
    Recipe,
    load_spec_file,
)

TOY_TEACHER = "builtin:toy-digits"
SPEC_FILE_IN_FOLDER = "spec.toml"  # what `benchkit distill` writes next to its weights

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
SD3_MEDIUM = "stabilityai/stable-diffusion-3-medium-diffusers"
DMD2 = "tianweiy/DMD2"
HYPER = "ByteDance/Hyper-SD"
LIGHTNING = "ByteDance/SDXL-Lightning"
FLUX_SCHNELL = "black-forest-labs/FLUX.1-schnell"
FLUX_DEV = "black-forest-labs/FLUX.1-dev"
TURBO_ALPHA = "alimama-creative/FLUX.1-Turbo-Alpha"

OPENRAIL_M = "CreativeML OpenRAIL-M"
OPENRAIL_PP = "CreativeML OpenRAIL++-M"
SAI_COMMUNITY = "Stability AI Community License"
SAI_NC = "Stability AI Non-Commercial Research Community License"
FLUX_DEV_LICENSE = "FLUX.1 [dev] Non-Commercial License"
# The DMD2 card's metadata says cc-by-nc-4.0 while its "License" section says CC BY-NC-SA 4.0.
DMD2_LICENSE = "CC BY-NC 4.0 (card metadata); CC BY-NC-SA 4.0 (card text and code)"
# The Hyper-SD card's metadata said openrail++ while it held only the SD1.5/SDXL files
# (https://huggingface.co/ByteDance/Hyper-SD/blob/a08b9c3da8dc3be0a6e79b04721bf237241403f9/README.md,
# the May 2024 revision that added the 12-step CFG LoRAs); later revisions, which added the SD3 and
# FLUX files, show no license field. The base model's license applies on top.
HYPER_LICENSE = ("CreativeML OpenRAIL++-M (Hyper-SD card metadata at a08b9c3; later card revisions state none); "
                 "base model's license applies")

# Where each preset's recipe was checked, and how (README "Preset provenance"):
#   card     - the model card's own usage snippet and metadata were read;
#   card-copy - the card itself was not in the stored material, but verbatim copies of its usage
#               snippet were (HF mirrors, code that pastes the card), and agree;
#   partial  - some values come from elsewhere and are named as unverified in the note.
# The note lands in each spec's `source` (shown by `benchkit models --json`).
CARD, CARD_COPY, PARTIAL = "card", "card-copy", "partial"
PROVENANCE: dict[str, tuple[str, str]] = {}


def _card(repo: str) -> str:
    return f"https://huggingface.co/{repo}"


def _src(name: str, repo: str, status: str, note: str) -> str:
    """The card URL plus how the recipe was checked; also recorded in PROVENANCE."""
    PROVENANCE[name] = (status, note)
    return f"{_card(repo)} ({status}: {note})"


def _no_cfg(scheduler: str, steps: int, size: int, **kw) -> Recipe:
    return Recipe(scheduler=scheduler, steps=steps, guidance_scale=0.0, height=size, width=size, **kw)


def _presets() -> list[ModelSpec]:
    specs: list[ModelSpec] = [
        ModelSpec(
            name="toy-digits",
            base=TOY_TEACHER,
            recipe=Recipe(
                scheduler="DDIMScheduler",
                scheduler_kwargs={"timestep_spacing": "trailing"},
                steps=50,
                guidance_scale=2.0,
            ),
            description="Toy 8x8 digits teacher trained by benchkit (50-step DDIM, CFG 2)",
            license="BSD-3-Clause (scikit-learn digits data); weights: same as benchkit",
        ),
        # ---- teachers and baselines -------------------------------------------------------
        # runwayml/stable-diffusion-v1-5 was deleted on 2024-08-29; SD15 is its community mirror.
        ModelSpec("sd15", SD15, Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=7.5, height=512, width=512),
                  "Stable Diffusion 1.5 teacher: the card's pipe(prompt) defaults (shipped PNDM, 50 steps, CFG 7.5)",
                  OPENRAIL_M, family="sd15",
                  source=_src("sd15", SD15, CARD, "runwayml/stable-diffusion-v1-5 card: StableDiffusionPipeline "
                              "pipe(prompt), i.e. 50 steps, CFG 7.5, shipped scheduler; CreativeML OpenRAIL-M")),
        # The card calls pipe(prompt=prompt): StableDiffusionXLPipeline's defaults, 50 steps and CFG 5.
        ModelSpec("sdxl-base", SDXL, Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=5.0, height=1024, width=1024),
                  "SDXL-Base 1.0 teacher: the card's pipe(prompt) defaults (shipped Euler, 50 steps, CFG 5; VAE in fp32)",
                  OPENRAIL_PP, family="sdxl",
                  source=_src("sdxl-base", SDXL, CARD, "DiffusionPipeline pipe(prompt=prompt), i.e. 50 steps, "
                              "CFG 5, shipped scheduler, 1024px; license openrail++")),
        ModelSpec("sdxl-base-25step", SDXL,
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=25, guidance_scale=5.0, height=1024, width=1024),
                  "SDXL-Base 1.0 at benchkit's 25-step teacher budget (issue 3), CFG 5: not a card recipe",
                  OPENRAIL_PP, family="sdxl",
                  source=_src("sdxl-base-25step", SDXL, PARTIAL, "CFG 5, scheduler and 1024px as the card; "
                              "25 steps is benchkit's budget from issue 3, not the card's (50)")),
        # Both Turbo cards call the shipped scheduler (AutoPipelineForText2Image, no swap); the repos'
        # scheduler/scheduler_config.json settle it: SD-Turbo ships EulerDiscreteScheduler, SDXL-Turbo
        # EulerAncestralDiscreteScheduler, both with timestep_spacing "trailing". It is set explicitly
        # so single-file loads sample the same grid. (At one step the two coincide: the ancestral
        # step to sigma 0 adds no noise; from two steps on they differ.)
        ModelSpec("sd-turbo", "stabilityai/sd-turbo",
                  _no_cfg("euler", 1, 512, scheduler_kwargs={"timestep_spacing": "trailing"}),
                  "SD-Turbo (ADD, SD2.1): 1 step, no guidance, shipped Euler (trailing), 512px", SAI_NC,
                  family="sd15",
                  source=_src("sd-turbo", "stabilityai/sd-turbo", CARD_COPY, "copies of the card (model.aibase.com "
                              "and runcrate.ai mirrors): AutoPipelineForText2Image, num_inference_steps=1, "
                              "guidance_scale=0.0, 512x512 preferred; scheduler from the repo's own "
                              "https://huggingface.co/stabilityai/sd-turbo/blob/b335f733db09ff60444334351a3bbf6ab4b64332/"
                              "scheduler/scheduler_config.json: EulerDiscreteScheduler, timestep_spacing trailing "
                              "(benchkit had EulerAncestral); license per the repo's LICENSE file (Non-Commercial "
                              "Research Community; the card sends commercial use to stability.ai/license)")),
        ModelSpec("sdxl-turbo", "stabilityai/sdxl-turbo",
                  _no_cfg("euler-a", 1, 512, scheduler_kwargs={"timestep_spacing": "trailing"}),
                  "SDXL-Turbo (ADD): 1 step, no guidance, shipped EulerAncestral (trailing), 512px", SAI_NC,
                  family="sdxl",
                  source=_src("sdxl-turbo", "stabilityai/sdxl-turbo", CARD_COPY, "copies of the card snippet "
                              "(github JeffDing/sora_learn datawhale/demo2.py; diffusers SDXL-Turbo docs): "
                              "AutoPipelineForText2Image, num_inference_steps=1, guidance_scale=0.0, 512x512; "
                              "license sai-nc-community (repo metadata); scheduler from the repo's own "
                              "https://huggingface.co/stabilityai/sdxl-turbo/blob/refs%2Fpr%2F4/scheduler/"
                              "scheduler_config.json (commit 647e47a 'correct scheduler'): "
                              "EulerAncestralDiscreteScheduler, timestep_spacing trailing")),
        ModelSpec("sdxl-turbo-4step", "stabilityai/sdxl-turbo",
                  _no_cfg("euler-a", 4, 512, scheduler_kwargs={"timestep_spacing": "trailing"}),
                  "SDXL-Turbo at its largest card step count (4), 512px", SAI_NC,
                  family="sdxl",
                  source=_src("sdxl-turbo-4step", "stabilityai/sdxl-turbo", PARTIAL, "scheduler verified as "
                              "sdxl-turbo (repo scheduler_config.json: EulerAncestral, trailing); 1 to 4 steps is "
                              "the card's and diffusers' stated range, but no card snippet runs 4 steps: the "
                              "4-step setting is inferred, not the card's own call")),
        # The LCM-LoRA cards pass guidance_scale=0 ("disable guidance_scale by passing 0").
        ModelSpec("lcm-lora-sd15", SD15, _no_cfg("lcm", 4, 512),
                  "LCM-LoRA on SD1.5: LCMScheduler, 4 steps, no CFG, fused at 1.0", OPENRAIL_PP, family="sd15",
                  lora="hf://latent-consistency/lcm-lora-sdv1-5/pytorch_lora_weights.safetensors",
                  source=_src("lcm-lora-sd15", "latent-consistency/lcm-lora-sdv1-5", CARD, "LCMScheduler, "
                              "load_lora_weights + fuse_lora, num_inference_steps=4, guidance_scale=0 (2-8 steps; "
                              "CFG off or 1-2); adapter for runwayml/stable-diffusion-v1-5; license openrail++")),
        ModelSpec("lcm-lora-sdxl", SDXL, _no_cfg("lcm", 4, 1024),
                  "LCM-LoRA on SDXL: LCMScheduler, 4 steps, no CFG, fused at 1.0", OPENRAIL_PP, family="sdxl",
                  lora="hf://latent-consistency/lcm-lora-sdxl/pytorch_lora_weights.safetensors",
                  source=_src("lcm-lora-sdxl", "latent-consistency/lcm-lora-sdxl", CARD, "LCMScheduler, "
                              "load_lora_weights + fuse_lora, num_inference_steps=4, guidance_scale=0; "
                              "license openrail++")),
        # The TCD-SD15 card (read at its only README commit, 449a99f) runs the TCD-SDXL recipe on
        # runwayml/stable-diffusion-v1-5 (SD15 is its mirror).
        ModelSpec("tcd-lora-sd15", SD15, _no_cfg("tcd", 4, 512, eta=0.3),
                  "TCD-LoRA on SD1.5: TCDScheduler, 4 steps, eta (gamma) 0.3, no CFG", "MIT", family="sd15",
                  lora="hf://h1t/TCD-SD15-LoRA/pytorch_lora_weights.safetensors",
                  source=_src("tcd-lora-sd15", "h1t/TCD-SD15-LoRA", CARD, "https://huggingface.co/h1t/"
                              "TCD-SD15-LoRA (README added in commit 449a99f): StableDiffusionPipeline "
                              "runwayml/stable-diffusion-v1-5, TCDScheduler.from_config, load_lora_weights + "
                              "fuse_lora(), num_inference_steps=4, guidance_scale=0, eta=0.3; the repo's only "
                              "weights file is pytorch_lora_weights.safetensors; license mit")),
        ModelSpec("tcd-lora-sdxl", SDXL, _no_cfg("tcd", 4, 1024, eta=0.3),
                  "TCD-LoRA on SDXL: TCDScheduler, 4 steps, eta (gamma) 0.3, no CFG", "MIT", family="sdxl",
                  lora="hf://h1t/TCD-SDXL-LoRA/pytorch_lora_weights.safetensors",
                  source=_src("tcd-lora-sdxl", "h1t/TCD-SDXL-LoRA", CARD, "TCDScheduler, load_lora_weights + "
                              "fuse_lora, num_inference_steps=4, guidance_scale=0, eta=0.3; license mit")),
        # The Segmind cards' snippets call pipe(prompt, negative_prompt=...) with the pipeline
        # defaults; their text adds "use negative prompting and a CFG around 9.0 for the best
        # quality". benchkit keeps the snippet (no negative prompts); override guidance to try 9.
        ModelSpec("ssd-1b", "segmind/SSD-1B",
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=5.0, height=1024, width=1024),
                  "Segmind SSD-1B (distilled SDXL): the card's pipe(prompt) defaults (50 steps, CFG 5)", "Apache-2.0",
                  family="sdxl",
                  source=_src("ssd-1b", "segmind/SSD-1B", CARD, "StableDiffusionXLPipeline pipe(prompt, "
                              "negative_prompt), i.e. 50 steps, CFG 5; card text recommends CFG ~9 with negative "
                              "prompts; license apache-2.0")),
        ModelSpec("segmind-vega", "segmind/Segmind-Vega",
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=5.0, height=1024, width=1024),
                  "Segmind-Vega (distilled SDXL): the card's pipe(prompt) defaults (50 steps, CFG 5)", "Apache-2.0",
                  family="sdxl",
                  source=_src("segmind-vega", "segmind/Segmind-Vega", CARD, "StableDiffusionXLPipeline "
                              "pipe(prompt, negative_prompt), i.e. 50 steps, CFG 5; card text recommends CFG ~9 "
                              "with negative prompts; license apache-2.0")),
        # The VegaRT card (README at 3162e91, the commit that set license apache-2.0) passes no size,
        # so the pipeline's default (unet sample_size x 8) applies; benchkit pins 1024, the Vega/SDXL
        # training size, without having read Vega's unet config.
        ModelSpec("segmind-vegart", "segmind/Segmind-Vega", _no_cfg("lcm", 4, 1024),
                  "Segmind-VegaRT: LCM-LoRA of Vega, LCMScheduler, 4 steps, no CFG", "Apache-2.0", family="sdxl",
                  lora="hf://segmind/Segmind-VegaRT/pytorch_lora_weights.safetensors",
                  source=_src("segmind-vegart", "segmind/Segmind-VegaRT", CARD, "https://huggingface.co/segmind/"
                              "Segmind-VegaRT/blob/3162e917016cef536fa040ceeeeadd9e09d93e7a/README.md: "
                              "AutoPipelineForText2Image segmind/Segmind-Vega, LCMScheduler, load_lora_weights "
                              "(default file; the repo's only weights file is pytorch_lora_weights.safetensors) + "
                              "fuse_lora, num_inference_steps=4, guidance_scale=0 (text: 2-8 steps, CFG off or "
                              "1-2); no size passed (benchkit pins 1024, Vega's unet sample_size not read); license apache-2.0")),
        # The SDXS-0.9 card loads in float32: its TAESD decoder "may produce low-quality images" in fp16.
        ModelSpec("sdxs-512-0.9", "IDKiro/sdxs-512-0.9", _no_cfg(MODEL_DEFAULT_SCHEDULER, 1, 512),
                  "SDXS-512 0.9 (one-step student of SD-Turbo, tiny VAE): 1 step, no CFG, float32", OPENRAIL_PP,
                  family="sd15", dtype="float32",
                  source=_src("sdxs-512-0.9", "IDKiro/sdxs-512-0.9", CARD, "StableDiffusionPipeline, "
                              "num_inference_steps=1, guidance_scale=0, weight_type float32; license openrail++")),
        # UNVERIFIED: the dreamshaper card was not stored; OpenRAIL++ is from a third-party table.
        ModelSpec("sdxs-512-dreamshaper", "IDKiro/sdxs-512-dreamshaper", _no_cfg(MODEL_DEFAULT_SCHEDULER, 1, 512),
                  "SDXS-512 DreamShaper: 1 step, no CFG", OPENRAIL_PP, family="sd15",
                  source=_src("sdxs-512-dreamshaper", "IDKiro/sdxs-512-dreamshaper", CARD_COPY, "copies of the card "
                              "snippet: StableDiffusionPipeline, num_inference_steps=1, guidance_scale=0, float16 "
                              "(or float32); license unverified")),
        # BK-SDM cards: "An inference code with the default PNDM scheduler and 50 denoising steps", pipe(prompt).
        ModelSpec("bk-sdm-tiny", "nota-ai/bk-sdm-tiny",
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=7.5, height=512, width=512),
                  "BK-SDM-Tiny (0.33B UNet, from SD1.4): the card's pipe(prompt) defaults (PNDM, 50 steps, CFG 7.5)",
                  OPENRAIL_M, family="sd15",
                  source=_src("bk-sdm-tiny", "nota-ai/bk-sdm-tiny", CARD_COPY, "card via its duplicate "
                              "treksis/bk-sdm-tiny and the BK-SDM cards: default PNDM, 50 steps, pipe(prompt) "
                              "(CFG 7.5); license creativeml-openrail-m")),
    ]
    # tiny-sd and small-sd: both cards' "Pipeline usage" is DiffusionPipeline.from_pretrained(repo)
    # then pipeline(prompt), i.e. StableDiffusionPipeline's defaults with the shipped scheduler;
    # both were trained at 512px; license creativeml-openrail-m (card metadata / repo header).
    for repo, what, card in (
            ("segmind/tiny-sd", "Segmind tiny-sd (BK-SDM-style SD1.5 distillation)",
             "https://huggingface.co/segmind/tiny-sd/blame/main/README.md"),
            ("segmind/small-sd", "Segmind small-sd (BK-SDM-style SD1.5 distillation)",
             "https://huggingface.co/segmind/small-sd (card page)")):
        name = repo.split("/")[1].lower()
        specs.append(ModelSpec(name, repo,
                               Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=7.5, height=512, width=512),
                               f"{what}: pipe(prompt) defaults (50 steps, CFG 7.5)", OPENRAIL_M,
                               family="sd15",
                               source=_src(name, repo, CARD, f"{card}: DiffusionPipeline.from_pretrained, "
                                           "pipeline(prompt) with no other argument, i.e. 50 steps, CFG 7.5, shipped "
                                           "scheduler; training resolution 512; license creativeml-openrail-m")))
    # ---- DMD2 (tianweiy/DMD2): LCMScheduler step == DMD2's sampler; timesteps always explicit --
    lcm4 = Recipe("lcm", steps=4, timesteps=(999, 749, 499, 249), guidance_scale=0.0, height=1024, width=1024)
    dmd2_card = ("UNet2DConditionModel.from_config(SDXL) + load_state_dict, LCMScheduler, "
                 "guidance_scale=0, ")
    specs += [
        ModelSpec("dmd2-sdxl-4step", SDXL, lcm4, "DMD2 SDXL 4-step UNet: LCM, t=999,749,499,249, no CFG",
                  DMD2_LICENSE, family="sdxl", weights=f"hf://{DMD2}/dmd2_sdxl_4step_unet_fp16.bin",
                  source=_src("dmd2-sdxl-4step", DMD2, CARD, dmd2_card + "timesteps=[999, 749, 499, 249]")),
        ModelSpec("dmd2-sdxl-4step-lora", SDXL, lcm4,
                  "DMD2 SDXL 4-step LoRA (kohya, rank 64 / alpha 8) fused at scale 1.0: LCM, t=999,749,499,249",
                  DMD2_LICENSE, family="sdxl", lora=f"hf://{DMD2}/dmd2_sdxl_4step_lora_fp16.safetensors",
                  source=_src("dmd2-sdxl-4step-lora", DMD2, CARD, "load_lora_weights + "
                              "fuse_lora(lora_scale=1.0), LCMScheduler, guidance_scale=0, timesteps=[999, 749, 499, 249]")),
        ModelSpec("dmd2-sdxl-1step", SDXL,
                  Recipe("lcm", steps=1, timesteps=(399,), guidance_scale=0.0, height=1024, width=1024),
                  "DMD2 SDXL 1-step UNet: LCM, pure noise labelled t=399, no CFG", DMD2_LICENSE, family="sdxl",
                  weights=f"hf://{DMD2}/dmd2_sdxl_1step_unet_fp16.bin",
                  source=_src("dmd2-sdxl-1step", DMD2, CARD, dmd2_card + "timesteps=[399]")),
        # The card has no SD1.5 snippet: the file is the FID-8.35 row of the repo's
        # experiments/sdv1.5/README.md ("you only need to download the pytorch_model.bin file");
        # one step at t=999 is the repo's evaluation (main/test_folder_sd.py, research notes [code]).
        ModelSpec("dmd2-sd15-1step", SD15,
                  Recipe("lcm", steps=1, timesteps=(999,), guidance_scale=0.0, height=512, width=512),
                  "DMD2 SD1.5 1-step UNet (FID 8.35 checkpoint): one step from pure noise at t=999, no CFG",
                  DMD2_LICENSE, family="sd15",
                  weights=f"hf://{DMD2}/model/sdv1.5/laion6.25_sd_baseline_8node_guidance1.75_lr5e-7_seed10_dfake10_"
                          "diffusion1000_gan1e-3_resume_fid8.35_checkpoint_model_041000/pytorch_model.bin",
                  source=_src("dmd2-sd15-1step", DMD2, PARTIAL, "no diffusers snippet in the card; checked "
                              "against the official code instead: github tianweiy/DMD2 experiments/sdv1.5/README.md "
                              "(model zoo row FID 8.35, 'you only need to download the pytorch_model.bin file'; "
                              "eval flags --image_resolution 512 --pred_eps --model_id runwayml/stable-diffusion-v1-5) "
                              "and main/test_folder_sd.py (UNet called once on unscaled N(0,I) latents at "
                              "t=num_train_timesteps-1=999, eps turned into x0 with alpha_bar=0.0047, no CFG). "
                              "LCMScheduler at t=999 does the same x0 step with the exact alpha_bar[999] "
                              "(~0.00466) and c_skip ~2.5e-9, a deviation of ~0.4% in x0 scale")),
    ]
    # ---- Hyper-SD (ByteDance/Hyper-SD) ----------------------------------------------------
    # The card's SD1.5 snippets use runwayml/stable-diffusion-v1-5 (SD15 is its mirror).
    for fam, prefix, base, size in (("sdxl", "Hyper-SDXL", SDXL, 1024), ("sd15", "Hyper-SD15", SD15, 512)):
        tag = fam
        for n in (2, 4, 8):
            specs.append(ModelSpec(
                f"hyper-{tag}-{n}step-lora", base,
                _no_cfg("ddim", n, size, scheduler_kwargs={"timestep_spacing": "trailing"}),
                f"Hyper-SD {n}-step LoRA on {fam.upper()}: DDIM trailing, {n} steps, no CFG, fused at 1.0",
                HYPER_LICENSE, family=fam, lora=f"hf://{HYPER}/{prefix}-{n}steps-lora.safetensors",
                source=_src(f"hyper-{tag}-{n}step-lora", HYPER, CARD, "load_lora_weights + fuse_lora(), "
                            "DDIMScheduler timestep_spacing='trailing', num_inference_steps=N, guidance_scale=0")))
        specs.append(ModelSpec(
            f"hyper-{tag}-1step-lora", base, _no_cfg("tcd", 1, size, eta=1.0),
            f"Hyper-SD unified LoRA on {fam.upper()} (1-8 steps): TCD, 1 step, eta 1.0, no CFG",
            HYPER_LICENSE, family=fam, lora=f"hf://{HYPER}/{prefix}-1step-lora.safetensors",
            source=_src(f"hyper-{tag}-1step-lora", HYPER, CARD, "fuse_lora(), TCDScheduler, "
                        "num_inference_steps=1, guidance_scale=0, eta=1.0 (lower eta for more steps)")))
        # The card's news entries (2024-04-30 for 8 steps, 2024-05-13 for 12) give these LoRAs only
        # "support 5~8 guidance scales"; it has no CFG-LoRA snippet for SD1.5/SDXL, so DDIM trailing at
        # N steps and fusing at 1.0 are inferred from the N-step LoRAs' snippet; CFG 5 is the range's
        # low end.
        for n in (8, 12):
            specs.append(ModelSpec(
                f"hyper-{tag}-{n}step-cfg-lora", base,
                Recipe("ddim", {"timestep_spacing": "trailing"}, steps=n, guidance_scale=5.0, height=size, width=size),
                f"Hyper-SD {n}-step CFG LoRA on {fam.upper()}: DDIM trailing, CFG 5 (card: 5-8)",
                HYPER_LICENSE, family=fam, lora=f"hf://{HYPER}/{prefix}-{n}steps-CFG-lora.safetensors",
                source=_src(f"hyper-{tag}-{n}step-cfg-lora", HYPER, PARTIAL, "https://huggingface.co/ByteDance/"
                            "Hyper-SD README news (2024-04-30 8-step, 2024-05-13 12-step CFG-preserved LoRAs): "
                            "'support 5~8 guidance scales', nothing else; no usage snippet for these files, so "
                            "DDIM trailing, N steps and fuse_lora at 1.0 are inferred from the N-step LoRAs' "
                            "snippet; CFG 5 is the stated range's low end")))
    specs.append(ModelSpec(
        "hyper-sdxl-1step-unet", SDXL, Recipe("lcm", steps=1, timesteps=(800,), guidance_scale=0.0, height=1024, width=1024),
        "Hyper-SDXL 1-step UNet: LCM, t=800, no CFG", HYPER_LICENSE, family="sdxl",
        weights=f"hf://{HYPER}/Hyper-SDXL-1step-Unet.safetensors",
        source=_src("hyper-sdxl-1step-unet", HYPER, CARD, "load_state_dict(load_file(...)), LCMScheduler, "
                    "num_inference_steps=1, guidance_scale=0, timesteps=[800]")))
    for n, cfg in ((4, 3.0), (8, 5.0), (16, 7.0)):
        specs.append(ModelSpec(
            f"hyper-sd3-{n}step-cfg-lora", SD3_MEDIUM,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=n, guidance_scale=cfg, height=1024, width=1024),
            f"Hyper-SD3 {n}-step CFG LoRA fused at lora_scale 0.125: flow-matching Euler, CFG {cfg:g}",
            HYPER_LICENSE + "; SD3: " + SAI_COMMUNITY, family="sd3", dtype="float16",
            lora=f"hf://{HYPER}/Hyper-SD3-{n}steps-CFG-lora.safetensors", lora_scale=0.125,
            source=_src(f"hyper-sd3-{n}step-cfg-lora", HYPER, CARD, "StableDiffusion3Pipeline "
                        "(stable-diffusion-3-medium-diffusers), fuse_lora(lora_scale=0.125), float16, guidance "
                        "3.0/5.0/7.0 at 4/8/16 steps, shipped scheduler")))
    # ---- SDXL-Lightning (ByteDance/SDXL-Lightning): Euler trailing, no CFG --------------------
    euler_trailing = {"timestep_spacing": "trailing"}
    lightning_card = "EulerDiscreteScheduler timestep_spacing='trailing', guidance_scale=0, steps=N; "
    for n in (2, 4, 8):
        specs.append(ModelSpec(
            f"sdxl-lightning-{n}step", SDXL, _no_cfg("euler", n, 1024, scheduler_kwargs=euler_trailing),
            f"SDXL-Lightning {n}-step UNet: Euler trailing, {n} steps, no CFG", OPENRAIL_PP, family="sdxl",
            weights=f"hf://{LIGHTNING}/sdxl_lightning_{n}step_unet.safetensors",
            source=_src(f"sdxl-lightning-{n}step", LIGHTNING, CARD, lightning_card + "UNet load_state_dict; "
                        "license openrail++")))
        specs.append(ModelSpec(
            f"sdxl-lightning-{n}step-lora", SDXL, _no_cfg("euler", n, 1024, scheduler_kwargs=euler_trailing),
            f"SDXL-Lightning {n}-step LoRA fused at 1.0: Euler trailing, {n} steps, no CFG", OPENRAIL_PP,
            family="sdxl", lora=f"hf://{LIGHTNING}/sdxl_lightning_{n}step_lora.safetensors",
            source=_src(f"sdxl-lightning-{n}step-lora", LIGHTNING, CARD, lightning_card + "load_lora_weights + "
                        "fuse_lora (card: meant for non-base SDXL models); license openrail++")))
    specs.append(ModelSpec(
        "sdxl-lightning-1step", SDXL,
        _no_cfg("euler", 1, 1024, scheduler_kwargs={"timestep_spacing": "trailing", "prediction_type": "sample"}),
        "SDXL-Lightning 1-step x0 UNet (experimental): Euler trailing, prediction_type sample, no CFG",
        OPENRAIL_PP, family="sdxl", weights=f"hf://{LIGHTNING}/sdxl_lightning_1step_unet_x0.safetensors",
        source=_src("sdxl-lightning-1step", LIGHTNING, CARD, "EulerDiscreteScheduler "
                    "timestep_spacing='trailing', prediction_type='sample', num_inference_steps=1, guidance_scale=0")))
    # ---- SD3 / SD3.5 teachers (flow matching; the students of ADM are evaluated against them) -
    # SD3.5-Large: Diffusers' launch blog uses 40 steps / CFG 4.5; the card's snippet 28 / 3.5 (kept).
    for name, repo, steps, cfg, dtype, status, note in (
        ("sd3-medium", SD3_MEDIUM, 28, 7.0, "float16", CARD_COPY,
         "copies of the card snippet: StableDiffusion3Pipeline, float16, negative_prompt='', 28 steps, CFG 7.0; "
         "card: Stability Community License (first released under the Non-Commercial Research Community one)"),
        ("sd3.5-medium", "stabilityai/stable-diffusion-3.5-medium", 40, 4.5, "bfloat16", CARD_COPY,
         "copies of the card snippet: bfloat16, 40 steps, CFG 4.5; Stability Community License"),
        ("sd3.5-large", "stabilityai/stable-diffusion-3.5-large", 28, 3.5, "bfloat16", CARD_COPY,
         "copies of the card snippet: bfloat16, 28 steps, CFG 3.5 (the diffusers launch blog uses 40 / 4.5); "
         "Stability Community License"),
    ):
        specs.append(ModelSpec(
            name, repo, Recipe(MODEL_DEFAULT_SCHEDULER, steps=steps, guidance_scale=cfg, height=1024, width=1024),
            f"{name.upper()} teacher: flow-matching Euler (shipped), {steps} steps, CFG {cfg:g}", SAI_COMMUNITY,
            family="sd3", dtype=dtype, source=_src(name, repo, status, note)))
    turbo = "stabilityai/stable-diffusion-3.5-large-turbo"
    specs.append(ModelSpec(
        "sd3.5-large-turbo", turbo, _no_cfg(MODEL_DEFAULT_SCHEDULER, 4, 1024),
        "SD3.5-Large-Turbo (ADD student of SD3.5-Large): flow-matching Euler (shipped), 4 steps, no CFG", SAI_COMMUNITY,
        family="sd3", dtype="bfloat16",
        source=_src("sd3.5-large-turbo", turbo, CARD_COPY, "a copy of the card snippet (corradomio/python_projects "
                    "check_sd.py): StableDiffusion3Pipeline bfloat16, num_inference_steps=4, guidance_scale=0.0; no "
                    "size given, the pipeline's default is 1024x1024; Stability Community License")))
    specs += _flux_presets()
    specs += _flux2_presets()
    specs += _sana_presets()
    specs += _qwen_image_presets()
    zimage = "Tongyi-MAI/Z-Image-Turbo"
    specs.append(ModelSpec(
        "z-image-turbo", zimage, _no_cfg(MODEL_DEFAULT_SCHEDULER, 9, 1024),
        "Z-Image-Turbo (6B): shipped flow Euler (shift 3), 9 steps, no guidance", "Apache-2.0", family="zimage",
        dtype="bfloat16",
        source=_src("z-image-turbo", zimage, CARD_COPY, "copies of the card snippet (KAFKA2306/hf-cache-hub, "
                    "wannaQac/vitepress-blog): ZImagePipeline bfloat16, height=width=1024, num_inference_steps=9 "
                    "('actually results in 8 DiT forwards'), guidance_scale=0.0; diffusers 0.42.1 makes 9 calls; "
                    "licence Apache-2.0 as remembered (unverified)")))
    specs += _wan_presets()
    specs += _wan22_presets()
    specs += _ltx_presets()
    i2v = "THUDM/CogVideoX-5b-I2V"
    specs.append(ModelSpec(
        "cogvideox-5b-i2v", i2v, Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=6.0, height=480, width=720,
                                        num_frames=49, fps=8),
        "CogVideoX-5B image-to-video teacher: each prompt's image column is the first frame; 50 steps, CFG 6, "
        "49 frames at 8 fps", "CogVideoX License", family="cogvideox-i2v", dtype="bfloat16",
        source=_src("cogvideox-5b-i2v", i2v, CARD_COPY, "copies of the card snippet (DeanLvs/ai_tools GenVideo.py "
                    "and others): CogVideoXImageToVideoPipeline bfloat16, num_inference_steps=50, num_frames=49, "
                    "guidance_scale=6, export fps=8; 720x480 as the CogVideoX-5b card")))
    hunyuan = "hunyuanvideo-community/HunyuanVideo"
    specs.append(ModelSpec(
        "hunyuanvideo", hunyuan,
        Recipe(MODEL_DEFAULT_SCHEDULER, steps=30, guidance_scale=6.0, height=320, width=512, num_frames=61, fps=15),
        "HunyuanVideo T2V teacher: shipped flow Euler (shift 7), 30 steps, embedded guidance 6, 61 frames at 15 fps",
        "Tencent Hunyuan Community License (unverified)", family="hunyuanvideo", dtype="bfloat16",
        source=_src("hunyuanvideo", hunyuan, CARD_COPY, "copies of the diffusers card snippet (AtlantixJJ/HunyuanVideo "
                    "scripts/test.py, sayakpaul/poc-style-bot): transformer bfloat16 with the other components in "
                    "float16 (benchkit runs one dtype: bfloat16), height=320, width=512, num_frames=61, "
                    "num_inference_steps=30, export fps=15; guidance 6.0 is the pipeline's default")))
    example = ("unverified: the model cards were not in the stored material; diffusers' own example for "
               "HunyuanVideoImageToVideoPipeline (pipeline_hunyuan_video_image2video.py, EXAMPLE_DOC_STRING): transformer "
               "bfloat16 with the pipeline in float16 (benchkit runs one dtype: bfloat16), {call}, export fps=15; the "
               "steps (50), size (720x1280) and frames (129) are the pipeline's defaults")
    for name, repo, guidance, true_cfg, what in (
            ("hunyuanvideo-i2v", "hunyuanvideo-community/HunyuanVideo-I2V", 6.0, None,
             "16 channels, the image's latents replace the first frame's tokens, embedded guidance 6"),
            ("hunyuanvideo-i2v-33ch", "hunyuanvideo-community/HunyuanVideo-I2V-33ch", 1.0, 1.0,
             "33 channels (noise, image latents, mask), no guidance embedding, 125 frames kept")):
        call = f"guidance_scale={guidance:g}" + (f", true_cfg_scale={true_cfg:g}" if true_cfg else "")
        specs.append(ModelSpec(
            name, repo, Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=guidance, true_cfg_scale=true_cfg,
                               height=720, width=1280, num_frames=129, fps=15),
            f"HunyuanVideo I2V ({what}): each prompt's image column is the first frame; 50 flow-Euler steps at 15 fps",
            "Tencent Hunyuan Community License (unverified)", family="hunyuanvideo-i2v", dtype="bfloat16",
            source=_src(name, repo, PARTIAL, example.format(call=call))))
    # ---- video teachers (ADM's): CogVideoX, 49 frames at 8 fps, 720x480 ----------------------
    for name, repo, dtype, lic in (("cogvideox-2b", "THUDM/CogVideoX-2b", "float16", "Apache-2.0"),
                                   ("cogvideox-5b", "THUDM/CogVideoX-5b", "bfloat16", "CogVideoX License")):
        specs.append(ModelSpec(
            name, repo, Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=6.0, height=480, width=720,
                               num_frames=49, fps=8),
            f"{name} video teacher: shipped CogVideoX scheduler, 50 steps, CFG 6, 49 frames, 8 fps", lic,
            family="cogvideox", dtype=dtype,
            source=_src(name, repo, CARD, f"CogVideoXPipeline {dtype}, num_inference_steps=50, "
                        "num_frames=49, guidance_scale=6, export_to_video fps=8; 720x480 only; "
                        "2B Apache 2.0, 5B CogVideoX LICENSE")))
    return specs


def _flux_presets() -> list[ModelSpec]:
    """FLUX.1: schnell (timestep-distilled, 4 steps) and dev (guidance-distilled) with its few-step LoRAs.

    Every one runs the shipped FlowMatchEulerDiscreteScheduler; the pipeline computes the sigmas
    (linspace(1, 1/N, N)) and, for dev, the resolution-dependent shift. ``guidance_scale`` is dev's
    embedded guidance, not CFG (one transformer call per step).
    """
    schnell_card = ("FluxPipeline bfloat16, guidance_scale=0.0, num_inference_steps=4, max_sequence_length=256 "
                    "(copied card snippet in corradomio/python_projects check_flux_schnell.py); the card names "
                    "no size and the pipeline's default is 1024x1024; Apache-2.0")
    specs = [
        ModelSpec("flux.1-schnell", FLUX_SCHNELL,
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=4, guidance_scale=0.0, height=1024, width=1024,
                         max_sequence_length=256),
                  "FLUX.1 [schnell]: timestep-distilled, 4 flow-Euler steps, no guidance, 256 T5 tokens", "Apache-2.0",
                  family="flux", dtype="bfloat16", source=_src("flux.1-schnell", FLUX_SCHNELL, CARD_COPY, schnell_card)),
        # UNVERIFIED: the dev card was not in the stored material; 50 steps, guidance 3.5, 1024x1024 and
        # max_sequence_length=512 are the values the diffusers FLUX docs use for dev
        ModelSpec("flux.1-dev", FLUX_DEV,
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=3.5, height=1024, width=1024,
                         max_sequence_length=512),
                  "FLUX.1 [dev] teacher: guidance-distilled, 50 flow-Euler steps, embedded guidance 3.5",
                  FLUX_DEV_LICENSE, family="flux", dtype="bfloat16",
                  source=_src("flux.1-dev", FLUX_DEV, PARTIAL, "unverified: card not in the stored material; "
                              "50 steps, guidance_scale=3.5, 1024x1024, max_sequence_length=512 from the diffusers "
                              "FLUX documentation; gated repo, FLUX.1 [dev] Non-Commercial License")),
    ]
    for n in (8, 16):
        specs.append(ModelSpec(
            f"hyper-flux.1-dev-{n}step-lora", FLUX_DEV,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=n, guidance_scale=3.5, height=1024, width=1024),
            f"Hyper-SD FLUX.1-dev {n}-step LoRA fused at lora_scale 0.125: flow Euler, embedded guidance 3.5",
            HYPER_LICENSE + "; FLUX.1-dev: " + FLUX_DEV_LICENSE, family="flux", dtype="bfloat16",
            lora=f"hf://{HYPER}/Hyper-FLUX.1-dev-{n}steps-lora.safetensors", lora_scale=0.125,
            source=_src(f"hyper-flux.1-dev-{n}step-lora", HYPER, CARD_COPY if n == 8 else PARTIAL,
                        "copied card snippet (sarath-menon/cog-flux development/hyper-sd.py): FluxPipeline "
                        "FLUX.1-dev, load_lora_weights(Hyper-FLUX.1-dev-8steps-lora.safetensors), "
                        "fuse_lora(lora_scale=0.125), num_inference_steps=8, guidance_scale=3.5; the snippet "
                        "casts to float16, bfloat16 kept (FLUX's own dtype); no size given, pipeline default 1024"
                        + ("" if n == 8 else "; the 16-step file follows the 8-step snippet with 16 steps "
                           "(unverified)"))))
    # UNVERIFIED: the Turbo-Alpha card was not in the stored material (only a ComfyUI workflow saying
    # 8 steps); load_lora_weights + fuse_lora() at 1.0, guidance 3.5, 1024x1024, 512 tokens are remembered
    specs.append(ModelSpec(
        "flux.1-turbo-alpha", FLUX_DEV,
        Recipe(MODEL_DEFAULT_SCHEDULER, steps=8, guidance_scale=3.5, height=1024, width=1024, max_sequence_length=512),
        "FLUX.1-Turbo-Alpha (alimama) 8-step LoRA on FLUX.1-dev, fused at 1.0: flow Euler, embedded guidance 3.5",
        "FLUX.1 [dev] Non-Commercial License (the LoRA's card names the base's license)", family="flux",
        dtype="bfloat16", lora=f"hf://{TURBO_ALPHA}/diffusion_pytorch_model.safetensors",
        source=_src("flux.1-turbo-alpha", TURBO_ALPHA, PARTIAL, "unverified: card not in the stored material; a "
                    "ComfyUI workflow (phyblas/ironna_comfyui_workflow) confirms 8 steps; fuse_lora() at 1.0, "
                    "guidance_scale=3.5, 1024x1024, max_sequence_length=512 are the card's as remembered")))
    return specs


def _sana_presets() -> list[ModelSpec]:
    """SANA 1.6B (20 steps, CFG 4.5) and its 2-step consistency student SANA-Sprint, both at 1024 px."""
    sana, sprint = "Efficient-Large-Model/Sana_1600M_1024px_BF16_diffusers", "Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers"
    # UNVERIFIED: the licence (NVIDIA's NSCL v2-custom per the cards' metadata) was not in the stored copies
    license_ = "NVIDIA Source Code License (NSCL v2-custom; unverified)"
    return [
        ModelSpec("sana-1.6b", sana,
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=20, guidance_scale=4.5, height=1024, width=1024),
                  "SANA 1.6B teacher: shipped flow DPM-Solver, 20 steps, CFG 4.5", license_, family="sana",
                  dtype="bfloat16",
                  source=_src("sana-1.6b", sana, CARD_COPY, "copies of the card snippet (yottalabsai/nunchaku "
                              "examples/sana_1600m.py, RuurdBijlsma/photos-processing): SanaPipeline variant bf16, "
                              "bfloat16, height=width=1024, guidance_scale=4.5, num_inference_steps=20")),
        ModelSpec("sana-sprint-1.6b", sprint,
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=2, guidance_scale=4.5, height=1024, width=1024),
                  "SANA-Sprint 1.6B: SCM scheduler, 2 steps (intermediate t=1.3), embedded guidance 4.5", license_,
                  family="sana-sprint", dtype="bfloat16",
                  source=_src("sana-sprint-1.6b", sprint, CARD_COPY, "a copy of the card snippet (SANA-Sprint "
                              "test script): SanaSprintPipeline bfloat16, num_inference_steps=2; guidance 4.5, "
                              "1024 px and max/intermediate timesteps 1.5708/1.3 are the pipeline's defaults")),
    ]


def _qwen_image_presets() -> list[ModelSpec]:
    """Qwen-Image (50 steps, true CFG 4 with the negative prompt " ") and Qwen-Image-Lightning's LoRAs."""
    import math

    qwen, lightning = "Qwen/Qwen-Image", "lightx2v/Qwen-Image-Lightning"
    card = ("copies of the card snippet (Ascend/MindSpeed-MM infer_qwen_image_text2img_bf16.py, tcherney/ai "
            "qwen.py): QwenImagePipeline bfloat16, negative_prompt=' ', num_inference_steps=50, true_cfg_scale=4.0, "
            "aspect ratio 1:1 = 1328x1328; the card also appends a 'positive magic' suffix (', Ultra HD, 4K, "
            "cinematic composition.') to each prompt, which benchkit does not: prompt sets are scored as written; "
            "licence Apache-2.0 as remembered (unverified)")
    specs = [ModelSpec(
        "qwen-image", qwen, Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=1.0, height=1328, width=1328,
                                   true_cfg_scale=4.0, negative_prompt=" "),
        "Qwen-Image (20B) teacher: shipped flow Euler, 50 steps, true CFG 4 with negative prompt ' ', 1328 px",
        "Apache-2.0", family="qwenimage", dtype="bfloat16", source=_src("qwen-image", qwen, CARD_COPY, card))]
    # ModelTC/Qwen-Image-Lightning generate_with_diffusers.py (342260e): shift 3 as a fixed dynamic shift
    # (base = max = log 3), no terminal shift; true_cfg_scale=1.0 with negative prompt " "
    lightning_scheduler = {"base_image_seq_len": 256, "base_shift": math.log(3), "max_image_seq_len": 8192,
                           "max_shift": math.log(3), "shift": 1.0, "shift_terminal": None, "use_dynamic_shifting": True,
                           "time_shift_type": "exponential", "stochastic_sampling": False}
    for n, version in ((8, "V1.1"), (4, "V1.0")):
        specs.append(ModelSpec(
            f"qwen-image-lightning-{n}step", qwen,
            Recipe("FlowMatchEulerDiscreteScheduler", dict(lightning_scheduler), steps=n, guidance_scale=1.0,
                   height=1024, width=1024, true_cfg_scale=1.0, negative_prompt=" "),
            f"Qwen-Image-Lightning {n}-step LoRA ({version}) fused at 1.0: flow Euler with shift 3, no CFG",
            "Apache-2.0", family="qwenimage", dtype="bfloat16",
            lora=f"hf://{lightning}/Qwen-Image-Lightning-{n}steps-{version}.safetensors",
            source=_src(f"qwen-image-lightning-{n}step", lightning, CARD_COPY,
                        "ModelTC/Qwen-Image-Lightning generate_with_diffusers.py at 342260e as copied by nunchaku "
                        "examples/v1/qwen-image-lightning.py: FlowMatchEulerDiscreteScheduler.from_config(base_shift="
                        "max_shift=log(3), max_image_seq_len=8192, shift=1.0, shift_terminal=None, dynamic "
                        "exponential shifting), negative_prompt=' ', true_cfg_scale=1.0, num_inference_steps=N, "
                        f"1024x1024; load_lora_weights of the N-step {version} file (the releases that script was written "
                        "for; V2.0 files came later and are not presets); the snippet does not fuse, and fusing at "
                        "scale 1.0 gives the same weights")))
    return specs


# Wan's cards' English negative prompt (the diffusers copies of the Wan 2.1 cards)
WAN_NEGATIVE = ("Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
                "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
                "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still "
                "picture, messy background, three legs, many people in the background, walking backwards")


def _wan_presets() -> list[ModelSpec]:
    """Wan 2.1 T2V 1.3B (480p) and 14B (720p) teachers, and lightx2v's 4-step CFG- and step-distilled LoRA."""
    card = ("copies of the diffusers card snippet (ostris/ai-toolkit inference.py, zlaval/llm_engineering "
            "video_gen.py, diffusers docs wan.md): AutoencoderKLWan float32, WanPipeline bfloat16, "
            "UniPCMultistepScheduler flow_shift {shift} ('5.0 for 720P, 3.0 for 480P'), {h}x{w}, num_frames=81, "
            "guidance_scale=5.0, the English negative prompt, export_to_video fps=16; 50 steps is the pipeline's "
            "default; licence Apache-2.0")
    specs = []
    for name, repo, (h, w), shift in (("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", (480, 832), 3.0),
                                      ("wan2.1-t2v-14b", "Wan-AI/Wan2.1-T2V-14B-Diffusers", (720, 1280), 5.0)):
        specs.append(ModelSpec(
            name, repo, Recipe("UniPCMultistepScheduler", {"flow_shift": shift}, steps=50, guidance_scale=5.0,
                               height=h, width=w, num_frames=81, fps=16, negative_prompt=WAN_NEGATIVE),
            f"{name} video teacher: UniPC on flow sigmas (shift {shift:g}), 50 steps, CFG 5, 81 frames at 16 fps",
            "Apache-2.0", family="wan", dtype="bfloat16",
            source=_src(name, repo, CARD_COPY, card.format(shift=shift, h=h, w=w))))
    i2v = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
    specs.append(ModelSpec(
        "wan2.1-i2v-14b-480p", i2v,
        Recipe("UniPCMultistepScheduler", {"flow_shift": 3.0}, steps=50, guidance_scale=5.0, height=480, width=832,
               num_frames=81, fps=16, negative_prompt=WAN_NEGATIVE),
        "Wan 2.1 I2V 14B (480p): each prompt's image column is the first frame; UniPC shift 3, 50 steps, CFG 5, "
        "81 frames at 16 fps", "Apache-2.0", family="wan-i2v", dtype="bfloat16",
        source=_src("wan2.1-i2v-14b-480p", i2v, PARTIAL, "unverified: the I2V card was not in the stored material; "
                    "its diffusers snippet as remembered: WanImageToVideoPipeline bfloat16 with the VAE and CLIP "
                    "image encoder in float32 (benchkit keeps only the VAE in float32), guidance 5.0, 81 frames, "
                    "fps 16, and a size fitted to each input image's aspect within 480x832 pixels, where benchkit "
                    "makes every clip at the recipe's 480x832")))
    lora = "lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill-Lightx2v"
    specs.append(ModelSpec(
        "wan2.1-t2v-14b-lightx2v-4step", "Wan-AI/Wan2.1-T2V-14B-Diffusers",
        Recipe("FlowMatchEulerDiscreteScheduler", {"shift": 5.0}, steps=4, sigmas=(1.0, 0.75, 0.5, 0.25),
               guidance_scale=1.0, height=720, width=1280, num_frames=81, fps=16),
        "lightx2v's step- and CFG-distilled LoRA on Wan 2.1 T2V 14B: 4 Euler steps at t = 1000, 750, 500, 250 "
        "shifted by 5, no CFG (720p)", "Apache-2.0",
        family="wan", dtype="bfloat16", lora=f"hf://{lora}/loras/Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank64.safetensors",
        source=_src("wan2.1-t2v-14b-lightx2v-4step", lora, PARTIAL,
                    "unverified: the card was not in the stored material and the LoRA's file name is remembered; "
                    "LightX2V's docs (ModelTC/lightx2v step_distill.md) give 4 steps without CFG and its configs "
                    "sample_shift 5 on t = 1000, 750, 500, 250, which FlowMatchEulerDiscreteScheduler(shift=5) steps on "
                    "from sigmas 1, 0.75, 0.5, 0.25 (benchkit hands WanPipeline's scheduler the sigmas); the Euler "
                    "solver is unverified for this LoRA (the same team's Wan 2.2 Lightning runner requires Euler)")))
    return specs


def _flux2_presets() -> list[ModelSpec]:
    """FLUX.2 [dev] (guidance-distilled, 50 steps) and fal's 8-step Turbo LoRA on its custom sigmas."""
    dev, turbo = "black-forest-labs/FLUX.2-dev", "fal/FLUX.2-dev-Turbo"
    turbo_sigmas = (1.0, 0.6509, 0.4374, 0.2932, 0.1893, 0.1108, 0.0495, 0.00031)
    return [
        ModelSpec(
            "flux.2-dev", dev,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=4.0, height=1024, width=1024, max_sequence_length=512),
            "FLUX.2 [dev] teacher: guidance-distilled, 50 flow-Euler steps (empirical shift), embedded guidance 4",
            "FLUX [dev] Non-Commercial License (unverified)", family="flux2", dtype="bfloat16",
            source=_src("flux.2-dev", dev, CARD,
                        "black-forest-labs/flux2 docs/flux2_dev_hf.md and model_cards/FLUX.2-dev.md: Flux2Pipeline "
                        "bfloat16, num_inference_steps=50 ('28 steps can be a good trade-off'), guidance_scale=4; "
                        "1024x1024 and max_sequence_length 512 are the pipeline's defaults; the card's remote text "
                        "encoder needs the network, benchkit loads the local Mistral encoder")),
        ModelSpec(
            "flux.2-dev-turbo-8step", dev,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=len(turbo_sigmas), sigmas=turbo_sigmas, guidance_scale=2.5, height=1024,
                   width=1024, max_sequence_length=512),
            "fal's FLUX.2 [dev] Turbo LoRA: 8 steps on its custom sigmas, embedded guidance 2.5",
            "FLUX [dev] Non-Commercial License (unverified)", family="flux2", dtype="bfloat16",
            lora=f"hf://{turbo}/flux.2-turbo-lora.safetensors",
            source=_src("flux.2-dev-turbo-8step", turbo, CARD_COPY,
                        "the card (fal/FLUX.2-dev-Turbo README) up to load_lora_weights, the rest from verbatim copies: "
                        "weight_name flux.2-turbo-lora.safetensors, sigmas [1.0, 0.6509, 0.4374, 0.2932, 0.1893, 0.1108, "
                        "0.0495, 0.00031] ('pre-shifted'), guidance_scale=2.5, 1024x1024, num_inference_steps=8; the "
                        "pipeline shifts given sigmas again by its empirical mu (about [1, 0.947, 0.883, ...] at 1024 px), "
                        "as the card's own call does")),
    ]


# The Wan 2.2 cards' negative prompt (Wan's own Chinese default; the 2.1 cards give its English translation)
WAN22_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
                  "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
                  "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")


def _wan22_presets() -> list[ModelSpec]:
    """Wan 2.2: the T2V-A14B mixture of two experts (high noise above t = 875, low noise below), the dense
    TI2V-5B on its 16x VAE, and lightx2v's 4-step Lightning LoRAs for A14B (one per expert)."""
    a14b, ti2v = "Wan-AI/Wan2.2-T2V-A14B-Diffusers", "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    lightning = "lightx2v/Wan2.2-Lightning"
    lightning_folder = "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1"
    return [
        ModelSpec(
            "wan2.2-t2v-a14b", a14b,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=40, guidance_scale=4.0, guidance_scale_2=3.0, height=720, width=1280,
                   num_frames=81, fps=16, negative_prompt=WAN22_NEGATIVE),
            "Wan 2.2 T2V A14B teacher: two experts (boundary 0.875), shipped UniPC (shift 3), 40 steps, CFG 4 high-noise "
            "/ 3 low-noise, 81 frames at 16 fps", "Apache-2.0", family="wan", dtype="bfloat16",
            source=_src("wan2.2-t2v-a14b", a14b, CARD_COPY,
                        "the card's snippet as quoted verbatim in Wan-Video/Wan2.2 issue #18 and diffusers PR #12004: "
                        "AutoencoderKLWan float32, WanPipeline bfloat16, height=720, width=1280, num_frames=81, "
                        "guidance_scale=4.0, guidance_scale_2=3.0, num_inference_steps=40, the Chinese negative prompt, "
                        "export fps=16; the scheduler is the folder's (UniPC flow_shift 3.0 per diffusers' converter; Wan's "
                        "own code samples with shift 12); boundary_ratio 0.875 comes from the folder's model_index.json")),
        ModelSpec(
            "wan2.2-ti2v-5b", ti2v,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=5.0, height=704, width=1280, num_frames=121, fps=24,
                   negative_prompt=WAN22_NEGATIVE),
            "Wan 2.2 TI2V 5B as text-to-video: 16x VAE (48 channels), a timestep per token, shipped UniPC (shift 5), "
            "50 steps, CFG 5, 121 frames at 24 fps", "Apache-2.0", family="wan", dtype="bfloat16",
            source=_src("wan2.2-ti2v-5b", ti2v, CARD_COPY,
                        "the card's snippet as in diffusers PR #12004: AutoencoderKLWan float32, WanPipeline bfloat16, "
                        "height=704, width=1280, num_frames=121, num_inference_steps=50, guidance_scale=5.0, the Chinese "
                        "negative prompt, export fps=24; scheduler and expand_timesteps are the folder's")),
        ModelSpec(
            "wan2.2-t2v-a14b-lightning-4step", a14b,
            Recipe("FlowMatchEulerDiscreteScheduler", {"shift": 5.0}, steps=4, sigmas=(1.0, 0.75, 0.5, 0.25), guidance_scale=1.0,
                   guidance_scale_2=1.0, height=720, width=1280, num_frames=81, fps=16),
            "Wan 2.2 Lightning (lightx2v) on T2V A14B: a LoRA per expert, 4 Euler steps at t = 1000, 937.5, 833.3, 625 "
            "(shift 5), no CFG", "Apache-2.0", family="wan", dtype="bfloat16",
            lora=f"hf://{lightning}/{lightning_folder}/high_noise_model.safetensors",
            lora_2=f"hf://{lightning}/{lightning_folder}/low_noise_model.safetensors",
            source=_src("wan2.2-t2v-a14b-lightning-4step", lightning, PARTIAL,
                        "ModelTC/Wan2.2-Lightning wan/configs/wan_t2v_A14B.py: sample_shift 5.0, sample_steps 4, boundary "
                        "0.875, sample_guide_scale (1.0, 1.0), high_noise_model.safetensors on the high-noise expert and "
                        "low_noise_model.safetensors on the low-noise one; its Euler solver (generate.py: 'use euler solver "
                        "because it's used in distillation') steps on linspace(1000, 0, 5)[:-1] shifted by 5, which "
                        "FlowMatchEulerDiscreteScheduler(shift=5) reproduces from sigmas 1, 0.75, 0.5, 0.25; adapter scale "
                        "1.0 as its merge (W += alpha/rank * up @ down); unverified: the LoRA card itself, the choice of the "
                        "Seko-V1.1 folder ('slightly better' than V1 in the README) and 720x1280 (the README names "
                        "720x1280 and 480x832)")),
    ]


LTX_NEGATIVE = "worst quality, inconsistent motion, blurry, jittery, distorted"


def _ltx_presets() -> list[ModelSpec]:
    """LTX-Video: the 0.9.x teacher through LTXPipeline, and the 0.9.7/0.9.8 distilled models through the
    condition pipeline in the docs' two passes around the latent upsampler."""
    base, d097, d098 = "Lightricks/LTX-Video", "Lightricks/LTX-Video-0.9.7-distilled", "Lightricks/LTX-Video-0.9.8-13B-distilled"
    first_pass = (1000, 993, 987, 981, 975, 909, 725, 0.03)
    second = {"timesteps": [1000, 909, 725, 421, 0], "denoise_strength": 0.999, "downscale_factor": 2 / 3, "adain_factor": 1.0}
    docs = ("diffusers docs ltx_video.md ({v}): LTXConditionPipeline bfloat16, pass 1 at 2/3 of {h}x{w} (rounded down to "
            "32 px) on timesteps [1000, 993, 987, 981, 975, 909, 725, 0.03], guidance_scale=1.0, the latent upsampler "
            "{up} with adain_factor=1.0{tone}, pass 2 at twice pass 1's size on [1000, 909, 725, 421, 0] with "
            "denoise_strength=0.999 (4 of its 5 steps), decode_timestep=0.05, decode_noise_scale=0.025, the negative "
            "prompt, num_frames={f}, frames resized to {h}x{w}, export fps=24 (pass 1's seven sigmas match Lightricks/"
            "LTX-Video's configs); unverified: the model card itself; guidance_rescale 0.7 and image_cond_noise_scale 0 "
            "do nothing without CFG or image conditions, so benchkit does not pass them")
    return [
        ModelSpec(
            "ltx-video", base,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=3.0, height=480, width=704, num_frames=161, fps=24,
                   negative_prompt=LTX_NEGATIVE),
            "LTX-Video teacher: shipped flow Euler (dynamic shift), 50 steps, CFG 3, 161 frames at 24 fps",
            "LTX-Video Open Weights License (unverified)", family="ltx", dtype="bfloat16",
            source=_src("ltx-video", base, CARD_COPY,
                        "the card's diffusers snippet as quoted verbatim elsewhere: LTXPipeline bfloat16, the negative "
                        "prompt, width=704, height=480, num_frames=161, num_inference_steps=50, export fps=24; guidance 3 "
                        "and decode_timestep 0 are the pipeline's defaults (the diffusers docs' variant uses 768x512 and "
                        "decode_timestep 0.03, decode_noise_scale 0.025)")),
        ModelSpec(
            "ltx-video-0.9.7-distilled", d097,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=len(first_pass), timesteps=first_pass, guidance_scale=1.0, height=768,
                   width=1152, num_frames=161, fps=24, negative_prompt=LTX_NEGATIVE, decode_timestep=0.05,
                   decode_noise_scale=0.025, second_pass=second),
            "LTX-Video 0.9.7 distilled: 8 steps at 2/3 size, latent upsampler 2x, 4 more steps, no CFG, 161 frames",
            "LTX-Video Open Weights License (unverified)", family="ltx-condition", dtype="bfloat16",
            upsampler="Lightricks/ltxv-spatial-upscaler-0.9.7",
            source=_src("ltx-video-0.9.7-distilled", d097, PARTIAL,
                        docs.format(v="0.9.7 snippet", h=768, w=1152, up="Lightricks/ltxv-spatial-upscaler-0.9.7", tone="",
                                    f=161))),
        ModelSpec(
            "ltx-video-0.9.8-13b-distilled", d098,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=len(first_pass), timesteps=first_pass, guidance_scale=1.0, height=480,
                   width=832, num_frames=361, fps=24, decode_timestep=0.05, decode_noise_scale=0.025,
                   negative_prompt="bright colors, symbols, graffiti, watermarks, " + LTX_NEGATIVE,
                   second_pass={**second, "tone_map_compression_ratio": 0.6}),
            "LTX-Video 0.9.8 13B distilled: 8 steps at 2/3 size, latent upsampler 2x (tone-mapped), 4 more steps, 361 frames",
            "LTX-Video Open Weights License (unverified)", family="ltx-condition", dtype="bfloat16",
            upsampler="a-r-r-o-w/LTX-0.9.8-Latent-Upsampler",
            source=_src("ltx-video-0.9.8-13b-distilled", d098, PARTIAL,
                        docs.format(v="its 0.9.8 variant", h=480, w=832, up="a-r-r-o-w/LTX-0.9.8-Latent-Upsampler "
                                    "(the docs' 'TODO: update once in the LTX org')", tone=" and tone_map_compression_ratio=0.6",
                                    f=361))),
    ]


PRESETS: dict[str, ModelSpec] = {spec.name: spec for spec in _presets()}


def resolve_spec(name_or_path: str) -> ModelSpec:
    """A preset name, a TOML spec file, or a folder holding a ``spec.toml``; else a one-line error."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise BenchkitError(f"spec file {path} does not exist; give a preset name (see `benchkit models`) or a TOML file")
        if path.is_dir():
            if (path / SPEC_FILE_IN_FOLDER).is_file():
                return load_spec_file(path / SPEC_FILE_IN_FOLDER, PRESETS)
            raise BenchkitError(f"{path} is a folder without {SPEC_FILE_IN_FOLDER}; give a preset name, a .toml spec "
                                f"whose 'base' points at the folder, or a `benchkit distill` output folder")
        return load_spec_file(path, PRESETS)
    close = [p for p in PRESETS if name_or_path.lower() in p.lower()]
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise BenchkitError(f"unknown model '{name_or_path}'{hint}: not a preset or a .toml file; `benchkit models` lists presets")
