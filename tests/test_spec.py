"""Specs: TOML validation, and proof that each recipe reaches the scheduler exactly."""

import pytest
import torch

from benchkit.core.errors import BenchkitError
from benchkit.models.generation import make_scheduler, set_timesteps
from benchkit.models.presets import PRESETS, resolve_spec
from benchkit.models.spec import Recipe, spec_hash
from benchkit.toy.teacher import SCHEDULER_CONFIG

BASE = {"_class_name": "DDPMScheduler", **SCHEDULER_CONFIG}


def timesteps_of(recipe):
    sched = make_scheduler(recipe, BASE)
    set_timesteps(sched, recipe, torch.device("cpu"))
    return type(sched).__name__, [int(t) for t in sched.timesteps]


def test_recipes_reach_the_scheduler():
    assert timesteps_of(Recipe("ddim", {"timestep_spacing": "trailing"}, steps=4)) == ("DDIMScheduler", [999, 749, 499, 249])
    assert timesteps_of(Recipe("ddim", {"timestep_spacing": "trailing"}, steps=1)) == ("DDIMScheduler", [999])
    # SD's default "leading" spacing with steps_offset=1: the 1-step sample is taken at t=1
    assert timesteps_of(Recipe("ddim", {"timestep_spacing": "leading"}, steps=1))[1] == [1]
    assert timesteps_of(Recipe("lcm", timesteps=(999, 749, 499, 249), steps=4)) == ("LCMScheduler", [999, 749, 499, 249])
    assert timesteps_of(Recipe("lcm", timesteps=(399,), steps=1))[1] == [399]
    name, ts = timesteps_of(Recipe("euler", {"timestep_spacing": "trailing"}, steps=2))
    assert name == "EulerDiscreteScheduler" and ts == [999, 499]


def test_bad_recipes_are_one_line_errors():
    with pytest.raises(BenchkitError, match="not a parameter of DDIMScheduler"):
        make_scheduler(Recipe("ddim", {"timestep_spacin": "trailing"}), BASE)
    with pytest.raises(BenchkitError, match="not a diffusers scheduler"):
        make_scheduler(Recipe("NoSuchScheduler"), BASE)
    with pytest.raises(BenchkitError, match="does not accept explicit timesteps"):
        timesteps_of(Recipe("ddim", timesteps=(999,), steps=1))


def test_toml_extends_and_overrides(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('extends = "toy-digits"\nname = "mine"\n[recipe]\nscheduler = "lcm"\ntimesteps = [999, 499]\nguidance_scale = 1\n')
    spec = resolve_spec(str(p))
    assert spec.name == "mine" and spec.base == PRESETS["toy-digits"].base
    assert spec.recipe.scheduler_class == "LCMScheduler" and spec.recipe.timesteps == (999, 499) and spec.recipe.steps == 2
    assert spec.recipe.scheduler_kwargs == {"timestep_spacing": "trailing"}  # inherited


@pytest.mark.parametrize(
    "text, message",
    [
        ("name = 'x'\nbase = 1\n", "field 'base' must be a string"),
        ("extends = 'toy-digits'\ncolour = 'red'\n", "unknown field 'colour'"),
        ("extends = 'toy-digits'\n[recipe]\nsteps = 'four'\n", "'recipe.steps' must be int"),
        ("extends = 'toy-digits'\n[recipe]\nstep = 4\n", "unknown recipe field 'step'"),
        ("extends = 'nope'\n", "unknown preset 'nope'"),
        ("name = 'x'\n", "missing field 'base'"),
        ("name = [\n", "invalid TOML"),
    ],
)
def test_bad_spec_files(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(BenchkitError, match=message) as exc:
        resolve_spec(str(p))
    assert "\n" not in str(exc.value) and "bad.toml" in str(exc.value)


def test_spec_hash_tracks_recipe_and_weights_not_name():
    a = PRESETS["toy-digits"]
    assert spec_hash(a, "w") == spec_hash(a.with_recipe(), "w")
    assert spec_hash(a, "w") != spec_hash(a.with_recipe(steps=4), "w")
    assert spec_hash(a, "w") != spec_hash(a, "other-weights")
    import dataclasses

    assert spec_hash(a, "w") == spec_hash(dataclasses.replace(a, name="renamed"), "w")


def test_unknown_preset_suggests():
    with pytest.raises(BenchkitError, match="did you mean toy-digits"):
        resolve_spec("toy")
