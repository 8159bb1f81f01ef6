"""`benchkit pairs` and `benchkit distill` on a tiny Wan 2.1-like text-to-video teacher (video DiT over (1, 2, 2)
patches of channels-first latents, UMT5, UniPC on flow sigmas), saved in the diffusers layout: the conditioning
equals what WanPipeline feeds its transformer (negative prompt included), the schedule is UniPC's flow schedule,
one adapter call equals the pipeline's transformer call, pairs equal the pipeline's own Euler samples, and
DMD2 / ADM students are specs that `benchkit eval` runs through WanPipeline on exactly their training sigmas."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import tomllib
import torch
from teachers import loaded_teacher
from tiny_pipelines import build_wan

PROMPTS = ["the digit one", "a  seven &amp; more", "four"]  # the second needs the pipeline's prompt_clean
NEGATIVE = "blurry, static"
SIZE, FRAMES, FPS, LENGTH = 16, 5, 16, 16  # 16 px -> 2x2 latents (VAE x8), 5 frames -> 2 latent frames (VAE x4)
SHIPPED_SHIFT, SHIFT = 3.0, 5.0  # the folder's UniPC flow_shift, and the one the spec's recipe samples with
GUIDANCE = 4.0  # `benchkit pairs --guidance`: CFG with the negative prompt


def shifted(s: float, shift: float = SHIFT) -> float:
    return shift * s / (1 + (shift - 1) * s)


SIGMAS_2 = [shifted(1.0), shifted(0.5)]  # the trailing 2-step grid t = 999, 499 is s = 1.0, 0.5


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    """The teacher with a spec as Wan's presets write them (UniPC with a flow_shift, CFG 5, a negative prompt, tiny
    size), and the same weights with no recipe (the pipeline's and family's defaults)."""
    root = tmp_path_factory.mktemp("wan")
    (root / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    folder = build_wan(root / "w")
    recipe = (f'[recipe]\nscheduler = "UniPCMultistepScheduler"\nscheduler_kwargs = {{ flow_shift = {SHIFT} }}\nsteps = 2\n'
              f'guidance_scale = 5.0\nheight = {SIZE}\nwidth = {SIZE}\nnum_frames = {FRAMES}\nfps = {FPS}\n'
              f'max_sequence_length = {LENGTH}\nnegative_prompt = "{NEGATIVE}"\n')
    out = {"root": root, "prompts": root / "prompts.txt", "folder": folder}
    for key, name, body in (("spec", "tiny-wan", recipe), ("plain_spec", "tiny-wan-plain", "")):
        path = root / f"{name}.toml"
        path.write_text(f'name = "{name}"\nbase = "{folder}"\n{body}')
        out[key] = path
    return out


def pipeline(wan):
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(str(wan["folder"]))  # an independent load from disk
    pipe.set_progress_bar_config(disable=True)
    return pipe


def euler_on_the_trailing_grid(pipe):
    """WanPipeline with FlowMatchEulerDiscreteScheduler(shift=SHIFT), an independent reference for the Euler sampler
    the pairs use. WanPipeline only calls set_timesteps(N), on which FlowMatch's default grid runs from 1 to its
    sigma_min, so the scheduler is handed FluxPipeline's grid linspace(1, 1/N, N) (the trailing grid) and shifts it."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SHIFT)
    set_timesteps = sched.set_timesteps
    sched.set_timesteps = lambda n=None, device=None, **kw: set_timesteps(sigmas=list(np.linspace(1.0, 1 / n, n)), device=device)
    pipe.scheduler = sched
    return pipe


def transformer_calls(pipe, prompts, **call):
    """Every transformer call inside the pipeline's own sampling: its keywords and output."""
    seen = []
    handle = pipe.transformer.register_forward_hook(lambda _m, _a, kw, out: seen.append({**kw, "output": out[0]}),
                                                    with_kwargs=True)
    try:
        with torch.no_grad():
            pipe(prompts, height=SIZE, width=SIZE, num_frames=FRAMES, max_sequence_length=LENGTH, output_type="latent", **call)
    finally:
        handle.remove()
    return seen


def test_conditioning_equals_what_wan_pipeline_feeds_its_transformer(wan):
    """UMT5 rows as WanPipeline._get_t5_prompt_embeds builds them (cleaned prompt, mask, trimmed and zero-padded to
    max_sequence_length), the recipe's negative prompt as the unconditional, channels-first (C, F, h, w) latents."""
    _, text, _ = loaded_teacher(wan["spec"])
    cond = text.encode(PROMPTS)
    pipe = pipeline(wan)
    pe, npe = pipe.encode_prompt(PROMPTS, negative_prompt=NEGATIVE, device="cpu", max_sequence_length=LENGTH)
    assert cond.hidden.shape == pe.shape == (3, LENGTH, 32) and cond.pooled is None and cond.guidance is None
    assert torch.allclose(cond.hidden, pe, atol=1e-6)
    assert text.negative.texts == (NEGATIVE,) and torch.allclose(text.negative.hidden, npe[:1], atol=1e-6)
    # the trimming matters: UMT5's outputs past a prompt's tokens are not zero, the rows are
    tokens = pipe.tokenizer(PROMPTS[0], padding="max_length", max_length=LENGTH, return_tensors="pt")
    n = int(tokens.attention_mask.sum())
    raw = pipe.text_encoder(tokens.input_ids, tokens.attention_mask).last_hidden_state[0].detach()
    assert n < LENGTH and raw[n:].abs().max() > 0.01 and not cond.hidden[0, n:].any() and cond.hidden[0, :n].abs().min() > 0
    assert text.shape == (16, 2, SIZE // 8, SIZE // 8)  # z_dim 16, (5 - 1) // 4 + 1 = 2 latent frames
    assert text.recipe == {"height": SIZE, "width": SIZE, "num_frames": FRAMES, "max_sequence_length": LENGTH, "fps": FPS}
    # inside the pipeline's own CFG call: the prompt rows, then the negative's, reach the transformer
    seen = transformer_calls(pipe, PROMPTS, negative_prompt=NEGATIVE, num_inference_steps=1, guidance_scale=5.0)
    assert len(seen) == 2 and seen[0]["hidden_states"].shape == (3, *text.shape)
    assert torch.allclose(seen[0]["encoder_hidden_states"], cond.hidden, atol=1e-6)
    assert torch.allclose(seen[1]["encoder_hidden_states"], text.negative.repeat(3).hidden, atol=1e-6)
    # a spec without a recipe: UMT5 at WanPipeline's 512 tokens, the negative "", the family's 480 x 832 x 81
    _, plain, plain_teacher = loaded_teacher(wan["plain_spec"])
    pe, npe = pipe.encode_prompt(PROMPTS[:1], device="cpu", max_sequence_length=512)
    assert plain.encode(PROMPTS[:1]).hidden.shape == pe.shape == (1, 512, 32)
    assert torch.allclose(plain.encode(PROMPTS[:1]).hidden, pe, atol=1e-5)
    assert plain.negative.texts == ("",) and torch.allclose(plain.negative.hidden, npe, atol=1e-5)
    assert plain.shape == (16, 21, 60, 104) and "fps" not in plain.recipe
    assert plain.recipe == {"height": 480, "width": 832, "num_frames": 81, "max_sequence_length": 512}
    assert plain_teacher.schedule.sigma(torch.tensor([499.0])).item() == pytest.approx(shifted(0.5, SHIPPED_SHIFT))


def test_the_teachers_schedule_is_unipcs_flow_schedule(wan):
    """UniPC on flow sigmas is NoiseSchedule.flow(T, flow_shift), with the recipe's flow_shift, read as flow prediction.
    UniPC's own N-step grid starts from s = linspace(1, 1/T, N + 1)[:-1] (first sigma nudged by 1e-6, timesteps
    truncated to integers); the trailing training grid is s = linspace(1, 1/N, N), FlowMatch's with explicit sigmas."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    from benchkit.core.errors import BenchkitError
    from distillers.adapter import NoiseSchedule, prediction_type_of
    from distillers.training import trailing_timesteps

    model, text, teacher = loaded_teacher(wan["spec"])
    config = model.scheduler_config
    assert config["_class_name"] == "UniPCMultistepScheduler" and config["flow_shift"] == SHIPPED_SHIFT
    assert text.scheduler_config["flow_shift"] == SHIFT  # the recipe's, as eval samples the teacher
    assert teacher.prediction_type == "flow" == prediction_type_of(config) and teacher.schedule.kind == "flow"
    assert torch.equal(teacher.schedule.sigmas, NoiseSchedule.flow(1000, SHIFT).sigmas)
    unipc = UniPCMultistepScheduler.from_config(config, flow_shift=SHIFT)
    for n in (2, 4):
        unipc.set_timesteps(n)
        s = np.linspace(1, 1 / 1000, n + 1)[:-1]  # UniPC's unshifted grid: our t = s * T - 1
        ours = teacher.schedule.sigma(torch.tensor(s * 1000 - 1))
        assert ours.tolist() == pytest.approx(unipc.sigmas[:-1].tolist(), abs=2e-6)
        assert unipc.timesteps.tolist() == [int(v) for v in (unipc.sigmas[:-1].double() * 1000).tolist()]
        euler = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
        euler.set_timesteps(sigmas=list(np.linspace(1, 1 / n, n)))
        grid = torch.tensor(trailing_timesteps(n), dtype=torch.float64)
        assert teacher.schedule.sigma(grid).tolist() == pytest.approx(euler.sigmas[:-1].tolist(), abs=1e-6)
        assert teacher.schedule.model_timestep(grid).tolist() == pytest.approx(euler.timesteps.tolist(), abs=1e-3)
    # the two grids differ: UniPC's 2 steps call the transformer at 999 and 833, the training grid at 1000 and 833.33
    unipc.set_timesteps(2)
    assert unipc.timesteps.tolist() == [999, 833] and float(unipc.sigmas[0]) == pytest.approx(1 - 1e-6, abs=1e-7)
    with pytest.raises(BenchkitError, match="use_flow_sigmas and use_karras_sigmas") as exc:
        NoiseSchedule.from_scheduler_config({**config, "use_karras_sigmas": True})
    assert "\n" not in str(exc.value)


def test_an_adapter_call_equals_the_pipelines_transformer_call(wan):
    """The adapter on (B, C, F, h, w) latents equals WanPipeline's first transformer call at sigma 1 (timestep 1000),
    the conditional row and the negative's alike, and its CFG mix equals the pipeline's."""
    _, text, teacher = loaded_teacher(wan["spec"])
    pipe = euler_on_the_trailing_grid(pipeline(wan))
    noise = torch.randn(2, *text.shape, generator=torch.Generator().manual_seed(0))
    seen = transformer_calls(pipe, PROMPTS[:2], negative_prompt=NEGATIVE, num_inference_steps=2, guidance_scale=GUIDANCE,
                             latents=noise)
    assert seen[0]["timestep"].tolist() == [1000.0, 1000.0]  # our t = 999: sigma 1, times 1000
    assert teacher.schedule.model_timestep(torch.tensor([999.0])).tolist() == [1000.0]
    cond = text.encode(PROMPTS[:2])
    with torch.no_grad():
        ours = teacher.raw(noise, 999.0, cond)
        guided = teacher(noise, 999.0, cond, guidance=GUIDANCE, uncond=text.negative.repeat(2)).raw
        ours_negative = teacher.raw(noise, 999.0, text.negative.repeat(2))
    assert ours.shape == noise.shape and ours.abs().max() > 0.1
    assert torch.allclose(ours, seen[0]["output"], atol=1e-5), (ours - seen[0]["output"]).abs().max()
    assert torch.allclose(ours_negative, seen[1]["output"], atol=1e-5)
    theirs = seen[1]["output"] + GUIDANCE * (seen[0]["output"] - seen[1]["output"])
    assert torch.allclose(guided, theirs, atol=1e-4)


def test_feature_maps_lay_wan_video_tokens_out_frame_by_frame(wan):
    """Wan's blocks return (B, N, C) video tokens; the map stacks the frames' token grids along the rows, which is
    the transformer's own patch embedding (B, C, F, H/2, W/2) read as (B, C, F*H/2, W/2); the heads take such
    non-square maps, and the pixel discriminator judges a clip frame by frame."""
    from distillers.heads import (
        ConvHead,
        FeatureDiscriminator,
        PixelDiscriminator,
        _as_map,
        feature_modules,
        tapped_features,
        token_grid,
    )

    _, text, teacher = loaded_teacher(wan["spec"])
    model = teacher.model
    assert feature_modules(model, "mid") == ["blocks.1"] and feature_modules(model, "multi") == ["blocks.0", "blocks.1"]
    x = torch.randn(1, 16, 3, 4, 6, generator=torch.Generator().manual_seed(1))  # 3 frames of 2 x 3 tokens
    with torch.no_grad():
        patches = model.patch_embedding(x)  # (1, 24, 3, 2, 3)
        tokens = patches.flatten(2).transpose(1, 2)  # as the transformer flattens them
    assert token_grid(model, x) == (6, 3)
    assert torch.equal(_as_map(tokens, token_grid(model, x)), patches.reshape(1, 24, 6, 3))
    with torch.no_grad():
        feats = tapped_features(teacher, x, 500.0, text.encode(PROMPTS[:1]), feature_modules(model, "multi"))
    assert [tuple(f.shape) for f in feats] == [(1, 24, 6, 3)] * 2
    # a square head keeps its layers; a (6, 3) map halves its rows only, down to one logit per sample
    square = [m for m in ConvHead(8, 16).net if isinstance(m, torch.nn.Conv2d)]
    assert [(m.kernel_size, m.stride) for m in square] == [((4, 4), (2, 2)), ((4, 4), (2, 2)), ((4, 4), (4, 4)), ((1, 1), (1, 1))]
    assert ConvHead(24, (6, 3))(torch.cat([feats[0], feats[1]])).shape == (2,)
    disc = FeatureDiscriminator(teacher, feature_modules(model, "multi"), text.shape, text.encode(PROMPTS))
    with torch.no_grad():
        assert disc(torch.randn(2, *text.shape), 300.0, text.encode(PROMPTS[:2])).shape == (2,)
    pixel = PixelDiscriminator(16, 2)
    clips = torch.randn(2, 16, 2, 2, 2)
    with torch.no_grad():
        by_frame = torch.stack([pixel(clips[:, :, f]) for f in range(2)], 1).mean(1)
        assert torch.allclose(pixel(clips), by_frame, atol=1e-6)


def test_a_lora_student_adapts_wans_attention_and_feed_forward_and_merges_back(wan):
    """--lora on Wan: the family's LoRA targets (self- and cross-attention, feed-forward) get adapters, and the
    exported student is a plain WanTransformer3DModel that computes what the adapted one does."""
    from distillers.adapter import trainable_copy
    from distillers.student import add_lora, merged_copy

    _, text, teacher = loaded_teacher(wan["spec"])
    student = add_lora(trainable_copy(teacher.model).requires_grad_(False), 4, 4)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in student.named_modules() if n.endswith("lora_A")}
    assert {"blocks.0.attn1.to_q", "blocks.0.attn2.to_out.0", "blocks.1.ffn.net.0.proj", "blocks.1.ffn.net.2"} <= adapted
    assert not any("patch_embedding" in n or "condition_embedder" in n for n in adapted)
    with torch.no_grad():
        for name, p in student.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # peft starts B at zero: make the adapter do something
        x, cond = torch.randn(1, *text.shape), text.encode(PROMPTS[:1])
        before = teacher.with_model(student).raw(x, 500.0, cond)
        merged = merged_copy(student)
        assert type(merged).__name__ == "WanTransformer3DModel" and not getattr(merged, "peft_config", None)
        after = teacher.with_model(merged).raw(x, 500.0, cond)
    assert (before - teacher.raw(x, 500.0, cond)).abs().max() > 1e-3 and torch.allclose(before, after, atol=1e-5)


@pytest.fixture(scope="module")
def wan_pairs(wan, tmp_path_factory):
    """`benchkit pairs` on the Wan teacher: 2 flow Euler steps, CFG 4 with the recipe's negative prompt."""
    from benchkit.cli import main

    path = tmp_path_factory.mktemp("wan-pairs") / "pairs.safetensors"
    with pytest.raises(SystemExit) as exc:  # as the `cli` fixture runs it (a module fixture cannot use capsys)
        main(["pairs", "--teacher", str(wan["spec"]), "--prompts", str(wan["prompts"]), "--count", "4", "--steps", "2",
              "--guidance", str(GUIDANCE), "--device", "cpu", "-q", "--out", str(path)])
        raise SystemExit(0)
    assert exc.value.code == 0
    return path


def test_pairs_are_wan_pipelines_own_euler_samples(wan, wan_pairs):
    """Each pair's x0 equals WanPipeline's sample from the pair's noise with FlowMatchEulerDiscreteScheduler(shift=5)
    on the trailing grid, CFG 4 against the negative prompt."""
    from distillers.data import Pairs

    pairs = Pairs.load(wan_pairs)
    assert pairs.x0.shape == pairs.noise.shape == (4, 16, 2, 2, 2) and pairs.prompts == PROMPTS
    assert pairs.meta["family"] == "wan" and pairs.meta["guidance"] == GUIDANCE
    assert pairs.meta["conditioning"]["negative"].startswith(f"encode({NEGATIVE!r})")
    assert pairs.meta["sigmas"] == pytest.approx(SIGMAS_2, abs=1e-12)
    pipe = euler_on_the_trailing_grid(pipeline(wan))
    prompts = [PROMPTS[i] for i in pairs.prompt_index.tolist()]
    with torch.no_grad():
        theirs = pipe(prompts, negative_prompt=NEGATIVE, latents=pairs.noise, num_inference_steps=2, guidance_scale=GUIDANCE,
                      height=SIZE, width=SIZE, num_frames=FRAMES, max_sequence_length=LENGTH, output_type="latent").frames
    assert pipe.scheduler.sigmas[:-1].tolist() == pytest.approx(SIGMAS_2, abs=1e-6)
    assert torch.isfinite(pairs.x0).all() and pairs.x0.abs().max() > 0.1
    assert torch.allclose(pairs.x0, theirs, atol=1e-4), (pairs.x0 - theirs).abs().max()


def distill(cli, wan, pairs, out, method, monkeypatch, *args):
    """`benchkit distill` through the CLI; also what guidance and negative the teacher was called with."""
    from distillers.adapter import Denoiser

    calls = []
    call = Denoiser.__call__

    def spy(self, x_t, t, cond, guidance=1.0, uncond=None):
        if guidance != 1.0:
            calls.append((guidance, uncond.texts, tuple(x_t.shape[1:])))
        return call(self, x_t, t, cond, guidance, uncond)

    monkeypatch.setattr(Denoiser, "__call__", spy)
    code, _, err = cli("distill", "--method", method, "--teacher", str(wan["spec"]), "--pairs", str(pairs), "--steps", "2",
                       "--batch-size", "2", "--set", "lr=1e-3", *args, "--device", "cpu", "-q", "--out", str(out))
    assert code == 0, err
    record = json.loads((out / "distill.json").read_text())
    assert record["method"] == method and record["teacher"]["name"] == "tiny-wan"
    assert record["config"]["guidance"] == 1.75  # the methods' CFG default: Wan is a CFG teacher
    # the real score ran with that CFG against the recipe's negative prompt, on video latents
    assert calls and {c[0] for c in calls} == {1.75} and {c[1] for c in calls} == {(NEGATIVE,) * 2}
    assert {c[2] for c in calls} == {(16, 2, 2, 2)}
    losses = record["last_losses"]
    assert losses and all(isinstance(v, float) and math.isfinite(v) for v in losses.values()), losses
    return record, tomllib.loads((out / "spec.toml").read_text())


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def eval_student(cli, wan, out, run):
    """`benchkit eval --model STUDENT_DIR` on two prompts, one seed: its manifest and sample records; clips are written."""
    code, _, err = cli("eval", "-m", str(out), "--prompts", str(wan["prompts"]), "--seeds", "0", "--limit", "2",
                       "--metrics", "latency", "--warmup", "0", "--device", "cpu", "--out", str(run))
    assert code == 0, err
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["frames"] == str(FRAMES) for r in records)
    assert len(list((run / "videos").iterdir())) == 2
    manifest = json.loads((run / "manifest.json").read_text())
    model = manifest["model"]
    assert model["family"] == "wan" and model["num_frames"] == FRAMES and model["fps"] == FPS
    assert model["scheduler"]["class"] == "FlowMatchEulerDiscreteScheduler" and model["scheduler"]["config"]["shift"] == 1.0
    student_file = out / "model" / "transformer" / "diffusion_pytorch_model.safetensors"
    assert model["files"]["transformer/diffusion_pytorch_model.safetensors"] == sha(student_file)
    return manifest, records


def sampled_by_the_pipeline(out):
    """The student spec through benchkit's Wan generator: the trace of what its scheduler and transformer did."""
    from benchkit.core.items import Item
    from benchkit.models.loading import load_model
    from benchkit.models.presets import resolve_spec
    from benchkit.models.sampling import make_generator

    spec = resolve_spec(str(out / "spec.toml"))
    model = load_model(spec, torch.device("cpu"), torch.float32)
    gen = make_generator(model, spec.recipe)
    result = gen.generate([Item("a", PROMPTS[0], 0)])
    assert len(result.videos) == 1 and result.videos[0].shape == (FRAMES, SIZE, SIZE, 3)
    return result.trace


def test_dmd2_student_of_wan_is_a_spec_eval_runs_on_its_training_sigmas(cli, wan, wan_pairs, tmp_path, monkeypatch):
    """DMD2 (2 steps, GAN head on the fake score's middle block): the student lands in ``transformer/``, its recipe is
    stochastic flow Euler on the training sigmas (shift 1), guidance 1, the teacher's size, frames, fps and UMT5
    length; eval runs that transformer through WanPipeline at exactly sigma * 1000."""
    out = tmp_path / "student"
    record, spec = distill(cli, wan, wan_pairs, out, "dmd2", monkeypatch, "--student-steps", "2", "--set", "ttur=1")
    assert {"loss_dm", "loss_g_gan", "loss_fake", "loss_d_cls"} <= set(record["last_losses"])
    recipe = spec["recipe"]
    assert recipe["sigmas"] == pytest.approx(SIGMAS_2, abs=1e-12)
    assert recipe == {"scheduler": "FlowMatchEulerDiscreteScheduler", "sigmas": recipe["sigmas"], "guidance_scale": 1.0,
                      "scheduler_kwargs": {"shift": 1.0, "stochastic_sampling": True}, "height": SIZE, "width": SIZE,
                      "num_frames": FRAMES, "max_sequence_length": LENGTH, "fps": FPS}
    model_dir = out / "model"
    index = json.loads((model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline" and not (model_dir / "unet").exists()
    student_file = model_dir / "transformer" / "diffusion_pytorch_model.safetensors"
    assert sha(student_file) != sha(wan["folder"] / "transformer" / "diffusion_pytorch_model.safetensors")

    manifest, records = eval_student(cli, wan, out, tmp_path / "run")
    assert manifest["spec"]["recipe"]["sigmas"] == pytest.approx(SIGMAS_2, abs=1e-12)
    assert manifest["model"]["unet_calls_per_image"] == 2  # two student steps, guidance 1: one row each
    assert records[0]["stages"]["timesteps"] == pytest.approx([1000 * s for s in SIGMAS_2], abs=1e-3)
    trace = sampled_by_the_pipeline(out)
    assert trace["scheduler_sigmas"] == pytest.approx(SIGMAS_2 + [0.0], abs=1e-6)
    assert trace["denoiser_timesteps"] == pytest.approx([1000 * s for s in SIGMAS_2], abs=1e-3)


def test_adm_with_adp_on_wan_exports_a_one_step_student_eval_runs(cli, wan, wan_pairs, tmp_path, monkeypatch):
    """ADM (one step, one ADP pre-training step on the pairs first: latent heads on both blocks of the frozen teacher,
    the pixel discriminator frame by frame): a deterministic one-step recipe at sigma 1, run by eval."""
    out = tmp_path / "student"
    _, spec = distill(cli, wan, wan_pairs, out, "adm", monkeypatch, "--student-steps", "1", "--set", "adp_steps=1")
    steps = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [sorted(k for k in s if k != "step") for s in steps] == [
        ["loss_adp_d_latent", "loss_adp_d_pixel", "loss_adp_g"], ["loss_d", "loss_fake", "loss_g_adv"]]
    assert all(math.isfinite(v) for s in steps for v in s.values())
    assert spec["recipe"] == {"scheduler": "FlowMatchEulerDiscreteScheduler", "sigmas": [1.0], "guidance_scale": 1.0,
                              "scheduler_kwargs": {"shift": 1.0}, "height": SIZE, "width": SIZE, "num_frames": FRAMES,
                              "max_sequence_length": LENGTH, "fps": FPS}
    _, records = eval_student(cli, wan, out, tmp_path / "run")
    assert records[0]["stages"]["timesteps"] == pytest.approx([1000.0], abs=1e-3)
    assert sampled_by_the_pipeline(out)["denoiser_timesteps"] == pytest.approx([1000.0], abs=1e-3)


def test_wan_teachers_the_distillers_cannot_call_and_other_conditionings_are_refused_in_one_line():
    """Image-to-video, Wan 2.2 A14B's two experts and TI2V's per-token timesteps are refused before any encoder runs,
    as is every conditioning the distillers do not build."""
    from types import SimpleNamespace

    from benchkit.core.errors import BenchkitError
    from benchkit.models.families import FAMILIES
    from distillers.prompt_encoding import CONDITIONINGS, teacher_text

    spec = SimpleNamespace(name="m", recipe=SimpleNamespace())
    wan, i2v = FAMILIES["wan"], FAMILIES["wan-i2v"]
    cases = [(i2v, None, "also conditioned on an input image"),
             (wan, SimpleNamespace(transformer_2=object()), "two experts"),
             (wan, SimpleNamespace(transformer_2=None, config=SimpleNamespace(expand_timesteps=True)), "expand_timesteps")]
    for family, pipe, message in cases:
        with pytest.raises(BenchkitError, match=message) as exc:
            teacher_text(SimpleNamespace(family=family.name, family_info=family, spec=spec, pipeline=pipe), torch.device("cpu"))
        assert "\n" not in str(exc.value) and str(exc.value).startswith("m: ")
    assert "umt5" in CONDITIONINGS
    others = {f.conditioning: f for f in FAMILIES.values() if f.conditioning not in CONDITIONINGS}
    assert {"t5", "mistral3", "llama-clip-pooled"} <= set(others)
    for conditioning, family in others.items():
        with pytest.raises(BenchkitError) as exc:
            teacher_text(SimpleNamespace(family=family.name, family_info=family, spec=spec), torch.device("cpu"))
        assert str(exc.value) == (f"m: distillation builds CLIP, SDXL, SD3, FLUX.1 and Wan (UMT5) text conditioning, "
                                  f"not the {conditioning} conditioning of a {family.name} model")
