"""Loading a spec's weights into memory: components of a diffusers-layout folder.

The toy teacher and a local Stable Diffusion folder load the same way: ``model_index.json``
names the components, each is loaded with its library's ``from_pretrained``. Weight files
are hashed (with a cache keyed by size and mtime) so results can name exactly what ran.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchkit.core.errors import BenchkitError
from benchkit.core.filehash import sha256_file
from benchkit.core.safe_load import load_state_dict_file, weights_only_reason
from benchkit.models.families import (
    Family,
    builtin_folder,
    detect_family,
    get_family,
    pipeline_families,
)
from benchkit.models.locations import parse_location, require
from benchkit.models.spec import ModelSpec

_loads_in_process = 0  # the first load pays for imports and cold file caches; later ones do not

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
COMPONENTS = ("unet", "text_encoder", "tokenizer", "vae", "scheduler")


def resolve_base(base: str, model: str = "") -> Path:
    """The local folder (or single file) of a spec's base: builtin, local path or HF cache."""
    if base.startswith("builtin:"):
        return builtin_folder(base)
    path = require(parse_location("base", base), model)
    if path.is_dir() and not (path / "model_index.json").exists():
        raise BenchkitError(f"{path} has no model_index.json: point 'base' at a diffusers-format model folder")
    if path.is_file() and path.suffix not in SINGLE_FILE_SUFFIXES:
        raise BenchkitError(f"base {path}: a single-file checkpoint must be .safetensors or .ckpt")
    return path


def hash_file(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a model file, remembered in ``cache_dir`` (the run's cache) when one is given."""
    return sha256_file(path, cache_dir / "sha256-cache.json" if cache_dir else None)


# components a text-to-image benchmark never runs
SKIPPED_COMPONENTS = {"safety_checker", "feature_extractor", "image_encoder"}


@dataclass
class LoadedModel:
    """A spec's components on a device, with the provenance of the files they came from."""

    spec: ModelSpec
    path: Path
    unet: Any  # the denoiser: UNet2DConditionModel, or the transformer of SD3 / CogVideoX
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict[str, Any]
    vae: Any = None
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    weight_files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    size_bytes: int = 0
    load_seconds: float = 0.0
    first_load_in_process: bool = True
    family: str = ""  # the family's name: see family_info
    pipeline: Any = None  # the diffusers pipeline holding the components (None for the toy)
    components: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # what ran: family, lora, vae dtype, compile...

    @property
    def weights_sha256(self) -> str:
        blob = json.dumps(sorted(self.weight_files.items()))
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def family_info(self) -> Family:
        """What this model's family does differently (pipeline, generator, media, LoRA targets...)."""
        return get_family(self.family)

    @property
    def denoiser_name(self) -> str:
        return "unet" if "unet" in self.components or self.pipeline is None else "transformer"


def weight_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def hash_weights(path: Path, cache_dir: Path | None = None) -> tuple[dict[str, str], int]:
    files = weight_files(path)
    return {str(p.relative_to(path)): hash_file(p, cache_dir) for p in files}, sum(p.stat().st_size for p in files)


def _variant(folder: Path) -> str | None:
    """'fp16' when a component folder only has fp16-variant weights (as many hub repos ship)."""
    files = [p.name for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES] if folder.is_dir() else []
    plain = [f for f in files if ".fp16." not in f]
    return "fp16" if files and not plain else None


def _loaded_files(folder: Path, variant: str | None) -> list[Path]:
    return [p for p in weight_files(folder) if (".fp16." in p.name) == (variant == "fp16")]


def _load_component(path: Path, name: str, library: str, class_name: str, dtype: torch.dtype):
    import importlib

    if name.startswith("tokenizer") and library == "transformers":
        # AutoTokenizer reads the folder's own config: tokenizer class names in model_index.json
        # differ across transformers versions (CLIPTokenizer, TokenizersBackend, ...).
        library, class_name = "transformers", "AutoTokenizer"
    try:
        cls = getattr(importlib.import_module(library), class_name)
    except (ImportError, AttributeError):
        raise BenchkitError(f"{path}/model_index.json: component '{name}' needs {library}.{class_name}, which is not installed") from None
    kwargs: dict[str, Any] = {}
    if not name.startswith("tokenizer") and not class_name.endswith("Processor"):  # networks, not preprocessors
        kwargs["torch_dtype"] = dtype
        variant = _variant(path / name)
        if variant:
            kwargs["variant"] = variant
    import pickle

    from safetensors import SafetensorError

    try:
        return cls.from_pretrained(str(path / name), **kwargs)
    except (OSError, ValueError, SafetensorError, pickle.UnpicklingError) as exc:  # transformers lets the last two through
        raise BenchkitError(f"cannot load '{name}' from {path / name}: {weights_only_reason(exc)}{_damaged_hint(exc)}") from None


def _damaged_hint(exc: BaseException) -> str:
    """What to do when a library could not read a weight file: diffusers reports a truncated,
    damaged or code-carrying file (refused by torch's weights-only unpickler) with the same words."""
    text = str(exc)
    if "Unable to load weights" in text or "deserializing header" in text or "Weights only load failed" in text:
        return ("; the file is truncated, damaged or holds more than tensors (a pickle's code is never run): "
                "download or copy it again")
    return ""


def _quiet_libraries() -> None:
    """benchkit shows its own progress; the libraries' per-file bars and notices would interleave."""
    import diffusers
    import transformers

    for lib in (transformers.utils.logging, diffusers.utils.logging):
        lib.disable_progress_bar()
        lib.set_verbosity_error()


def _components_from_folder(path: Path, index: dict[str, Any], dtype: torch.dtype,
                            needed: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[Path]]:
    """Every component but the scheduler and those a benchmark does not run, unless the family needs them
    (Wan image-to-video's image encoder)."""
    parts: dict[str, Any] = {}
    files: list[Path] = []
    for name, entry in index.items():
        if name.startswith("_") or (name in SKIPPED_COMPONENTS and name not in needed) or name == "scheduler":
            continue
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or entry[0] is None or entry[1] is None:
            parts[name] = None  # optional component the model does not ship (e.g. SD3 without T5)
            continue
        library, class_name = entry
        parts[name] = _load_component(path, name, library, class_name, dtype)
        if not name.startswith("tokenizer") and not class_name.endswith("Processor"):
            files += _loaded_files(path / name, _variant(path / name))
    return parts, files


def _from_single_file(spec: ModelSpec, file: Path, family: Family, dtype: torch.dtype) -> tuple[dict[str, Any], dict[str, Any]]:
    """An all-in-one checkpoint (A1111/ComfyUI layout) through diffusers' from_single_file."""
    import diffusers

    cls = getattr(diffusers, family.pipeline_class)
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "local_files_only": True}
    if spec.config:
        kwargs["config"] = str(require(parse_location("config", spec.config), spec.name))
    try:
        pipe = cls.from_single_file(str(file), **kwargs)
    except Exception as exc:  # diffusers raises its own error types (SingleFileComponentError, ...)
        hint = _damaged_hint(exc) or ("" if spec.config else "; set config = the model's diffusers folder or repo id")
        raise BenchkitError(f"cannot load single-file checkpoint {file}: {weights_only_reason(exc)[:300]}{hint}") from None
    parts = {k: v for k, v in pipe.components.items() if k != "scheduler" and k not in SKIPPED_COMPONENTS}
    return parts, dict(pipe.scheduler.config)


def load_denoiser(location: Path, like: Any, dtype: torch.dtype) -> Any:
    """A UNet/transformer from a state dict file (built on the meta device, then ``assign``ed)
    or from a diffusers folder; ``like`` is the base's denoiser, whose config it shares."""
    cls = type(like)
    if location.is_dir():
        return cls.from_pretrained(str(location), torch_dtype=dtype)
    from accelerate import init_empty_weights

    state = load_state_dict_file(location)
    with init_empty_weights():  # no memory and no random init for weights about to be replaced
        model = cls.from_config(like.config)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise BenchkitError(
            f"weights {location}: does not fit {cls.__name__} of the base model ({len(missing)} missing keys, e.g. "
            f"'{(missing or ['-'])[0]}'; {len(unexpected)} unexpected, e.g. '{(unexpected or ['-'])[0]}'); "
            f"it must be a diffusers-format state dict for this base")
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(dtype)


def _vae_from(location: Path, dtype: torch.dtype) -> Any:
    import diffusers

    folder = location if (location / "config.json").exists() else location / "vae"
    try:
        config = json.loads((folder / "config.json").read_text())
        cls = getattr(diffusers, config["_class_name"])
    except (OSError, ValueError, KeyError, AttributeError):
        raise BenchkitError(f"vae {location}: not a diffusers VAE folder (config.json with a _class_name)") from None
    return cls.from_pretrained(str(folder), torch_dtype=dtype), folder


def _build_pipeline(family: Family, parts: dict[str, Any], scheduler_config: dict[str, Any], index: dict[str, Any]):
    import inspect

    import diffusers

    cls = getattr(diffusers, family.pipeline_class)
    scheduler_cls = getattr(diffusers, scheduler_config.get("_class_name", ""), None) or diffusers.DDIMScheduler
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in parts.items() if k in accepted}
    # pipeline settings saved in model_index.json (e.g. SDXL's force_zeros_for_empty_prompt)
    kwargs.update({k: v for k, v in index.items() if k in accepted and not k.startswith("_") and not isinstance(v, list)})
    kwargs["scheduler"] = scheduler_cls.from_config(scheduler_config)
    for name, param in accepted.items():
        if name not in kwargs and name != "self" and param.default is inspect.Parameter.empty:
            kwargs[name] = None  # e.g. safety_checker / feature_extractor, which a benchmark does not run
    if "requires_safety_checker" in accepted:
        kwargs["requires_safety_checker"] = False
    pipe = cls(**kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def vae_dtype_for(vae: Any, device: torch.device, dtype: torch.dtype, family_fp32: bool = False) -> torch.dtype:
    """fp16 VAE decoding overflows on mps and for VAEs that say so (SDXL's force_upcast): fp32 there;
    and fp32 whatever the model's dtype where the family's card decodes so (Wan's VAE)."""
    if family_fp32 and vae is not None:
        return torch.float32
    if dtype != torch.float16 or vae is None:
        return dtype
    if device.type == "mps" or getattr(vae.config, "force_upcast", False):
        return torch.float32
    return dtype


def load_model(spec: ModelSpec, device: torch.device, dtype: torch.dtype, cache_dir: Path | None = None) -> LoadedModel:
    """Load a spec's components (base, replaced denoiser, replaced VAE, LoRA) onto a device."""
    global _loads_in_process
    own = get_family(spec.family) if spec.family else None
    if own is not None and own.load is not None:  # not diffusers weights (an outside command): the family loads it
        return own.load(spec, device, dtype, cache_dir)
    _quiet_libraries()
    start = time.perf_counter()
    path = resolve_base(spec.base, spec.name)
    extra_files: dict[str, Path] = {}
    if path.is_file():
        pipelines = "|".join(pipeline_families())
        if not spec.family:
            raise BenchkitError(f"base {path} is a single file: set family = \"{pipelines}\" in the spec")
        family = get_family(spec.family)
        if not family.uses_pipeline:
            raise BenchkitError(f"base {path}: a {family.name} model is a diffusers folder, not a single file; "
                                f"single files need family = \"{pipelines}\"")
        parts, scheduler_config = _from_single_file(spec, path, family, dtype)
        extra_files[f"base:{path.name}"] = path
        base_files: list[Path] = []
    else:
        index = json.loads((path / "model_index.json").read_text())
        family = get_family(spec.family) if spec.family else detect_family(index)
        denoiser = "unet" if "unet" in index else "transformer"
        for required in (denoiser, "text_encoder", "tokenizer", "scheduler"):
            if required not in index:
                raise BenchkitError(f"{path}/model_index.json has no '{required}' component; benchkit needs a text-to-image model")
        parts, base_files = _components_from_folder(path, index, dtype, family.needed_components)
        sched_file = path / "scheduler" / "scheduler_config.json"
        try:
            scheduler_config = json.loads(sched_file.read_text())
        except (OSError, ValueError) as exc:
            raise BenchkitError(f"cannot read {sched_file}: {exc}") from None
    denoiser = "unet" if "unet" in parts else "transformer"
    details: dict[str, Any] = {"family": family.name, "denoiser": type(parts[denoiser]).__name__}
    if spec.weights:
        weights = require(parse_location("weights", spec.weights), spec.name)
        parts[denoiser] = load_denoiser(weights, parts[denoiser], dtype)
        details["weights"] = str(weights)
        for f in ([weights] if weights.is_file() else weight_files(weights)):
            extra_files[f"weights:{f.relative_to(weights.parent if weights.is_file() else weights)}"] = f
    if spec.vae:
        vae_location = require(parse_location("vae", spec.vae), spec.name)
        parts["vae"], vae_folder = _vae_from(vae_location, dtype)
        details["vae"] = {"path": str(vae_folder), "class": type(parts["vae"]).__name__}
        for f in weight_files(vae_folder):
            extra_files[f"vae:{f.relative_to(vae_folder)}"] = f
    for name, module in parts.items():
        if isinstance(module, torch.nn.Module):
            parts[name] = module.to(device).eval().requires_grad_(False)
    if parts.get("vae") is not None:
        vae_dtype = vae_dtype_for(parts["vae"], device, dtype, family.vae_float32)
        parts["vae"] = parts["vae"].to(vae_dtype)
        details["vae_dtype"] = str(vae_dtype).replace("torch.", "")
    pipeline = None
    if family.uses_pipeline:
        pipeline = _build_pipeline(family, parts, scheduler_config, {} if path.is_file() else index)
    if spec.lora:
        if pipeline is None:
            pipelines = ", ".join(pipeline_families())
            raise BenchkitError(f"lora: the {family.name} model {path} is not a diffusers pipeline; LoRAs need family {pipelines}")
        from benchkit.models.lora import apply_lora

        lora_file = require(parse_location("lora", spec.lora), spec.name)
        details["lora"] = apply_lora(pipeline, lora_file, spec.lora_scale, spec.lora_fused)
        extra_files[f"lora:{lora_file.name}"] = lora_file
        parts[denoiser] = getattr(pipeline, denoiser)
    if spec.lora_2:
        if pipeline is None:
            raise BenchkitError(f"lora_2: the {family.name} model {path} is not a diffusers pipeline")
        from benchkit.models.lora import apply_lora

        lora_file = require(parse_location("lora_2", spec.lora_2), spec.name)
        details["lora_2"] = apply_lora(pipeline, lora_file, spec.lora_scale, spec.lora_fused, second_denoiser=True)
        extra_files[f"lora_2:{lora_file.name}"] = lora_file
        parts["transformer_2"] = pipeline.transformer_2
    if spec.compile:
        parts[denoiser] = torch.compile(parts[denoiser])
        if pipeline is not None:
            setattr(pipeline, denoiser, parts[denoiser])
        details["compile"] = "torch.compile(default mode)"
    files = {str(p.relative_to(path)): hash_file(p, cache_dir) for p in sorted(base_files)} if base_files else {}
    if not base_files and not path.is_file():
        files = hash_weights(path, cache_dir)[0]
    files.update({key: hash_file(p, cache_dir) for key, p in extra_files.items()})
    size = sum(p.stat().st_size for p in base_files) if base_files else 0
    size += sum(p.stat().st_size for p in extra_files.values())
    _loads_in_process += 1
    return LoadedModel(
        spec=spec,
        path=path,
        unet=parts[denoiser],
        text_encoder=parts.get("text_encoder"),
        tokenizer=parts.get("tokenizer"),
        vae=parts.get("vae"),
        scheduler_config=scheduler_config,
        device=device,
        dtype=dtype,
        weight_files=files,
        size_bytes=size,
        load_seconds=time.perf_counter() - start,
        first_load_in_process=_loads_in_process == 1,
        family=family.name,
        pipeline=pipeline,
        components=parts,
        details=details,
    )
