"""Loading real on-disk formats: UNet state dicts, kohya and PEFT LoRAs (scale, fused or not),
replacement VAEs, spec folders, and one-line errors for missing or mismatched files."""

import dataclasses
import json

import pytest
import torch
from tiny_pipelines import tiny  # noqa: F401  (session fixture)

from benchkit.core.errors import BenchkitError
from benchkit.models.loading import load_model
from benchkit.models.presets import resolve_spec
from benchkit.models.spec import ModelSpec, Recipe

CPU = torch.device("cpu")


def weight(model, name):
    return dict(model.named_parameters())[name + ".weight"].detach()


def test_unet_state_dicts_load_on_meta_and_assign(tiny):
    for key, file in (("sdxl_unet_bin", "sdxl_unet_fp16.bin"), ("sdxl_unet_st", "sdxl_unet.safetensors")):
        spec = ModelSpec("x", str(tiny["sdxl"]), Recipe("euler", steps=1), weights=str(tiny["root"] / file))
        model = load_model(spec, CPU, torch.float32)
        state = model.unet.state_dict()
        assert not any(t.is_meta for t in state.values())
        assert all(t.dtype == torch.float32 for t in state.values())
        for name, saved in tiny[key].items():  # fp16 file, cast to the run's dtype
            assert torch.equal(state[name], saved.float()), name
        assert f"weights:{file}" in model.weight_files and model.details["weights"].endswith(file)


def test_mismatched_state_dict_is_one_line(tiny):
    spec = ModelSpec("x", str(tiny["sdxl"]), Recipe("euler", steps=1), weights=str(tiny["root"] / "sd15_unet.bin"))
    with pytest.raises(BenchkitError, match="does not fit UNet2DConditionModel") as exc:
        load_model(spec, CPU, torch.float32)
    assert "\n" not in str(exc.value) and "sd15_unet.bin" in str(exc.value)


def test_kohya_lora_fused_and_unfused_match_the_closed_form(tiny):
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    base = load_model(ModelSpec("b", str(tiny["sd15"]), Recipe("ddim", steps=1)), CPU, torch.float32)
    a = tiny["sd15_kohya_state"][f"{name}.lora_A.weight"]
    b = tiny["sd15_kohya_state"][f"{name}.lora_B.weight"]
    spec = ModelSpec("l", str(tiny["sd15"]), Recipe("ddim", steps=1), lora=str(tiny["root"] / "sd15_kohya.safetensors"),
                     lora_scale=0.5)
    fused = load_model(spec, CPU, torch.float32)
    # kohya: W + scale * alpha / rank * up @ down, alpha 2 and rank 4 as written by the fixture
    expected = weight(base.unet, name) + 0.5 * (2.0 / 4) * b @ a
    assert torch.allclose(weight(fused.unet, name), expected, atol=1e-6)
    assert fused.details["lora"] == {"file": spec.lora, "format": "kohya", "scale": 0.5, "fused": True}
    assert "lora:sd15_kohya.safetensors" in fused.weight_files
    unfused = load_model(dataclasses.replace(spec, lora_fused=False), CPU, torch.float32)
    layer = dict(unfused.unet.named_modules())[name]
    assert layer.scaling == {"benchkit": 0.5 * 2.0 / 4}
    x = torch.randn(3, a.shape[1])
    assert torch.allclose(layer(x), torch.nn.functional.linear(x, expected, layer.base_layer.bias), atol=1e-5)


def test_peft_lora_on_sd3_at_the_hyper_sd3_scale(tiny):
    name = "transformer_blocks.0.attn.to_q"
    base = load_model(ModelSpec("b", str(tiny["sd3"]), Recipe("flow-euler", steps=1)), CPU, torch.float32)
    spec = ModelSpec("l", str(tiny["sd3"]), Recipe("flow-euler", steps=1),
                     lora=str(tiny["root"] / "sd3_peft" / "lora.safetensors"), lora_scale=0.125)
    model = load_model(spec, CPU, torch.float32)
    a = tiny["sd3_peft_state"][f"{name}.lora_A.weight"]
    b = tiny["sd3_peft_state"][f"{name}.lora_B.weight"]
    expected = weight(base.unet, name) + 0.125 * (4.0 / 4) * b @ a
    assert model.details["lora"]["format"] == "peft"
    assert torch.allclose(weight(model.unet, name), expected, atol=1e-6)


def test_lora_for_another_model_is_one_line(tiny):
    spec = ModelSpec("l", str(tiny["sd3"]), Recipe("flow-euler", steps=1), lora=str(tiny["root"] / "sd15_kohya.safetensors"))
    with pytest.raises(BenchkitError, match="lora") as exc:
        load_model(spec, CPU, torch.float32)
    assert "\n" not in str(exc.value)


def test_spec_folder_resolves_relative_paths(tiny, tmp_path):
    """A `benchkit distill` output: weights + spec.toml that extends a preset, paths relative to the folder."""
    import shutil

    folder = tmp_path / "distilled"
    folder.mkdir()
    shutil.copy(tiny["root"] / "sdxl_unet.safetensors", folder / "unet.safetensors")
    (folder / "spec.toml").write_text(
        f'extends = "sdxl-lightning-4step"\nname = "my-student"\nbase = "{tiny["sdxl"]}"\nweights = "unet.safetensors"\n'
        "[recipe]\nheight = 16\nwidth = 16\n")
    spec = resolve_spec(str(folder))
    assert spec.name == "my-student" and spec.weights == str((folder / "unet.safetensors").resolve())
    assert spec.recipe.scheduler_class == "EulerDiscreteScheduler" and spec.recipe.steps == 4
    assert spec.recipe.scheduler_kwargs == {"timestep_spacing": "trailing"} and spec.recipe.height == 16
    model = load_model(spec, CPU, torch.float32)
    assert torch.equal(model.unet.state_dict()["conv_in.weight"], tiny["sdxl_unet_st"]["conv_in.weight"].float())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BenchkitError, match="without spec.toml"):
        resolve_spec(str(empty))


def test_tiny_vae_replacement_is_recorded(tiny, tmp_path):
    from diffusers import AutoencoderTiny

    AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1),
                    num_decoder_blocks=(1, 1), latent_channels=4).save_pretrained(tmp_path / "taesd")
    spec = ModelSpec("t", str(tiny["sd15"]), Recipe("ddim", steps=1), vae=str(tmp_path / "taesd"))
    model = load_model(spec, CPU, torch.float32)
    assert type(model.vae).__name__ == "AutoencoderTiny"
    assert model.details["vae"]["class"] == "AutoencoderTiny"
    assert any(k.startswith("vae:") for k in model.weight_files)
    # decoding with the tiny VAE equals diffusers' pipeline given the same VAE and latents
    import numpy as np
    from diffusers import StableDiffusionPipeline

    from benchkit.core.items import Item
    from benchkit.models.sampling import make_generator

    gen = make_generator(model, spec.recipe)
    items = [Item("a", "one", 0)]
    ours = gen.generate(items).images[0].astype(np.float64) / 255
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny["sd15"]), vae=AutoencoderTiny.from_pretrained(tmp_path / "taesd"),
                                                   safety_checker=None, requires_safety_checker=False)
    theirs = pipe(["one"], num_inference_steps=1, guidance_scale=1.0, latents=gen.initial_noise(items)[0],
                  output_type="np").images[0]
    assert np.abs(ours - theirs).max() <= 1 / 255 + 1e-5


def test_compile_is_part_of_the_variant(tiny):
    spec = ModelSpec("c", str(tiny["sd15"]), Recipe("ddim", steps=1), compile=True)
    model = load_model(spec, CPU, torch.float32)  # compilation itself is lazy: nothing runs here
    assert model.details["compile"].startswith("torch.compile") and type(model.unet).__name__ == "OptimizedModule"
    from metrics.latency import _model_variant

    assert _model_variant({"model": model.details})["compile"] == model.details["compile"]
    assert spec.identity()["compile"] is True and "compile" not in dataclasses.replace(spec, compile=False).identity()


def test_fp16_vae_is_upcast_where_it_overflows():
    from types import SimpleNamespace

    from benchkit.models.loading import vae_dtype_for

    sdxl_like = SimpleNamespace(config=SimpleNamespace(force_upcast=True))
    sd_like = SimpleNamespace(config=SimpleNamespace(force_upcast=False))
    assert vae_dtype_for(sdxl_like, torch.device("cuda"), torch.float16) == torch.float32
    assert vae_dtype_for(sd_like, torch.device("cuda"), torch.float16) == torch.float16
    assert vae_dtype_for(sd_like, torch.device("mps"), torch.float16) == torch.float32
    assert vae_dtype_for(sdxl_like, torch.device("cpu"), torch.bfloat16) == torch.bfloat16


def test_hf_repo_ids_resolve_through_the_local_cache(tiny, tmp_path, monkeypatch):
    """A repo laid out as huggingface_hub stores it (snapshots + refs) loads by its repo id, offline."""
    import shutil

    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--tiny--sdxl" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny["sdxl"], snapshot)
    (cache / "models--tiny--sdxl" / "refs").mkdir(parents=True)
    (cache / "models--tiny--sdxl" / "refs" / "main").write_text("0" * 40)
    lora_snapshot = cache / "models--tiny--loras" / "snapshots" / ("1" * 40)
    lora_snapshot.mkdir(parents=True)
    shutil.copy(tiny["root"] / "sdxl_kohya.safetensors", lora_snapshot / "lora.safetensors")
    (cache / "models--tiny--loras" / "refs").mkdir(parents=True)
    (cache / "models--tiny--loras" / "refs" / "main").write_text("1" * 40)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    spec = ModelSpec("hub", "tiny/sdxl", Recipe("euler", steps=1), lora="hf://tiny/loras/lora.safetensors")
    model = load_model(spec, CPU, torch.float32)
    assert model.path == snapshot and model.family == "sdxl" and model.details["lora"]["format"] == "kohya"
    missing = dataclasses.replace(spec, name="dmd2-like", weights="hf://tianweiy/DMD2/dmd2_sdxl_4step_unet_fp16.bin")
    with pytest.raises(BenchkitError) as exc:
        load_model(missing, CPU, torch.float32)
    msg = str(exc.value)
    assert "\n" not in msg and "dmd2_sdxl_4step_unet_fp16.bin" in msg and "tianweiy/DMD2" in msg
    assert "hf download tianweiy/DMD2 dmd2_sdxl_4step_unet_fp16.bin" in msg and str(cache) in msg
    with pytest.raises(BenchkitError, match="missing stabilityai/stable-diffusion-xl-base-1.0 .*hf download"):
        load_model(resolve_spec("sdxl-base"), CPU, torch.float32)


def test_manifest_records_family_lora_and_runtime(tiny, tmp_path):
    from benchkit.evaluate import run_eval
    from prompts import load_prompt_set

    spec_file = tmp_path / "m.toml"
    spec_file.write_text(f'extends = "dmd2-sdxl-4step-lora"\nbase = "{tiny["sdxl"]}"\n'
                         f'lora = "{tiny["root"] / "sdxl_kohya.safetensors"}"\nlora_fused = false\n'
                         "[recipe]\nheight = 16\nwidth = 16\n")
    spec = resolve_spec(str(spec_file))
    run_eval(spec, load_prompt_set("toy-digits").limit(1), [0], tmp_path / "run", metrics=["latency"], device="cpu",
             batch_size=1, warmup_batches=0, cache_dir=tmp_path / "c", show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["family"] == "sdxl"
    assert manifest["model"]["lora"] == {"file": spec.lora, "format": "kohya", "scale": 1.0, "fused": False}
    assert manifest["model"]["scheduler"]["class"] == "LCMScheduler"
    assert manifest["runtime"]["dtype"] == "float32" and manifest["runtime"]["sync"].startswith("none")
    assert manifest["spec"]["lora_fused"] is False


def test_single_file_checkpoints_need_a_family_and_the_original_layout(tiny):
    """A1111/ComfyUI all-in-one files go through diffusers' from_single_file; what it cannot read is one line."""
    diffusers_file = str(tiny["sd15"] / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(BenchkitError, match="is a single file: set family"):
        load_model(ModelSpec("s", diffusers_file, Recipe("ddim", steps=1)), CPU, torch.float32)
    spec = ModelSpec("s", diffusers_file, Recipe("ddim", steps=1), family="sd15", config=str(tiny["sd15"]))
    with pytest.raises(BenchkitError, match="cannot load single-file checkpoint .*diffusion_pytorch_model.safetensors") as exc:
        load_model(spec, CPU, torch.float32)
    assert "\n" not in str(exc.value)


def test_spec_dtype_is_advice_for_accelerators(monkeypatch):
    from benchkit.core.hardware import configure_tf32, model_dtype

    assert model_dtype(None, "float16", CPU) == torch.float32  # CogVideoX-2b's card dtype, on cpu
    assert model_dtype("bfloat16", "float16", CPU) == torch.bfloat16
    assert model_dtype(None, "bfloat16", torch.device("cuda")) == torch.bfloat16
    assert model_dtype(None, None, torch.device("mps")) == torch.float16
    with pytest.raises(BenchkitError, match="float16 is not supported .* on cpu"):
        model_dtype("float16", None, CPU)
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        monkeypatch.setenv("BENCHKIT_TF32", "1")
        assert configure_tf32() is True and torch.backends.cuda.matmul.allow_tf32
        monkeypatch.setenv("BENCHKIT_TF32", "0")
        assert configure_tf32() is False and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_single_file_checkpoint_loads_like_its_folder(tiny, tmp_path):
    """An original-layout all-in-one file (what A1111/ComfyUI ship) gives the same weights and images."""
    import numpy as np
    from tiny_pipelines import write_ldm_checkpoint

    from benchkit.core.items import Item
    from benchkit.models.sampling import make_generator

    write_ldm_checkpoint(tiny["sd15"], tmp_path / "all-in-one.safetensors")
    recipe = Recipe("ddim", {"timestep_spacing": "trailing"}, steps=2, guidance_scale=3.0)
    single = load_model(ModelSpec("f", str(tmp_path / "all-in-one.safetensors"), recipe, family="sd15",
                                  config=str(tiny["sd15"])), CPU, torch.float32)
    folder = load_model(ModelSpec("d", str(tiny["sd15"]), recipe), CPU, torch.float32)
    for name in ("unet", "vae", "text_encoder"):
        a, b = single.components[name].state_dict(), folder.components[name].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b), name
    assert list(single.weight_files) == ["base:all-in-one.safetensors"]
    items = [Item("a", "one", 0)]
    assert np.array_equal(make_generator(single, recipe).generate(items).images[0], make_generator(folder, recipe).generate(items).images[0])
