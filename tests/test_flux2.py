"""FLUX.2 [dev]: a tiny FLUX.2-shaped pipeline (2x2-patchified latents of an AutoencoderKLFlux2 with batch-norm
statistics, a 30-layer Mistral 3 read through a PixtralProcessor in a chat template, guidance embedding) saved in
the diffusers layout goes through the presets, the loader and `benchkit eval`; benchkit's images equal
Flux2Pipeline's own for the same per-item generators; the guidance is a transformer input, one call per step;
given sigmas are shifted by the pipeline's empirical mu as the Turbo card's call shifts them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_flux2 import TEXT_WIDTH, build_flux2

from benchkit.core.items import Item, item_generator
from benchkit.evaluate import run_eval
from benchkit.models.families import detect_family
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

ITEMS = [Item("a", "a handwritten digit one", 0), Item("b", "seven", 3)]
SIZE = 32  # the tiny VAE's factor 2 times the 2x2 patches: (32 / 2 / 2)^2 = 64 image tokens
TOKENS = (SIZE // 4) ** 2
MAX_SEQ = 48  # the system message and the prompt fit: the prompt is not truncated away


def recipe(steps: int = 3, guidance: float = 4.0, sigmas=None) -> Recipe:
    return Recipe("model-default", steps=steps, sigmas=sigmas, guidance_scale=guidance, height=SIZE, width=SIZE,
                  max_sequence_length=MAX_SEQ)


def empirical_mu(image_tokens: int, steps: int) -> float:
    """FLUX.2's shift by hand (black-forest-labs/flux2 sampling.py): linear in the step count through its
    values at 10 and 200 steps, each linear in the image's token count (above 4300 tokens: the 200-step line)."""
    at_200 = 0.00016927 * image_tokens + 0.45666666
    if image_tokens > 4300:
        return at_200
    at_10 = 8.73809524e-05 * image_tokens + 1.89833333
    return at_200 + (steps - 200) * (at_200 - at_10) / 190.0


def shifted(sigmas, mu: float) -> list[float]:
    """The scheduler's exponential time shift of each sigma: e^mu / (e^mu + 1/s - 1)."""
    return [math.exp(mu) / (math.exp(mu) + (1 / s - 1)) for s in sigmas]


@pytest.fixture(scope="module")
def flux2(tmp_path_factory):
    return build_flux2(tmp_path_factory.mktemp("flux2") / "dev")


@pytest.fixture(scope="module")
def model(flux2):
    """One loaded model for the module: each test makes its own generator (which replaces the last one's hooks)."""
    return load_model(ModelSpec("f", str(flux2), recipe()), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def reference(flux2):
    """Flux2Pipeline as diffusers loads the folder (its tokenizer a PixtralProcessor)."""
    from diffusers import Flux2Pipeline

    pipe = Flux2Pipeline.from_pretrained(str(flux2))
    pipe.set_progress_bar_config(disable=True)
    return pipe


class Calls:
    """What the transformer was called with, seen from outside the pipeline."""

    def __init__(self, transformer):
        self.guidance, self.rows, self.context = [], [], []
        self.handle = transformer.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        g = kwargs.get("guidance")
        self.guidance.append(None if g is None else g.reshape(-1).tolist())
        self.rows.append(kwargs["hidden_states"].shape[0])
        self.context.append(tuple(kwargs["encoder_hidden_states"].shape))


def generate(model, r, items=ITEMS):
    gen = make_generator(model, r)
    calls = Calls(model.pipeline.transformer)
    try:
        return gen.generate(items), calls
    finally:
        calls.handle.remove()


def pipeline_images(pipe, r, items=ITEMS) -> np.ndarray:
    """The pipeline's own images in [0, 1], each item's noise drawn from a fresh generator of its own."""
    kwargs = {"sigmas": list(r.sigmas)} if r.sigmas is not None else {}
    return pipe(prompt=[it.prompt for it in items], generator=[item_generator(it.prompt_id, it.seed) for it in items],
                num_inference_steps=r.steps, guidance_scale=r.guidance_scale, height=r.height, width=r.width,
                max_sequence_length=r.max_sequence_length, output_type="np", **kwargs).images


@pytest.fixture(scope="module")
def made(model):
    """The default-schedule generation most tests read (3 steps, guidance 4)."""
    return generate(model, recipe())


def test_the_folder_is_recognised_as_flux2_and_its_tokenizer_is_a_processor(flux2, model):
    index = json.loads((flux2 / "model_index.json").read_text())
    assert detect_family(index).name == "flux2" and model.family == "flux2"
    assert index["tokenizer"] == ["transformers", "PixtralProcessor"]  # as FLUX.2-dev ships it
    # benchkit's loader reads the processor's folder with AutoTokenizer: the tokenizer, with its chat template
    assert model.tokenizer.chat_template and model.pipeline.tokenizer is model.tokenizer
    bn = model.vae.bn
    assert bn.running_mean.abs().max() > 0.3 and (bn.running_var - 1).abs().max() > 0.3  # not the identity


def test_images_equal_the_flux2_pipeline_for_the_same_generators(model, reference, made):
    out, calls = made
    ours = np.stack(out.images).astype(np.float64) / 255
    theirs = pipeline_images(reference, recipe())
    assert ours.shape == theirs.shape == (2, SIZE, SIZE, 3)
    assert np.abs(ours - theirs).max() <= 1 / 255 + 1e-6
    assert ours.std() > 0.02 and np.abs(ours[0] - ours[1]).max() > 0.05  # real images, different items
    # the transformer saw three stacked encoder layers of the whole padded template, and the patchified noise
    assert calls.context == [(2, MAX_SEQ, 3 * TEXT_WIDTH)] * 3


def test_an_item_is_the_same_alone_and_in_a_batch(model, made):
    out, _ = made
    alone, _ = generate(model, recipe(), ITEMS[1:])
    assert np.abs(alone.images[0].astype(int) - out.images[1].astype(int)).max() <= 1
    swapped, _ = generate(model, recipe(), ITEMS[::-1])
    assert np.abs(swapped.images[0].astype(int) - out.images[1].astype(int)).max() <= 1


def test_guidance_is_a_transformer_input_one_call_per_step(model, made):
    out, calls = made
    assert calls.guidance == [[4.0, 4.0]] * 3 and calls.rows == [2] * 3
    assert out.stages["denoiser_rows_per_item"] == 3 and out.stages["steps"] == 3
    assert out.trace["guidance"] == "embedded" and out.trace["classifier_free_guidance"] is False
    assert out.trace["guidance_scale"] == 4.0
    other, other_calls = generate(model, recipe(guidance=1.5))
    assert other_calls.guidance == [[1.5, 1.5]] * 3
    assert not np.array_equal(np.stack(other.images), np.stack(out.images))  # the embedding is used


def test_the_default_schedule_is_shifted_by_the_empirical_mu(made):
    out, _ = made
    expected = shifted(np.linspace(1.0, 1 / 3, 3), empirical_mu(TOKENS, 3))
    assert out.trace["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert out.trace["scheduler_config"]["time_shift_type"] == "exponential"
    assert out.trace["scheduler_sigmas"] == pytest.approx(expected + [0.0], abs=1e-6)
    # FLUX.2's transformer takes sigma (timestep / 1000)
    assert out.trace["denoiser_timesteps"] == pytest.approx(expected, abs=1e-6)


def test_turbo_sigmas_are_shifted_as_the_cards_call_shifts_them(model, reference):
    """The card calls the pipeline with sigmas=TURBO_SIGMAS and num_inference_steps=8: mu is the pipeline's
    empirical function of the image's tokens and those 8 steps (not the pipeline's default 50, which it uses
    when given sigmas alone), and the given sigmas are shifted by it."""
    turbo = PRESETS["flux.2-dev-turbo-8step"].recipe
    r = recipe(steps=turbo.steps, guidance=turbo.guidance_scale, sigmas=turbo.sigmas)
    assert r.steps == len(r.sigmas) == 8
    expected = shifted(turbo.sigmas, empirical_mu(TOKENS, 8))
    assert expected[1] > turbo.sigmas[1] + 0.2  # shifted: far from the given sigmas at this token count
    out, calls = generate(model, r)
    assert out.trace["scheduler_sigmas"] == pytest.approx(expected + [0.0], abs=1e-6)
    assert out.trace["denoiser_timesteps"] == pytest.approx(expected, abs=1e-6)
    assert calls.guidance == [[2.5, 2.5]] * 8 and out.stages["denoiser_rows_per_item"] == 8
    ours = np.stack(out.images).astype(np.float64) / 255
    assert np.abs(ours - pipeline_images(reference, r)).max() <= 1 / 255 + 1e-6


def test_the_pipelines_own_decode_is_timed(made):
    out, _ = made
    stages = out.stages
    assert stages["vae_decode_s"] > 0 and stages["denoising_s"] > 0 and stages["text_encoding_s"] > 0


def test_eval_end_to_end_through_the_preset_with_a_local_folder(flux2, reference, tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "flux.2-dev"\nbase = "{flux2}"\ndtype = "float32"\n'
                         f"[recipe]\nheight = {SIZE}\nwidth = {SIZE}\nsteps = 2\nmax_sequence_length = {MAX_SEQ}\n")
    spec = resolve_spec(str(spec_file))
    assert spec.family == "flux2" and spec.recipe.guidance_scale == 4.0
    prompts = load_prompt_set("toy-digits").limit(2)
    results = run_eval(spec, prompts, [0], tmp_path / "run", metrics=["latency"], device="cpu", batch_size=2,
                       warmup_batches=0, cache_dir=tmp_path / "c", show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert manifest["model"]["family"] == "flux2"
    assert manifest["model"]["scheduler"]["class"] == "FlowMatchEulerDiscreteScheduler"
    assert records[0]["stages"]["denoiser_rows_per_item"] == 2 and records[0]["stages"]["vae_decode_s"] > 0
    assert records[0]["stages"]["timesteps"] == pytest.approx(shifted([1.0, 0.5], empirical_mu(TOKENS, 2)), abs=1e-4)
    assert {m["name"]: m for m in results["metrics"]}["nfe"]["value"] == 2
    # the written images are the pipeline's own for each item's generator
    items = [Item(p.prompt_id, p.prompt, 0) for p in prompts.records]
    theirs = np.round(pipeline_images(reference, spec.recipe, items) * 255)
    written = {r["prompt_id"]: np.asarray(Image.open(tmp_path / "run" / r["file"]).convert("RGB")) for r in records}
    assert sorted(written) == [it.prompt_id for it in items]
    for item, image in zip(items, theirs):
        assert written[item.prompt_id].shape == (SIZE, SIZE, 3)
        assert np.abs(written[item.prompt_id].astype(int) - image.astype(int)).max() <= 1
