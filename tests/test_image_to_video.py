"""Image-to-video: a prompt set's ``image`` column conditions each item of an image-to-video family (a tiny
CogVideoX-I2V saved in the diffusers layout); clips equal the pipeline's for the same noise and images,
records carry each input image's path and sha256, and a missing column or file is one line before any work."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipelines import build_cogvideox

from benchkit.core.errors import BenchkitError
from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

RECIPE = Recipe("model-default", steps=2, guidance_scale=6.0, height=32, width=32, num_frames=9)


@pytest.fixture(scope="module")
def i2v(tmp_path_factory):
    root = tmp_path_factory.mktemp("i2v")
    base = build_cogvideox(root / "model", image_to_video=True)
    rng = np.random.default_rng(0)
    images = []
    for i in range(2):
        path = root / f"first_frame_{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        images.append(path)
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_id": f"p{i}", "prompt": text, "image": str(path)}) + "\n"
                               for i, (text, path) in enumerate(zip(("the digit one", "seven"), images))))
    return {"base": base, "images": images, "prompts": prompts, "root": root}


def items_of(i2v):
    return [Item("a", "the digit one", 0, (("image", str(i2v["images"][0])),)),
            Item("b", "seven", 3, (("image", str(i2v["images"][1])),))]


def test_clips_equal_the_pipeline_given_the_same_noise_and_images(i2v):
    from diffusers import CogVideoXImageToVideoPipeline

    model = load_model(ModelSpec("c", str(i2v["base"]), RECIPE), torch.device("cpu"), torch.float32)
    assert model.family == "cogvideox-i2v"
    gen = make_generator(model, RECIPE)
    items = items_of(i2v)
    out = gen.generate(items)
    noise, gens = gen.initial_noise(items)
    assert noise.shape == (2, 3, 4, 4, 4)  # the noise has the VAE's 4 channels; the transformer takes 8
    frames = [Image.open(p).convert("RGB") for p in i2v["images"]]
    theirs = CogVideoXImageToVideoPipeline.from_pretrained(str(i2v["base"]))(
        prompt=[it.prompt for it in items], image=frames, latents=noise, generator=gens, output_type="np",
        num_inference_steps=2, guidance_scale=6.0, height=32, width=32, num_frames=9).frames
    assert np.abs(np.stack(out.videos).astype(np.float64) / 255 - theirs).max() <= 1 / 255 + 1e-5
    assert out.inputs == [{"input_image": str(p), "input_image_sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                          for p in i2v["images"]]
    # an item does not depend on its batch (up to the rounding of batched CPU kernels: measured 1/255 in
    # under 0.01% of values), and its image conditions it
    alone = gen.generate(items[1:])
    diff = np.abs(alone.videos[0].astype(int) - out.videos[1].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    swapped = gen.generate([Item("b", "seven", 3, (("image", str(i2v["images"][0])),))])
    assert np.abs(swapped.videos[0].astype(int) - out.videos[1].astype(int)).max() > 8


def test_eval_end_to_end_records_the_input_images(i2v, tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "cogvideox-5b-i2v"\nbase = "{i2v["base"]}"\ndtype = "float32"\n'
                         "[recipe]\nheight = 32\nwidth = 32\nnum_frames = 9\nsteps = 2\n")
    results = run_eval(resolve_spec(str(spec_file)), load_prompt_set(str(i2v["prompts"])), [0], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c",
                       show_progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [(r["input_image"], r["input_image_sha256"]) for r in records] == [
        (str(p), hashlib.sha256(p.read_bytes()).hexdigest()) for p in i2v["images"]]
    assert {m["name"]: m["value"] for m in results["metrics"]}["nfe"] == 4
    preset = PRESETS["cogvideox-5b-i2v"]
    assert (preset.recipe.steps, preset.recipe.guidance_scale, preset.recipe.num_frames, preset.recipe.fps) == (50, 6.0, 49, 8)


def test_a_prompt_without_an_image_is_one_line_before_the_run_exists(i2v, tmp_path):
    spec = ModelSpec("c", str(i2v["base"]), RECIPE, family="cogvideox-i2v")
    with pytest.raises(BenchkitError, match=r"^prompt '[^']+': cogvideox-i2v is an image-to-video model and its prompt "
                                            r"has no image column; give the prompt set an 'image' column"):
        run_eval(spec, load_prompt_set("toy-digits").limit(1), [0], tmp_path / "run", metrics=["latency"], device="cpu",
                 batch_size=1, warmup_batches=0, cache_dir=tmp_path / "c", show_progress=False)
    assert not (tmp_path / "run").exists()
    missing = tmp_path / "prompts.jsonl"
    missing.write_text(json.dumps({"prompt_id": "x", "prompt": "a cat", "image": str(tmp_path / "nope.png")}) + "\n")
    with pytest.raises(BenchkitError, match=rf"^prompt 'x': its image {tmp_path / 'nope.png'} is not a file"):
        run_eval(spec, load_prompt_set(str(missing)), [0], tmp_path / "run", metrics=["latency"], device="cpu",
                 batch_size=1, warmup_batches=0, cache_dir=tmp_path / "c", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_wan_i2v_runs_item_by_item_and_equals_the_pipeline(tmp_path_factory):
    """Wan 2.1 I2V's pipeline takes one image per call, so a batch runs item by item; its CLIP vision
    encoder (left out for other families) is loaded; each clip equals the pipeline's own call."""
    from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline
    from tiny_pipelines import build_wan

    root = tmp_path_factory.mktemp("wani2v")
    base = build_wan(root / "model", image_to_video=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(2):
        paths.append(root / f"in{i}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(paths[-1])
    items = [Item("a", "the digit one", 0, (("image", str(paths[0])),)), Item("b", "seven", 3, (("image", str(paths[1])),))]
    recipe = Recipe("UniPCMultistepScheduler", {"flow_shift": 3.0}, steps=2, guidance_scale=5.0, height=16, width=16,
                    num_frames=5, max_sequence_length=16, negative_prompt="blurry")
    model = load_model(ModelSpec("w", str(base), recipe), torch.device("cpu"), torch.float32)
    assert model.family == "wan-i2v" and model.pipeline.image_encoder is not None
    gen = make_generator(model, recipe)
    out = gen.generate(items)
    assert [i["input_image"] for i in out.inputs] == [str(p) for p in paths]
    assert out.stages["denoiser_rows_per_item"] == 4  # each item's own call: cond + negative, 2 steps
    noise, gens = gen.initial_noise(items)
    pipe = WanImageToVideoPipeline.from_pretrained(str(base))
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=3.0)
    for k, (path, item) in enumerate(zip(paths, items)):
        theirs = pipe(image=Image.open(path).convert("RGB"), prompt=item.prompt, negative_prompt="blurry",
                      latents=noise[k : k + 1], generator=[gens[k]], output_type="np", num_inference_steps=2,
                      guidance_scale=5.0, height=16, width=16, num_frames=5, max_sequence_length=16).frames
        assert np.abs(out.videos[k].astype(np.float64) / 255 - theirs[0]).max() <= 1 / 255 + 1e-5
    preset = PRESETS["wan2.1-i2v-14b-480p"]
    assert preset.family == "wan-i2v" and (preset.recipe.height, preset.recipe.width, preset.recipe.num_frames) == (480, 832, 81)
