"""Model specs: what to load and the recipe to sample it with.

A spec is a preset name, a TOML file, or (later) a distillation output folder. Recipes are
where few-step models go wrong silently, so every field is validated on load and the whole
spec is hashed into the run's identity: an image depends only on (spec, prompt_id, seed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from benchkit.core.errors import BenchkitError

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
    "cogvideox-ddim": "CogVideoXDDIMScheduler",
    "cogvideox-dpm": "CogVideoXDPMScheduler",
}

# "model-default": sample with the scheduler the model ships (its scheduler_config.json), as a
# model card that just calls ``pipe(prompt)`` does.
MODEL_DEFAULT_SCHEDULER = "model-default"

# recipe fields handed to the pipeline call by their own name when set (left out of a spec's identity while unset)
PIPELINE_RECIPE_FIELDS = ("true_cfg_scale", "negative_prompt", "max_sequence_length", "decode_timestep", "decode_noise_scale",
                          "guidance_scale_2")


@dataclass(frozen=True)
class Recipe:
    """How to sample: scheduler and its kwargs, steps or explicit timesteps/sigmas, guidance, size.

    ``sigmas`` is the pipeline's ``sigmas`` argument, for flow-matching models: explicit
    ``timesteps`` would reach an SD3 transformer as given, unshifted, while the scheduler steps on
    shifted sigmas. FlowMatchEulerDiscreteScheduler still shifts the sigmas it is given, so a recipe
    that means these exact sigmas sets ``scheduler_kwargs.shift = 1.0`` (as distilled students do).
    """

    scheduler: str = "DDIMScheduler"
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 50
    timesteps: tuple[int | float, ...] | None = None  # fractions only for flow-matching schedulers
    sigmas: tuple[float, ...] | None = None  # flow models: the sigmas to step on (first is where sampling starts)
    guidance_scale: float = 1.0
    eta: float | None = None
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None  # video models: frames per sample
    fps: int | None = None  # video models: frames per second of the written file
    # real classifier-free guidance of a guidance-embedded model (FLUX.1-dev's and Qwen-Image's pipelines'
    # true_cfg_scale): a second, negative-prompt call per step, on top of the embedded guidance_scale
    true_cfg_scale: float | None = None
    negative_prompt: str | None = None  # the unconditional prompt true CFG mixes with (cards use "" or " ")
    max_sequence_length: int | None = None  # T5 tokens the pipeline encodes (FLUX.1-schnell 256, dev 512)
    # a timestep-conditioned VAE decoder (LTX-Video 0.9.1+) denoises the latents a little as it decodes: the
    # timestep it is told, and how much per-item noise is mixed into the latents first (default: the timestep)
    decode_timestep: float | None = None
    decode_noise_scale: float | None = None
    # the guidance of a second, low-noise expert (Wan 2.2 A14B's transformer_2; None: guidance_scale, as the pipeline does)
    guidance_scale_2: float | None = None
    # a second pass after a latent upsampler (LTX-Video's distilled multi-scale recipe; see
    # benchkit.models.two_pass_generation): timesteps, denoise_strength, downscale_factor, and optionally
    # adain_factor and tone_map_compression_ratio
    second_pass: dict[str, Any] | None = None

    @property
    def scheduler_class(self) -> str:
        return SCHEDULER_ALIASES.get(self.scheduler.lower(), self.scheduler)

    @property
    def uses_cfg(self) -> bool:
        """Whether guidance_scale asks for classifier-free guidance (a guidance-embedded family's
        guidance_scale is an input instead; see Family.guidance)."""
        return self.guidance_scale > 1.0

    def label(self, embedded_guidance: bool = False) -> str:
        """One line for tables; ``embedded_guidance``: the family feeds guidance_scale to the
        transformer (FLUX.1-dev) rather than mixing two predictions."""
        spacing = self.scheduler_kwargs.get("timestep_spacing")
        parts = [self.scheduler_class.replace("Scheduler", ""), f"{self.steps} step" + ("s" if self.steps != 1 else "")]
        if spacing:
            parts.append(str(spacing))
        if self.scheduler_kwargs.get("prediction_type"):
            parts.append(f"predicts {self.scheduler_kwargs['prediction_type']}")
        if self.timesteps:
            parts.append("t=" + ",".join(map(str, self.timesteps)))
        if self.sigmas:
            parts.append("sigma=" + ",".join(f"{s:.4g}" for s in self.sigmas))
        if self.scheduler_kwargs.get("stochastic_sampling"):
            parts.append("stochastic")
        if embedded_guidance and self.guidance_scale > 0:
            parts.append(f"guidance {self.guidance_scale:g}")
        elif self.uses_cfg:
            parts.append(f"cfg {self.guidance_scale:g}")
        if self.guidance_scale_2 is not None and self.guidance_scale_2 != self.guidance_scale:
            parts.append(f"low-noise cfg {self.guidance_scale_2:g}")
        if self.true_cfg_scale is not None and self.true_cfg_scale > 1:
            parts.append(f"true cfg {self.true_cfg_scale:g}")
        if self.eta is not None:
            parts.append(f"eta {self.eta:g}")
        if self.second_pass:
            parts.append("then upsampled 2x: t=" + ",".join(map(str, self.second_pass["timesteps"]))
                         + f" from {self.second_pass['denoise_strength']:g}")
        if self.num_frames:
            parts.append(f"{self.num_frames} frames")
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
    # Where the files are. Locations are local paths, Hugging Face repo ids ("owner/name", for
    # `base`) or files in a repo ("hf://owner/name/path/in/repo"), read from the local HF cache.
    family: str | None = None  # sd15 | sdxl | sd3 | cogvideox; None: from model_index.json
    weights: str | None = None  # replaces the base's UNet/transformer: state dict file or folder
    lora: str | None = None  # LoRA file (kohya or PEFT/diffusers keys)
    # a second LoRA file, for the second denoiser of a two-expert model (Wan 2.2's low-noise transformer_2);
    # lora_scale and lora_fused apply to both
    lora_2: str | None = None
    upsampler: str | None = None  # a latent upsampler for recipe.second_pass (LTX-Video's LTXLatentUpsamplerModel)
    lora_scale: float = 1.0
    lora_fused: bool = True  # fuse into the weights (as the model cards do) or keep as adapters
    vae: str | None = None  # replacement VAE folder/repo, e.g. an AutoencoderTiny for fast decoding
    config: str | None = None  # diffusers folder/repo with the configs a single-file `base` needs
    compile: bool = False  # torch.compile the UNet/transformer (part of the latency variant)
    source: str = ""  # upstream model card / repository, for people
    # an outside generator (benchkit/models/command_generation.py): the program run once per batch, argv
    # as a list (no shell), and the seconds one batch may take; such a spec has no base and no weights
    command: tuple[str, ...] | None = None
    timeout_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["command"] is not None:
            d["command"] = list(d["command"])
        d["recipe"]["scheduler"] = self.recipe.scheduler_class
        for key in ("timesteps", "sigmas"):
            if d["recipe"][key] is not None:
                d["recipe"][key] = list(d["recipe"][key])
        return d

    def identity(self) -> dict[str, Any]:
        """The fields that change images: everything but name, description, license and source.

        Fields added after the first release are left out while they hold their default, so a
        spec that does not use them keeps the hash (and run folder) it always had.
        """
        d = self.to_dict()
        for k in ("name", "description", "license", "source", "timeout_s"):  # a timeout changes no image
            d.pop(k)
        for k, default in _LATER_SPEC_DEFAULTS.items():
            if d.get(k) == default:
                d.pop(k)
        for k in ("num_frames", "fps", "sigmas", "second_pass") + PIPELINE_RECIPE_FIELDS:
            if d["recipe"].get(k) is None:
                d["recipe"].pop(k)
        return d

    def local_paths(self) -> list[str]:
        """The locations that are paths on this machine (not repo ids, hf:// files or builtins): the
        inputs an output folder must not overlap."""
        values = [getattr(self, f) for f in LOCATION_FIELDS]
        values += [a for a in self.command or () if Path(a).is_absolute()]  # the files an outside command names
        return [v for v in values if v and not str(v).startswith(("builtin:", "hf://")) and Path(v).expanduser().exists()]

    def recipe_label(self) -> str:
        """The recipe's one-line label, saying "guidance" rather than "cfg" where the family embeds it."""
        from benchkit.models.families import FAMILIES

        family = FAMILIES.get(self.family) if self.family else None
        return self.recipe.label(embedded_guidance=family is not None and family.guidance == "embedded")

    @property
    def is_video(self) -> bool:
        if self.recipe.num_frames:
            return True
        from benchkit.models.families import get_family

        return bool(self.family) and get_family(self.family).is_video

    def with_recipe(self, **changes: Any) -> "ModelSpec":
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        recipe = _build_recipe({**_recipe_fields(self.recipe), **changes}, source="command line")
        return dataclasses.replace(self, recipe=recipe)


_LATER_SPEC_DEFAULTS = {"family": None, "weights": None, "lora": None, "lora_2": None, "upsampler": None, "lora_scale": 1.0,
                        "lora_fused": True,
                        "vae": None, "config": None, "compile": False, "command": None}


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
    "sigmas": (list, tuple, type(None)),
    "guidance_scale": (int, float),
    "eta": (int, float, type(None)),
    "height": (int, type(None)),
    "width": (int, type(None)),
    "num_frames": (int, type(None)),
    "fps": (int, type(None)),
    "true_cfg_scale": (int, float, type(None)),
    "negative_prompt": (str, type(None)),
    "max_sequence_length": (int, type(None)),
    "decode_timestep": (int, float, type(None)),
    "decode_noise_scale": (int, float, type(None)),
    "guidance_scale_2": (int, float, type(None)),
    "second_pass": (dict, type(None)),
}

# recipe.second_pass: field -> (accepted types, required); see _check_second_pass
_SECOND_PASS = {"timesteps": ((list, tuple), True), "denoise_strength": ((int, float), True),
                "downscale_factor": ((int, float), True), "adain_factor": ((int, float), False),
                "tone_map_compression_ratio": ((int, float), False)}


# the command-line flag of a recipe field, named in errors about values given on the command line
_FLAGS = {"steps": "--steps", "timesteps": "--timesteps", "guidance_scale": "--guidance", "eta": "--eta",
          "scheduler": "--scheduler"}


def _check_second_pass(value: dict[str, Any], source: str) -> dict[str, Any]:
    """recipe.second_pass, each field checked: decreasing timesteps, strength in (0, 1], factor in (0, 1)."""
    where = f"{source}: field 'recipe.second_pass"
    unknown = sorted(set(value) - set(_SECOND_PASS))
    if unknown:
        raise BenchkitError(f"{where}.{unknown[0]}' is unknown; allowed: {', '.join(_SECOND_PASS)}")
    for key, (types, required) in _SECOND_PASS.items():
        if key not in value:
            if required:
                raise BenchkitError(f"{where}' needs '{key}'")
            continue
        v = value[key]
        if isinstance(v, bool) or not isinstance(v, types):
            raise BenchkitError(f"{where}.{key}' has the wrong type: {v!r}")
    steps = value["timesteps"]
    if not steps or not _numbers(steps) or not _decreasing_timesteps(steps):
        raise BenchkitError(f"{where}.timesteps' must be decreasing numbers from 0 up, got {steps!r}")
    if not 0 < value["denoise_strength"] <= 1:
        raise BenchkitError(f"{where}.denoise_strength' must be in (0, 1], got {value['denoise_strength']!r}")
    if not 0 < value["downscale_factor"] < 1:
        raise BenchkitError(f"{where}.downscale_factor' must be in (0, 1), got {value['downscale_factor']!r}")
    for key in ("adain_factor", "tone_map_compression_ratio"):
        if key in value and not 0 <= value[key] <= 1:
            raise BenchkitError(f"{where}.{key}' must be from 0 to 1, got {value[key]!r}")
    return {**value, "timesteps": _whole_as_int(steps)}


def _numbers(values) -> bool:
    return all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in values)


def _decreasing_timesteps(values) -> bool:
    """Diffusers' custom timesteps: from noise to data, in [0, 10000)."""
    return all(0 <= t < 10_000 for t in values) and all(b < a for a, b in zip(values, values[1:]))


def _whole_as_int(values) -> list[int | float]:
    return [int(t) if float(t).is_integer() else float(t) for t in values]


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
    def bad(key: str, rule: str, value: Any) -> BenchkitError:
        where = _FLAGS.get(key, f"field 'recipe.{key}'") if source == "command line" else f"field 'recipe.{key}'"
        return BenchkitError(f"{source}: {where} must be {rule}, got {value!r}")

    for key in ("steps", "height", "width", "num_frames", "fps", "max_sequence_length"):
        if raw.get(key) is not None and raw[key] < 1:
            raise bad(key, "a positive integer", raw[key])
    if raw.get("steps") is not None and raw["steps"] > 10_000:
        raise bad("steps", "at most 10000", raw["steps"])
    if "guidance_scale" in raw and not (math.isfinite(raw["guidance_scale"]) and 0 <= raw["guidance_scale"] <= 100):
        raise bad("guidance_scale", "a finite number from 0 to 100 (1 turns guidance off)", raw["guidance_scale"])
    if raw.get("true_cfg_scale") is not None and not (math.isfinite(raw["true_cfg_scale"]) and 1 <= raw["true_cfg_scale"] <= 100):
        raise bad("true_cfg_scale", "a finite number from 1 to 100 (1 turns true CFG off)", raw["true_cfg_scale"])
    for key in ("eta", "decode_timestep", "decode_noise_scale"):
        if raw.get(key) is not None and not (math.isfinite(raw[key]) and 0 <= raw[key] <= 1):
            raise bad(key, "a number from 0 to 1", raw[key])
    for key, value in raw.get("scheduler_kwargs", {}).items():
        if not isinstance(key, str) or (isinstance(value, float) and not math.isfinite(value)):
            raise BenchkitError(f"{source}: field 'recipe.scheduler_kwargs.{key}' must be finite, got {value!r}")
    timesteps = raw.get("timesteps")
    if timesteps is not None:
        # numbers: a flow-matching scheduler takes fractional timesteps (LTX-Video 0.9.7-distilled ends on 0.03)
        if not timesteps or not _numbers(timesteps):
            raise BenchkitError(f"{source}: field 'recipe.timesteps' must be a non-empty list of numbers")
        if not _decreasing_timesteps(timesteps):
            raise bad("timesteps", "decreasing numbers from 0 up (diffusers' custom timesteps run from noise to data)",
                      list(timesteps))
        timesteps = _whole_as_int(timesteps)
        raw = {**raw, "timesteps": tuple(timesteps), "steps": len(timesteps)}
    sigmas = raw.get("sigmas")
    if sigmas is not None:
        numbers = [s for s in sigmas if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s)]
        if not sigmas or len(numbers) != len(sigmas) or not all(s > 0 for s in numbers):
            raise BenchkitError(f"{source}: field 'recipe.sigmas' must be a non-empty list of positive numbers, got {sigmas!r}")
        if any(b >= a for a, b in zip(numbers, numbers[1:])):
            raise BenchkitError(f"{source}: field 'recipe.sigmas' must decrease (sampling goes from noise to data), got {sigmas!r}")
        if timesteps is not None:
            raise BenchkitError(f"{source}: give recipe.timesteps or recipe.sigmas, not both (flow models take sigmas)")
        raw = {**raw, "sigmas": tuple(float(s) for s in numbers), "steps": len(numbers)}
    if raw.get("second_pass") is not None:
        raw = {**raw, "second_pass": _check_second_pass(raw["second_pass"], source)}
    if raw.get("guidance_scale_2") is not None and not (math.isfinite(raw["guidance_scale_2"]) and 0 <= raw["guidance_scale_2"] <= 100):
        raise bad("guidance_scale_2", "a finite number from 0 to 100", raw["guidance_scale_2"])
    for key in ("guidance_scale", "true_cfg_scale", "guidance_scale_2"):
        if raw.get(key) is not None:
            raw = {**raw, key: float(raw[key])}
    return Recipe(**raw)


# field -> accepted types; location fields are resolved against the TOML file's folder
_SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "base": (str,), "description": (str,), "license": (str,), "dtype": (str,),
    "family": (str,), "weights": (str,), "lora": (str,), "lora_2": (str,), "upsampler": (str,), "lora_scale": (int, float), "lora_fused": (bool,),
    "vae": (str,), "config": (str,), "compile": (bool,), "source": (str,), "command": (list,), "timeout_s": (int, float),
}
_TYPE_WORDS = {(str,): "a string", (int, float): "a number", (bool,): "true or false", (list,): "a list of strings"}
_FILE_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".json", ".toml")  # never an owner/name repo id
LOCATION_FIELDS = ("base", "weights", "lora", "lora_2", "upsampler", "vae", "config")
_SPEC_FIELDS = set(_SPEC_TYPES) | {"recipe", "extends"}


def _resolve_location(value: str, folder: Path) -> str:
    """A relative local path in a spec file means relative to that file's folder."""
    if value.startswith(("builtin:", "hf://")) or Path(value).expanduser().is_absolute():
        return value
    candidate = folder / value
    if candidate.exists() or value.startswith((".", "/")) or value.count("/") != 1 or Path(value).suffix in _FILE_SUFFIXES:
        return str(candidate.resolve())
    return value  # "owner/name": a Hugging Face repo id


def spec_from_dict(raw: dict[str, Any], source: str, presets: dict[str, ModelSpec] | None = None,
                   folder: Path | None = None) -> ModelSpec:
    """Build a spec from parsed TOML; ``extends = "preset"`` inherits and overrides a preset.

    Any field may be overridden, recipe fields one by one. ``folder`` is where relative paths
    point (the TOML file's folder); without it they are kept as written.
    """
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
    if "command" in raw and base_spec is None:  # an outside program samples with its own scheduler unless told
        recipe_base = {"scheduler": MODEL_DEFAULT_SCHEDULER}
    recipe = _build_recipe({**recipe_base, **recipe_raw}, source)
    for key in ("name", "base"):
        if key not in raw and base_spec is None and not (key == "base" and "command" in raw):
            raise BenchkitError(f"{source}: missing field '{key}' (or use extends = \"PRESET\")")
    fields: dict[str, Any] = {}
    for key, types in _SPEC_TYPES.items():
        if key not in raw:
            continue
        value = raw[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise BenchkitError(f"{source}: field '{key}' must be {_TYPE_WORDS[types]}, got {value!r}")
        if key in LOCATION_FIELDS and folder is not None and value:
            value = _resolve_location(value, folder)
        fields[key] = float(value) if key in ("lora_scale", "timeout_s") else value
    fields.update(_command_fields(raw, fields, source, folder))
    family = fields.get("family")
    if family is not None:
        from benchkit.models.families import FAMILIES

        if family not in FAMILIES:
            raise BenchkitError(f"{source}: field 'family' must be one of {', '.join(FAMILIES)}, got {family!r}")
    if base_spec is not None:
        return dataclasses.replace(base_spec, recipe=recipe, **fields)
    return ModelSpec(recipe=recipe, **fields)


# the family that runs a spec's command (benchkit/models/families/command.py)
COMMAND_FAMILY = "command"
# what a command spec does not have: its program loads its own model
_NOT_WITH_COMMAND = (*LOCATION_FIELDS, "family", "lora_scale", "lora_fused", "compile")


def _command_fields(raw: dict[str, Any], fields: dict[str, Any], source: str, folder: Path | None) -> dict[str, Any]:
    """``command`` and ``timeout_s`` checked, and a command spec's diffusers fields cleared (an ``extends``
    keeps the preset's recipe, not its weights). Relative paths in the command resolve against ``folder``."""
    if "command" not in raw:
        if "timeout_s" in raw:
            raise BenchkitError(f"{source}: field 'timeout_s' applies to an outside generator; give 'command' too")
        return {}
    command = raw["command"]
    if not command or not all(isinstance(a, str) and a and "\0" not in a for a in command):
        raise BenchkitError(f"{source}: field 'command' must be a non-empty list of non-empty strings "
                            f"(the program and its arguments, e.g. [\"python\", \"gen.py\"]), got {command!r}")
    clash = [k for k in _NOT_WITH_COMMAND if k in raw]
    if clash:
        raise BenchkitError(f"{source}: field '{clash[0]}' does not go with 'command': an outside generator loads its own "
                            f"model (pass its files as arguments of the command)")
    if "timeout_s" in raw:
        _check_timeout(fields["timeout_s"], source)
    resolved = tuple(command) if folder is None else tuple(_resolve_argument(a, i, folder) for i, a in enumerate(command))
    cleared = {k: _LATER_SPEC_DEFAULTS[k] for k in _NOT_WITH_COMMAND if k in _LATER_SPEC_DEFAULTS}
    return {**cleared, "base": "", "family": COMMAND_FAMILY, "command": resolved}


def _check_timeout(value: float, source: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise BenchkitError(f"{source}: field 'timeout_s' must be a positive number of seconds, got {value!r}")


def _resolve_argument(arg: str, index: int, folder: Path) -> str:
    """A command argument that is a relative path means one next to the spec file: the program when it is
    given as a path (``./gen.sh``; a bare name such as ``python`` is looked up on PATH when run), and any
    argument naming a file or folder there or starting with ``./`` or ``../``. Flags and values stay as written."""
    if arg == "~" or arg.startswith("~/"):
        return str(Path(arg).expanduser())
    if Path(arg).is_absolute() or arg.startswith("-"):
        return arg
    as_path = arg.startswith(("./", "../")) or (index == 0 and "/" in arg) or (index > 0 and (folder / arg).exists())
    return str((folder / arg).resolve()) if as_path else arg


def read_toml(path: Path, what: str, encoding: str = "utf-8") -> tuple[dict[str, Any], bytes]:
    """A TOML file's table and its bytes (to hash); unreadable, non-UTF-8 or invalid files are one line
    naming ``what`` it is (a spec file, a nightly config)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BenchkitError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise BenchkitError(f"{path}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    try:
        return tomllib.loads(text), data
    except tomllib.TOMLDecodeError as exc:
        raise BenchkitError(f"{path}: invalid TOML ({exc}); fix the file and retry") from None


def load_spec_file(path: Path, presets: dict[str, ModelSpec] | None = None) -> ModelSpec:
    raw, _ = read_toml(path, "spec file")
    return spec_from_dict(raw, str(path), presets, folder=Path(path).resolve().parent)
