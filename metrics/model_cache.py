"""The one cache of loaded metric networks in a process: every scorer, extractor and LPIPS net.

A network is loaded once per (kind, weights, device) and shared by every metric that uses it
(CLIP score and its breakdown groups, FID's protocols, the toy metrics), so scoring a run with
several metrics, or a breakdown with many groups, loads each model once.
"""

from __future__ import annotations

from typing import Any, Callable

_MODELS: dict[tuple, Any] = {}


def cached_model(key: tuple, build: Callable[[], Any]) -> Any:
    """``build()``'s result, built on the first call with this ``key`` (which must name the kind of
    model, its weights' hash and the device) and returned as is after."""
    if key not in _MODELS:
        _MODELS[key] = build()
    return _MODELS[key]
