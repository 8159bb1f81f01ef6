"""Named model specs (presets) and resolving a user's `--model` argument to a spec.

The toy presets point at the teacher benchkit ships; real-model presets arrive with the
model-presets work and use the same ModelSpec.
"""

from __future__ import annotations

from pathlib import Path

from benchkit.errors import BenchkitError
from benchkit.spec import ModelSpec, Recipe, load_spec_file

TOY_TEACHER = "builtin:toy-digits"

PRESETS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="toy-digits",
            base=TOY_TEACHER,
            recipe=Recipe(
                scheduler="DDIMScheduler",
                scheduler_kwargs={"timestep_spacing": "trailing"},
                steps=50,
                guidance_scale=2.0,
            ),
            description="Toy 8x8 digits teacher trained by benchkit (50-step DDIM, CFG 2)",
            license="BSD-3-Clause (scikit-learn digits data); weights: same as benchkit",
        ),
    ]
}


def resolve_spec(name_or_path: str) -> ModelSpec:
    """A preset name or a path to a TOML spec file; anything else is a one-line error."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise BenchkitError(f"spec file {path} does not exist; give a preset name (see `benchkit models`) or a TOML file")
        if path.is_dir():
            raise BenchkitError(f"{path} is a folder; give a preset name or a .toml spec whose 'base' points at the folder")
        return load_spec_file(path, PRESETS)
    close = [p for p in PRESETS if name_or_path.lower() in p.lower()]
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise BenchkitError(f"unknown model '{name_or_path}'{hint}: not a preset or a .toml file; `benchkit models` lists presets")
