"""LoRAs on a loaded pipeline: kohya or PEFT/diffusers keys, a scale, fused or kept as adapters.

diffusers' ``load_lora_weights`` converts every released format (kohya ``lora_unet_*`` with
``alpha``, PEFT ``lora_A/lora_B``, old diffusers ``.lora.down``) to PEFT adapters, so
benchkit only chooses the adapter scale and whether to fuse. Fusing (as the model cards do)
bakes ``scale * alpha/rank * B @ A`` into the weights; unfused keeps the adapter and sets its
weight, which is what a LoRA-scale sweep needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchkit.errors import BenchkitError

ADAPTER = "benchkit"


def lora_format(path: Path) -> str:
    """kohya, peft or diffusers, from the key names (recorded so results say what was loaded)."""
    keys = _keys(path)
    if any(k.startswith(("lora_unet_", "lora_te", "lora_transformer_")) for k in keys):
        return "kohya"
    if any(".lora_A." in k or ".lora_B." in k for k in keys):
        return "peft"
    if any(".lora.down." in k or ".lora_linear_layer." in k for k in keys):
        return "diffusers"
    return "unknown"


def _keys(path: Path) -> list[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    import torch

    return list(torch.load(path, map_location="cpu", weights_only=True).keys())


def apply_lora(pipe: Any, path: Path, scale: float, fused: bool) -> dict[str, Any]:
    """Load a LoRA file into ``pipe`` at ``scale``; returns what was done, for the manifest."""
    if not hasattr(pipe, "load_lora_weights"):
        raise BenchkitError(f"lora: {type(pipe).__name__} cannot load LoRAs; remove 'lora' from the spec")
    fmt = lora_format(path)
    try:
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=ADAPTER)
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchkitError(f"lora {path}: cannot load into {type(pipe).__name__} ({first[:300]}); is it a LoRA for this base model?") from None
    if not _adapter_present(pipe):
        raise BenchkitError(f"lora {path}: no layer of the model matched its keys ({fmt} format); is it a LoRA for this base model?")
    if fused:
        pipe.fuse_lora(lora_scale=scale, adapter_names=[ADAPTER])
        pipe.unload_lora_weights()  # the delta is in the weights now; drop the adapter layers
    else:
        pipe.set_adapters([ADAPTER], adapter_weights=[scale])
    return {"file": str(path), "format": fmt, "scale": scale, "fused": fused}


def _adapter_present(pipe: Any) -> bool:
    try:
        adapters = pipe.get_list_adapters()
    except (AttributeError, ValueError):
        return True  # cannot tell; load_lora_weights would have raised on a mismatch
    return any(ADAPTER in names for names in adapters.values())
