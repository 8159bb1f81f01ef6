"""Wan 2.2: tiny Wan 2.2-shaped models. A14B's two experts (high noise above the boundary, low noise below,
each with its own guidance and its own Lightning LoRA) and TI2V-5B's 16x VAE with a timestep per token, against
WanPipeline with the same noise; the Lightning recipe's exact Euler sigmas reach the scheduler although the
pipeline takes none."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from tiny_pipelines import build_wan22, write_peft_lora

from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

ITEMS = [Item("a", "the digit one", 0), Item("b", "seven", 3)]


@pytest.fixture(scope="module")
def a14b(tmp_path_factory):
    return build_wan22(tmp_path_factory.mktemp("wan22") / "a14b")


def _clips(out) -> np.ndarray:
    return np.stack(out.videos).astype(np.float64) / 255


@pytest.mark.parametrize("ti2v", [False, True], ids=["a14b", "ti2v-5b"])
def test_clips_equal_the_pipeline(ti2v, a14b, tmp_path):
    from diffusers import WanPipeline

    root = build_wan22(tmp_path / "ti2v", ti2v=True) if ti2v else a14b
    size = 32 if ti2v else 16  # the 5B's VAE compresses 16x, times the transformer's 2x2 patches
    second = {} if ti2v else {"guidance_scale_2": 3.0}
    recipe = Recipe("model-default", steps=4, guidance_scale=4.0, height=size, width=size, num_frames=5,
                    max_sequence_length=16, **second)
    model = load_model(ModelSpec("w", str(root), recipe), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe)
    out = gen.generate(ITEMS)
    noise, _ = gen.initial_noise(ITEMS)
    assert model.family == "wan" and noise.shape == (2, 12 if ti2v else 16, 2, 2, 2)
    theirs = WanPipeline.from_pretrained(str(root))([it.prompt for it in ITEMS], latents=noise, output_type="np",
                                                    num_inference_steps=4, guidance_scale=4.0, height=size, width=size,
                                                    num_frames=5, max_sequence_length=16, **second).frames
    assert np.abs(_clips(out) - theirs).max() <= 1 / 255 + 1e-5
    assert out.stages["denoiser_rows_per_item"] == 8  # CFG: Wan calls the transformer twice per step
    if ti2v:
        assert out.trace["denoiser_experts"] is None
    else:  # UniPC shift 3 on 4 steps: t = 999 runs on the high-noise expert, the rest (below 875) on the low-noise one
        assert out.trace["denoiser_timesteps"] == [999.0, 999.0, 900.0, 900.0, 750.0, 750.0, 500.0, 500.0]
        assert out.trace["denoiser_experts"] == [0, 0, 0, 0, 1, 1, 1, 1]


def _lora_delta(state: dict, module: str, rank: int = 4, alpha: float = 4.0) -> torch.Tensor:
    a = next(v for k, v in state.items() if k.endswith(f"{module}.lora_A.weight"))
    b = next(v for k, v in state.items() if k.endswith(f"{module}.lora_B.weight"))
    return (alpha / rank) * b @ a


def test_lightning_recipe_loras_per_expert_and_exact_sigmas(a14b, tmp_path):
    from diffusers import WanPipeline, WanTransformer3DModel

    high = WanTransformer3DModel.from_pretrained(a14b / "transformer")
    low = WanTransformer3DModel.from_pretrained(a14b / "transformer_2")
    high_state = write_peft_lora(WanPipeline, high, tmp_path / "high", seed=1)
    low_state = write_peft_lora(WanPipeline, low, tmp_path / "low", seed=2)
    preset = PRESETS["wan2.2-t2v-a14b-lightning-4step"]
    assert preset.lora.endswith("/high_noise_model.safetensors") and preset.lora_2.endswith("/low_noise_model.safetensors")
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "wan2.2-t2v-a14b-lightning-4step"\nbase = "{a14b}"\ndtype = "float32"\n'
                         f'lora = "{tmp_path / "high" / "lora.safetensors"}"\nlora_2 = "{tmp_path / "low" / "lora.safetensors"}"\n'
                         "[recipe]\nheight = 16\nwidth = 16\nnum_frames = 5\nmax_sequence_length = 16\n")
    spec = resolve_spec(str(spec_file))
    model = load_model(spec, torch.device("cpu"), torch.float32)
    # each LoRA is fused into its own expert, and only there
    module = "blocks.0.attn1.to_q"
    got_high = model.pipeline.transformer.get_submodule(module).weight
    got_low = model.pipeline.transformer_2.get_submodule(module).weight
    assert torch.allclose(got_high, high.get_submodule(module).weight + _lora_delta(high_state, module), atol=1e-6)
    assert torch.allclose(got_low, low.get_submodule(module).weight + _lora_delta(low_state, module), atol=1e-6)
    assert model.details["lora_2"]["into"] == "transformer_2"
    out = make_generator(model, spec.recipe).generate(ITEMS)
    # Lightning's Euler schedule: linspace(1000, 0, 5)[:-1] shifted by 5, i.e. sigma' = 5s / (1 + 4s)
    expected = [1000 * 5 * s / (1 + 4 * s) for s in (1.0, 0.75, 0.5, 0.25)]
    assert out.trace["denoiser_timesteps"] == pytest.approx(expected, abs=1e-3)
    assert out.trace["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert out.trace["denoiser_experts"] == [0, 0, 1, 1]  # 1000 and 937.5 above the boundary (875), 833.3 and 625 below
    assert out.stages["denoiser_rows_per_item"] == 4 and not out.trace["classifier_free_guidance"]
    # kept as adapters (a LoRA-scale sweep), both stay active, each on its own expert: the same clips as fused
    unfused = load_model(dataclasses.replace(spec, lora_fused=False), torch.device("cpu"), torch.float32)
    assert np.abs(_clips(make_generator(unfused, spec.recipe).generate(ITEMS)) - _clips(out)).max() <= 1 / 255


def test_a14b_preset_and_eval_end_to_end(a14b, tmp_path):
    preset = PRESETS["wan2.2-t2v-a14b"]
    r = preset.recipe
    assert (r.steps, r.guidance_scale, r.guidance_scale_2, r.height, r.width, r.num_frames, r.fps) == \
        (40, 4.0, 3.0, 720, 1280, 81, 16)
    assert preset.recipe_label().endswith("cfg 4 · low-noise cfg 3 · 81 frames")
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "wan2.2-t2v-a14b"\nbase = "{a14b}"\ndtype = "float32"\n'
                         "[recipe]\nheight = 16\nwidth = 16\nnum_frames = 5\nsteps = 2\nmax_sequence_length = 16\n")
    results = run_eval(resolve_spec(str(spec_file)), load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c",
                       show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["spec"]["recipe"]["guidance_scale_2"] == 3.0
    assert {m["name"]: m["value"] for m in results["metrics"]}["nfe"] == 4
    assert len(list((tmp_path / "run" / "videos").iterdir())) == 2


@pytest.mark.parametrize("ti2v", [False, True], ids=["i2v-a14b", "ti2v-5b-image"])
def test_image_to_video_runs_through_the_wan_i2v_family(ti2v, tmp_path):
    """Wan 2.2's image-to-video folders (no CLIP image encoder; A14B's two experts at boundary 0.9, or TI2V-5B
    with the image's latents in its first frame) run as wan-i2v: each item's clip equals the pipeline's."""
    from diffusers import WanImageToVideoPipeline
    from PIL import Image

    root = build_wan22(tmp_path / "m", ti2v=ti2v, image_to_video=True)
    size = 32 if ti2v else 16
    image = tmp_path / "first.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(image)
    items = [Item(it.prompt_id, it.prompt, it.seed, (("image", str(image)),)) for it in ITEMS]
    recipe = Recipe("model-default", steps=4, guidance_scale=3.5, height=size, width=size, num_frames=5, max_sequence_length=16)
    model = load_model(ModelSpec("w", str(root), recipe), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe)
    out = gen.generate(items)
    assert model.family == "wan-i2v" and out.inputs[0]["input_image"] == str(image)
    assert out.trace["denoiser_experts"] == (None if ti2v else [0, 0, 0, 0, 1, 1, 1, 1])  # 999 and 937 above t = 900
    pipe = WanImageToVideoPipeline.from_pretrained(str(root))
    for k, item in enumerate(items):
        noise, gens = gen.initial_noise([item])
        theirs = pipe(image=Image.open(image).convert("RGB"), prompt=item.prompt, latents=noise, generator=gens,
                      output_type="np", num_inference_steps=4, guidance_scale=3.5, height=size, width=size, num_frames=5,
                      max_sequence_length=16).frames
        assert np.abs(out.videos[k].astype(np.float64) / 255 - theirs[0]).max() <= 1 / 255 + 1e-5


def test_wan_native_lora_layout_fuses_into_each_expert(a14b, tmp_path):
    """Wan's own LoRA layout (diffusion_model.blocks.N.self_attn.q/k/v/o and cross_attn, lora_down/lora_up with
    alpha, as lightx2v's and Wan 2.2 Lightning's files are written) goes through diffusers' converter: with it as
    ``lora`` and ``lora_2`` each expert's attention weights are base + alpha/rank * up @ down."""
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file

    rank, alpha = 4, 2.0
    files, expected = {}, {}
    for field, folder, seed in (("lora", "transformer", 1), ("lora_2", "transformer_2", 2)):
        base = WanTransformer3DModel.from_pretrained(a14b / folder)
        width = base.config.num_attention_heads * base.config.attention_head_dim
        g = torch.Generator().manual_seed(seed)
        state, wants = {}, {}
        for block in range(base.config.num_layers):
            for attn, ours in (("self_attn", "attn1"), ("cross_attn", "attn2")):
                for theirs, proj in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0")):
                    key = f"diffusion_model.blocks.{block}.{attn}.{theirs}"
                    down, up = torch.randn(rank, width, generator=g) * 0.1, torch.randn(width, rank, generator=g) * 0.1
                    state.update({f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up, f"{key}.alpha": torch.tensor(alpha)})
                    module = f"blocks.{block}.{ours}.{proj}"
                    wants[module] = base.get_submodule(module).weight + (alpha / rank) * up @ down
        files[field] = tmp_path / f"{field}.safetensors"
        save_file(state, str(files[field]))
        expected[folder] = wants
    spec = ModelSpec("w", str(a14b), Recipe("model-default", steps=2, height=16, width=16, num_frames=5),
                     lora=str(files["lora"]), lora_2=str(files["lora_2"]))
    model = load_model(spec, torch.device("cpu"), torch.float32)
    assert model.details["lora"]["format"] == "original" and model.details["lora_2"]["into"] == "transformer_2"
    for folder, wants in expected.items():
        expert = getattr(model.pipeline, folder)
        for module, want in wants.items():
            assert torch.allclose(expert.get_submodule(module).weight, want, atol=1e-5), (folder, module)
