"""Loading a spec's weights into memory: components of a diffusers-layout folder.

The toy teacher and a local Stable Diffusion folder load the same way: ``model_index.json``
names the components, each is loaded with its library's ``from_pretrained``. Weight files
are hashed (with a cache keyed by size and mtime) so results can name exactly what ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchkit.errors import BenchkitError
from benchkit.spec import ModelSpec

_loads_in_process = 0  # the first load pays for imports and cold file caches; later ones do not

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
COMPONENTS = ("unet", "text_encoder", "tokenizer", "vae", "scheduler")


def builtin_path(base: str) -> Path:
    if base == "builtin:toy-digits":
        from benchkit.toy import TEACHER_DIR

        return TEACHER_DIR
    raise BenchkitError(f"unknown builtin model '{base}'; the only builtin is builtin:toy-digits")


def resolve_base(base: str) -> Path:
    if base.startswith("builtin:"):
        return builtin_path(base)
    path = Path(base).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise BenchkitError(f"{path} has no model_index.json: point 'base' at a diffusers-format model folder")
        return path
    if path.exists():
        raise BenchkitError(f"{path} is a file; single-file checkpoints are not supported yet: use a diffusers-format folder")
    raise BenchkitError(
        f"model folder '{base}' not found; put a diffusers-format copy there or fix 'base' in the spec"
    )


def sha256_file(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a file, cached by (path, size, mtime) because real checkpoints are gigabytes."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = cache_dir / "sha256-cache.json" if cache_dir else None
    cache: dict[str, str] = {}
    if cache_file and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cache = {}
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if cache_file:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache[key] = digest
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_file)
        except OSError:
            pass  # the cache is an optimisation; hashing still worked
    return digest


@dataclass
class LoadedModel:
    """A spec's components on a device, with the provenance of the files they came from."""

    spec: ModelSpec
    path: Path
    unet: Any
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

    @property
    def weights_sha256(self) -> str:
        blob = json.dumps(sorted(self.weight_files.items()))
        return hashlib.sha256(blob.encode()).hexdigest()


def weight_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def hash_weights(path: Path, cache_dir: Path | None = None) -> tuple[dict[str, str], int]:
    files = weight_files(path)
    return {str(p.relative_to(path)): sha256_file(p, cache_dir) for p in files}, sum(p.stat().st_size for p in files)


def _load_component(path: Path, name: str, library: str, class_name: str, dtype: torch.dtype):
    import importlib

    if name == "tokenizer" and library == "transformers":
        # AutoTokenizer reads the folder's own config: tokenizer class names in model_index.json
        # differ across transformers versions (CLIPTokenizer, TokenizersBackend, ...).
        library, class_name = "transformers", "AutoTokenizer"
    try:
        cls = getattr(importlib.import_module(library), class_name)
    except (ImportError, AttributeError):
        raise BenchkitError(f"{path}/model_index.json: component '{name}' needs {library}.{class_name}, which is not installed") from None
    kwargs: dict[str, Any] = {}
    if name in ("unet", "text_encoder", "vae"):
        kwargs["torch_dtype"] = dtype
    try:
        return cls.from_pretrained(str(path / name), **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchkitError(f"cannot load '{name}' from {path / name}: {first}") from None


def _quiet_libraries() -> None:
    """benchkit shows its own progress; the libraries' per-file bars and notices would interleave."""
    import diffusers
    import transformers

    for lib in (transformers.utils.logging, diffusers.utils.logging):
        lib.disable_progress_bar()
        lib.set_verbosity_error()


def load_model(spec: ModelSpec, device: torch.device, dtype: torch.dtype, cache_dir: Path | None = None) -> LoadedModel:
    """Load a spec's UNet, text encoder, tokenizer, optional VAE and scheduler config."""
    global _loads_in_process
    _quiet_libraries()
    start = time.perf_counter()
    path = resolve_base(spec.base)
    index = json.loads((path / "model_index.json").read_text())
    for required in ("unet", "text_encoder", "tokenizer", "scheduler"):
        if required not in index:
            raise BenchkitError(f"{path}/model_index.json has no '{required}' component; benchkit needs a text-to-image UNet model")
    parts: dict[str, Any] = {}
    for name in ("unet", "text_encoder", "tokenizer", "vae"):
        if name in index and index[name] and index[name][0] is not None:
            library, class_name = index[name]
            parts[name] = _load_component(path, name, library, class_name, dtype)
    sched_file = path / "scheduler" / "scheduler_config.json"
    try:
        scheduler_config = json.loads(sched_file.read_text())
    except (OSError, ValueError) as exc:
        raise BenchkitError(f"cannot read {sched_file}: {exc}") from None
    for name in ("unet", "text_encoder", "vae"):
        if name in parts:
            parts[name] = parts[name].to(device).eval().requires_grad_(False)
    if "vae" in parts and dtype == torch.float16 and device.type == "mps":
        parts["vae"] = parts["vae"].to(torch.float32)  # fp16 VAE decode overflows on mps
    files, size = hash_weights(path, cache_dir)
    _loads_in_process += 1
    return LoadedModel(
        spec=spec,
        path=path,
        unet=parts["unet"],
        text_encoder=parts["text_encoder"],
        tokenizer=parts["tokenizer"],
        vae=parts.get("vae"),
        scheduler_config=scheduler_config,
        device=device,
        dtype=dtype,
        weight_files=files,
        size_bytes=size,
        load_seconds=time.perf_counter() - start,
        first_load_in_process=_loads_in_process == 1,
    )
