"""Latent models (SD1.5-like: UNet on 4 latent channels + AutoencoderKL) go through the same
spec -> loader -> Generator -> RunDir path as the toy, and match diffusers' own pipeline."""

import json

import numpy as np
import pytest
import torch

from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.generation import Generator
from benchkit.models.loading import load_model
from benchkit.models.presets import resolve_spec
from benchkit.toy.teacher import SCHEDULER_CONFIG, build_text_encoder, build_tokenizer
from prompts import load_prompt_set


@pytest.fixture(scope="module")
def sd_like(tmp_path_factory):
    """A tiny SD1.5-shaped pipeline, random weights, saved with StableDiffusionPipeline.save_pretrained."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                                cross_attention_dim=32, attention_head_dim=8, norm_num_groups=16)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=16, sample_size=16)
    tokenizer = build_tokenizer()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=build_text_encoder(len(tokenizer)), tokenizer=tokenizer,
                                   unet=unet, scheduler=DDIMScheduler(**SCHEDULER_CONFIG), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    root = tmp_path_factory.mktemp("sd")
    pipe.save_pretrained(root / "model")
    spec_file = root / "sd.toml"
    spec_file.write_text('name = "tiny-sd"\nbase = "model"\n[recipe]\nscheduler = "ddim"\nsteps = 3\n'
                         'guidance_scale = 3.0\nscheduler_kwargs = { timestep_spacing = "trailing" }\n')
    return pipe, resolve_spec(str(spec_file))


def test_generator_matches_the_diffusers_pipeline(sd_like):
    from diffusers import DDIMScheduler

    pipe, spec = sd_like
    model = load_model(spec, torch.device("cpu"), torch.float32)
    gen = Generator(model, spec.recipe)
    assert (gen.height, gen.width) == (16, 16)
    items = [Item("a", "a handwritten digit seven", 0), Item("b", "the digit 3", 5)]
    out = gen.generate(items)
    ours = np.stack(out.images).astype(np.float64) / 255.0
    noise, _ = gen.initial_noise(items)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    theirs = pipe([it.prompt for it in items], num_inference_steps=3, guidance_scale=3.0, latents=noise,
                  output_type="np").images
    assert ours.shape == theirs.shape == (2, 16, 16, 3)
    assert np.abs(ours - theirs).max() <= 1 / 255 + 1e-6  # equal up to the uint8 rounding
    assert out.denoiser_calls == 6


def test_eval_runs_end_to_end_on_a_latent_model(sd_like, tmp_path):
    _, spec = sd_like
    results = run_eval(spec, load_prompt_set("toy-digits").limit(2), [0, 1], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=4, cache_dir=tmp_path / "c",
                       show_progress=False)  # toy metrics refuse a real model's images (tests/test_bad_inputs.py)
    values = {m["name"]: m["value"] for m in results["metrics"]}
    assert values["nfe"] == 6
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["resolution"] == [16, 16]
    assert any(f.startswith("vae/") for f in manifest["model"]["files"])
    from PIL import Image

    with Image.open(next((tmp_path / "run" / "images").iterdir())) as im:
        assert im.mode == "RGB" and im.size == (16, 16)


# ---- every family and every scheduler family the presets use, through presets overridden with local files ----

from tiny_pipelines import tiny  # noqa: E402,F401  (session fixture)


def trailing(n):
    return [float(round(1000 - i * 1000 / n) - 1) for i in range(n)]


def tcd_grid(n):
    """TCD's own grid for n steps, from a scheduler built outside benchkit."""
    from diffusers import TCDScheduler

    s = TCDScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items() if k != "clip_sample"})
    s.set_timesteps(n)
    return [float(t) for t in s.timesteps]


def flow_grid(n, shift=3.0):
    def sh(s):
        return shift * s / (1 + (shift - 1) * s)

    return list(1000 * sh(np.linspace(1.0, sh(1 / 1000), n)))


IMAGE = "[recipe]\nheight = 16\nwidth = 16\n"
VIDEO = "[recipe]\nheight = 32\nwidth = 32\nnum_frames = 9\nsteps = 2\n"
FAMILY_CASES = [
    # id, preset, tiny base, overrides, scheduler, prediction type, timesteps the denoiser must see, rows per item per step
    ("ddim-trailing-kohya-lora", "hyper-sd15-2step-lora", "sd15", 'lora = "{root}/sd15_kohya.safetensors"\n' + IMAGE,
     "DDIMScheduler", "epsilon", trailing(2), 1),
    ("euler-trailing-unet-safetensors", "sdxl-lightning-2step", "sdxl", 'weights = "{root}/sdxl_unet.safetensors"\n' + IMAGE,
     "EulerDiscreteScheduler", "epsilon", trailing(2), 1),
    ("euler-x0-prediction", "sdxl-lightning-1step", "sdxl", 'weights = "{root}/sdxl_unet.safetensors"\n' + IMAGE,
     "EulerDiscreteScheduler", "sample", [999.0], 1),
    ("lcm-explicit-timesteps-unet-bin", "dmd2-sdxl-4step", "sdxl", 'weights = "{root}/sdxl_unet_fp16.bin"\n' + IMAGE,
     "LCMScheduler", "epsilon", [999.0, 749.0, 499.0, 249.0], 1),
    ("tcd-eta-peft-lora", "tcd-lora-sdxl", "sdxl", 'lora = "{root}/sdxl_peft/lora.safetensors"\n' + IMAGE,
     "TCDScheduler", "epsilon", tcd_grid(4), 1),
    ("euler-ancestral-turbo", "sdxl-turbo", "sdxl", IMAGE, "EulerAncestralDiscreteScheduler", "epsilon", [999.0], 1),
    ("ddim-cfg-lora", "hyper-sdxl-8step-cfg-lora", "sdxl", 'lora = "{root}/sdxl_kohya.safetensors"\n' + IMAGE + "steps = 2\n",
     "DDIMScheduler", "epsilon", trailing(2), 2),
    ("flow-euler-cfg-lora-0.125", "hyper-sd3-4step-cfg-lora", "sd3", 'lora = "{root}/sd3_peft/lora.safetensors"\n' + IMAGE,
     "FlowMatchEulerDiscreteScheduler", None, flow_grid(4), 2),
    ("cogvideox-ddim", "cogvideox-2b", "cogvideox", VIDEO, "CogVideoXDDIMScheduler", "v_prediction", trailing(2), 2),
    ("cogvideox-dpm", "cogvideox-5b", "cogvideox", VIDEO + 'scheduler = "cogvideox-dpm"\nguidance_scale = 1.0\n',
     "CogVideoXDPMScheduler", "v_prediction", trailing(2), 1),
]


@pytest.mark.parametrize("case", FAMILY_CASES, ids=[c[0] for c in FAMILY_CASES])
def test_eval_end_to_end_with_each_preset_recipe(case, tiny, tmp_path):
    name, preset, base, overrides, scheduler, prediction, timesteps, rows = case
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "{preset}"\nbase = "{tiny[base]}"\n' + overrides.format(root=tiny["root"]))
    spec = resolve_spec(str(spec_file))
    results = run_eval(spec, load_prompt_set("toy-digits").limit(1), [0, 1], tmp_path / "run", metrics=["latency"],
                       device="cpu", batch_size=2, warmup_batches=1 if name == "cogvideox-ddim" else 0,
                       cache_dir=tmp_path / "c", show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    model = manifest["model"]
    assert model["family"] == base and model["scheduler"]["class"] == scheduler
    if prediction:
        assert model["scheduler"]["config"]["prediction_type"] == prediction
    # the timesteps the denoiser was actually called with, and one or two rows (CFG) per item per step
    assert records[0]["stages"]["timesteps"] == pytest.approx(timesteps, abs=1e-3)
    assert records[0]["stages"]["denoiser_rows_per_item"] == rows * len(timesteps)
    values = {m["name"]: m for m in results["metrics"]}
    assert values["nfe"]["value"] == rows * len(timesteps)
    assert values["latency_denoise_step"]["value"] > 0 and values["latency_vae_decode"]["value"] > 0
    if spec.lora:
        assert model["lora"]["scale"] == spec.lora_scale and model["lora"]["fused"]
        assert model["lora"]["format"] == ("peft" if "peft" in spec.lora else "kohya")
    if spec.recipe.eta is not None:
        assert spec.recipe.eta == 0.3  # TCD card's gamma, passed to the scheduler (not the pipeline's 0.0)
    if base == "cogvideox":
        assert model["num_frames"] == 9 and all(r["frames"] == "9" for r in records)
    if name == "cogvideox-ddim":  # the warm-up (cold) run is reported beside the warm p50
        assert values["latency_cold_image"]["n"] == 2


def test_sdxl_and_sd3_generators_match_their_diffusers_pipelines(tiny):
    """Decoding and conditioning (pooled embeds, add_time_ids, SD3's shift factor) equal the pipelines' own."""
    from diffusers import DiffusionPipeline

    from benchkit.models.sampling import make_generator
    from benchkit.models.spec import ModelSpec, Recipe

    items = [Item("a", "the digit one", 0), Item("b", "seven", 3)]
    for base, recipe, call in (
        ("sdxl", Recipe("euler", {"timestep_spacing": "trailing"}, steps=2, guidance_scale=4.0),
         {"num_inference_steps": 2, "guidance_scale": 4.0}),
        ("sd3", Recipe("model-default", steps=3, guidance_scale=2.0), {"num_inference_steps": 3, "guidance_scale": 2.0}),
    ):
        model = load_model(ModelSpec(base, str(tiny[base]), recipe), torch.device("cpu"), torch.float32)
        gen = make_generator(model, recipe)
        ours = np.stack(gen.generate(items).images).astype(np.float64) / 255
        noise, _ = gen.initial_noise(items)
        optional = {"text_encoder_3": None, "tokenizer_3": None} if base == "sd3" else {}  # SD3 without T5
        pipe = DiffusionPipeline.from_pretrained(str(tiny[base]), **optional)
        if base == "sdxl":
            from diffusers import EulerDiscreteScheduler

            pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
        theirs = pipe([it.prompt for it in items], latents=noise, output_type="np", **call).images
        assert ours.shape == theirs.shape == (2, 16, 16, 3)
        assert np.abs(ours - theirs).max() <= 1 / 255 + 1e-5, base


def test_stochastic_samplers_are_batch_independent(tiny):
    """LCM re-noises every step: per-item generators keep each image independent of its batch."""
    from benchkit.models.sampling import make_generator
    from benchkit.models.spec import ModelSpec, Recipe

    recipe = Recipe("lcm", steps=2, timesteps=(999, 499), guidance_scale=0.0)
    model = load_model(ModelSpec("x", str(tiny["sdxl"]), recipe), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe)
    items = [Item("a", "one", 0), Item("b", "two", 1), Item("c", "three", 2)]
    together = gen.generate(items).images
    alone = [gen.generate([it]).images[0] for it in items]
    assert all(np.array_equal(x, y) for x, y in zip(together, alone))
    assert not np.array_equal(together[0], together[1])
