"""The generator for a loaded model and a recipe, as its family asks.

Kept apart from the families and the generators themselves so that neither imports the other:
families are read by loading, generators read loaded models.
"""

from __future__ import annotations

from typing import Any

from benchkit.models.generation import Generator
from benchkit.models.loading import LoadedModel
from benchkit.models.pipeline_generation import PipelineGenerator
from benchkit.models.spec import Recipe


def make_generator(model: LoadedModel, recipe: Recipe) -> Any:
    """The family's own generator if it has one; else benchkit's loop without a pipeline (the
    toy), the pipeline's with per-item noise otherwise."""
    family = model.family_info
    if family.generator is not None:
        return family.generator(model, recipe)
    return PipelineGenerator(model, recipe) if family.uses_pipeline else Generator(model, recipe)
