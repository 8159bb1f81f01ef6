"""LoRAs on a loaded pipeline: kohya or PEFT/diffusers keys, a scale, fused or kept as adapters.

diffusers' ``load_lora_weights`` converts every released format (kohya ``lora_unet_*`` with
``alpha``, PEFT ``lora_A/lora_B``, old diffusers ``.lora.down``) to PEFT adapters, so
benchkit only chooses the adapter scale and whether to fuse. Fusing (as the model cards do)
bakes ``scale * alpha/rank * B @ A`` into the weights; unfused keeps the adapter and sets its
weight, which is what a LoRA-scale sweep needs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from benchkit.core.errors import BenchkitError

ADAPTER = "benchkit"


def lora_format(path: Path, keys: list[str] | None = None) -> str:
    """kohya, peft or diffusers, from the key names (recorded so results say what was loaded)."""
    keys = _keys(path) if keys is None else keys
    if any(k.startswith(("lora_unet_", "lora_te", "lora_transformer_")) for k in keys):
        return "kohya"
    if any(".lora_A." in k or ".lora_B." in k for k in keys):
        return "peft"
    if any(".lora.down." in k or ".lora_linear_layer." in k for k in keys):
        return "diffusers"
    return "unknown"


def _keys(path: Path) -> list[str]:
    """The tensor names of a LoRA file, read as data; a damaged or code-carrying file is one line."""
    from benchkit.core.safe_load import read_state_dict, weights_only_reason

    if path.suffix == ".safetensors":  # the header only: the tensors are diffusers' to load
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        except (SafetensorError, OSError) as exc:
            raise BenchkitError(f"lora {path}: not a readable .safetensors file ({weights_only_reason(exc)}); it may be "
                                "truncated or damaged: download or copy it again") from None

    state = read_state_dict(path, "lora")
    if not isinstance(state, dict):
        raise BenchkitError(f"lora {path}: expected a LoRA state dict (name -> tensor), got {type(state).__name__}")
    return [str(k) for k in state]


def apply_lora(pipe: Any, path: Path, scale: float, fused: bool) -> dict[str, Any]:
    """Load a LoRA file into ``pipe`` at ``scale``; returns what was done, for the manifest."""
    if not hasattr(pipe, "load_lora_weights"):
        raise BenchkitError(f"lora: {type(pipe).__name__} cannot load LoRAs; remove 'lora' from the spec")
    keys = _keys(path)
    fmt = lora_format(path, keys)
    if not any("lora" in k.lower() for k in keys):  # diffusers would say only "Invalid LoRA checkpoint"
        example = f", e.g. '{keys[0][:80]}'" if keys else ""
        raise BenchkitError(f"lora {path}: not a LoRA file: none of its {len(keys)} tensors{example}, is a LoRA weight "
                            "(kohya lora_unet_*, PEFT .lora_A/.lora_B or diffusers .lora.down); point 'lora' at a LoRA file")
    hint = f"{fmt} format" if fmt != "unknown" else "keys in no LoRA format benchkit knows"
    try:
        with _quiet_diffusers():
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=ADAPTER)
    except (ValueError, KeyError, RuntimeError, OSError, IndexError, TypeError, AttributeError) as exc:
        # diffusers' converters fail in many ways on keys they do not expect
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchkitError(f"lora {path}: cannot load into {type(pipe).__name__} ({hint}: {first[:300]}); "
                            "is it a LoRA for this base model?") from None
    if not _adapter_present(pipe):
        raise BenchkitError(f"lora {path}: no layer of the model matched its keys ({hint}); is it a LoRA for this base model?")
    if fused:
        pipe.fuse_lora(lora_scale=scale, adapter_names=[ADAPTER])
        pipe.unload_lora_weights()  # the delta is in the weights now; drop the adapter layers
    else:
        pipe.set_adapters([ADAPTER], adapter_weights=[scale])
    return {"file": str(path), "format": fmt, "scale": scale, "fused": fused}


@contextlib.contextmanager
def _quiet_diffusers():
    """diffusers logs a failed adapter load as an error before raising it; benchkit reports the raise
    as its own one line, so the logged copy (several lines on stderr) is held back."""
    from diffusers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity(logging.CRITICAL)
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _adapter_present(pipe: Any) -> bool:
    try:
        adapters = pipe.get_list_adapters()
    except (AttributeError, ValueError):
        return True  # cannot tell; load_lora_weights would have raised on a mismatch
    return any(ADAPTER in names for names in adapters.values())
