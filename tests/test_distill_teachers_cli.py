"""`benchkit pairs` and `benchkit distill` on SDXL- and SD3-like teachers (tiny, random, saved in
the diffusers layout): the teacher's conditioning equals what its diffusers pipeline feeds the
denoiser, pairs equal the pipeline's own DDIM samples, and the student folder is a spec that
`benchkit eval` runs through the family's pipeline with the method's recipe."""

from __future__ import annotations

import json

import pytest
import tomllib
import torch
from teachers import loaded_teacher
from tiny_pipelines import build_sd3, build_sdxl

PROMPTS = ["the digit one", "a seven", "four"]


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    (root / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    out = {"root": root, "prompts": root / "prompts.txt"}
    for family, build in (("sdxl", build_sdxl), ("sd3", build_sd3)):
        folder = build(root / family)
        spec = root / f"{family}.toml"
        spec.write_text(f'name = "tiny-{family}"\nbase = "{folder}"\n')
        out[family], out[f"{family}_spec"] = folder, spec
    return out


def denoiser_inputs(pipe, prompts, guidance, **call):
    """What the pipeline's denoiser is called with on its first step (CFG rows: negative, then positive)."""
    seen = {}
    denoiser = pipe.unet if hasattr(pipe, "unet") else pipe.transformer

    def hook(_module, args, kwargs):
        if not seen:
            seen.update(kwargs)
            seen["args"] = args

    handle = denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            pipe(prompts, num_inference_steps=1, guidance_scale=guidance, output_type="latent", **call)
    finally:
        handle.remove()
    return seen


def eval_student(cli, out, teachers, run):
    """`benchkit eval` of the exported student folder on two prompts, one seed; its manifest and
    sample records (two of them, or the eval did not run every item)."""
    code, _, err = cli("eval", "-m", str(out / "spec.toml"), "--prompts", str(teachers["prompts"]), "--seeds", "0",
                       "--limit", "2", "--metrics", "latency", "--warmup", "0", "--device", "cpu", "--out", str(run))
    assert code == 0, err
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2
    return json.loads((run / "manifest.json").read_text()), records


def test_sdxl_conditioning_equals_what_the_pipeline_feeds_its_unet(teachers, monkeypatch):
    from diffusers import StableDiffusionXLPipeline

    import distillers.data
    from distillers.prompt_encoding import teacher_text

    model, text = loaded_teacher(teachers["sdxl_spec"])[:2]
    cond = text.encode(PROMPTS)
    pipe = StableDiffusionXLPipeline.from_pretrained(str(teachers["sdxl"]))  # an independent load from disk
    assert pipe.config.force_zeros_for_empty_prompt
    pe, npe, pooled, npooled = pipe.encode_prompt(PROMPTS, device="cpu", do_classifier_free_guidance=True)
    assert cond.hidden.shape == pe.shape == (3, 16, 64) and cond.pooled.shape == pooled.shape == (3, 32)
    assert torch.allclose(cond.hidden, pe, atol=1e-6) and torch.allclose(cond.pooled, pooled, atol=1e-6)
    # the unconditional row is SDXL's zeroed negative, not the (non-zero) encoding of ""
    assert text.negative is not None and text.encode([""]).hidden.abs().max() > 0.1
    assert torch.equal(text.negative.hidden[0], npe[0]) and torch.equal(text.negative.pooled[0], npooled[0])
    # time ids and the whole CFG batch as the UNet sees it inside the pipeline's own call
    seen = denoiser_inputs(pipe, PROMPTS, guidance=5.0)
    added = seen["added_cond_kwargs"]
    ours = text.negative.repeat(3).cat(cond)
    assert torch.allclose(seen["encoder_hidden_states"], ours.hidden, atol=1e-6)
    assert torch.allclose(added["text_embeds"], ours.pooled, atol=1e-6)
    assert torch.equal(added["time_ids"], ours.time_ids)
    assert ours.time_ids[0].tolist() == [16, 16, 0, 0, 16, 16]
    # cached in chunks, the training prompts' encodings are the same rows
    monkeypatch.setattr(distillers.data, "ENCODE_CHUNK", 2)
    data = distillers.data.DistillData(PROMPTS, text.encode, text.shape, negative=text.negative)
    assert torch.equal(data.cond.hidden, cond.hidden) and torch.equal(data.cond.time_ids, cond.time_ids)
    assert torch.equal(data.uncond(2).pooled, torch.zeros(2, 32))
    # a pipeline saved with force_zeros_for_empty_prompt = false: the negative is the encoded ""
    model.pipeline.register_to_config(force_zeros_for_empty_prompt=False)
    pipe.register_to_config(force_zeros_for_empty_prompt=False)
    plain = teacher_text(model, torch.device("cpu"))
    _, npe, _, npooled = pipe.encode_prompt(PROMPTS[:1], device="cpu", do_classifier_free_guidance=True)
    empty = plain.encode([""])
    assert plain.negative is None and npe.abs().max() > 0.1
    assert torch.allclose(empty.hidden, npe, atol=1e-6) and torch.allclose(empty.pooled, npooled, atol=1e-6)


def test_sd3_conditioning_equals_what_the_pipeline_feeds_its_transformer(teachers):
    from diffusers import StableDiffusion3Pipeline

    model, text = loaded_teacher(teachers["sd3_spec"])[:2]
    cond = text.encode(PROMPTS)
    pipe = StableDiffusion3Pipeline.from_pretrained(str(teachers["sd3"]), text_encoder_3=None, tokenizer_3=None)
    pe, npe, pooled, npooled = pipe.encode_prompt(PROMPTS, None, None, device="cpu", do_classifier_free_guidance=True)
    assert cond.hidden.shape == pe.shape == (3, 16 + 256, 64) and cond.pooled.shape == pooled.shape == (3, 64)
    assert torch.allclose(cond.hidden, pe, atol=1e-6) and torch.allclose(cond.pooled, pooled, atol=1e-6)
    assert text.negative is None  # SD3 encodes "" as its negative
    empty = text.encode([""])
    assert torch.allclose(empty.hidden[0], npe[0], atol=1e-6) and torch.allclose(empty.pooled[0], npooled[0], atol=1e-6)
    seen = denoiser_inputs(pipe, PROMPTS, guidance=3.0)
    assert torch.allclose(seen["encoder_hidden_states"], empty.repeat(3).cat(cond).hidden, atol=1e-6)
    assert torch.allclose(seen["pooled_projections"], empty.repeat(3).cat(cond).pooled, atol=1e-6)


@pytest.fixture(scope="module")
def sdxl_pairs(teachers, tmp_path_factory):
    """`benchkit pairs` on the SDXL-like teacher: 2 trailing DDIM steps with CFG 3."""
    from benchkit.cli import main

    path = tmp_path_factory.mktemp("sdxl-pairs") / "pairs.safetensors"
    with pytest.raises(SystemExit) as exc:  # as the `cli` fixture runs it (a module fixture cannot use capsys)
        main(["pairs", "--teacher", str(teachers["sdxl_spec"]), "--prompts", str(teachers["prompts"]), "--count", "4",
              "--steps", "2", "--guidance", "3", "--device", "cpu", "-q", "--out", str(path)])
        raise SystemExit(0)
    assert exc.value.code == 0
    return path


def test_sdxl_pairs_are_the_pipelines_own_ddim_samples(teachers, sdxl_pairs):
    """Each pair's x0 equals StableDiffusionXLPipeline with DDIM (trailing, 2 steps, eta 0, CFG 3) from
    the pair's noise: the zeroed negative, pooled embeds and time ids all enter the teacher there."""
    from diffusers import DDIMScheduler, StableDiffusionXLPipeline

    from distillers.data import Pairs

    pairs = Pairs.load(sdxl_pairs)
    assert pairs.x0.shape == (4, 4, 8, 8) and pairs.prompts == PROMPTS and pairs.meta["family"] == "sdxl"
    pipe = StableDiffusionXLPipeline.from_pretrained(str(teachers["sdxl"]))
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing", clip_sample=False,
                                               set_alpha_to_one=True)
    pipe.set_progress_bar_config(disable=True)
    prompts = [PROMPTS[i] for i in pairs.prompt_index.tolist()]
    with torch.no_grad():
        theirs = pipe(prompts, num_inference_steps=2, guidance_scale=3.0, latents=pairs.noise, output_type="latent").images
    assert torch.isfinite(pairs.x0).all() and pairs.x0.abs().max() > 0.1
    assert torch.allclose(pairs.x0, theirs, atol=1e-4), (pairs.x0 - theirs).abs().max()


def test_sdxl_distill_exports_a_spec_that_eval_runs_through_the_sdxl_pipeline(cli, teachers, sdxl_pairs, tmp_path):
    out = tmp_path / "student"
    code, stdout, err = cli("distill", "--method", "dmd2", "--teacher", str(teachers["sdxl_spec"]), "--pairs", str(sdxl_pairs),
                            "--steps", "2", "--student-steps", "2", "--batch-size", "2", "--set", "ttur=1",
                            "--set", "guidance=8", "--device", "cpu", "-q", "--out", str(out))
    assert code == 0, err
    record = json.loads((out / "distill.json").read_text())
    assert record["method"] == "dmd2" and record["teacher"]["name"] == "tiny-sdxl"
    losses = record["last_losses"]
    assert losses and all(isinstance(v, float) and v == v and abs(v) != float("inf") for v in losses.values()), losses
    spec = tomllib.loads((out / "spec.toml").read_text())
    assert spec["base"] == "model"
    assert spec["recipe"] == {"scheduler": "LCMScheduler", "timesteps": [999, 499], "guidance_scale": 1.0}
    index = json.loads((out / "model" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline" and "text_encoder_2" in index
    manifest, records = eval_student(cli, out, teachers, tmp_path / "run")
    model = manifest["model"]
    assert model["family"] == "sdxl" and model["scheduler"]["class"] == "LCMScheduler"
    assert records[0]["stages"]["timesteps"] == pytest.approx([999.0, 499.0])
    assert records[0]["stages"]["denoiser_rows_per_item"] == 2  # guidance 1: one row per step, two steps


def test_sd3_pairs_are_the_pipelines_own_flow_euler_samples(cli, teachers, tmp_path):
    """`benchkit pairs` on the SD3-like flow teacher equals StableDiffusion3Pipeline's Euler sampler on the
    same (shifted) sigmas from the pair's noise, with SD3's encoded "" as the CFG negative."""
    from diffusers import StableDiffusion3Pipeline

    from distillers.data import Pairs

    path = tmp_path / "pairs.safetensors"
    code, _, err = cli("pairs", "--teacher", str(teachers["sd3_spec"]), "--prompts", str(teachers["prompts"]), "--count", "2",
                       "--steps", "2", "--guidance", "3", "--device", "cpu", "-q", "--out", str(path))
    assert code == 0, err
    pairs = Pairs.load(path)
    assert pairs.x0.shape == (2, 4, 8, 8) and pairs.meta["family"] == "sd3"
    # one pair per teacher batch gives the same pairs: each noise is seeded by its index
    code, _, err = cli("pairs", "--teacher", str(teachers["sd3_spec"]), "--prompts", str(teachers["prompts"]), "--count", "2",
                       "--steps", "2", "--guidance", "3", "--device", "cpu", "-q", "--batch-size", "1", "--out", str(tmp_path / "b1"))
    assert code == 0, err
    single = Pairs.load(tmp_path / "b1")
    assert torch.equal(single.noise, pairs.noise) and torch.allclose(single.x0, pairs.x0, atol=1e-5)
    pipe = StableDiffusion3Pipeline.from_pretrained(str(teachers["sd3"]), text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    prompts = [PROMPTS[i] for i in pairs.prompt_index.tolist()]
    # benchkit's trailing grid t = 999, 499 is s = (t + 1) / 1000 = 1.0, 0.5 before the scheduler's shift
    with torch.no_grad():
        theirs = pipe(prompts, sigmas=[1.0, 0.5], guidance_scale=3.0, latents=pairs.noise, output_type="latent").images
    assert torch.isfinite(pairs.x0).all() and pairs.x0.abs().max() > 0.1
    assert torch.allclose(pairs.x0, theirs, atol=1e-4), (pairs.x0 - theirs).abs().max()


@pytest.fixture(scope="module")
def sd3_pairs(teachers, tmp_path_factory):
    """`benchkit pairs` on the SD3-like teacher: 2 flow Euler steps with CFG 3."""
    from benchkit.cli import main

    path = tmp_path_factory.mktemp("sd3-pairs") / "pairs.safetensors"
    with pytest.raises(SystemExit) as exc:
        main(["pairs", "--teacher", str(teachers["sd3_spec"]), "--prompts", str(teachers["prompts"]), "--count", "4",
              "--steps", "2", "--guidance", "3", "--device", "cpu", "-q", "--out", str(path)])
        raise SystemExit(0)
    assert exc.value.code == 0
    return path


def test_sd3_distill_exports_a_transformer_student_that_eval_runs_on_its_sigmas(cli, teachers, sd3_pairs, tmp_path):
    """DMD2 (2 steps) on the SD3-like teacher: the student lands in ``transformer/`` (float16 with
    --half) beside the teacher's other components, its recipe is flow Euler with re-noising on the
    student's training sigmas, and `benchkit eval` runs that transformer (not the teacher's) on them."""
    import hashlib

    from safetensors import safe_open

    out = tmp_path / "student"
    code, _, err = cli("distill", "--method", "dmd2", "--teacher", str(teachers["sd3_spec"]), "--pairs", str(sd3_pairs),
                       "--steps", "2", "--student-steps", "2", "--batch-size", "2", "--set", "ttur=1", "--set", "guidance=3",
                       "--set", "lr=1e-3", "--half", "--device", "cpu", "-q", "--out", str(out))
    assert code == 0, err
    record = json.loads((out / "distill.json").read_text())
    assert record["method"] == "dmd2" and record["teacher"]["name"] == "tiny-sd3"
    losses = record["last_losses"]
    assert {"loss_dm", "loss_fake"} <= set(losses)
    assert all(isinstance(v, float) and v == v and abs(v) != float("inf") for v in losses.values()), losses
    spec = tomllib.loads((out / "spec.toml").read_text())
    # trailing grid t = 999, 499 -> s = 1.0, 0.5 -> the teacher's shift-3 sigmas 1.0, 0.75, pinned with shift = 1
    assert spec["recipe"] == {"scheduler": "FlowMatchEulerDiscreteScheduler", "guidance_scale": 1.0, "sigmas": [1.0, 0.75],
                              "scheduler_kwargs": {"shift": 1.0, "stochastic_sampling": True}}
    model_dir = out / "model"
    index = json.loads((model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline" and "transformer" in index and "unet" not in index
    assert not (model_dir / "unet").exists()
    student_file = model_dir / "transformer" / "diffusion_pytorch_model.safetensors"
    teacher_file = teachers["sd3"] / "transformer" / "diffusion_pytorch_model.safetensors"
    with safe_open(str(student_file), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731

    manifest, records = eval_student(cli, out, teachers, tmp_path / "run")
    model = manifest["model"]
    assert model["family"] == "sd3" and model["scheduler"]["class"] == "FlowMatchEulerDiscreteScheduler"
    assert model["scheduler"]["config"]["shift"] == 1.0
    assert manifest["spec"]["recipe"]["sigmas"] == [1.0, 0.75]
    # the eval hashed (and so loaded) the student's transformer file; the text encoders are the teacher's
    files = model["files"]
    assert files["transformer/diffusion_pytorch_model.safetensors"] == sha(student_file) != sha(teacher_file)
    assert files["text_encoder/model.safetensors"] == sha(teachers["sd3"] / "text_encoder" / "model.safetensors")
    assert model["weights_sha256"] != record["teacher_weights_sha256"]
    assert model["unet_calls_per_image"] == 2  # two student steps, guidance 1
    assert records[0]["stages"]["timesteps"] == pytest.approx([1000.0, 750.0], abs=1e-3)  # sigma * 1000, as in training
    assert records[0]["stages"]["denoiser_rows_per_item"] == 2


def test_lightning_one_step_x0_student_of_sd3_is_refused_before_training(cli, teachers, sd3_pairs, tmp_path):
    code, _, err = cli("distill", "--method", "lightning", "--teacher", str(teachers["sd3_spec"]), "--pairs", str(sd3_pairs),
                       "--steps", "2", "--student-steps", "1", "--device", "cpu", "-q", "--out", str(tmp_path / "x"))
    assert code == 2 and "x0_conversion_fraction=0" in err and "Traceback" not in err
    assert not (tmp_path / "x" / "checkpoints").exists() and not (tmp_path / "x" / "spec.toml").exists()


def test_pairs_of_another_shape_are_refused_in_one_line(cli, teachers, tmp_path):
    from distillers.data import Pairs

    path = tmp_path / "toy-pairs.safetensors"  # the toy's pixel-space shape, not the SDXL teacher's latents
    Pairs(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long), ["one"], {}).save(path)
    code, _, err = cli("distill", "--method", "dmd2", "--teacher", str(teachers["sdxl_spec"]), "--pairs", str(path),
                       "--steps", "1", "--device", "cpu", "-q", "--out", str(tmp_path / "x"))
    assert code == 2 and "(1, 8, 8)" in err and "(4, 8, 8)" in err and "benchkit pairs --teacher" in err
    assert "Traceback" not in err
