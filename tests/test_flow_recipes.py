"""Flow-matching recipes: ``recipe.sigmas`` is validated in the spec file, reaches the SD3
pipeline's scheduler and transformer exactly, and the distillers export their students'
training sigmas (FlowMatchEulerDiscreteScheduler, shift pinned to 1, DMD2/ADM re-noising)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_pipelines import build_sd3

from benchkit.core.errors import BenchkitError
from benchkit.core.items import Item
from benchkit.models.spec import ModelSpec, Recipe, load_spec_file


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    return build_sd3(tmp_path_factory.mktemp("flow") / "sd3")


def shifted(s, shift=3.0):
    return shift * s / (1 + (shift - 1) * s)


@pytest.mark.parametrize("value,message", [
    ("[]", "non-empty list of positive numbers"),
    ('[1.0, "a"]', "non-empty list of positive numbers"),
    ("[1.0, 0.0]", "non-empty list of positive numbers"),
    ("[0.5, 0.75]", "must decrease"),
    ("[1.0, 0.5]\ntimesteps = [999, 499]", "not both"),
    ('"1.0"', "must be list/tuple"),
])
def test_bad_sigmas_are_refused_in_one_line(tmp_path, value, message):
    path = tmp_path / "spec.toml"
    path.write_text(f'name = "x"\nbase = "builtin:toy-digits"\n[recipe]\nsigmas = {value}\n')
    with pytest.raises(BenchkitError) as exc:
        load_spec_file(path)
    text = str(exc.value)
    assert message in text and str(path) in text and "recipe.sigmas" in text and "\n" not in text


def test_sigmas_set_the_steps_and_enter_the_identity_only_when_given(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text('name = "x"\nbase = "builtin:toy-digits"\n[recipe]\nsteps = 9\nsigmas = [1, 0.75]\n')
    spec = load_spec_file(path)
    assert spec.recipe.sigmas == (1.0, 0.75) and spec.recipe.steps == 2
    assert spec.to_dict()["recipe"]["sigmas"] == [1.0, 0.75] and spec.identity()["recipe"]["sigmas"] == [1.0, 0.75]
    assert "sigma=1,0.75" in spec.recipe.label()
    plain = ModelSpec("x", "builtin:toy-digits", Recipe(steps=2))
    assert "sigmas" not in plain.identity()["recipe"]  # specs without sigmas keep the hash they had


def run_generator(folder, recipe, items):
    from benchkit.models.loading import load_model
    from benchkit.models.sampling import make_generator

    model = load_model(ModelSpec("sd3", str(folder), recipe), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe)
    return gen, gen.generate(items)  # (generator, Generation)


ITEMS = [Item("a", "the digit one", 0), Item("b", "seven", 3), Item("c", "four", 1)]


def test_recipe_sigmas_reach_the_scheduler_and_the_transformer_exactly(sd3):
    # shift pinned to 1: the scheduler steps on the recipe's sigmas and calls the transformer at sigma * 1000
    exact = Recipe("flow-euler", {"shift": 1.0}, sigmas=(1.0, 0.75, 0.3), steps=3)
    _, out = run_generator(sd3, exact, ITEMS[:1])
    assert out.trace["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert out.trace["scheduler_sigmas"] == pytest.approx([1.0, 0.75, 0.3, 0.0], abs=1e-7)
    assert out.trace["denoiser_timesteps"] == pytest.approx([1000.0, 750.0, 300.0], abs=1e-3)
    # the model's own shift (3.0) applies to sigmas given without a pinned shift, as in the pipeline's sigmas=
    _, out = run_generator(sd3, Recipe("model-default", sigmas=(1.0, 0.5), steps=2), ITEMS[:1])
    assert out.trace["scheduler_sigmas"] == pytest.approx([1.0, shifted(0.5), 0.0], abs=1e-6)
    assert out.trace["denoiser_timesteps"] == pytest.approx([1000.0, 1000 * shifted(0.5)], abs=1e-3)


def test_stochastic_flow_sampling_is_per_item_and_equals_renoising_by_hand(sd3):
    """stochastic_sampling re-noises with each item's own generator (SD3's pipeline passes none to
    ``step``), so images do not depend on the batch; the result equals x0 = x - sigma v, then
    (1 - sigma') x0 + sigma' eps written out with the transformer and VAE directly."""
    from diffusers import StableDiffusion3Pipeline

    from benchkit.core.items import item_generator

    recipe = Recipe("flow-euler", {"shift": 1.0, "stochastic_sampling": True}, sigmas=(1.0, 0.6), steps=2)
    gen, together = run_generator(sd3, recipe, ITEMS)
    together = together.images
    alone = [gen.generate([it]).images[0] for it in ITEMS]
    assert all(np.array_equal(x, y) for x, y in zip(together, alone))
    _, deterministic = run_generator(sd3, Recipe("flow-euler", {"shift": 1.0}, sigmas=(1.0, 0.6), steps=2), ITEMS[:1])
    assert np.abs(deterministic.images[0].astype(int) - together[0].astype(int)).max() > 2  # the fresh noise matters

    pipe = StableDiffusion3Pipeline.from_pretrained(str(sd3), text_encoder_3=None, tokenizer_3=None)
    it = ITEMS[1]
    g = item_generator(it.prompt_id, it.seed)
    x = torch.randn((1, 4, 8, 8), generator=g)
    eps = torch.randn((1, 4, 8, 8), generator=g)
    with torch.no_grad():
        pe, _, pooled, _ = pipe.encode_prompt([it.prompt], None, None, device="cpu", do_classifier_free_guidance=False)

        def velocity(x, sigma):
            return pipe.transformer(hidden_states=x, timestep=torch.tensor([sigma * 1000.0]), encoder_hidden_states=pe,
                                    pooled_projections=pooled, return_dict=False)[0]

        x0 = x - 1.0 * velocity(x, 1.0)
        x = 0.4 * x0 + 0.6 * eps
        x0 = x - 0.6 * velocity(x, 0.6)
        vae = pipe.vae
        pixels = vae.decode(x0 / vae.config.scaling_factor + vae.config.shift_factor, return_dict=False)[0]
    ref = ((pixels[0] + 1) * 127.5).round().clamp(0, 255).permute(1, 2, 0).numpy()
    assert np.abs(together[1].astype(np.float64) - ref).max() <= 1.0


def test_sigmas_the_pipeline_or_scheduler_cannot_take_are_refused(sd3):
    with pytest.raises(BenchkitError, match="lie in"):
        run_generator(sd3, Recipe("flow-euler", sigmas=(14.6, 1.0), steps=2), ITEMS[:1])
    with pytest.raises(BenchkitError, match="give recipe.sigmas"):
        run_generator(sd3, Recipe("flow-euler", timesteps=(999, 499), steps=2), ITEMS[:1])


FLOW_METHODS = [  # method, overrides, stochastic: DMD2 and ADM re-noise between steps, Hyper-SD and Lightning do not
    ("dmd2", {"student_steps": 2}, True),
    ("adm", {"student_steps": 4}, True),
    ("hyper-sd", {"student_steps": 2, "stages": (4, 2)}, False),
    ("lightning", {"student_steps": 4, "stages": (4,)}, False),
    ("dmd2", {"student_steps": 1, "conditioning_timestep": 399}, False),
    ("hyper-sd", {"student_steps": 1, "stages": (2, 1)}, False),
]


@pytest.mark.parametrize("method,overrides,stochastic", FLOW_METHODS,
                         ids=[f"{m}-{o['student_steps']}step" for m, o, _ in FLOW_METHODS])
def test_methods_export_flow_recipes_on_their_training_sigmas(method, overrides, stochastic):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from test_distill_loops import make_data

    from benchkit.models.generation import make_scheduler
    from distillers.adapter import Denoiser, NoiseSchedule
    from distillers.run import method_class

    torch.manual_seed(0)
    dit = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=1, attention_head_dim=8,
                                num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                                pooled_projection_dim=16, out_channels=4, pos_embed_max_size=16)
    flow = Denoiser(dit.eval().requires_grad_(False), NoiseSchedule.flow(shift=3.0), "flow")
    cls = method_class(method)
    d = cls(flow, make_data(sdxl=True), cls.Config(steps=2, batch_size=2, **overrides))
    recipe = d.recipe()
    grid = d.sampler_timesteps() if method != "lightning" else [999, 749, 499, 249]
    expected = [shifted((t + 1) / 1000) for t in grid]  # the adapter's sigma(t), written out
    assert recipe["scheduler"] == "FlowMatchEulerDiscreteScheduler" and recipe["guidance_scale"] == 1.0
    assert recipe["sigmas"] == pytest.approx(expected, abs=1e-12) and len(expected) == overrides["student_steps"]
    assert recipe["scheduler_kwargs"] == ({"shift": 1.0, "stochastic_sampling": True} if stochastic else {"shift": 1.0})
    # through benchkit's spec validation and the scheduler the eval builds: the same sigmas, timesteps sigma * 1000
    spec_recipe = Recipe(**{**recipe, "sigmas": tuple(recipe["sigmas"]), "steps": len(recipe["sigmas"])})
    sched = make_scheduler(spec_recipe, dict(FlowMatchEulerDiscreteScheduler(shift=3.0).config))
    sched.set_timesteps(sigmas=list(spec_recipe.sigmas))
    assert sched.sigmas[:-1].tolist() == pytest.approx(expected, abs=1e-6)
    assert sched.timesteps.tolist() == pytest.approx([1000 * s for s in expected], abs=1e-3)


def test_lightning_refuses_an_x0_one_step_student_of_a_flow_teacher():
    from diffusers import SD3Transformer2DModel
    from test_distill_loops import make_data

    from distillers.adapter import Denoiser, NoiseSchedule
    from distillers.run import method_class

    dit = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=1, attention_head_dim=8,
                                num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                                pooled_projection_dim=16, out_channels=4, pos_embed_max_size=16)
    flow = Denoiser(dit.eval().requires_grad_(False), NoiseSchedule.flow(shift=3.0), "flow")
    cls = method_class("lightning")
    d = cls(flow, make_data(sdxl=True), cls.Config(steps=2, batch_size=2, student_steps=1, stages=(2, 1)))
    with pytest.raises(BenchkitError, match="x0_conversion_fraction=0"):
        d.recipe()
    d = cls(flow, make_data(sdxl=True), cls.Config(steps=2, batch_size=2, student_steps=1, stages=(2, 1),
                                                   x0_conversion_fraction=0.0))
    assert d.recipe()["sigmas"] == [1.0]
