"""Presets: every system the issue names, each with its model card's recipe, and proof that the
recipe reaches the scheduler (closed-form timestep grids, not values read back from presets)."""

import json

import numpy as np
import pytest
import torch
from tiny_pipelines import tiny  # noqa: F401  (session fixture)

from benchkit.models.generation import make_scheduler, set_timesteps
from benchkit.models.presets import PRESETS
from benchkit.models.spec import spec_hash
from benchkit.toy.teacher import SCHEDULER_CONFIG

REQUIRED = [
    "sd15", "sdxl-base", "sd-turbo", "sdxl-turbo", "lcm-lora-sd15", "lcm-lora-sdxl", "tcd-lora-sd15", "tcd-lora-sdxl",
    "ssd-1b", "segmind-vega", "segmind-vegart", "sdxs-512-0.9", "sdxs-512-dreamshaper", "bk-sdm-tiny", "tiny-sd",
    "small-sd", "dmd2-sdxl-4step", "dmd2-sdxl-4step-lora", "dmd2-sdxl-1step", "dmd2-sd15-1step",
    *(f"hyper-{b}-{n}step-lora" for b in ("sdxl", "sd15") for n in (1, 2, 4, 8)),
    *(f"hyper-{b}-{n}step-cfg-lora" for b in ("sdxl", "sd15") for n in (8, 12)),
    "hyper-sdxl-1step-unet", *(f"hyper-sd3-{n}step-cfg-lora" for n in (4, 8, 16)),
    *(f"sdxl-lightning-{n}step" for n in (1, 2, 4, 8)), *(f"sdxl-lightning-{n}step-lora" for n in (2, 4, 8)),
    "sd3-medium", "sd3.5-medium", "sd3.5-large", "cogvideox-2b", "cogvideox-5b",
]


def trailing(n: int) -> list[int]:
    """diffusers' 'trailing' spacing in closed form: t_i = round(1000 - i * 1000 / n) - 1."""
    return [int(round(1000 - i * 1000 / n)) - 1 for i in range(n)]


def test_every_system_of_the_issue_has_a_preset():
    missing = [name for name in REQUIRED if name not in PRESETS]
    assert not missing
    for spec in PRESETS.values():
        assert spec.license and spec.description and spec.recipe.steps >= 1
        if spec.name != "toy-digits":
            assert spec.family and spec.source.startswith("https://huggingface.co/")
            assert spec.recipe.height and spec.recipe.width


@pytest.mark.parametrize(
    "name, scheduler, timesteps, guidance, extra",
    [
        ("dmd2-sdxl-4step", "LCMScheduler", [999, 749, 499, 249], 0.0, {"weights": "dmd2_sdxl_4step_unet_fp16.bin"}),
        ("dmd2-sdxl-4step-lora", "LCMScheduler", [999, 749, 499, 249], 0.0, {"lora_scale": 1.0, "lora_fused": True}),
        ("dmd2-sdxl-1step", "LCMScheduler", [399], 0.0, {"weights": "dmd2_sdxl_1step_unet_fp16.bin"}),
        ("dmd2-sd15-1step", "LCMScheduler", [999], 0.0, {"weights": "pytorch_model.bin"}),
        ("hyper-sdxl-1step-unet", "LCMScheduler", [800], 0.0, {"weights": "Hyper-SDXL-1step-Unet.safetensors"}),
        ("hyper-sdxl-4step-lora", "DDIMScheduler", trailing(4), 0.0, {"lora": "Hyper-SDXL-4steps-lora.safetensors"}),
        ("hyper-sd15-2step-lora", "DDIMScheduler", trailing(2), 0.0, {"lora": "Hyper-SD15-2steps-lora.safetensors"}),
        ("hyper-sdxl-8step-lora", "DDIMScheduler", trailing(8), 0.0, {}),
        ("hyper-sdxl-12step-cfg-lora", "DDIMScheduler", trailing(12), 5.0, {"lora": "Hyper-SDXL-12steps-CFG-lora.safetensors"}),
        ("hyper-sd15-8step-cfg-lora", "DDIMScheduler", trailing(8), 5.0, {}),
        ("sdxl-lightning-2step", "EulerDiscreteScheduler", [999, 499], 0.0, {"weights": "sdxl_lightning_2step_unet.safetensors"}),
        ("sdxl-lightning-4step-lora", "EulerDiscreteScheduler", trailing(4), 0.0, {"lora": "sdxl_lightning_4step_lora.safetensors"}),
        ("sdxl-lightning-8step", "EulerDiscreteScheduler", trailing(8), 0.0, {}),
        ("sdxl-lightning-1step", "EulerDiscreteScheduler", [999], 0.0, {"weights": "sdxl_lightning_1step_unet_x0.safetensors"}),
        ("sdxl-turbo", "EulerAncestralDiscreteScheduler", [999], 0.0, {}),
        ("sdxl-turbo-4step", "EulerAncestralDiscreteScheduler", trailing(4), 0.0, {}),
        # SD-Turbo's own scheduler_config.json is EulerDiscreteScheduler (trailing), not EulerAncestral
        ("sd-turbo", "EulerDiscreteScheduler", [999], 0.0, {}),
        ("tcd-lora-sd15", "TCDScheduler", None, 0.0, {"lora": "h1t/TCD-SD15-LoRA/pytorch_lora_weights.safetensors"}),
        ("segmind-vegart", "LCMScheduler", None, 0.0,
         {"lora": "segmind/Segmind-VegaRT/pytorch_lora_weights.safetensors"}),
    ],
)
def test_card_recipes_reach_the_scheduler(name, scheduler, timesteps, guidance, extra):
    spec = PRESETS[name]
    base = {"_class_name": "EulerDiscreteScheduler", **SCHEDULER_CONFIG}  # SD/SDXL's shipped schedule
    sched = make_scheduler(spec.recipe, base)
    set_timesteps(sched, spec.recipe, torch.device("cpu"))
    assert type(sched).__name__ == scheduler
    if timesteps is not None:  # TCD/LCM grids depend on original_inference_steps; the class and step count suffice
        assert [int(t) for t in sched.timesteps] == timesteps
    assert len(sched.timesteps) == spec.recipe.steps
    assert spec.recipe.guidance_scale == guidance and spec.recipe.uses_cfg == (guidance > 1)
    expected_prediction = "sample" if name == "sdxl-lightning-1step" else "epsilon"
    assert sched.config.prediction_type == expected_prediction
    for field, value in extra.items():
        got = getattr(spec, field)
        assert (got.endswith("/" + value) if isinstance(value, str) else got == value), (field, got)


def test_card_specifics():
    assert PRESETS["tcd-lora-sdxl"].recipe.eta == 0.3 and PRESETS["tcd-lora-sdxl"].recipe.scheduler_class == "TCDScheduler"
    # the TCD-SD15 card: 4 steps, eta 0.3, guidance 0 on runwayml/stable-diffusion-v1-5 (SD15 is its mirror), MIT
    tcd15 = PRESETS["tcd-lora-sd15"]
    assert (tcd15.recipe.steps, tcd15.recipe.eta, tcd15.base, tcd15.license) == (4, 0.3, PRESETS["sd15"].base, "MIT")
    # the VegaRT card: Segmind-Vega + LCM LoRA, 4 steps, guidance 0; license apache-2.0
    vegart = PRESETS["segmind-vegart"]
    assert (vegart.base, vegart.recipe.steps, vegart.recipe.uses_cfg, vegart.license) == (
        "segmind/Segmind-Vega", 4, False, "Apache-2.0")
    assert "OpenRAIL++" in PRESETS["hyper-sdxl-8step-lora"].license  # Hyper-SD card metadata: openrail++
    for base in ("sdxl", "sd15"):
        unified = PRESETS[f"hyper-{base}-1step-lora"]
        assert unified.recipe.scheduler_class == "TCDScheduler" and unified.recipe.eta == 1.0 and unified.recipe.steps == 1
    for n, cfg in ((4, 3.0), (8, 5.0), (16, 7.0)):
        spec = PRESETS[f"hyper-sd3-{n}step-cfg-lora"]
        assert spec.lora_scale == 0.125 and spec.recipe.guidance_scale == cfg and spec.recipe.steps == n
    assert {PRESETS[n].recipe.height for n in ("sdxl-turbo", "sd-turbo", "sdxs-512-0.9", "sd15")} == {512}
    assert PRESETS["lcm-lora-sdxl"].recipe.scheduler_class == "LCMScheduler" and not PRESETS["lcm-lora-sdxl"].recipe.uses_cfg
    video = PRESETS["cogvideox-2b"].recipe
    assert (video.num_frames, video.fps, video.height, video.width, video.guidance_scale) == (49, 8, 480, 720, 6.0)
    assert PRESETS["sd3-medium"].recipe.steps == 28 and PRESETS["sd3-medium"].recipe.guidance_scale == 7.0


def test_flow_matching_teacher_reaches_the_scheduler():
    """SD3's shipped FlowMatchEulerDiscreteScheduler (shift 3): diffusers' grid in closed form."""
    spec = PRESETS["sd3-medium"]
    sched = make_scheduler(spec.recipe, {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
                                         "shift": 3.0})
    set_timesteps(sched, spec.recipe, torch.device("cpu"))

    def shift(s):
        return 3.0 * s / (1 + 2.0 * s)

    # diffusers: linspace between t(sigma_max) and t(sigma_min) of the shifted training sigmas, shifted again
    expected = 1000 * shift(np.linspace(1.0, shift(1 / 1000), 28))
    assert np.allclose(sched.timesteps.numpy(), expected, atol=1e-3)


def test_toy_identity_is_unchanged_by_the_new_fields():
    """The toy's spec hash is part of the demo's run identity: new spec fields are left out at their defaults."""
    spec = PRESETS["toy-digits"]
    assert set(spec.identity()) == {"base", "recipe", "dtype"}
    assert "num_frames" not in spec.identity()["recipe"]
    assert spec_hash(spec, "w") == "{}".format(spec_hash(spec, "w"))  # stable within a process
    import dataclasses

    assert spec_hash(dataclasses.replace(spec, lora="x.safetensors"), "w") != spec_hash(spec, "w")


def test_models_command_lists_files_and_presence(cli, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    code, out, err = cli("models", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(REQUIRED) <= set(rows)
    assert rows["toy-digits"]["present"] is True
    dmd2 = rows["dmd2-sdxl-4step"]
    assert dmd2["present"] is False
    assert [(f["field"], f["repo"], f["present"]) for f in dmd2["files"]] == [
        ("base", "stabilityai/stable-diffusion-xl-base-1.0", False), ("weights", "tianweiy/DMD2", False)]
    assert dmd2["files"][1]["path_in_repo"] == "dmd2_sdxl_4step_unet_fp16.bin"
    assert rows["cogvideox-2b"]["resolution"] == [480, 720]
    code, out, _ = cli("models")
    assert code == 0 and "dmd2-sdxl-4step" in out and "missing" in out


def test_presence_follows_the_hf_cache_and_eval_names_what_is_missing(cli, tiny, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hub"
    repo = cache / "models--stabilityai--stable-diffusion-xl-base-1.0"
    shutil.copytree(tiny["sdxl"], repo / "snapshots" / ("a" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    code, out, _ = cli("models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["sdxl-base"]["present"] is True
    assert [f["present"] for f in rows["dmd2-sdxl-4step"]["files"]] == [True, False]
    code, out, err = cli("eval", "-m", "dmd2-sdxl-4step", "--device", "cpu", "--limit", "1", "--seeds", "0",
                         "--out", str(tmp_path / "run"), "-q")
    assert code == 2 and "Traceback" not in err
    line = err.strip()
    assert "\n" not in line and "dmd2_sdxl_4step_unet_fp16.bin" in line and "hf download tianweiy/DMD2" in line


def test_every_preset_says_how_its_recipe_was_checked():
    """Provenance: each preset's source names its card and how the recipe was verified; a partly
    verified preset names what is unverified (README "Preset provenance")."""
    from benchkit.models.presets import CARD, CARD_COPY, PARTIAL, PROVENANCE

    assert set(PROVENANCE) == set(PRESETS) - {"toy-digits"}
    for name, (status, note) in PROVENANCE.items():
        assert status in (CARD, CARD_COPY, PARTIAL), name
        assert PRESETS[name].source.endswith(f"({status}: {note})"), name
        if status == PARTIAL:
            assert any(w in note for w in ("unverified", "inferred", "not the card", "not found", "no diffusers snippet")), name


# Presets whose card just calls pipe(prompt) (or passes the defaults): diffusers' own __call__
# defaults are the independent reference for steps and guidance.
PIPE_DEFAULT_PRESETS = {
    "StableDiffusionPipeline": ("sd15", "bk-sdm-tiny", "tiny-sd", "small-sd"),
    "StableDiffusionXLPipeline": ("sdxl-base", "ssd-1b", "segmind-vega"),
    "StableDiffusion3Pipeline": ("sd3-medium",),
    "HunyuanVideoImageToVideoPipeline": ("hunyuanvideo-i2v-33ch",),  # the example passes guidance 1, the default
    "LTXPipeline": ("ltx-video",),  # the card's snippet sets steps (50, the default) and no guidance
}


@pytest.mark.parametrize("pipeline, names", PIPE_DEFAULT_PRESETS.items())
def test_pipe_default_cards_match_the_diffusers_call_defaults(pipeline, names):
    import inspect

    import diffusers

    params = inspect.signature(getattr(diffusers, pipeline).__call__).parameters
    for name in names:
        recipe = PRESETS[name].recipe
        assert recipe.scheduler == "model-default", name
        assert (recipe.steps, recipe.guidance_scale) == (params["num_inference_steps"].default,
                                                         params["guidance_scale"].default), name


def test_cfg_lora_and_teacher_budget_presets_stay_partial():
    """No card snippet exists for the Hyper-SD15/SDXL CFG LoRAs, sdxl-turbo at 4 steps, or DMD2's SD1.5
    checkpoint, and the 25-step SDXL teacher is benchkit's own budget: none may claim a card."""
    from benchkit.models.presets import PARTIAL, PROVENANCE

    partial = {name for name, (status, _) in PROVENANCE.items() if status == PARTIAL}
    assert partial == {"sdxl-base-25step", "sdxl-turbo-4step", "dmd2-sd15-1step",
                       *(f"hyper-{b}-{n}step-cfg-lora" for b in ("sdxl", "sd15") for n in (8, 12)),
                       # FLUX cards not in the stored material (only copies of schnell's and Hyper 8-step's)
                       "flux.1-dev", "flux.1-turbo-alpha", "hyper-flux.1-dev-16step-lora",
                       # lightx2v's cards not stored: the LoRA file name and solver of 2.1's, the folder and size of 2.2's
                       "wan2.1-t2v-14b-lightx2v-4step", "wan2.2-t2v-a14b-lightning-4step",
                       # diffusers' example stands in for the cards
                       "hunyuanvideo-i2v", "hunyuanvideo-i2v-33ch",
                       # the distilled LTX recipes come from diffusers' docs, not the cards
                       "ltx-video-0.9.7-distilled", "ltx-video-0.9.8-13b-distilled",
                       # the I2V card not stored; its snippet fits the size to each image, benchkit does not
                       "wan2.1-i2v-14b-480p"}


def test_values_corrected_against_the_cards():
    assert PRESETS["sdxl-base-25step"].recipe.steps == 25  # the issue's budget, kept as its own preset
    for name in ("lcm-lora-sd15", "lcm-lora-sdxl"):  # the LCM-LoRA cards pass guidance_scale=0
        assert PRESETS[name].recipe.guidance_scale == 0.0 and PRESETS[name].recipe.scheduler_class == "LCMScheduler"
    assert PRESETS["sdxs-512-0.9"].dtype == "float32"  # its TAESD decoder is poor in fp16 (card)
    assert all(PRESETS[f"hyper-sd3-{n}step-cfg-lora"].dtype == "float16" for n in (4, 8, 16))
    # the FID-8.35 row of DMD2's experiments/sdv1.5/README.md; inference needs only pytorch_model.bin
    assert PRESETS["dmd2-sd15-1step"].weights.endswith(
        "/model/sdv1.5/laion6.25_sd_baseline_8node_guidance1.75_lr5e-7_seed10_dfake10_diffusion1000_gan1e-3_resume_"
        "fid8.35_checkpoint_model_041000/pytorch_model.bin")


def test_sd35_large_turbo_follows_its_card():
    turbo = PRESETS["sd3.5-large-turbo"]
    assert (turbo.family, turbo.dtype, turbo.recipe.scheduler, turbo.recipe.steps, turbo.recipe.guidance_scale,
            turbo.recipe.height) == ("sd3", "bfloat16", "model-default", 4, 0.0, 1024)
    assert not turbo.recipe.uses_cfg
