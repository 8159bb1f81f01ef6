"""FLUX.1: a tiny FLUX-shaped pipeline (packed latents, CLIP + T5, guidance embedding) saved in the
diffusers layout goes through the presets, the loader and `benchkit eval`, and benchkit's images equal
FluxPipeline's own for the same noise; the recipe (steps, dynamic shift, embedded guidance, true CFG,
max_sequence_length) reaches the scheduler, transformer and T5 exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tiny_pipelines import build_flux, write_peft_lora

from benchkit.core.errors import BenchkitError
from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.families import detect_family
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

ITEMS = [Item("a", "the digit one", 0), Item("b", "seven", 3)]


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    """A dev-like FLUX (guidance embedding, dynamic shift), a schnell-like one, and a PEFT LoRA."""
    from diffusers import FluxPipeline, FluxTransformer2DModel

    root = tmp_path_factory.mktemp("flux")
    dev, schnell = build_flux(root / "dev"), build_flux(root / "schnell", guidance_embeds=False)
    transformer = FluxTransformer2DModel.from_pretrained(dev / "transformer")
    lora_state = write_peft_lora(FluxPipeline, transformer, root / "lora",
                                 targets=("to_q", "to_k", "to_v", "proj_out"))
    return {"dev": dev, "schnell": schnell, "lora": root / "lora" / "lora.safetensors", "lora_state": lora_state,
            "root": root}


class Calls:
    """What the transformer and the T5 encoder were called with, seen from outside the pipeline."""

    def __init__(self, pipe):
        self.guidance, self.rows, self.t5_tokens = [], [], []
        pipe.transformer.register_forward_pre_hook(self._transformer, with_kwargs=True)
        pipe.text_encoder_2.register_forward_pre_hook(self._t5, with_kwargs=True)

    def _transformer(self, module, args, kwargs):
        g = kwargs.get("guidance")
        self.guidance.append(None if g is None else g.reshape(-1).tolist())
        self.rows.append(kwargs["hidden_states"].shape[0])

    def _t5(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.t5_tokens.append(ids.shape[1])


def generate(base, recipe, items=ITEMS):
    model = load_model(ModelSpec("f", str(base), recipe), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe)
    calls = Calls(model.pipeline)
    return gen, gen.generate(items), calls


def flux_sigmas(steps: int, image_tokens: int) -> list[float]:
    """FLUX.1-dev's schedule by hand: linspace(1, 1/N, N), shifted by exp(mu) with mu linear in the
    image's token count between (256, 0.5) and (4096, 1.15), as the shipped scheduler config says."""
    m = (1.15 - 0.5) / (4096 - 256)
    mu = image_tokens * m + 0.5 - m * 256
    return [math.exp(mu) / (math.exp(mu) + (1 / s - 1)) for s in np.linspace(1.0, 1 / steps, steps)]


def test_the_folder_is_recognised_as_flux(flux):
    index = json.loads((flux["dev"] / "model_index.json").read_text())
    assert detect_family(index).name == "flux"


@pytest.mark.parametrize("base,guidance", [("dev", 3.5), ("schnell", 0.0)])
def test_images_equal_the_flux_pipeline_for_the_same_noise(flux, base, guidance):
    from diffusers import FluxPipeline

    recipe = Recipe("model-default", steps=3, guidance_scale=guidance, height=16, width=16, max_sequence_length=16)
    gen, out, _ = generate(flux[base], recipe)
    ours = np.stack(out.images).astype(np.float64) / 255
    noise, _ = gen.initial_noise(ITEMS)
    assert noise.shape == (2, 16, 64)  # (16/2/2)^2 packed tokens of 16 channels x 2x2
    pipe = FluxPipeline.from_pretrained(str(flux[base]))
    theirs = pipe([it.prompt for it in ITEMS], latents=noise, output_type="np", num_inference_steps=3,
                  guidance_scale=guidance, height=16, width=16, max_sequence_length=16).images
    assert ours.shape == theirs.shape == (2, 16, 16, 3)
    assert np.abs(ours - theirs).max() <= 1 / 255 + 1e-5


def test_noise_is_per_item_and_drawn_as_the_pipeline_draws_it(flux):
    """Each item's noise is the pipeline's own draw from that item's generator (unpacked (1, 16, h, w),
    then packed), so an image depends neither on its batch nor on its position in it."""
    from diffusers.utils.torch_utils import randn_tensor

    from benchkit.core.items import item_generator

    recipe = Recipe("model-default", steps=2, guidance_scale=3.5, height=16, width=16, max_sequence_length=16)
    gen, out, _ = generate(flux["dev"], recipe)
    noise, _ = gen.initial_noise(ITEMS)
    pipe = gen.pipe
    for row, item in zip(noise, ITEMS):
        drawn = randn_tensor((1, 16, 8, 8), generator=item_generator(item.prompt_id, item.seed), dtype=torch.float32)
        assert torch.equal(row, pipe._pack_latents(drawn, 1, 16, 8, 8)[0])
    _, alone, _ = generate(flux["dev"], recipe, ITEMS[1:])
    assert np.array_equal(alone.images[0], out.images[1])


def test_recipe_reaches_scheduler_transformer_and_t5_exactly(flux):
    recipe = Recipe("model-default", steps=4, guidance_scale=3.5, height=16, width=16, max_sequence_length=12)
    _, out, calls = generate(flux["dev"], recipe)
    expected = flux_sigmas(4, image_tokens=16)
    assert out.trace["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert out.trace["scheduler_sigmas"] == pytest.approx(expected + [0.0], abs=1e-6)
    # FLUX's transformer takes sigma (timestep / 1000); the guidance is an input of every call
    assert out.trace["denoiser_timesteps"] == pytest.approx(expected, abs=1e-6)
    assert calls.guidance == [[3.5, 3.5]] * 4 and calls.rows == [2] * 4
    assert calls.t5_tokens == [12]
    assert out.trace["guidance"] == "embedded" and out.trace["classifier_free_guidance"] is False
    assert out.stages["denoiser_rows_per_item"] == 4


def test_true_cfg_runs_a_negative_prompt_call_per_step(flux):
    recipe = Recipe("model-default", steps=2, guidance_scale=3.5, height=16, width=16, max_sequence_length=16,
                    true_cfg_scale=4.0, negative_prompt="blurry")
    _, out, calls = generate(flux["dev"], recipe)
    assert calls.rows == [2] * 4  # the conditional and the negative call, each over the whole batch
    assert out.trace["classifier_free_guidance"] is True and out.trace["true_cfg_scale"] == 4.0
    assert out.stages["denoiser_rows_per_item"] == 4 and out.stages["steps"] == 2  # two calls in each step
    plain = Recipe("model-default", steps=2, guidance_scale=3.5, height=16, width=16, max_sequence_length=16)
    _, without, _ = generate(flux["dev"], plain)
    assert not np.array_equal(np.stack(out.images), np.stack(without.images))


def test_recipe_fields_the_pipeline_cannot_take_are_refused_in_one_line(tmp_path):
    from tiny_pipelines import build_sd15

    base = build_sd15(tmp_path / "sd15")
    recipe = Recipe("ddim", steps=2, height=16, width=16, max_sequence_length=77)
    model = load_model(ModelSpec("s", str(base), recipe), torch.device("cpu"), torch.float32)
    with pytest.raises(BenchkitError, match=r"^recipe.max_sequence_length: StableDiffusionPipeline takes no "
                                            r"max_sequence_length; remove it from the recipe$"):
        make_generator(model, recipe)


def test_presets_follow_their_cards():
    schnell, dev = PRESETS["flux.1-schnell"], PRESETS["flux.1-dev"]
    assert (schnell.family, schnell.dtype, schnell.recipe.steps, schnell.recipe.guidance_scale,
            schnell.recipe.max_sequence_length) == ("flux", "bfloat16", 4, 0.0, 256)
    assert (dev.recipe.steps, dev.recipe.guidance_scale, dev.recipe.max_sequence_length) == (50, 3.5, 512)
    hyper = PRESETS["hyper-flux.1-dev-8step-lora"]
    assert hyper.lora == "hf://ByteDance/Hyper-SD/Hyper-FLUX.1-dev-8steps-lora.safetensors"
    assert (hyper.lora_scale, hyper.recipe.steps, hyper.recipe.guidance_scale) == (0.125, 8, 3.5)
    assert PRESETS["flux.1-turbo-alpha"].recipe.steps == 8
    # the label says guidance, not CFG: FLUX.1-dev embeds it (one transformer call per step)
    assert dev.recipe_label().endswith("guidance 3.5") and "cfg" not in dev.recipe_label()
    for name in ("flux.1-dev", "flux.1-turbo-alpha", "hyper-flux.1-dev-16step-lora"):
        assert "unverified" in PRESETS[name].source


@pytest.mark.parametrize("preset,lora", [("flux.1-schnell", False), ("hyper-flux.1-dev-8step-lora", True)])
def test_eval_end_to_end_through_a_preset_with_local_paths(flux, tmp_path, preset, lora):
    base = flux["schnell"] if preset == "flux.1-schnell" else flux["dev"]
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "{preset}"\nbase = "{base}"\ndtype = "float32"\n'
                         + (f'lora = "{flux["lora"]}"\n' if lora else "")
                         + "[recipe]\nheight = 16\nwidth = 16\nmax_sequence_length = 16\n")
    spec = resolve_spec(str(spec_file))
    results = run_eval(spec, load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run", metrics=["latency"],
                       device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c", show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    model = manifest["model"]
    assert model["family"] == "flux" and model["scheduler"]["class"] == "FlowMatchEulerDiscreteScheduler"
    steps = spec.recipe.steps
    assert records[0]["stages"]["denoiser_rows_per_item"] == steps
    expected = flux_sigmas(steps, 16) if lora else list(np.linspace(1.0, 1 / steps, steps))  # schnell: no shift
    assert records[0]["stages"]["timesteps"] == pytest.approx(expected, abs=1e-4)
    values = {m["name"]: m for m in results["metrics"]}
    assert values["nfe"]["value"] == steps
    assert len(list((tmp_path / "run" / "images").glob("*.png"))) == 2
    if lora:
        assert model["lora"] == {**model["lora"], "scale": 0.125, "fused": True, "format": "peft"}


def test_kohya_flux_loras_fuse_into_the_named_layers_and_unknown_layouts_are_one_line(flux, tmp_path):
    """A kohya-layout FLUX LoRA (lora_unet_double_blocks_*, lora_unet_single_blocks_*, with alpha) goes through
    diffusers' converter into the transformer's own layers: each fused weight is base + alpha/rank * up @ down.
    A layout diffusers does not convert (BFL's diffusion_model.* with lora_A/lora_B) matches no layer: one line."""
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    base = FluxTransformer2DModel.from_pretrained(flux["dev"] / "transformer")
    g = torch.Generator().manual_seed(0)
    rank, alpha, width = 4, 2.0, base.config.num_attention_heads * base.config.attention_head_dim
    targets = {"double_blocks_0_img_attn_proj": ("transformer_blocks.0.attn.to_out.0", width),
               "single_blocks_0_linear2": ("single_transformer_blocks.0.proj_out",
                                           base.single_transformer_blocks[0].proj_out.in_features)}
    state = {}
    for kohya, (_, fan_in) in targets.items():
        state[f"lora_unet_{kohya}.lora_down.weight"] = torch.randn(rank, fan_in, generator=g) * 0.1
        state[f"lora_unet_{kohya}.lora_up.weight"] = torch.randn(width, rank, generator=g) * 0.1
        state[f"lora_unet_{kohya}.alpha"] = torch.tensor(alpha)
    save_file(state, str(tmp_path / "kohya.safetensors"))
    recipe = Recipe("model-default", steps=2, height=16, width=16)
    model = load_model(ModelSpec("f", str(flux["dev"]), recipe, lora=str(tmp_path / "kohya.safetensors")),
                       torch.device("cpu"), torch.float32)
    assert model.details["lora"]["format"] == "kohya"
    for kohya, (module, _) in targets.items():
        delta = (alpha / rank) * state[f"lora_unet_{kohya}.lora_up.weight"] @ state[f"lora_unet_{kohya}.lora_down.weight"]
        got = model.pipeline.transformer.get_submodule(module).weight
        assert torch.allclose(got, base.get_submodule(module).weight + delta, atol=1e-6), module
    save_file({"diffusion_model.double_blocks.0.img_attn.proj.lora_A.weight": torch.zeros(rank, width),
               "diffusion_model.double_blocks.0.img_attn.proj.lora_B.weight": torch.zeros(width, rank)},
              str(tmp_path / "bfl.safetensors"))
    with pytest.raises(BenchkitError, match="no layer of the model matched its keys") as exc:
        load_model(ModelSpec("f", str(flux["dev"]), recipe, lora=str(tmp_path / "bfl.safetensors")), torch.device("cpu"),
                   torch.float32)
    assert "\n" not in str(exc.value)
