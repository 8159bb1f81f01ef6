"""HunyuanVideo: a tiny HunyuanVideo-shaped model (dual- and single-stream video DiT with guidance embedding,
causal 3-D VAE, Llama + pooled CLIP) saved in the diffusers layout goes through the preset, the loader and
`benchkit eval`; clips equal HunyuanVideoPipeline's for the same noise and the guidance is embedded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_pipelines import build_hunyuanvideo

from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

ITEMS = [Item("a", "the digit one", 0), Item("b", "seven", 3)]


@pytest.fixture(scope="module")
def hunyuan(tmp_path_factory):
    return build_hunyuanvideo(tmp_path_factory.mktemp("hunyuan") / "h")


def test_clips_equal_the_pipeline_and_guidance_is_an_input(hunyuan):
    from diffusers import HunyuanVideoPipeline

    recipe = Recipe("model-default", steps=2, guidance_scale=6.0, height=16, width=16, num_frames=5,
                    max_sequence_length=16)
    model = load_model(ModelSpec("h", str(hunyuan), recipe), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe)
    guidance = []
    model.pipeline.transformer.register_forward_pre_hook(
        lambda m, a, kw: guidance.append(kw["guidance"].reshape(-1).tolist()), with_kwargs=True)
    out = gen.generate(ITEMS)
    assert model.family == "hunyuanvideo" and out.videos[0].shape == (5, 16, 16, 3)
    noise, _ = gen.initial_noise(ITEMS)
    assert noise.shape == (2, 4, 2, 2, 2)  # channels first: 5 frames -> 2, 16 px -> 2
    theirs = HunyuanVideoPipeline.from_pretrained(str(hunyuan))([it.prompt for it in ITEMS], latents=noise, output_type="np",
                                                                num_inference_steps=2, guidance_scale=6.0, height=16,
                                                                width=16, num_frames=5, max_sequence_length=16).frames
    assert np.abs(np.stack(out.videos).astype(np.float64) / 255 - theirs).max() <= 1 / 255 + 1e-5
    # shift 7 on the pipeline's sigmas (1, 1/2): 1000 and 1000 * 3.5 / 4; one call per step, guidance as an input
    assert out.trace["denoiser_timesteps"] == pytest.approx([1000.0, 875.0])
    assert out.stages["denoiser_rows_per_item"] == 2 and out.trace["classifier_free_guidance"] is False
    assert guidance == [[6000.0, 6000.0]] * 2  # the pipeline passes guidance_scale * 1000


def test_eval_end_to_end_through_the_preset(hunyuan, tmp_path):
    preset = PRESETS["hunyuanvideo"]
    assert (preset.recipe.steps, preset.recipe.guidance_scale, preset.recipe.num_frames, preset.recipe.fps,
            preset.recipe.height, preset.recipe.width) == (30, 6.0, 61, 15, 320, 512)
    assert preset.recipe_label().endswith("guidance 6 · 61 frames")
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "hunyuanvideo"\nbase = "{hunyuan}"\ndtype = "float32"\n'
                         "[recipe]\nheight = 16\nwidth = 16\nnum_frames = 5\nsteps = 2\nmax_sequence_length = 16\n")
    results = run_eval(resolve_spec(str(spec_file)), load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c",
                       show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["family"] == "hunyuanvideo" and manifest["model"]["fps"] == 15
    assert {m["name"]: m["value"] for m in results["metrics"]}["nfe"] == 2
    assert len(list((tmp_path / "run" / "videos").iterdir())) == 2
