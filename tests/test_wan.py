"""Wan 2.1: a tiny Wan-shaped model (video DiT over (1, 2, 2) patches, Wan's causal 3-D VAE with
per-channel statistics, UMT5) saved in the diffusers layout goes through the presets, the loader and
`benchkit eval`; clips equal WanPipeline's for the same noise, the noise is laid out channels first and
drawn per item, the VAE decodes in fp32 as the cards do, and the recipe reaches the scheduler exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_pipelines import build_wan

from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

ITEMS = [Item("a", "the digit one", 0), Item("b", "seven", 3)]


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    return build_wan(tmp_path_factory.mktemp("wan") / "w")


def recipe(**kw) -> Recipe:
    base = {"steps": 2, "guidance_scale": 5.0, "height": 16, "width": 16, "num_frames": 5, "max_sequence_length": 16,
            "negative_prompt": "blurry"}
    return Recipe("UniPCMultistepScheduler", {"flow_shift": 3.0}, **{**base, **kw})


def test_clips_equal_the_pipeline_for_the_same_noise(wan):
    from diffusers import UniPCMultistepScheduler, WanPipeline

    model = load_model(ModelSpec("w", str(wan), recipe()), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe())
    out = gen.generate(ITEMS)
    assert model.family == "wan" and len(out.videos) == 2 and out.videos[0].shape == (5, 16, 16, 3)
    assert np.array_equal(out.images[0], out.videos[0][0])  # the first frame is what image metrics score
    noise, _ = gen.initial_noise(ITEMS)
    assert noise.shape == (2, 16, 2, 2, 2)  # (B, C, F, H, W): 5 frames -> 2 latent frames, 16 px -> 2
    pipe = WanPipeline.from_pretrained(str(wan))
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=3.0)
    theirs = pipe([it.prompt for it in ITEMS], negative_prompt="blurry", latents=noise, output_type="np",
                  num_inference_steps=2, guidance_scale=5.0, height=16, width=16, num_frames=5,
                  max_sequence_length=16).frames
    assert np.abs(np.stack(out.videos).astype(np.float64) / 255 - theirs).max() <= 1 / 255 + 1e-5
    # CFG runs the negative prompt as a second call at each time: 2 rows per item per step, 2 steps
    reference = UniPCMultistepScheduler.from_config(pipe.scheduler.config)
    reference.set_timesteps(2)
    assert out.trace["denoiser_timesteps"] == pytest.approx([float(t) for t in reference.timesteps for _ in (0, 1)])
    assert out.stages["steps"] == 2 and out.stages["denoiser_rows_per_item"] == 4
    assert out.trace["classifier_free_guidance"] is True


def test_noise_is_per_item(wan):
    model = load_model(ModelSpec("w", str(wan), recipe()), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe())
    both, alone = gen.generate(ITEMS), gen.generate(ITEMS[1:])
    assert np.array_equal(both.videos[1], alone.videos[0])


def test_the_vae_decodes_in_fp32_whatever_the_model_dtype(wan):
    model = load_model(ModelSpec("w", str(wan), recipe()), torch.device("cpu"), torch.bfloat16)
    assert model.pipeline.vae.dtype == torch.float32 and model.pipeline.transformer.dtype == torch.bfloat16


def test_presets_follow_their_cards():
    small, big = PRESETS["wan2.1-t2v-1.3b"], PRESETS["wan2.1-t2v-14b"]
    assert (small.recipe.height, small.recipe.width, small.recipe.num_frames, small.recipe.fps) == (480, 832, 81, 16)
    assert small.recipe.scheduler_kwargs == {"flow_shift": 3.0} and big.recipe.scheduler_kwargs == {"flow_shift": 5.0}
    assert small.recipe.guidance_scale == 5.0 and small.recipe.negative_prompt.startswith("Bright tones, overexposed")
    distilled = PRESETS["wan2.1-t2v-14b-lightx2v-4step"]
    assert (distilled.recipe.steps, distilled.recipe.guidance_scale) == (4, 1.0) and "unverified" in distilled.source
    assert distilled.recipe.sigmas == (1.0, 0.75, 0.5, 0.25) and distilled.recipe.scheduler_kwargs == {"shift": 5.0}


def test_eval_end_to_end_through_a_preset(wan, tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "wan2.1-t2v-1.3b"\nbase = "{wan}"\ndtype = "float32"\n'
                         "[recipe]\nheight = 16\nwidth = 16\nnum_frames = 5\nsteps = 2\nmax_sequence_length = 16\n")
    results = run_eval(resolve_spec(str(spec_file)), load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c",
                       show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    model = manifest["model"]
    assert model["family"] == "wan" and model["num_frames"] == 5 and model["fps"] == 16
    assert model["scheduler"]["class"] == "UniPCMultistepScheduler" and model["scheduler"]["config"]["flow_shift"] == 3.0
    assert all(r["frames"] == "5" for r in records)
    assert {m["name"]: m["value"] for m in results["metrics"]}["nfe"] == 4  # 2 steps x (cond + negative)
    assert len(list((tmp_path / "run" / "videos").iterdir())) == 2
