"""Qwen-Image: a tiny Qwen-Image-shaped model (MMDiT over packed latents of a one-frame video VAE with
per-channel statistics, Qwen2.5-VL) saved in the diffusers layout goes through the presets (with a
PEFT LoRA for Lightning), the loader and `benchkit eval`; images equal QwenImagePipeline's for the same
noise, true CFG runs its negative-prompt call, and Lightning's scheduler config reaches the scheduler."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tiny_pipelines import build_qwenimage, write_peft_lora

from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

ITEMS = [Item("a", "the digit one", 0), Item("b", "seven", 3)]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from diffusers import QwenImagePipeline, QwenImageTransformer2DModel

    root = tmp_path_factory.mktemp("qwen")
    base = build_qwenimage(root / "q")
    transformer = QwenImageTransformer2DModel.from_pretrained(base / "transformer")
    write_peft_lora(QwenImagePipeline, transformer, root / "lora", targets=("to_q", "to_k", "to_v", "add_q_proj"))
    return {"base": base, "lora": root / "lora" / "lora.safetensors"}


def generate(base, recipe):
    model = load_model(ModelSpec("q", str(base), recipe), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe)
    return gen, gen.generate(ITEMS)


@pytest.mark.parametrize("true_cfg", [None, 4.0])
def test_images_equal_the_pipeline_for_the_same_noise(qwen, true_cfg):
    from diffusers import QwenImagePipeline

    cfg = {"true_cfg_scale": true_cfg, "negative_prompt": " "} if true_cfg else {}
    recipe = Recipe("model-default", steps=3, height=32, width=32, max_sequence_length=16, **cfg)
    gen, out = generate(qwen["base"], recipe)
    assert gen.model.family == "qwenimage"
    noise, _ = gen.initial_noise(ITEMS)
    assert noise.shape == (2, 16, 16)  # (32 / 4 / 2)^2 packed tokens of 4 channels x 2x2
    theirs = QwenImagePipeline.from_pretrained(str(qwen["base"]))([it.prompt for it in ITEMS], latents=noise,
                                                                  output_type="np", num_inference_steps=3, height=32,
                                                                  width=32, max_sequence_length=16, **cfg).images
    assert theirs.shape == (2, 32, 32, 3)
    assert np.abs(np.stack(out.images).astype(np.float64) / 255 - theirs).max() <= 1 / 255 + 1e-5
    # true CFG is a second call per step at the same time: two rows per item per step, still 3 steps
    assert out.stages["denoiser_rows_per_item"] == (6 if true_cfg else 3) and out.stages["steps"] == 3
    assert out.trace["classifier_free_guidance"] is bool(true_cfg)


def test_lightning_scheduler_config_reaches_the_scheduler(qwen):
    preset = PRESETS["qwen-image-lightning-8step"]
    recipe = Recipe(preset.recipe.scheduler, dict(preset.recipe.scheduler_kwargs), steps=4, height=32, width=32,
                    max_sequence_length=16, true_cfg_scale=1.0, negative_prompt=" ")
    _, out = generate(qwen["base"], recipe)
    config = out.trace["scheduler_config"]
    assert config["base_shift"] == config["max_shift"] == pytest.approx(math.log(3))
    assert config["shift_terminal"] is None and config["use_dynamic_shifting"] is True
    # base = max shift: mu = log 3 whatever the token count, i.e. the fixed shift 3 the LoRA was distilled with
    expected = [3 * s / (1 + 2 * s) for s in np.linspace(1.0, 1 / 4, 4)]
    assert out.trace["scheduler_sigmas"] == pytest.approx(expected + [0.0], abs=1e-6)
    assert out.trace["denoiser_timesteps"] == pytest.approx(expected, abs=1e-6)
    assert out.stages["denoiser_rows_per_item"] == 4  # true_cfg_scale 1: no negative call


def test_presets_follow_their_cards():
    q = PRESETS["qwen-image"]
    assert (q.family, q.dtype, q.recipe.steps, q.recipe.true_cfg_scale, q.recipe.negative_prompt, q.recipe.height) == (
        "qwenimage", "bfloat16", 50, 4.0, " ", 1328)
    assert q.recipe_label().endswith("true cfg 4")
    light = PRESETS["qwen-image-lightning-4step"]
    assert light.lora == "hf://lightx2v/Qwen-Image-Lightning/Qwen-Image-Lightning-4steps-V1.0.safetensors"
    assert (light.recipe.steps, light.recipe.true_cfg_scale, light.lora_scale) == (4, 1.0, 1.0)


def test_eval_end_to_end_through_the_lightning_preset_with_a_lora(qwen, tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "qwen-image-lightning-8step"\nbase = "{qwen["base"]}"\nlora = "{qwen["lora"]}"\n'
                         'dtype = "float32"\n[recipe]\nheight = 32\nwidth = 32\nmax_sequence_length = 16\nsteps = 2\n')
    results = run_eval(resolve_spec(str(spec_file)), load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c",
                       show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    model = manifest["model"]
    assert model["family"] == "qwenimage" and model["lora"]["format"] == "peft" and model["lora"]["fused"]
    assert model["scheduler"]["config"]["max_shift"] == pytest.approx(math.log(3))
    assert {m["name"]: m["value"] for m in results["metrics"]}["nfe"] == 2
    assert len(list((tmp_path / "run" / "images").glob("*.png"))) == 2
