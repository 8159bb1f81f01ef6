"""The distillation methods by name, each with what it can do.

A method module declares itself where its class is defined::

    @register_method("dmd2", supports_fsdp=True, released={1: "dmd2-sdxl-1step", 4: "dmd2-sdxl-4step"})
    class DMD2(Distiller): ...

and everything that asks "which methods ...?" (``--method``, ``--fsdp``, ``--from-release``)
reads the declarations here instead of keeping its own list. The methods are benchkit's own, so
this is a plain table filled on first read by importing :data:`METHOD_MODULES` (not the plugin
entry points :class:`benchkit.core.registry.Registry` loads, which would import every metric too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Callable

from benchkit.core.errors import BenchkitError

# Imported on the first read, in this order (the order methods are listed in messages).
METHOD_MODULES = ("distillers.dmd2", "distillers.hyper_sd", "distillers.adm", "distillers.lightning")


@dataclass(frozen=True)
class Method:
    """One registered method: its Distiller class and its declared capabilities."""

    name: str
    cls: type
    supports_fsdp: bool = False  # all its networks are built at construction, so FSDP can shard them
    released: Mapping[int, str] = field(default_factory=dict)  # student steps -> preset of the released student
    unreleased_reason: str = ""  # why ``released`` is empty, for --from-release

    @property
    def config(self) -> type:
        """Its config dataclass (a ``CommonConfig``)."""
        return self.cls.Config

    @property
    def sampler(self) -> str:
        """How its student is sampled: "lcm" (re-noise with fresh noise) or "ddim" (deterministic)."""
        return self.cls.sampler_mode


_METHODS: dict[str, Method] = {}
_loaded = False


def register_method(name: str, *, supports_fsdp: bool = False, released: Mapping[int, str] | None = None,
                    unreleased_reason: str = "") -> Callable[[type], type]:
    """Class decorator: register a Distiller subclass as method ``name`` (which also becomes the
    class's ``name``, used in checkpoints and logs) with its capabilities."""

    def add(cls: type) -> type:
        if name in _METHODS and _METHODS[name].cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"distill method {name!r} is registered twice")
        cls.name = name
        cls.supports_fsdp = supports_fsdp
        _METHODS[name] = Method(name, cls, supports_fsdp, dict(released or {}), unreleased_reason)
        return cls

    return add


def methods() -> dict[str, Method]:
    """Every registered method, ``name -> Method``, the built-in ones first in ``METHOD_MODULES`` order."""
    global _loaded
    if not _loaded:
        for module in METHOD_MODULES:  # importing a method module is what registers it
            import_module(module)
        _loaded = True
    rank = {m: i for i, m in enumerate(METHOD_MODULES)}
    ordered = sorted(_METHODS.values(), key=lambda m: rank.get(m.cls.__module__, len(rank)))
    return {m.name: m for m in ordered}


def get_method(name: str) -> Method:
    """The method called ``name``, or one line naming the known ones."""
    known = methods()
    if name not in known:
        raise BenchkitError(f"unknown --method '{name}'; choose one of {', '.join(known)}")
    return known[name]


def method_names(**capabilities: Any) -> list[str]:
    """Names of the methods whose declared capabilities have the given values, e.g. ``supports_fsdp=True``."""
    return [m.name for m in methods().values() if all(getattr(m, k) == v for k, v in capabilities.items())]
