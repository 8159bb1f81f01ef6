"""The sampling recipe of a student distilled from a flow-matching (SD3-, FLUX- or Wan-like) teacher.

A student is trained at grid timesteps t of the internal [0, T) time, which a flow teacher
reads as the shifted sigma(t) (``distillers.adapter.NoiseSchedule.flow``). Its recipe must put
the sampler on exactly those sigmas: explicit ``timesteps`` would reach the transformer as given
while the scheduler steps on other sigmas, and FlowMatchEulerDiscreteScheduler shifts any
``sigmas`` it is given by its config's ``shift``. So the recipe lists sigma(t) themselves and
pins ``shift = 1.0``; the scheduler then calls the transformer at sigma * 1000, as in training.

Deterministic students (Hyper-SD's TSCD segments, Lightning) step with flow Euler, x' = x +
(sigma' - sigma) * v, which is the DDIM move the distillers train with. Students sampled by
re-noising (DMD2 and ADM backward simulation) use ``stochastic_sampling = True``: diffusers 0.42
then steps x0 = x - sigma * v, x' = (1 - sigma') * x0 + sigma' * fresh noise, the flow form of
LCMScheduler's step that their SDXL recipes use.

A teacher whose scheduler shifts by resolution (FLUX.1-dev's ``use_dynamic_shifting``) was read
at the training resolution's static shift exp(mu) (``distillers.adapter.flow_shift``). Its pipeline
passes mu with any ``sigmas``, and such a scheduler would shift the student's sigmas by it whatever
``shift`` says, so ``student_recipe`` also pins ``use_dynamic_shifting = False``, and adds the fields
the pipeline must condition the student with as training did (``TeacherText.recipe``): FLUX's
embedded guidance as ``guidance_scale`` (the transformer's input there, not CFG), T5's length and
the size.

A Wan teacher samples with UniPCMultistepScheduler on flow sigmas (``flow_shift``), whose own grid is
not the student's (see ``distillers.adapter``); its student's recipe is the same flow Euler on the exact
training sigmas, with shift 1.0. WanPipeline takes no ``sigmas`` argument: benchkit's generator hands
``recipe.sigmas`` to the scheduler's ``set_timesteps`` itself, so the transformer is called at sigma * 1000,
as in training. Its ``TeacherText.recipe`` adds the size, ``num_frames``, UMT5's ``max_sequence_length`` and
the teacher's ``fps``; guidance is 1 (the student was trained to match the teacher's CFG), so the
negative prompt is not run.
"""

from __future__ import annotations

from typing import Any

from distillers.adapter import NoiseSchedule

FLOW_SCHEDULER = "FlowMatchEulerDiscreteScheduler"


def is_flow(schedule: NoiseSchedule) -> bool:
    return schedule.kind == "flow"


def student_sigmas(schedule: NoiseSchedule, timesteps: list[int]) -> list[float]:
    """sigma(t) at each grid timestep, as the student saw them in training (float64)."""
    return [float(schedule.sigma(float(t))) for t in timesteps]


def flow_recipe(schedule: NoiseSchedule, timesteps: list[int], stochastic: bool) -> dict[str, Any]:
    """FlowMatchEulerDiscreteScheduler on the student's exact sigmas; ``stochastic``: re-noise between
    steps (only meaningful with more than one step, so a 1-step recipe stays deterministic)."""
    kwargs: dict[str, Any] = {"shift": 1.0}
    if stochastic and len(timesteps) > 1:
        kwargs["stochastic_sampling"] = True
    return {"scheduler": FLOW_SCHEDULER, "scheduler_kwargs": kwargs, "sigmas": student_sigmas(schedule, timesteps),
            "guidance_scale": 1.0}


def renoising_recipe(schedule: NoiseSchedule, timesteps: list[int]) -> dict[str, Any]:
    """DMD2's and ADM's sampler: predict x0, re-noise with fresh noise at the next timestep (their
    backward simulation). LCMScheduler's step on DDPM teachers, stochastic flow Euler on flow teachers."""
    if is_flow(schedule):
        return flow_recipe(schedule, timesteps, stochastic=True)
    return {"scheduler": "LCMScheduler", "timesteps": list(timesteps), "guidance_scale": 1.0}


def student_recipe(recipe: dict[str, Any], scheduler_config: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """A method's recipe completed for the teacher's pipeline: ``fields`` (``TeacherText.recipe``) over
    it, and on a scheduler that shifts by resolution, flow Euler with ``use_dynamic_shifting = False``."""
    out = {**recipe, **fields}
    if recipe.get("scheduler") == FLOW_SCHEDULER and scheduler_config.get("use_dynamic_shifting"):
        out["scheduler_kwargs"] = {**recipe.get("scheduler_kwargs", {}), "use_dynamic_shifting": False}
    return out
