"""Z-Image: a tiny Z-Image-shaped model (single-stream DiT over 2x2 latent patches, Qwen3 with a chat
template) saved in the diffusers layout goes through the preset, the loader and `benchkit eval`; images
equal ZImagePipeline's for the same noise and the schedule reaches the transformer exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_pipelines import build_zimage

from benchkit.core.errors import BenchkitError
from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

ITEMS = [Item("a", "the digit one", 0), Item("b", "seven", 3)]


@pytest.fixture(scope="module")
def zimage(tmp_path_factory):
    return build_zimage(tmp_path_factory.mktemp("zimage") / "z")


def generate(base, recipe):
    model = load_model(ModelSpec("z", str(base), recipe), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe)
    return gen, gen.generate(ITEMS)


@pytest.mark.parametrize("steps,guidance", [(9, 0.0), (3, 2.0)])
def test_images_equal_the_pipeline_and_the_schedule_is_exact(zimage, steps, guidance):
    from diffusers import ZImagePipeline

    recipe = Recipe("model-default", steps=steps, guidance_scale=guidance, height=16, width=16, max_sequence_length=16)
    gen, out = generate(zimage, recipe)
    assert gen.model.family == "zimage"
    noise, _ = gen.initial_noise(ITEMS)
    theirs = ZImagePipeline.from_pretrained(str(zimage))([it.prompt for it in ITEMS], latents=noise, output_type="np",
                                                          num_inference_steps=steps, guidance_scale=guidance, height=16,
                                                          width=16, max_sequence_length=16).images
    assert np.abs(np.stack(out.images).astype(np.float64) / 255 - theirs).max() <= 1 / 255 + 1e-5
    # linspace(1, 1/N, N) shifted by 3 (the shipped config, no dynamic shift); the transformer sees 1 - sigma
    sigmas = [3 * s / (1 + 2 * s) for s in np.linspace(1.0, 1 / steps, steps)]
    assert out.trace["scheduler_sigmas"] == pytest.approx(sigmas + [0.0], abs=1e-6)
    assert out.trace["denoiser_timesteps"] == pytest.approx([1 - s for s in sigmas], abs=1e-6)
    rows = 2 if guidance > 1 else 1  # CFG runs the negative prompt in the same call (one latent per row)
    assert out.stages["denoiser_rows_per_item"] == rows * steps
    assert out.trace["classifier_free_guidance"] is (rows == 2)


def test_a_size_that_is_not_a_multiple_of_the_patched_vae_factor_is_refused(zimage):
    recipe = Recipe("model-default", steps=1, guidance_scale=0.0, height=18, width=16)
    model = load_model(ModelSpec("z", str(zimage), recipe), torch.device("cpu"), torch.float32)
    with pytest.raises(BenchkitError, match=r"^recipe.height/width must be multiples of 4 for this model, got 18x16$"):
        make_generator(model, recipe)


def test_eval_end_to_end_through_the_preset(zimage, tmp_path):
    turbo = PRESETS["z-image-turbo"]
    assert (turbo.family, turbo.dtype, turbo.recipe.steps, turbo.recipe.guidance_scale, turbo.recipe.height) == (
        "zimage", "bfloat16", 9, 0.0, 1024)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "z-image-turbo"\nbase = "{zimage}"\ndtype = "float32"\n'
                         "[recipe]\nheight = 16\nwidth = 16\nmax_sequence_length = 16\nsteps = 2\n")
    results = run_eval(resolve_spec(str(spec_file)), load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c",
                       show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["family"] == "zimage"
    assert {m["name"]: m["value"] for m in results["metrics"]}["nfe"] == 2
    assert len(list((tmp_path / "run" / "images").glob("*.png"))) == 2
