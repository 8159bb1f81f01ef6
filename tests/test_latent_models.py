"""Latent models (SD1.5-like: UNet on 4 latent channels + AutoencoderKL) go through the same
spec -> loader -> Generator -> RunDir path as the toy, and match diffusers' own pipeline."""

import json

import numpy as np
import pytest
import torch

from benchkit.evaluate import run_eval
from benchkit.generation import Generator, Item
from benchkit.loading import load_model
from benchkit.presets import resolve_spec
from benchkit.toy.teacher import SCHEDULER_CONFIG, build_text_encoder, build_tokenizer
from prompts import load_prompt_set


@pytest.fixture(scope="module")
def sd_like(tmp_path_factory):
    """A tiny SD1.5-shaped pipeline, random weights, saved with StableDiffusionPipeline.save_pretrained."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

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
    ours = np.stack(gen.generate(items)).astype(np.float64) / 255.0
    noise, _ = gen.initial_noise(items)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    theirs = pipe([it.prompt for it in items], num_inference_steps=3, guidance_scale=3.0, latents=noise,
                  output_type="np").images
    assert ours.shape == theirs.shape == (2, 16, 16, 3)
    assert np.abs(ours - theirs).max() <= 1 / 255 + 1e-6  # equal up to the uint8 rounding
    assert gen.unet_calls_per_image == 6


def test_eval_runs_end_to_end_on_a_latent_model(sd_like, tmp_path):
    _, spec = sd_like
    results = run_eval(spec, load_prompt_set("toy-digits").limit(2), [0, 1], tmp_path / "run",
                       metrics=["toy-fid", "latency"], device="cpu", batch_size=4, cache_dir=tmp_path / "c",
                       show_progress=False)
    values = {m["name"]: m["value"] for m in results["metrics"]}
    assert values["nfe"] == 6
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["resolution"] == [16, 16]
    assert any(f.startswith("vae/") for f in manifest["model"]["files"])
    from PIL import Image

    with Image.open(next((tmp_path / "run" / "images").iterdir())) as im:
        assert im.mode == "RGB" and im.size == (16, 16)
