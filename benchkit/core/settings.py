"""Settings read from the environment, in one place: what each variable means and its default.

Read when asked (not cached at import), so a test or a launcher that sets a variable before a
call is heard. Nothing else in benchkit reads these variables directly.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "BENCHKIT_CACHE"  # reference statistics, hash caches, FID features (default ~/.cache/benchkit)
TF32_ENV = "BENCHKIT_TF32"  # 1/0: TF32 matmuls on cuda; unset leaves torch's default
WEIGHTS_DIR_ENV = "BENCHKIT_WEIGHTS"  # a folder of metric weight files, searched first
WEIGHT_OVERRIDES_ENV = "BENCHKIT_WEIGHT_PATHS"  # --weights NAME=PATH, passed on to worker processes


def weights_dir() -> Path | None:
    value = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(value).expanduser() if value else None


def weight_overrides() -> str | None:
    """The JSON of ``--weights NAME=PATH`` overrides, as set by :func:`set_weight_overrides`."""
    return os.environ.get(WEIGHT_OVERRIDES_ENV)


def set_weight_overrides(text: str) -> None:
    """Put ``--weights`` in the environment, so that worker processes started later see it too."""
    os.environ[WEIGHT_OVERRIDES_ENV] = text


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "benchkit")).expanduser()


def tf32() -> bool | None:
    """True/False when BENCHKIT_TF32 is set, None when it is not."""
    value = os.environ.get(TF32_ENV)
    return None if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def hf_hub_cache() -> Path:
    """Where huggingface_hub keeps downloaded repos (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def hf_endpoint() -> str | None:
    """HF_ENDPOINT (a Hub mirror) as set now, without a trailing slash; None means the public Hub."""
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return value or None


def vbench_cache_dir() -> Path:
    """VBench's own model cache (VBENCH_CACHE_DIR, else ~/.cache/vbench), searched for its weights."""
    return Path(os.environ.get("VBENCH_CACHE_DIR") or Path.home() / ".cache" / "vbench").expanduser()


def torch_home() -> Path:
    return Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")).expanduser()
