"""`benchkit pairs` and `benchkit distill` on a tiny FLUX.1-dev-like teacher (guidance embedding, 2x2-packed
latents, T5 + pooled CLIP, dynamic-shift scheduler), saved in the diffusers layout: the conditioning equals
what FluxPipeline feeds its transformer, one adapter call equals the pipeline's transformer call, pairs equal
the pipeline's own Euler samples, and DMD2 / ADM students are specs that `benchkit eval` runs through
FluxPipeline on exactly their training sigmas with the embedded guidance they were trained with."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tomllib
import torch
from teachers import loaded_teacher
from tiny_pipelines import build_flux

PROMPTS = ["the digit one", "a seven", "four"]
SIZE = 32  # pixels: 16x16 latents of the tiny VAE (factor 2), 8x8 = 64 packed tokens
TOKENS = (SIZE // 2 // 2) ** 2
GUIDANCE = 3.5
T5_LENGTH = 16


def flux_mu(image_tokens: int) -> float:
    """FLUX.1-dev's mu by hand: linear in the token count from (256, 0.5) to (4096, 1.15), as its config says."""
    m = (1.15 - 0.5) / (4096 - 256)
    return image_tokens * m + 0.5 - m * 256


def shifted(s: float, shift: float) -> float:
    return shift * s / (1 + (shift - 1) * s)


# the trailing 2-step grid t = 999, 499 is s = 1.0, 0.5, at the training resolution's shift exp(mu)
SIGMAS_2 = [shifted(1.0, math.exp(flux_mu(TOKENS))), shifted(0.5, math.exp(flux_mu(TOKENS)))]


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    """A dev-like teacher (spec: guidance 3.5 at 32x32, T5 length 16), the same weights with no recipe (the
    pipeline's defaults), and a schnell-like teacher (no guidance embedding, static shift 1)."""
    root = tmp_path_factory.mktemp("flux")
    (root / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    dev, schnell = build_flux(root / "dev"), build_flux(root / "schnell", guidance_embeds=False)
    recipe = (f'[recipe]\nscheduler = "model-default"\nsteps = 2\nguidance_scale = {GUIDANCE}\nheight = {SIZE}\n'
              f'width = {SIZE}\nmax_sequence_length = {T5_LENGTH}\n')
    specs = {"dev_spec": ("tiny-flux", dev, recipe), "plain_spec": ("tiny-flux-plain", dev, ""),
             "schnell_spec": ("tiny-flux-schnell", schnell, recipe.replace(f"guidance_scale = {GUIDANCE}", "guidance_scale = 0.0"))}
    out = {"root": root, "prompts": root / "prompts.txt", "dev": dev, "schnell": schnell}
    for key, (name, folder, body) in specs.items():
        path = root / f"{name}.toml"
        path.write_text(f'name = "{name}"\nbase = "{folder}"\n{body}')
        out[key] = path
    return out


def first_transformer_call(pipe, prompts, **call):
    """The keywords and output of the transformer's first call inside the pipeline's own sampling."""
    seen = {}

    def hook(_module, _args, kwargs, output):
        if not seen:
            seen.update(kwargs, output=output[0])

    handle = pipe.transformer.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            pipe(prompts, num_inference_steps=1, output_type="latent", **call)
    finally:
        handle.remove()
    return seen


def test_conditioning_equals_what_flux_pipeline_feeds_its_transformer(flux):
    from diffusers import FluxPipeline

    _, text, _ = loaded_teacher(flux["dev_spec"])
    cond = text.encode(PROMPTS)
    pipe = FluxPipeline.from_pretrained(str(flux["dev"]))  # an independent load from disk
    pe, pooled, text_ids = pipe.encode_prompt(PROMPTS, device="cpu", max_sequence_length=T5_LENGTH)
    assert cond.hidden.shape == pe.shape == (3, T5_LENGTH, 32) and cond.pooled.shape == pooled.shape == (3, 32)
    assert torch.allclose(cond.hidden, pe, atol=1e-6) and torch.allclose(cond.pooled, pooled, atol=1e-6)
    assert torch.equal(cond.guidance, torch.full((3,), GUIDANCE)) and not text_ids.any()
    assert text.negative is None and text.shape == (16, SIZE // 2, SIZE // 2) and text.image_tokens == TOKENS
    assert text.recipe == {"height": SIZE, "width": SIZE, "max_sequence_length": T5_LENGTH, "guidance_scale": GUIDANCE}
    # inside the pipeline's own call: the same text rows, guidance and (all-zero) text ids reach the transformer
    seen = first_transformer_call(pipe, PROMPTS, guidance_scale=GUIDANCE, height=SIZE, width=SIZE,
                                  max_sequence_length=T5_LENGTH)
    assert torch.allclose(seen["encoder_hidden_states"], cond.hidden, atol=1e-6)
    assert torch.allclose(seen["pooled_projections"], cond.pooled, atol=1e-6)
    assert torch.equal(seen["guidance"], cond.guidance) and not seen["txt_ids"].any()
    # a spec without a recipe: the pipeline's defaults, T5 at 512 tokens and its default size
    _, plain, _ = loaded_teacher(flux["plain_spec"])
    pe, _, _ = pipe.encode_prompt(PROMPTS[:1], device="cpu")
    assert plain.encode(PROMPTS[:1]).hidden.shape == pe.shape == (1, 512, 32)
    assert torch.allclose(plain.encode(PROMPTS[:1]).hidden, pe, atol=1e-5)
    default = pipe.default_sample_size * pipe.vae_scale_factor
    assert plain.recipe["max_sequence_length"] == 512 and (plain.recipe["height"], plain.recipe["width"]) == (default, default)


@pytest.mark.parametrize("teacher", ["dev", "schnell"])
def test_an_adapter_call_equals_the_pipelines_transformer_call(flux, teacher):
    """The adapter on the (B, 16, h, w) grid equals FluxPipeline's first transformer call on its packed tokens:
    packing, image ids, timestep = sigma, the embedded guidance (none on schnell) and unpacking all match."""
    from diffusers import FluxPipeline

    _, text, denoiser = loaded_teacher(flux[f"{teacher}_spec"])
    assert denoiser.prediction_type == "flow"
    pipe = FluxPipeline.from_pretrained(str(flux[teacher]))
    scale = pipe.vae_scale_factor
    grid = torch.randn(2, 16, SIZE // scale, SIZE // scale, generator=torch.Generator().manual_seed(0))
    packed = pipe._pack_latents(grid, *grid.shape)
    seen = first_transformer_call(pipe, PROMPTS[:2], guidance_scale=GUIDANCE, height=SIZE, width=SIZE,
                                  max_sequence_length=T5_LENGTH, latents=packed)
    if teacher == "schnell":  # no guidance embedding: none passed, none carried, none in the student's recipe
        assert seen["guidance"] is None and text.encode(PROMPTS[:1]).guidance is None and "guidance_scale" not in text.recipe
    else:
        assert seen["guidance"].tolist() == [GUIDANCE] * 2 and text.recipe["guidance_scale"] == GUIDANCE
    assert float(seen["timestep"][0]) == 1.0  # the pipeline's first sigma; our grid's first t = 999 is sigma 1.0
    with torch.no_grad():
        ours = denoiser.raw(grid, 999.0, text.encode(PROMPTS[:2]))
    theirs = pipe._unpack_latents(seen["output"], SIZE, SIZE, scale)
    assert ours.shape == grid.shape and ours.abs().max() > 0.1
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_the_dynamic_shift_is_the_static_shift_exp_mu_at_the_training_resolution(flux):
    """FLUX.1-dev's scheduler shifts by mu(token count); for one resolution that is NoiseSchedule.flow(shift =
    exp(mu)): the teacher's sigma(t) on a trailing grid equals the scheduler's own sigmas for the same steps."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from benchkit.core.errors import BenchkitError
    from distillers.adapter import NoiseSchedule, flow_shift
    from distillers.training import trailing_timesteps

    model, _, teacher = loaded_teacher(flux["dev_spec"])
    config = model.scheduler_config
    assert config["use_dynamic_shifting"] and config["shift"] == 3.0  # the static shift the scheduler ignores
    sched = FlowMatchEulerDiscreteScheduler.from_config(config)
    sched.set_timesteps(sigmas=list(np.linspace(1.0, 1 / 4, 4)), mu=flux_mu(TOKENS))
    grid = torch.tensor(trailing_timesteps(4), dtype=torch.float64)
    assert teacher.schedule.sigma(grid).tolist() == pytest.approx(sched.sigmas[:-1].tolist(), abs=1e-6)
    assert flow_shift(config, TOKENS) == pytest.approx(math.exp(flux_mu(TOKENS)), abs=1e-12)
    with pytest.raises(BenchkitError, match="image token count"):
        NoiseSchedule.from_scheduler_config(config)
    _, _, schnell = loaded_teacher(flux["schnell_spec"])  # schnell's config: no dynamic shift, shift 1
    assert schnell.schedule.sigma(torch.tensor([499.0])).item() == pytest.approx(0.5)


def test_feature_maps_lay_flux_image_tokens_on_the_latent_grid(flux):
    """The discriminator's maps: FLUX's double- and single-stream blocks return (text, image) tokens; image
    token n lands at the (row, column) that FluxPipeline's position ids give it, also on a non-square grid."""
    from diffusers import FluxPipeline

    from distillers.heads import _as_map, feature_modules, tapped_features

    _, text, teacher = loaded_teacher(flux["dev_spec"])
    assert feature_modules(teacher.model, "mid") == ["single_transformer_blocks.0"]
    assert feature_modules(teacher.model, "multi") == ["transformer_blocks.0", "single_transformer_blocks.0"]
    tokens = torch.randn(1, 4 * 2, 5)  # a 4 x 2 token grid, 5 channels
    ids = FluxPipeline._prepare_latent_image_ids(1, 4, 2, "cpu", torch.float32)
    as_map = _as_map((torch.zeros(1, 3, 5), tokens), (4, 2))
    for n, (_, row, col) in enumerate(ids.long().tolist()):
        assert torch.equal(as_map[0, :, row, col], tokens[0, n])
    assert torch.equal(_as_map(torch.cat([torch.zeros(1, 3, 5), tokens], 1), (4, 2)), as_map)  # text tokens first
    cond = text.encode(PROMPTS[:1])
    with torch.no_grad():
        wide = tapped_features(teacher, torch.randn(1, 16, 8, 16), 500.0, cond, feature_modules(teacher.model, "multi"))
    assert [tuple(f.shape) for f in wide] == [(1, 16, 4, 8)] * 2  # inner width 2 heads x 8, tokens 4 x 8


@pytest.fixture(scope="module")
def flux_pairs(flux, tmp_path_factory):
    """`benchkit pairs` on the dev-like teacher: 2 flow Euler steps, embedded guidance 3.5, no CFG."""
    from benchkit.cli import main

    path = tmp_path_factory.mktemp("flux-pairs") / "pairs.safetensors"
    with pytest.raises(SystemExit) as exc:  # as the `cli` fixture runs it (a module fixture cannot use capsys)
        main(["pairs", "--teacher", str(flux["dev_spec"]), "--prompts", str(flux["prompts"]), "--count", "4",
              "--steps", "2", "--device", "cpu", "-q", "--out", str(path)])  # CFG: 1 by default on this teacher
        raise SystemExit(0)
    assert exc.value.code == 0
    return path


def test_pairs_are_flux_pipelines_own_euler_samples(flux, flux_pairs):
    """Each pair's x0 equals FluxPipeline's default Euler sampler (2 steps, mu from 64 tokens, guidance 3.5 as
    the transformer's input) from the pair's noise, packed with the pipeline's helper, unpacked the same way."""
    from diffusers import FluxPipeline

    from distillers.data import Pairs

    pairs = Pairs.load(flux_pairs)
    assert pairs.x0.shape == (4, 16, SIZE // 2, SIZE // 2) and pairs.prompts == PROMPTS
    assert pairs.meta["family"] == "flux" and pairs.meta["conditioning"]["embedded_guidance"] == GUIDANCE
    assert pairs.meta["guidance"] == 1.0  # no CFG on top of the embedded guidance unless --guidance asks for it
    assert pairs.meta["sigmas"] == pytest.approx(SIGMAS_2, abs=1e-12)
    pipe = FluxPipeline.from_pretrained(str(flux["dev"]))
    pipe.set_progress_bar_config(disable=True)
    prompts = [PROMPTS[i] for i in pairs.prompt_index.tolist()]
    with torch.no_grad():
        packed = pipe(prompts, num_inference_steps=2, guidance_scale=GUIDANCE, height=SIZE, width=SIZE,
                      max_sequence_length=T5_LENGTH, latents=pipe._pack_latents(pairs.noise, *pairs.noise.shape),
                      output_type="latent").images
    theirs = pipe._unpack_latents(packed, SIZE, SIZE, pipe.vae_scale_factor)
    assert pipe.scheduler.sigmas[:-1].tolist() == pytest.approx(SIGMAS_2, abs=1e-6)
    assert torch.isfinite(pairs.x0).all() and pairs.x0.abs().max() > 0.1
    assert torch.allclose(pairs.x0, theirs, atol=1e-4), (pairs.x0 - theirs).abs().max()


def distill(cli, flux, pairs, out, method, *args):
    code, _, err = cli("distill", "--method", method, "--teacher", str(flux["dev_spec"]), "--pairs", str(pairs),
                       "--steps", "2", "--batch-size", "2", "--set", "lr=1e-3", *args,
                       "--device", "cpu", "-q", "--out", str(out))
    assert code == 0, err
    record = json.loads((out / "distill.json").read_text())
    assert record["method"] == method and record["teacher"]["name"] == "tiny-flux"
    assert record["config"]["guidance"] == 1.0  # the method's CFG default (1.75) is for CFG teachers, not this one
    losses = record["last_losses"]
    assert losses and all(isinstance(v, float) and math.isfinite(v) for v in losses.values()), losses
    return record, tomllib.loads((out / "spec.toml").read_text())


def eval_student(cli, flux, out, run):
    """`benchkit eval --model STUDENT_DIR` (the folder's spec.toml) on two prompts, one seed: its manifest and
    sample records."""
    code, _, err = cli("eval", "-m", str(out), "--prompts", str(flux["prompts"]), "--seeds", "0",
                       "--limit", "2", "--metrics", "latency", "--warmup", "0", "--device", "cpu", "--out", str(run))
    assert code == 0, err
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2
    return json.loads((run / "manifest.json").read_text()), records


def sampled_by_the_pipeline(out, steps):
    """The student spec through benchkit's FLUX generator: the trace of what its scheduler and transformer did,
    and the guidance the transformer was called with."""
    from benchkit.core.items import Item
    from benchkit.models.loading import load_model
    from benchkit.models.presets import resolve_spec
    from benchkit.models.sampling import make_generator

    spec = resolve_spec(str(out / "spec.toml"))
    model = load_model(spec, torch.device("cpu"), torch.float32)
    guidance = []
    model.pipeline.transformer.register_forward_pre_hook(
        lambda _m, _a, kw: guidance.append(kw["guidance"].tolist()), with_kwargs=True)
    out = make_generator(model, spec.recipe).generate([Item("a", PROMPTS[0], 0)])
    assert len(out.images) == 1 and out.images[0].shape == (SIZE, SIZE, 3)
    assert guidance == [[GUIDANCE]] * steps
    return out.trace


def test_dmd2_student_of_flux_is_a_spec_eval_runs_on_its_training_sigmas(cli, flux, flux_pairs, tmp_path):
    """DMD2 (2 steps, GAN head on the fake score's single-stream block): the student lands in ``transformer/``,
    its recipe is stochastic flow Euler on the training sigmas with the dynamic shift off, guidance 3.5 as the
    transformer's input, T5 length and size as trained; eval runs that transformer on exactly those sigmas."""
    import hashlib

    out = tmp_path / "student"
    record, spec = distill(cli, flux, flux_pairs, out, "dmd2", "--student-steps", "2", "--set", "ttur=1")
    assert {"loss_dm", "loss_g_gan", "loss_fake", "loss_d_cls"} <= set(record["last_losses"])
    recipe = spec["recipe"]
    assert recipe["sigmas"] == pytest.approx(SIGMAS_2, abs=1e-12)
    assert recipe == {"scheduler": "FlowMatchEulerDiscreteScheduler", "sigmas": recipe["sigmas"], "guidance_scale": GUIDANCE,
                      "scheduler_kwargs": {"shift": 1.0, "stochastic_sampling": True, "use_dynamic_shifting": False},
                      "height": SIZE, "width": SIZE, "max_sequence_length": T5_LENGTH}
    model_dir = out / "model"
    index = json.loads((model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "FluxPipeline" and "transformer" in index and not (model_dir / "unet").exists()
    student_file = model_dir / "transformer" / "diffusion_pytorch_model.safetensors"
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert sha(student_file) != sha(flux["dev"] / "transformer" / "diffusion_pytorch_model.safetensors")

    manifest, records = eval_student(cli, flux, out, tmp_path / "run")
    model = manifest["model"]
    assert model["family"] == "flux" and model["scheduler"]["class"] == "FlowMatchEulerDiscreteScheduler"
    assert model["scheduler"]["config"]["shift"] == 1.0 and model["scheduler"]["config"]["use_dynamic_shifting"] is False
    assert model["files"]["transformer/diffusion_pytorch_model.safetensors"] == sha(student_file)
    assert model["unet_calls_per_image"] == 2  # two student steps, guidance embedded: one row each
    # FLUX's transformer takes sigma (the scheduler's timestep sigma * 1000, divided by 1000 in the pipeline)
    assert records[0]["stages"]["timesteps"] == pytest.approx(SIGMAS_2, abs=1e-4)
    trace = sampled_by_the_pipeline(out, steps=2)
    assert trace["scheduler_sigmas"] == pytest.approx(SIGMAS_2 + [0.0], abs=1e-6)
    assert trace["scheduler_timesteps"] == pytest.approx([1000 * s for s in SIGMAS_2], abs=1e-3)
    assert trace["denoiser_timesteps"] == pytest.approx(SIGMAS_2, abs=1e-6)
    assert trace["guidance"] == "embedded" and trace["guidance_scale"] == GUIDANCE


def test_adm_with_adp_on_flux_exports_a_one_step_student_eval_runs(cli, flux, flux_pairs, tmp_path):
    """ADM (one step, one ADP pre-training step on the pairs first, heads on a double- and a single-stream block
    of the frozen teacher): a deterministic one-step recipe at sigma 1, run by eval with guidance 3.5."""
    out = tmp_path / "student"
    record, spec = distill(cli, flux, flux_pairs, out, "adm", "--student-steps", "1", "--set", "adp_steps=1")
    assert {"loss_fake", "loss_g_adv", "loss_d"} <= set(record["last_losses"])
    steps = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [sorted(k for k in s if k != "step") for s in steps] == [
        ["loss_adp_d_latent", "loss_adp_d_pixel", "loss_adp_g"], ["loss_d", "loss_fake", "loss_g_adv"]]
    assert all(math.isfinite(v) for s in steps for v in s.values())
    assert spec["recipe"] == {"scheduler": "FlowMatchEulerDiscreteScheduler", "sigmas": [1.0], "guidance_scale": GUIDANCE,
                              "scheduler_kwargs": {"shift": 1.0, "use_dynamic_shifting": False},
                              "height": SIZE, "width": SIZE, "max_sequence_length": T5_LENGTH}
    manifest, records = eval_student(cli, flux, out, tmp_path / "run")
    assert manifest["model"]["family"] == "flux" and manifest["spec"]["recipe"]["sigmas"] == [1.0]
    assert records[0]["stages"]["timesteps"] == pytest.approx([1.0], abs=1e-6)
    trace = sampled_by_the_pipeline(out, steps=1)
    assert trace["scheduler_timesteps"] == pytest.approx([1000.0], abs=1e-3)


def test_other_conditionings_are_still_refused_in_one_line():
    """Every family's conditioning the distillers do not build (T5 alone, Llama, Mistral, Qwen...) is
    one line naming it, before any encoder runs."""
    from types import SimpleNamespace

    from benchkit.core.errors import BenchkitError
    from benchkit.models.families import FAMILIES
    from distillers.prompt_encoding import CONDITIONINGS, teacher_text

    others = {f.conditioning: f for f in FAMILIES.values() if f.conditioning not in CONDITIONINGS}
    assert {"t5", "mistral3", "llama-clip-pooled"} <= set(others) and {"t5-clip-pooled", "umt5"} <= set(CONDITIONINGS)
    for conditioning, family in others.items():
        model = SimpleNamespace(family=family.name, family_info=family, spec=SimpleNamespace(name="m"))
        with pytest.raises(BenchkitError, match=f"not the {conditioning} conditioning of a {family.name} model") as exc:
            teacher_text(model, torch.device("cpu"))
        assert "\n" not in str(exc.value)
