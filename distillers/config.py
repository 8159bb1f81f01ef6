"""The distill configuration: the fields every method has, and how text overrides become them.

``CommonConfig`` is the one list of options; each method's config subclasses it. Overrides from
the command line (``--set field=value`` and the options named like a field, see
``benchkit distill``) are checked against the dataclass's own fields and read as their annotated
types, so a new field needs no matching code elsewhere. No torch here: the CLI reads it cheaply.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from benchkit.core.errors import BenchkitError


@dataclass
class CommonConfig:
    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-4
    lr_critic: float | None = None  # None: same as lr
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 0
    max_grad_norm: float = 10.0
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate)
    lora: bool = False
    lora_rank: int = 64
    lora_alpha: int = 8
    ema_decay: float = 0.0  # 0: export the raw student; else an EMA of it is exported
    seed: int = 0
    student_steps: int = 1  # how many steps the exported student is sampled with
    guidance: float = 1.75  # the teacher's classifier-free guidance scale (the real score's, for DMD)
    # Regression of the one-step student on teacher ODE pairs before the method's own objective:
    # DMD2's SDXL one-step recipe (train_sd_ode.py, LPIPS there; MSE here). 0 disables it.
    ode_pretrain_steps: int = 0
    ode_lr: float = 1e-4
    # Memory options, neither changes what is trained: recompute activations of the trainable
    # diffusers networks in the backward pass; keep the frozen teacher in bf16/fp16.
    gradient_checkpointing: bool = False
    teacher_dtype: str = "fp32"  # fp32 | bf16 | fp16
    # Shard the trained teacher copies over the processes (FSDP2) instead of replicating them.
    fsdp: bool = False

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """``field name -> annotated type`` (resolved: the annotations are strings here)."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any], source: str = "--set"):
        """The config with ``overrides`` (field -> value) applied; strings are read as the field's
        type, an unknown field or an unreadable value is one line naming it."""
        fields = cls.field_types()
        kwargs = {}
        for key, raw in overrides.items():
            key = key.replace("-", "_")
            if key not in fields:
                raise BenchkitError(f"{source}: {cls.__name__} has no field '{key}'; fields: {', '.join(sorted(fields))}")
            kwargs[key] = coerce(raw, fields[key], f"{source} {key}")
        return cls(**kwargs)


# Config fields that say how to run, not what is trained: a resume may change them.
RUN_ONLY_FIELDS = ("steps", "gradient_checkpointing", "teacher_dtype", "fsdp")

_TRUE, _FALSE = ("true", "1"), ("false", "0")


def coerce(raw: Any, kind: Any, where: str) -> Any:
    """A command-line string as a value of the annotated type ``kind``: bool (true/false/1/0),
    int, float, str, ``X | None`` ("none" or "" is None), ``tuple[X, ...]`` / ``tuple[X, Y]``
    (comma-separated). Values that are not strings (the Python API, typed CLI options) pass as they are."""
    if not isinstance(raw, str):
        return raw
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        if raw.strip().lower() in ("none", "null", ""):
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(raw, inner[0] if len(inner) == 1 else str, where)
    if typing.get_origin(kind) is tuple:
        items = [v.strip() for v in raw.split(",")]
        if len(args) == 2 and args[1] is Ellipsis:
            kinds = [args[0]] * len(items)
        elif len(args) != len(items):
            raise BenchkitError(f"{where}: expected {len(args)} comma-separated values, got {raw!r}")
        else:
            kinds = list(args)
        return tuple(coerce(v, k, where) for v, k in zip(items, kinds))
    try:
        if kind is bool:
            if raw.lower() not in _TRUE + _FALSE:
                raise ValueError
            return raw.lower() in _TRUE
        if kind in (int, float):
            return kind(raw)
    except ValueError:
        raise BenchkitError(f"{where}: cannot read {raw!r} as {kind.__name__}") from None
    return raw


def parse_settings(items: list[str]) -> dict[str, str]:
    """``--set FIELD=VALUE`` items as a dict (checked later against the method's config)."""
    settings: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise BenchkitError(f"--set {item}: expected FIELD=VALUE")
        key, value = item.split("=", 1)
        settings[key.strip()] = value.strip()
    return settings
