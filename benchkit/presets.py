"""Named model specs (presets) and resolving a user's `--model` argument to a spec.

Each preset is the model card's own recipe (see ``shared/research/distillers.md``): few-step
models only reach their published quality with the exact scheduler, spacing, timesteps,
guidance and LoRA scale, and a near miss silently gives worse numbers. Weights are never
downloaded: ``base`` is a Hugging Face repo id read from the local HF cache (or a local
folder), other files are ``hf://owner/name/path`` references; `benchkit models` says which
are present. A user's TOML spec can ``extends`` any preset and override any field.
"""

from __future__ import annotations

from pathlib import Path

from benchkit.errors import BenchkitError
from benchkit.spec import MODEL_DEFAULT_SCHEDULER, ModelSpec, Recipe, load_spec_file

TOY_TEACHER = "builtin:toy-digits"
SPEC_FILE_IN_FOLDER = "spec.toml"  # what `benchkit distill` writes next to its weights

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
SD3_MEDIUM = "stabilityai/stable-diffusion-3-medium-diffusers"
DMD2 = "tianweiy/DMD2"
HYPER = "ByteDance/Hyper-SD"
LIGHTNING = "ByteDance/SDXL-Lightning"

OPENRAIL_M = "CreativeML OpenRAIL-M"
OPENRAIL_PP = "CreativeML OpenRAIL++-M"
SAI_COMMUNITY = "Stability AI Community License"
SAI_NC = "Stability AI Non-Commercial Research Community License"
DMD2_LICENSE = "CC BY-NC 4.0 (weights; code CC BY-NC-SA 4.0)"
HYPER_LICENSE = "Hyper-SD model license (see the model card); base model's license applies"


def _card(repo: str) -> str:
    return f"https://huggingface.co/{repo}"


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
        ModelSpec("sd15", SD15, Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=7.5, height=512, width=512),
                  "Stable Diffusion 1.5 teacher: the card's pipe(prompt) defaults (shipped PNDM, 50 steps, CFG 7.5)",
                  OPENRAIL_M, family="sd15", source=_card(SD15)),
        ModelSpec("sdxl-base", SDXL, Recipe(MODEL_DEFAULT_SCHEDULER, steps=25, guidance_scale=5.0, height=1024, width=1024),
                  "SDXL-Base 1.0 teacher: shipped Euler, 25 steps, CFG 5 (VAE decoded in fp32)",
                  OPENRAIL_PP, family="sdxl", source=_card(SDXL)),
        ModelSpec("sd-turbo", "stabilityai/sd-turbo",
                  _no_cfg("euler-a", 1, 512, scheduler_kwargs={"timestep_spacing": "trailing"}),
                  "SD-Turbo (ADD, SD2.1): 1 step, no guidance, EulerAncestral trailing, 512px", SAI_NC,
                  family="sd15", source=_card("stabilityai/sd-turbo")),
        ModelSpec("sdxl-turbo", "stabilityai/sdxl-turbo",
                  _no_cfg("euler-a", 1, 512, scheduler_kwargs={"timestep_spacing": "trailing"}),
                  "SDXL-Turbo (ADD): 1 step, no guidance, EulerAncestral trailing, 512px", SAI_NC,
                  family="sdxl", source=_card("stabilityai/sdxl-turbo")),
        ModelSpec("sdxl-turbo-4step", "stabilityai/sdxl-turbo",
                  _no_cfg("euler-a", 4, 512, scheduler_kwargs={"timestep_spacing": "trailing"}),
                  "SDXL-Turbo at its largest card step count (4), 512px", SAI_NC,
                  family="sdxl", source=_card("stabilityai/sdxl-turbo")),
        ModelSpec("lcm-lora-sd15", SD15, Recipe("lcm", steps=4, guidance_scale=1.0, height=512, width=512),
                  "LCM-LoRA on SD1.5: LCMScheduler, 4 steps, no CFG", OPENRAIL_PP, family="sd15",
                  lora="hf://latent-consistency/lcm-lora-sdv1-5/pytorch_lora_weights.safetensors",
                  source=_card("latent-consistency/lcm-lora-sdv1-5")),
        ModelSpec("lcm-lora-sdxl", SDXL, Recipe("lcm", steps=4, guidance_scale=1.0, height=1024, width=1024),
                  "LCM-LoRA on SDXL: LCMScheduler, 4 steps, no CFG", OPENRAIL_PP, family="sdxl",
                  lora="hf://latent-consistency/lcm-lora-sdxl/pytorch_lora_weights.safetensors",
                  source=_card("latent-consistency/lcm-lora-sdxl")),
        ModelSpec("tcd-lora-sd15", SD15, _no_cfg("tcd", 4, 512, eta=0.3),
                  "TCD-LoRA on SD1.5: TCDScheduler, 4 steps, eta (gamma) 0.3, no CFG", "MIT", family="sd15",
                  lora="hf://h1t/TCD-SD15-LoRA/pytorch_lora_weights.safetensors", source=_card("h1t/TCD-SD15-LoRA")),
        ModelSpec("tcd-lora-sdxl", SDXL, _no_cfg("tcd", 4, 1024, eta=0.3),
                  "TCD-LoRA on SDXL: TCDScheduler, 4 steps, eta (gamma) 0.3, no CFG", "MIT", family="sdxl",
                  lora="hf://h1t/TCD-SDXL-LoRA/pytorch_lora_weights.safetensors", source=_card("h1t/TCD-SDXL-LoRA")),
        ModelSpec("ssd-1b", "segmind/SSD-1B",
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=5.0, height=1024, width=1024),
                  "Segmind SSD-1B (distilled SDXL): the card's pipe(prompt) defaults (50 steps, CFG 5)", "Apache-2.0",
                  family="sdxl", source=_card("segmind/SSD-1B")),
        ModelSpec("segmind-vega", "segmind/Segmind-Vega",
                  Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=5.0, height=1024, width=1024),
                  "Segmind-Vega (distilled SDXL): the card's pipe(prompt) defaults (50 steps, CFG 5)", "Apache-2.0",
                  family="sdxl", source=_card("segmind/Segmind-Vega")),
        ModelSpec("segmind-vegart", "segmind/Segmind-Vega", _no_cfg("lcm", 4, 1024),
                  "Segmind-VegaRT: LCM-LoRA of Vega, LCMScheduler, 4 steps, no CFG", "Apache-2.0", family="sdxl",
                  lora="hf://segmind/Segmind-VegaRT/pytorch_lora_weights.safetensors",
                  source=_card("segmind/Segmind-VegaRT")),
        ModelSpec("sdxs-512-0.9", "IDKiro/sdxs-512-0.9", _no_cfg(MODEL_DEFAULT_SCHEDULER, 1, 512),
                  "SDXS-512 0.9 (one-step student of SD-Turbo, tiny VAE): 1 step, no CFG", OPENRAIL_PP,
                  family="sd15", source=_card("IDKiro/sdxs-512-0.9")),
        ModelSpec("sdxs-512-dreamshaper", "IDKiro/sdxs-512-dreamshaper", _no_cfg(MODEL_DEFAULT_SCHEDULER, 1, 512),
                  "SDXS-512 DreamShaper: 1 step, no CFG", OPENRAIL_PP, family="sd15",
                  source=_card("IDKiro/sdxs-512-dreamshaper")),
    ]
    for repo, what in (("nota-ai/bk-sdm-tiny", "BK-SDM-Tiny (0.33B UNet, from SD1.4)"),
                       ("segmind/tiny-sd", "Segmind tiny-sd (BK-SDM-style SD1.5 distillation)"),
                       ("segmind/small-sd", "Segmind small-sd (BK-SDM-style SD1.5 distillation)")):
        specs.append(ModelSpec(repo.split("/")[1].lower(), repo,
                               Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=7.5, height=512, width=512),
                               f"{what}: the card's pipe(prompt) defaults (50 steps, CFG 7.5)", OPENRAIL_M,
                               family="sd15", source=_card(repo)))
    # ---- DMD2 (tianweiy/DMD2): LCMScheduler step == DMD2's sampler; timesteps always explicit --
    lcm4 = Recipe("lcm", steps=4, timesteps=(999, 749, 499, 249), guidance_scale=0.0, height=1024, width=1024)
    specs += [
        ModelSpec("dmd2-sdxl-4step", SDXL, lcm4, "DMD2 SDXL 4-step UNet: LCM, t=999,749,499,249, no CFG",
                  DMD2_LICENSE, family="sdxl", weights=f"hf://{DMD2}/dmd2_sdxl_4step_unet_fp16.bin", source=_card(DMD2)),
        ModelSpec("dmd2-sdxl-4step-lora", SDXL, lcm4,
                  "DMD2 SDXL 4-step LoRA (kohya, rank 64 / alpha 8) fused at scale 1.0: LCM, t=999,749,499,249",
                  DMD2_LICENSE, family="sdxl", lora=f"hf://{DMD2}/dmd2_sdxl_4step_lora_fp16.safetensors",
                  source=_card(DMD2)),
        ModelSpec("dmd2-sdxl-1step", SDXL,
                  Recipe("lcm", steps=1, timesteps=(399,), guidance_scale=0.0, height=1024, width=1024),
                  "DMD2 SDXL 1-step UNet: LCM, pure noise labelled t=399, no CFG", DMD2_LICENSE, family="sdxl",
                  weights=f"hf://{DMD2}/dmd2_sdxl_1step_unet_fp16.bin", source=_card(DMD2)),
        ModelSpec("dmd2-sd15-1step", SD15,
                  Recipe("lcm", steps=1, timesteps=(999,), guidance_scale=0.0, height=512, width=512),
                  "DMD2 SD1.5 1-step UNet (FID 8.35 checkpoint): one step from pure noise at t=999, no CFG",
                  DMD2_LICENSE, family="sd15",
                  weights=f"hf://{DMD2}/model/sdv1.5/laion6.25_sd_baseline_8node_guidance1.75_lr5e-7_seed10_dfake10_"
                          "diffusion1000_gan1e-3_resume_fid8.35_checkpoint_model_041000/pytorch_model.bin",
                  source=_card(DMD2)),
    ]
    # ---- Hyper-SD (ByteDance/Hyper-SD) ----------------------------------------------------
    for fam, prefix, base, size in (("sdxl", "Hyper-SDXL", SDXL, 1024), ("sd15", "Hyper-SD15", SD15, 512)):
        tag = "sdxl" if fam == "sdxl" else "sd15"
        for n in (2, 4, 8):
            specs.append(ModelSpec(
                f"hyper-{tag}-{n}step-lora", base,
                _no_cfg("ddim", n, size, scheduler_kwargs={"timestep_spacing": "trailing"}),
                f"Hyper-SD {n}-step LoRA on {fam.upper()}: DDIM trailing, {n} steps, no CFG, fused at 1.0",
                HYPER_LICENSE, family=fam, lora=f"hf://{HYPER}/{prefix}-{n}steps-lora.safetensors", source=_card(HYPER)))
        specs.append(ModelSpec(
            f"hyper-{tag}-1step-lora", base, _no_cfg("tcd", 1, size, eta=1.0),
            f"Hyper-SD unified LoRA on {fam.upper()} (1-8 steps): TCD, 1 step, eta 1.0, no CFG",
            HYPER_LICENSE, family=fam, lora=f"hf://{HYPER}/{prefix}-1step-lora.safetensors", source=_card(HYPER)))
        for n in (8, 12):
            specs.append(ModelSpec(
                f"hyper-{tag}-{n}step-cfg-lora", base,
                Recipe("ddim", {"timestep_spacing": "trailing"}, steps=n, guidance_scale=5.0, height=size, width=size),
                f"Hyper-SD {n}-step CFG LoRA on {fam.upper()}: DDIM trailing, CFG 5 (card: 5-8)",
                HYPER_LICENSE, family=fam, lora=f"hf://{HYPER}/{prefix}-{n}steps-CFG-lora.safetensors",
                source=_card(HYPER)))
    specs.append(ModelSpec(
        "hyper-sdxl-1step-unet", SDXL, Recipe("lcm", steps=1, timesteps=(800,), guidance_scale=0.0, height=1024, width=1024),
        "Hyper-SDXL 1-step UNet: LCM, t=800, no CFG", HYPER_LICENSE, family="sdxl",
        weights=f"hf://{HYPER}/Hyper-SDXL-1step-Unet.safetensors", source=_card(HYPER)))
    for n, cfg in ((4, 3.0), (8, 5.0), (16, 7.0)):
        specs.append(ModelSpec(
            f"hyper-sd3-{n}step-cfg-lora", SD3_MEDIUM,
            Recipe(MODEL_DEFAULT_SCHEDULER, steps=n, guidance_scale=cfg, height=1024, width=1024),
            f"Hyper-SD3 {n}-step CFG LoRA fused at lora_scale 0.125: flow-matching Euler, CFG {cfg:g}",
            HYPER_LICENSE + "; SD3: " + SAI_COMMUNITY, family="sd3",
            lora=f"hf://{HYPER}/Hyper-SD3-{n}steps-CFG-lora.safetensors", lora_scale=0.125, source=_card(HYPER)))
    # ---- SDXL-Lightning (ByteDance/SDXL-Lightning): Euler trailing, no CFG --------------------
    euler_trailing = {"timestep_spacing": "trailing"}
    for n in (2, 4, 8):
        specs.append(ModelSpec(
            f"sdxl-lightning-{n}step", SDXL, _no_cfg("euler", n, 1024, scheduler_kwargs=euler_trailing),
            f"SDXL-Lightning {n}-step UNet: Euler trailing, {n} steps, no CFG", OPENRAIL_PP, family="sdxl",
            weights=f"hf://{LIGHTNING}/sdxl_lightning_{n}step_unet.safetensors", source=_card(LIGHTNING)))
        specs.append(ModelSpec(
            f"sdxl-lightning-{n}step-lora", SDXL, _no_cfg("euler", n, 1024, scheduler_kwargs=euler_trailing),
            f"SDXL-Lightning {n}-step LoRA fused at 1.0: Euler trailing, {n} steps, no CFG", OPENRAIL_PP,
            family="sdxl", lora=f"hf://{LIGHTNING}/sdxl_lightning_{n}step_lora.safetensors", source=_card(LIGHTNING)))
    specs.append(ModelSpec(
        "sdxl-lightning-1step", SDXL,
        _no_cfg("euler", 1, 1024, scheduler_kwargs={"timestep_spacing": "trailing", "prediction_type": "sample"}),
        "SDXL-Lightning 1-step x0 UNet (experimental): Euler trailing, prediction_type sample, no CFG",
        OPENRAIL_PP, family="sdxl", weights=f"hf://{LIGHTNING}/sdxl_lightning_1step_unet_x0.safetensors",
        source=_card(LIGHTNING)))
    # ---- SD3 / SD3.5 teachers (flow matching; the students of ADM are evaluated against them) -
    for name, repo, steps, cfg, dtype in (
        ("sd3-medium", SD3_MEDIUM, 28, 7.0, "float16"),
        ("sd3.5-medium", "stabilityai/stable-diffusion-3.5-medium", 40, 4.5, "bfloat16"),
        ("sd3.5-large", "stabilityai/stable-diffusion-3.5-large", 28, 3.5, "bfloat16"),
    ):
        specs.append(ModelSpec(
            name, repo, Recipe(MODEL_DEFAULT_SCHEDULER, steps=steps, guidance_scale=cfg, height=1024, width=1024),
            f"{name.upper()} teacher: flow-matching Euler (shipped), {steps} steps, CFG {cfg:g}", SAI_COMMUNITY,
            family="sd3", dtype=dtype, source=_card(repo)))
    # ---- video teachers (ADM's): CogVideoX, 49 frames at 8 fps, 720x480 ----------------------
    for name, repo, dtype, lic in (("cogvideox-2b", "THUDM/CogVideoX-2b", "float16", "Apache-2.0"),
                                   ("cogvideox-5b", "THUDM/CogVideoX-5b", "bfloat16", "CogVideoX License")):
        specs.append(ModelSpec(
            name, repo, Recipe(MODEL_DEFAULT_SCHEDULER, steps=50, guidance_scale=6.0, height=480, width=720,
                               num_frames=49, fps=8),
            f"{name} video teacher: shipped CogVideoX scheduler, 50 steps, CFG 6, 49 frames, 8 fps", lic,
            family="cogvideox", dtype=dtype, source=_card(repo)))
    return specs


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
