"""Outside generators: a model whose code is not in diffusers (a paper's own scripts, a ComfyUI setup),
run by benchkit as a program once per batch.

A spec with ``command = [...]`` is this family's (benchkit.models.spec sets it). Loading reads no
weights: it finds the program and hashes the files the command names; the generator writes a JSON
request to the program's stdin and reads back one image per item. The protocol is in
:mod:`benchkit.models.command_generation` and the README ("Outside generators").
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from benchkit.models.families import register_family
from benchkit.models.families.base import Family

# Named, not imported, as plugins are: the implementation reads loaded models (benchkit.models.loading),
# and loading reads this family table, so an import here would be a cycle.
_IMPLEMENTATION = "benchkit.models.command_generation"


def _load(spec: Any, device: Any, dtype: Any, cache_dir: Any) -> Any:
    return import_module(_IMPLEMENTATION).load_command_model(spec, device, dtype, cache_dir)


def _generator(model: Any, recipe: Any) -> Any:
    return import_module(_IMPLEMENTATION).CommandGenerator(model, recipe)


COMMAND = register_family()(Family(
    name="command",  # what benchkit.models.spec.COMMAND_FAMILY gives a spec with a command
    description="an outside generator: the spec's command, run once per batch (JSON request on stdin, "
                "one image per item in the folder it names)",
    pipeline_class=None,
    denoiser="none",  # the program's own business: nothing here for a distiller or a LoRA
    load=_load,
    generator=_generator,
))
