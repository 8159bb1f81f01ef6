"""HunyuanVideo-I2V: tiny HunyuanVideoImageToVideoPipelines of both kinds (tests/tiny_hunyuan_i2v.py) — "token_replace"
(HunyuanVideo-I2V: the image's latents replace the first frame, guidance embedded) and "latent_concat" (-33ch:
noise, image latents and a mask, no guidance input) — with a LLaVA text encoder read in the pipeline's default
template (576 image tokens). Each prompt's image column conditions its item, one pipeline call per item; clips
equal the pipeline's own for the same noise, its VAE decode is timed, records carry the image's sha256, and
`benchkit eval` runs a spec with ``family = "hunyuanvideo-i2v"`` end to end."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_hunyuan_i2v import IMAGE_SIDE, build_hunyuanvideo_i2v

from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from metrics.clips import read_clip
from prompts import load_prompt_set

RECIPE = Recipe("model-default", steps=2, guidance_scale=6.0, height=16, width=16, num_frames=9, max_sequence_length=16)
PIPE_ARGS = {"num_inference_steps": 2, "guidance_scale": 6.0, "height": 16, "width": 16, "num_frames": 9,
             "max_sequence_length": 16}
TEXTS = ("the digit one", "seven")
KINDS = ("token_replace", "latent_concat")


@pytest.fixture(scope="module")
def hy(tmp_path_factory):
    root = tmp_path_factory.mktemp("hyi2v")
    rng = np.random.default_rng(0)
    images = []
    for i in range(2):
        images.append(root / f"first_frame_{i}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images[-1])
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_id": f"p{i}", "prompt": text, "image": str(path)}) + "\n"
                               for i, (text, path) in enumerate(zip(TEXTS, images))))
    bases = {kind: build_hunyuanvideo_i2v(root / kind, latent_concat=kind == "latent_concat") for kind in KINDS}
    return {"bases": bases, "images": images, "prompts": prompts}


def items_of(hy, images=None):
    images = images or hy["images"]
    return [Item("a", TEXTS[0], 0, (("image", str(images[0])),)), Item("b", TEXTS[1], 3, (("image", str(images[1])),))]


@pytest.fixture(scope="module")
def runs(hy):
    """Each kind's model through benchkit (load_model, make_generator, generate), with what its transformer saw."""
    out = {}
    for kind in KINDS:
        model = load_model(ModelSpec(kind, str(hy["bases"][kind]), RECIPE), torch.device("cpu"), torch.float32)
        gen = make_generator(model, RECIPE)
        calls = []
        hook = model.pipeline.transformer.register_forward_pre_hook(
            lambda m, a, kw, calls=calls: calls.append({k: kw[k] for k in ("hidden_states", "guidance", "encoder_hidden_states")}),
            with_kwargs=True)
        generation = gen.generate(items_of(hy))
        hook.remove()
        out[kind] = {"model": model, "gen": gen, "out": generation, "calls": calls}
    return out


def test_the_tokenizer_fits_the_default_template(hy):
    """The saved tokenizer puts <image> where the template's image_emb_start says and makes its system part
    crop_start tokens long, so the pipeline's crop keeps exactly the prompt."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE as TEMPLATE
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hy["bases"]["token_replace"] / "tokenizer"))
    system = tok(TEMPLATE["template"].split("{}")[0]).input_ids
    assert len(system) == TEMPLATE["crop_start"] == 103
    assert system.index(tok.convert_tokens_to_ids("<image>")) == TEMPLATE["image_emb_start"] == 5
    ids = tok(TEMPLATE["template"].format(TEXTS[0])).input_ids
    assert tok.unk_token_id not in ids and ids[:103] == system
    assert tok.convert_ids_to_tokens(ids[103:]) == ["the", " digit", " one", "<|eot_id|>", "<|start_header_id|>",
                                                    "assistant", "<|end_header_id|>", "\n\n"]


@pytest.mark.parametrize("kind", KINDS)
def test_clips_equal_the_pipeline_for_the_same_noise_and_image(hy, runs, kind):
    from diffusers import HunyuanVideoImageToVideoPipeline

    run = runs[kind]
    assert run["model"].family == "hunyuanvideo-i2v"
    assert run["model"].pipeline.transformer.config.image_condition_type == kind
    items = items_of(hy)
    noise, gens = run["gen"].initial_noise(items)
    assert noise.shape == (2, 4, 3, 2, 2)  # the VAE's 4 channels, channels first: 9 frames -> 3, 16 px -> 2
    pipe = HunyuanVideoImageToVideoPipeline.from_pretrained(str(hy["bases"][kind]))
    for k, (path, item) in enumerate(zip(hy["images"], items)):
        theirs = pipe(image=Image.open(path).convert("RGB"), prompt=item.prompt, latents=noise[k : k + 1],
                      generator=[gens[k]], output_type="np", **PIPE_ARGS).frames
        # measured: the pipeline's float frames vs benchkit's uint8 within half a level (rounding)
        assert theirs.shape == (1, *run["out"].videos[k].shape)
        assert np.abs(run["out"].videos[k].astype(np.float64) / 255 - theirs[0]).max() <= 1 / 255 + 1e-5
    # the clips are not trivial: items differ, and few values sit at the clipping limits
    assert np.abs(run["out"].videos[0].astype(int) - run["out"].videos[1].astype(int)).max() > 8
    assert np.isin(np.stack(run["out"].videos), (0, 255)).mean() < 0.1


def test_token_replace_embeds_guidance_and_keeps_every_frame(runs):
    run = runs["token_replace"]
    out, calls = run["out"], run["calls"]
    # 9 frames: the VAE's 3 latent frames decode to 9, all kept; the first frame is each item's image's latents
    assert [v.shape for v in out.videos] == [(9, 16, 16, 3)] * 2
    assert [c["hidden_states"].shape for c in calls] == [(1, 4, 3, 2, 2)] * 4  # 4 channels in: the image replaces frame 0
    assert [c["guidance"].tolist() for c in calls] == [[6000.0]] * 4  # guidance_scale * 1000, one call per step and item
    # the LLaVA's 576 image tokens (the default template's), every 4th kept, then the prompt's 16 positions
    # (max_sequence_length) less the 4 assistant-header tokens the pipeline crops
    assert {tuple(c["encoder_hidden_states"].shape) for c in calls} == {(1, IMAGE_SIDE**2 // 4 + 12, 16)}
    assert out.stages["denoiser_rows_per_item"] == 2 and out.trace["classifier_free_guidance"] is False
    assert out.trace["denoiser_timesteps"] == pytest.approx([1000.0, 875.0])  # shift 7 on sigmas (1, 1/2)


def test_latent_concat_has_no_guidance_input_and_drops_the_image_frames(runs):
    run = runs["latent_concat"]
    out, calls = run["out"], run["calls"]
    # measured: the pipeline drops the first 4 decoded frames (the image's latent frame): 9 - 4 = 5 frames
    assert [v.shape for v in out.videos] == [(5, 16, 16, 3)] * 2
    assert [c["hidden_states"].shape for c in calls] == [(1, 9, 3, 2, 2)] * 4  # noise, image latents and a mask
    assert all(c["guidance"] is None for c in calls)  # one call per step, guidance_scale reaches nothing
    assert out.trace["guidance"] == "none" and runs["token_replace"]["out"].trace["guidance"] == "embedded"
    assert {tuple(c["encoder_hidden_states"].shape) for c in calls} == {(1, IMAGE_SIDE**2 // 2 + 12, 16)}
    assert out.stages["denoiser_rows_per_item"] == 2 and out.trace["classifier_free_guidance"] is False
    assert out.images[0].shape == (16, 16, 3) and np.array_equal(out.images[0], out.videos[0][0])


@pytest.mark.parametrize("kind", KINDS)
def test_decode_is_timed_and_records_carry_the_images(hy, runs, kind):
    out = runs[kind]["out"]
    assert out.stages["vae_decode_s"] > 0 and out.stages["text_encoding_s"] > 0
    assert out.inputs == [{"input_image": str(p), "input_image_sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                          for p in hy["images"]]


def test_true_cfg_encodes_the_negative_with_a_black_image_as_the_pipeline_does(hy, runs):
    """true_cfg_scale with a negative prompt: a second call per step (the negative's LLaVA reads a black image)."""
    from diffusers import HunyuanVideoImageToVideoPipeline

    recipe = Recipe("model-default", steps=2, guidance_scale=6.0, height=16, width=16, num_frames=9, max_sequence_length=16,
                    true_cfg_scale=6.0, negative_prompt="blurry")
    model = runs["token_replace"]["model"]
    gen = make_generator(model, recipe)
    item = items_of(hy)[1:]
    out = gen.generate(item)
    assert out.stages["denoiser_rows_per_item"] == 4 and out.trace["classifier_free_guidance"] is True
    noise, gens = gen.initial_noise(item)
    pipe = HunyuanVideoImageToVideoPipeline.from_pretrained(str(hy["bases"]["token_replace"]))
    theirs = pipe(image=Image.open(hy["images"][1]).convert("RGB"), prompt=item[0].prompt, negative_prompt="blurry",
                  true_cfg_scale=6.0, latents=noise, generator=gens, output_type="np", **PIPE_ARGS).frames
    assert np.abs(out.videos[0].astype(np.float64) / 255 - theirs[0]).max() <= 1 / 255 + 1e-5
    # the negative moved the clip beyond rounding (measured: 9 levels at most; the tiny text path is weak)
    assert np.abs(out.videos[0].astype(int) - runs["token_replace"]["out"].videos[1].astype(int)).max() > 2


def test_the_image_conditions_the_clip(hy, runs):
    """Swapping the items' images changes their clips (the first frame and the LLaVA's prompt both read it)."""
    run = runs["token_replace"]
    swapped = run["gen"].generate(items_of(hy, images=hy["images"][::-1]))
    for k in range(2):
        assert np.abs(swapped.videos[k].astype(int) - run["out"].videos[k].astype(int)).max() > 8
    assert [i["input_image"] for i in swapped.inputs] == [str(p) for p in hy["images"][::-1]]


@pytest.mark.parametrize("kind", KINDS)
def test_eval_end_to_end_writes_the_videos_and_records(hy, kind, tmp_path):
    spec_file = tmp_path / "spec.toml"
    preset = "hunyuanvideo-i2v-33ch" if kind == "latent_concat" else "hunyuanvideo-i2v"
    spec_file.write_text(f'extends = "{preset}"\nbase = "{hy["bases"][kind]}"\ndtype = "float32"\n'
                         "[recipe]\nheight = 16\nwidth = 16\nnum_frames = 9\nsteps = 2\nmax_sequence_length = 16\n")
    results = run_eval(resolve_spec(str(spec_file)), load_prompt_set(str(hy["prompts"])), [0], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c",
                       show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["family"] == "hunyuanvideo-i2v" and manifest["model"]["fps"] == 15
    # the recipe asked for 9 frames; the manifest says what each clip holds where the pipeline trims
    assert manifest["model"]["num_frames"] == 9 and manifest["model"].get("frames_per_clip") == (5 if kind == "latent_concat" else None)
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [(r["input_image"], r["input_image_sha256"]) for r in records] == [
        (str(p), hashlib.sha256(p.read_bytes()).hexdigest()) for p in hy["images"]]
    assert {m["name"]: m["value"] for m in results["metrics"]}["nfe"] == 2
    assert len(list((tmp_path / "run" / "videos").iterdir())) == 2
    # each written clip has the frames the pipeline returned: latent_concat's are 4 fewer than the recipe's 9
    frames = 5 if kind == "latent_concat" else 9
    for r in records:
        assert int(r["frames"]) == frames
        clip = read_clip(tmp_path / "run" / r["video"])  # mp4 with PyAV installed, else APNG
        assert clip.shape == (frames, 16, 16, 3)
