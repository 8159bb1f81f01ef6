"""LTX-Video: tiny LTX-shaped models (voxel-token latents, per-channel statistics kept as VAE buffers, a
timestep-conditioned decoder) through the loader, the generator and `benchkit eval`, against LTXPipeline and
LTXConditionPipeline with the same noise: the decode noise and timestep, the distilled models' fractional
explicit timesteps and the condition pipeline's own noise draw."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_pipelines import build_ltx

from benchkit.core.errors import BenchkitError
from benchkit.core.items import Item, item_generator
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

ITEMS = [Item("a", "the digit one", 0), Item("b", "seven", 3)]
SIZE = dict(height=32, width=32, num_frames=9, max_sequence_length=16)


@pytest.fixture(scope="module")
def ltx(tmp_path_factory):
    return build_ltx(tmp_path_factory.mktemp("ltx") / "l")


@pytest.fixture(scope="module")
def ltx_condition(tmp_path_factory):
    return build_ltx(tmp_path_factory.mktemp("ltxc") / "l", condition=True)


def _clips(out) -> np.ndarray:
    return np.stack(out.videos).astype(np.float64) / 255


def test_clips_equal_ltx_pipeline_with_its_decode_noise(ltx):
    from diffusers import LTXPipeline

    recipe = Recipe("model-default", steps=2, guidance_scale=3.0, decode_timestep=0.05, decode_noise_scale=0.025, **SIZE)
    model = load_model(ModelSpec("l", str(ltx), recipe), torch.device("cpu"), torch.float32)
    assert model.family == "ltx"
    gen = make_generator(model, recipe)
    decoder_times = []
    model.vae.decoder.register_forward_pre_hook(lambda m, a: decoder_times.append(a[1].tolist()))
    out = gen.generate(ITEMS)
    assert out.videos[0].shape == (9, 32, 32, 3)
    # the decoder is told the recipe's decode timestep, per item (it scales it by its learned multiplier itself)
    assert decoder_times == [[pytest.approx(0.05)] * 2]
    noise, gens = gen.initial_noise(ITEMS)
    assert noise.shape == (2, 3 * 8 * 8, 8)  # tokens: 3 latent frames x 8 x 8 voxels, 8 channels each
    theirs = LTXPipeline.from_pretrained(str(ltx))([it.prompt for it in ITEMS], latents=noise, generator=gens,
                                                   output_type="np", num_inference_steps=2, guidance_scale=3.0,
                                                   decode_timestep=0.05, decode_noise_scale=0.025, **SIZE).frames
    assert np.abs(_clips(out) - theirs).max() <= 1 / 255 + 1e-5
    # CFG: a conditional and an unconditional row per step; the dynamic shift with terminal 0.1 ends at t = 100
    assert out.trace["classifier_free_guidance"] and out.stages["denoiser_rows_per_item"] == 4
    assert out.trace["denoiser_timesteps"] == pytest.approx([1000.0, 100.0], abs=1e-3)
    assert out.trace["decode_timestep"] == 0.05 and out.stages["vae_decode_s"] > 0
    # the decode noise is each item's own: an item made alone equals the same item made in a batch (within one
    # level: float sums run in another order at another batch size)
    alone = gen.generate(ITEMS[1:])
    assert np.abs(alone.videos[0].astype(int) - out.videos[1]).max() <= 1
    # and it matters: without it the clips differ (the statistics and the timestep are not no-ops)
    quiet = make_generator(model, Recipe("model-default", steps=2, guidance_scale=3.0, decode_timestep=0.05,
                                         decode_noise_scale=0.0, **SIZE)).generate(ITEMS)
    assert not np.array_equal(np.stack(quiet.videos), np.stack(out.videos))


def test_condition_pipeline_draws_its_own_noise_and_takes_fractional_timesteps(ltx_condition):
    from diffusers import LTXConditionPipeline

    timesteps = (1000, 909, 725, 0.03)
    recipe = Recipe("model-default", steps=4, timesteps=timesteps, guidance_scale=1.0, decode_timestep=0.05,
                    decode_noise_scale=0.025, **SIZE)
    model = load_model(ModelSpec("l", str(ltx_condition), recipe), torch.device("cpu"), torch.float32)
    assert model.family == "ltx-condition"
    out = make_generator(model, recipe).generate(ITEMS)
    gens = [item_generator(it.prompt_id, it.seed) for it in ITEMS]  # fresh: the pipeline draws the noise from them
    theirs = LTXConditionPipeline.from_pretrained(str(ltx_condition))(
        prompt=[it.prompt for it in ITEMS], generator=gens, output_type="np", timesteps=list(timesteps),
        guidance_scale=1.0, decode_timestep=0.05, decode_noise_scale=0.025, **SIZE).frames
    assert np.abs(_clips(out) - theirs).max() <= 1 / 255 + 1e-5
    # every timestep reached the transformer as given (no shift: the condition pipeline passes none), one call each
    assert out.trace["denoiser_timesteps"] == pytest.approx([1000.0, 909.0, 725.0, 0.03], abs=1e-4)
    assert out.stages["denoiser_rows_per_item"] == 4 and out.stages["vae_decode_s"] > 0
    alone = make_generator(model, recipe).generate(ITEMS[1:])  # its noise is its own, not the batch's first draw
    assert np.abs(alone.videos[0].astype(int) - out.videos[1]).max() <= 1


def test_fractional_timesteps_need_a_flow_scheduler(ltx_condition):
    recipe = Recipe("EulerDiscreteScheduler", steps=2, timesteps=(999, 0.5), **SIZE)
    model = load_model(ModelSpec("l", str(ltx_condition), recipe), torch.device("cpu"), torch.float32)
    with pytest.raises(BenchkitError, match="whole-number timesteps; fractions such as 0.5 need a flow-matching"):
        make_generator(model, recipe)


def test_presets_and_eval_end_to_end(ltx_condition, upsampler, tmp_path):
    teacher, distilled = PRESETS["ltx-video"], PRESETS["ltx-video-0.9.7-distilled"]
    assert (teacher.family, teacher.recipe.steps, teacher.recipe.guidance_scale, teacher.recipe.num_frames,
            teacher.recipe.height, teacher.recipe.width) == ("ltx", 50, 3.0, 161, 480, 704)
    r = distilled.recipe
    assert (distilled.family, r.timesteps, r.steps, r.guidance_scale, r.decode_timestep, r.decode_noise_scale) == \
        ("ltx-condition", (1000, 993, 987, 981, 975, 909, 725, 0.03), 8, 1.0, 0.05, 0.025)
    assert r.second_pass == {"timesteps": [1000, 909, 725, 421, 0], "denoise_strength": 0.999, "downscale_factor": 2 / 3,
                             "adain_factor": 1.0}
    assert distilled.upsampler == "Lightricks/ltxv-spatial-upscaler-0.9.7"
    assert PRESETS["ltx-video-0.9.8-13b-distilled"].recipe.second_pass["tone_map_compression_ratio"] == 0.6
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "ltx-video-0.9.7-distilled"\nbase = "{ltx_condition}"\nupsampler = "{upsampler}"\n'
                         'dtype = "float32"\n[recipe]\nheight = 96\nwidth = 144\nnum_frames = 9\nmax_sequence_length = 16\n'
                         "timesteps = [1000, 725, 0.03]\n")
    spec = resolve_spec(str(spec_file))
    assert spec.recipe.steps == 3 and spec.recipe.timesteps == (1000, 725, 0.03) and spec.recipe.second_pass is not None
    results = run_eval(spec, load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run", metrics=["latency"],
                       device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c", show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    model = manifest["model"]
    assert model["family"] == "ltx-condition" and model["fps"] == 24 and model["upsampler"]["class"] == "LTXLatentUpsamplerModel"
    assert any(name.startswith("upsampler:") for name in model["files"])
    assert manifest["spec"]["recipe"]["decode_timestep"] == 0.05
    # 3 first-pass calls and 4 second-pass calls (denoise_strength 0.999 of 5 timesteps) per clip
    assert {m["name"]: m["value"] for m in results["metrics"]}["nfe"] == 7
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert records[0]["stages"]["upsample_s"] > 0 and records[0]["frames"] == "9"
    assert len(list((tmp_path / "run" / "videos").iterdir())) == 2


@pytest.fixture(scope="module")
def upsampler(tmp_path_factory):
    """A tiny LTXLatentUpsamplerModel (2x in space) saved as the upsampler pipeline's folder holds it."""
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    torch.manual_seed(3)
    root = tmp_path_factory.mktemp("upsampler") / "ups"
    LTXLatentUpsamplerModel(in_channels=8, mid_channels=32, num_blocks_per_stage=1).save_pretrained(root / "latent_upsampler")
    return root


def test_two_pass_recipe_equals_the_docs_three_calls(ltx_condition, upsampler):
    """recipe.second_pass runs the diffusers docs' distilled recipe: pass 1 at the downscaled size to latents,
    the latent upsampler (AdaIN 1), pass 2 from denoise_strength on its timesteps at twice that size, frames
    resized to the target with Pillow's bicubic; each pass's noise from fresh per-item generators."""
    from diffusers import LTXConditionPipeline, LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    second = {"timesteps": [1000, 909, 725, 421, 0], "denoise_strength": 0.999, "downscale_factor": 2 / 3,
              "adain_factor": 1.0}
    recipe = Recipe("model-default", steps=4, timesteps=(1000, 993, 725, 0.03), guidance_scale=1.0, height=96, width=144,
                    num_frames=9, max_sequence_length=16, decode_timestep=0.05, decode_noise_scale=0.025, second_pass=second)
    model = load_model(ModelSpec("l", str(ltx_condition), recipe, upsampler=str(upsampler)), torch.device("cpu"),
                       torch.float32)
    gen = make_generator(model, recipe)
    assert (gen.first_size, gen.second_size) == ((64, 96), (128, 192))  # 2/3 of 96x144
    assert any(k.startswith("upsampler:") for k in model.weight_files)  # the upsampler is part of the weights' identity
    out = gen.generate(ITEMS)
    assert out.videos[0].shape == (9, 96, 144, 3)
    pipe = LTXConditionPipeline.from_pretrained(str(ltx_condition))
    ups = LTXLatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=LTXLatentUpsamplerModel.from_pretrained(
        str(upsampler / "latent_upsampler")))
    common = dict(num_frames=9, guidance_scale=1.0, max_sequence_length=16, decode_timestep=0.05, decode_noise_scale=0.025)
    for item, clip in zip(ITEMS, out.videos):  # one clip per call, as the docs run it (and as benchkit must: see its module)
        fresh = lambda: [item_generator(item.prompt_id, item.seed)]  # noqa: E731
        latents = pipe(prompt=item.prompt, **common, height=64, width=96, timesteps=[1000, 993, 725, 0.03],
                       generator=fresh(), output_type="latent").frames
        upscaled = ups(latents=latents, adain_factor=1.0, output_type="latent").frames
        video = pipe(prompt=item.prompt, **common, height=128, width=192, timesteps=second["timesteps"],
                     denoise_strength=0.999, latents=upscaled, generator=fresh(), output_type="pil").frames[0]
        theirs = np.stack([np.asarray(f.resize((144, 96))) for f in video])
        assert np.abs(clip.astype(int) - theirs).max() <= 1
    # 4 first-pass calls, then the second pass from 909 (denoise_strength 0.999 skips its first timestep)
    assert out.trace["denoiser_timesteps"] == pytest.approx([1000, 993, 725, 0.03, 909, 725, 421, 0], abs=1e-3)
    assert out.stages["upsample_s"] > 0 and out.stages["vae_decode_s"] > 0 and out.stages["steps"] == 8
    assert out.trace["passes"]["second_size"] == [128, 192]


def test_second_pass_is_checked_in_one_line(ltx, ltx_condition, tmp_path):
    from benchkit.models.spec import load_spec_file

    bad = tmp_path / "bad.toml"
    bad.write_text(f'name = "l"\nbase = "{ltx_condition}"\n[recipe]\nsecond_pass = {{ timesteps = [900, 950], '
                   "denoise_strength = 0.9, downscale_factor = 0.5 }\n")
    with pytest.raises(BenchkitError, match=r"recipe.second_pass.timesteps' must be decreasing numbers"):
        load_spec_file(bad)
    recipe = Recipe("model-default", steps=2, height=64, width=64, num_frames=9, max_sequence_length=16,
                    second_pass={"timesteps": [900, 0], "denoise_strength": 1.0, "downscale_factor": 0.5})
    model = load_model(ModelSpec("l", str(ltx), recipe), torch.device("cpu"), torch.float32)  # LTXPipeline: one pass
    with pytest.raises(BenchkitError, match="recipe.second_pass: ltx models run one pass"):
        make_generator(model, recipe)
    model = load_model(ModelSpec("l", str(ltx_condition), recipe), torch.device("cpu"), torch.float32)
    with pytest.raises(BenchkitError, match="recipe.second_pass needs the latent upsampler; set upsampler"):
        make_generator(model, recipe)
