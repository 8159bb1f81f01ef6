"""Model specs: what to load and the recipe to sample it with.

A spec is a preset name, a TOML file, or (later) a distillation output folder. Recipes are
where few-step models go wrong silently, so every field is validated on load and the whole
spec is hashed into the run's identity: an image depends only on (spec, prompt_id, seed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit.errors import BenchkitError

# Short names for the diffusers schedulers the recipes in the field use.
SCHEDULER_ALIASES = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "lcm": "LCMScheduler",
    "tcd": "TCDScheduler",
    "flow-euler": "FlowMatchEulerDiscreteScheduler",
}


@dataclass(frozen=True)
class Recipe:
    """How to sample: scheduler and its kwargs, steps or explicit timesteps, guidance, size."""

    scheduler: str = "DDIMScheduler"
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 50
    timesteps: tuple[int, ...] | None = None
    guidance_scale: float = 1.0
    eta: float | None = None
    height: int | None = None
    width: int | None = None

    @property
    def scheduler_class(self) -> str:
        return SCHEDULER_ALIASES.get(self.scheduler.lower(), self.scheduler)

    @property
    def uses_cfg(self) -> bool:
        return self.guidance_scale > 1.0

    def label(self) -> str:
        spacing = self.scheduler_kwargs.get("timestep_spacing")
        parts = [self.scheduler_class.replace("Scheduler", ""), f"{self.steps} step" + ("s" if self.steps != 1 else "")]
        if spacing:
            parts.append(str(spacing))
        if self.timesteps:
            parts.append("t=" + ",".join(map(str, self.timesteps)))
        if self.uses_cfg:
            parts.append(f"cfg {self.guidance_scale:g}")
        return " · ".join(parts)


@dataclass(frozen=True)
class ModelSpec:
    """A named model: where its weights are and the recipe it must be sampled with."""

    name: str
    base: str
    recipe: Recipe = field(default_factory=Recipe)
    description: str = ""
    license: str = ""
    dtype: str | None = None  # default dtype for this model; --dtype overrides

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["recipe"]["scheduler"] = self.recipe.scheduler_class
        if d["recipe"]["timesteps"] is not None:
            d["recipe"]["timesteps"] = list(d["recipe"]["timesteps"])
        return d

    def identity(self) -> dict[str, Any]:
        """The fields that change images: everything but name, description and license."""
        d = self.to_dict()
        for k in ("name", "description", "license"):
            d.pop(k)
        return d

    def with_recipe(self, **changes: Any) -> "ModelSpec":
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        recipe = _build_recipe({**_recipe_fields(self.recipe), **changes}, source="command line")
        return dataclasses.replace(self, recipe=recipe)


def spec_hash(spec: ModelSpec, weights_sha256: str) -> str:
    """Identity of a model + recipe: the spec's image-relevant fields and its weights hash."""
    blob = json.dumps({"spec": spec.identity(), "weights": weights_sha256}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _recipe_fields(recipe: Recipe) -> dict[str, Any]:
    return {f.name: getattr(recipe, f.name) for f in dataclasses.fields(Recipe)}


_RECIPE_TYPES: dict[str, tuple[type, ...]] = {
    "scheduler": (str,),
    "scheduler_kwargs": (dict,),
    "steps": (int,),
    "timesteps": (list, tuple, type(None)),
    "guidance_scale": (int, float),
    "eta": (int, float, type(None)),
    "height": (int, type(None)),
    "width": (int, type(None)),
}


def _build_recipe(raw: dict[str, Any], source: str) -> Recipe:
    unknown = set(raw) - set(_RECIPE_TYPES)
    if unknown:
        raise BenchkitError(
            f"{source}: unknown recipe field '{sorted(unknown)[0]}'; allowed: {', '.join(_RECIPE_TYPES)}"
        )
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, _RECIPE_TYPES[key]):
            names = "/".join(t.__name__ for t in _RECIPE_TYPES[key] if t is not type(None))
            raise BenchkitError(f"{source}: field 'recipe.{key}' must be {names}, got {value!r}")
    if "steps" in raw and raw["steps"] < 1:
        raise BenchkitError(f"{source}: field 'recipe.steps' must be at least 1, got {raw['steps']}")
    timesteps = raw.get("timesteps")
    if timesteps is not None:
        if not timesteps or not all(isinstance(t, int) and not isinstance(t, bool) for t in timesteps):
            raise BenchkitError(f"{source}: field 'recipe.timesteps' must be a non-empty list of integers")
        raw = {**raw, "timesteps": tuple(timesteps), "steps": len(timesteps)}
    if "guidance_scale" in raw:
        raw = {**raw, "guidance_scale": float(raw["guidance_scale"])}
    return Recipe(**raw)


_SPEC_FIELDS = {"name", "base", "recipe", "description", "license", "dtype", "extends"}


def spec_from_dict(raw: dict[str, Any], source: str, presets: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """Build a spec from parsed TOML; ``extends = "preset"`` inherits and overrides a preset."""
    unknown = set(raw) - _SPEC_FIELDS
    if unknown:
        raise BenchkitError(f"{source}: unknown field '{sorted(unknown)[0]}'; allowed: {', '.join(sorted(_SPEC_FIELDS))}")
    base_spec: ModelSpec | None = None
    if "extends" in raw:
        presets = presets or {}
        if raw["extends"] not in presets:
            raise BenchkitError(f"{source}: 'extends' names unknown preset '{raw['extends']}'; see `benchkit models`")
        base_spec = presets[raw["extends"]]
    recipe_raw = raw.get("recipe", {})
    if not isinstance(recipe_raw, dict):
        raise BenchkitError(f"{source}: 'recipe' must be a table ([recipe])")
    recipe_base = _recipe_fields(base_spec.recipe) if base_spec else {}
    recipe = _build_recipe({**recipe_base, **recipe_raw}, source)
    for key in ("name", "base"):
        if key not in raw and base_spec is None:
            raise BenchkitError(f"{source}: missing field '{key}' (or use extends = \"PRESET\")")
    for key in ("name", "base", "description", "license", "dtype"):
        if key in raw and not isinstance(raw[key], str):
            raise BenchkitError(f"{source}: field '{key}' must be a string, got {raw[key]!r}")
    base = raw.get("base", base_spec.base if base_spec else "")
    if base and not base.startswith("builtin:") and not Path(base).is_absolute() and Path(source).exists():
        candidate = Path(source).parent / base
        if candidate.exists():  # relative paths in a TOML file are relative to that file
            base = str(candidate.resolve())
    return ModelSpec(
        name=raw.get("name", base_spec.name if base_spec else ""),
        base=base,
        recipe=recipe,
        description=raw.get("description", base_spec.description if base_spec else ""),
        license=raw.get("license", base_spec.license if base_spec else ""),
        dtype=raw.get("dtype", base_spec.dtype if base_spec else None),
    )


def load_spec_file(path: Path, presets: dict[str, ModelSpec] | None = None) -> ModelSpec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchkitError(f"cannot read spec file {path}: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchkitError(f"{path}: invalid TOML ({exc}); fix the file and retry") from None
    return spec_from_dict(raw, str(path), presets)
