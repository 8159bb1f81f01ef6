"""SANA and SANA-Sprint: tiny models of both (linear DiT, DC-AE, Gemma-2) saved in the diffusers layout
go through the presets, the loader and `benchkit eval`; images equal the pipelines' own for the same
noise, and the recipe (scheduler, steps, CFG or embedded guidance, exact size) reaches them exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tiny_pipelines import build_sana

from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from prompts import load_prompt_set

ITEMS = [Item("a", "the digit one", 0), Item("b", "seven", 3)]


@pytest.fixture(scope="module")
def sana(tmp_path_factory):
    root = tmp_path_factory.mktemp("sana")
    return {"sana": build_sana(root / "sana"), "sana-sprint": build_sana(root / "sprint", sprint=True)}


def recipe(steps: int, size: int = 32, **kw) -> Recipe:
    return Recipe("model-default", steps=steps, guidance_scale=4.5, height=size, width=size, max_sequence_length=16, **kw)


class TransformerCalls:
    def __init__(self, pipe):
        self.guidance, self.timesteps, self.rows = [], [], []
        pipe.transformer.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        g = kwargs.get("guidance")
        self.guidance.append(None if g is None else g.reshape(-1).tolist())
        self.timesteps.append(kwargs["timestep"].reshape(-1)[0].item())
        self.rows.append((args[0] if args else kwargs["hidden_states"]).shape[0])


def generate(base, r, items=ITEMS):
    model = load_model(ModelSpec("s", str(base), r), torch.device("cpu"), torch.float32)
    gen = make_generator(model, r)
    calls = TransformerCalls(model.pipeline)
    return gen, gen.generate(items), calls


@pytest.mark.parametrize("family,steps", [("sana", 3), ("sana-sprint", 2)])
def test_images_equal_the_pipeline_for_the_same_noise(sana, family, steps):
    import diffusers

    gen, out, _ = generate(sana[family], recipe(steps))
    assert gen.model.family == family
    ours = np.stack(out.images).astype(np.float64) / 255
    noise, gens = gen.initial_noise(ITEMS)  # fresh per-item generators in the state benchkit passed on
    assert noise.shape == (2, 4, 16, 16)  # 32 px through the tiny two-level DC-AE (2x; the real one is 32x)
    pipe = getattr(diffusers, gen.pipe.__class__.__name__).from_pretrained(str(sana[family]))
    theirs = pipe([it.prompt for it in ITEMS], latents=noise, generator=gens, output_type="np", height=32, width=32,
                  num_inference_steps=steps, guidance_scale=4.5, max_sequence_length=16,
                  use_resolution_binning=False).images
    assert ours.shape == theirs.shape == (2, 32, 32, 3)
    assert np.abs(ours - theirs).max() <= 1 / 255 + 1e-5


def test_sana_uses_cfg_on_the_shipped_flow_dpm_solver(sana):
    from diffusers import DPMSolverMultistepScheduler

    _, out, calls = generate(sana["sana"], recipe(3))
    reference = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")
    reference.set_timesteps(3)
    assert out.trace["scheduler"] == "DPMSolverMultistepScheduler"
    assert out.trace["denoiser_timesteps"] == pytest.approx([float(t) for t in reference.timesteps])
    assert calls.rows == [4] * 3 and out.trace["classifier_free_guidance"] is True  # cond + uncond rows
    assert out.trace["guidance"] == "cfg" and calls.guidance == [None] * 3
    assert out.trace["pipeline_kwargs"] == {"use_resolution_binning": False}


def test_sprint_embeds_guidance_and_steps_on_its_consistency_times(sana):
    _, out, calls = generate(sana["sana-sprint"], recipe(2))
    assert out.trace["scheduler"] == "SCMScheduler"
    # two steps at the pipeline's trigflow times pi/2 and 1.3; the transformer sees sin t / (cos t + sin t)
    expected = [math.sin(t) / (math.cos(t) + math.sin(t)) for t in (1.57080, 1.3)]
    assert calls.timesteps == pytest.approx(expected, abs=1e-4)
    assert calls.rows == [2, 2] and out.trace["classifier_free_guidance"] is False
    assert calls.guidance == [[pytest.approx(0.45)] * 2] * 2  # 4.5 times the transformer's guidance_embeds_scale


def test_a_non_square_size_is_made_exactly_not_snapped_to_a_bin(sana):
    r = Recipe("model-default", steps=1, guidance_scale=4.5, height=64, width=32, max_sequence_length=16)
    _, out, _ = generate(sana["sana"], r, ITEMS[:1])
    assert out.images[0].shape == (64, 32, 3)


def test_presets_follow_their_cards():
    s, sprint = PRESETS["sana-1.6b"], PRESETS["sana-sprint-1.6b"]
    assert (s.family, s.dtype, s.recipe.steps, s.recipe.guidance_scale, s.recipe.height) == ("sana", "bfloat16", 20, 4.5, 1024)
    assert (sprint.family, sprint.recipe.steps, sprint.recipe.guidance_scale) == ("sana-sprint", 2, 4.5)
    assert "guidance 4.5" in sprint.recipe_label() and "cfg 4.5" in s.recipe_label()


@pytest.mark.parametrize("preset", ["sana-1.6b", "sana-sprint-1.6b"])
def test_eval_end_to_end_through_a_preset_with_a_local_folder(sana, tmp_path, preset):
    family = PRESETS[preset].family
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f'extends = "{preset}"\nbase = "{sana[family]}"\ndtype = "float32"\n'
                         "[recipe]\nheight = 32\nwidth = 32\nmax_sequence_length = 16\nsteps = 2\n")
    results = run_eval(resolve_spec(str(spec_file)), load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c",
                       show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert manifest["model"]["family"] == family
    rows = {"sana": 2, "sana-sprint": 1}[family]  # CFG doubles the rows; Sprint's guidance is an input
    assert records[0]["stages"]["denoiser_rows_per_item"] == 2 * rows
    assert {m["name"]: m["value"] for m in results["metrics"]}["nfe"] == 2 * rows
    assert len(list((tmp_path / "run" / "images").glob("*.png"))) == 2


def test_distilling_a_sana_teacher_is_refused_in_one_line(sana):
    from benchkit.core.errors import BenchkitError
    from distillers.prompt_encoding import teacher_text

    model = load_model(ModelSpec("s", str(sana["sana"]), recipe(2)), torch.device("cpu"), torch.float32)
    with pytest.raises(BenchkitError, match=r"^s: distillation builds CLIP, SDXL, SD3, FLUX.1 and Wan \(UMT5\) text conditioning, not the "
                                            r"gemma conditioning of a sana model$"):
        teacher_text(model, torch.device("cpu"))
