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
    """kohya, original, peft or diffusers, from the key names (recorded so results say what was loaded);
    "original": the model's own checkpoint names under ``diffusion_model.`` (Wan's and lightx2v's files)."""
    keys = _keys(path) if keys is None else keys
    if any(k.startswith(("lora_unet_", "lora_te", "lora_transformer_")) for k in keys):
        return "kohya"
    if any(k.startswith("diffusion_model.") for k in keys):
        return "original"
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


def apply_lora(pipe: Any, path: Path, scale: float, fused: bool, second_denoiser: bool = False) -> dict[str, Any]:
    """Load a LoRA file into ``pipe`` at ``scale``; returns what was done, for the manifest.

    ``second_denoiser``: into the pipeline's transformer_2 (Wan 2.2's low-noise expert; diffusers'
    ``load_into_transformer_2``), as the spec's ``lora_2``.
    """
    field = "lora_2" if second_denoiser else "lora"
    if not hasattr(pipe, "load_lora_weights"):
        raise BenchkitError(f"{field}: {type(pipe).__name__} cannot load LoRAs; remove '{field}' from the spec")
    if second_denoiser and getattr(pipe, "transformer_2", None) is None:
        raise BenchkitError(f"lora_2: {type(pipe).__name__} has no second denoiser (transformer_2) to load it into; "
                            "remove 'lora_2' from the spec")
    adapter = ADAPTER + ("_2" if second_denoiser else "")
    where = {"load_into_transformer_2": True} if second_denoiser else {}
    keys = _keys(path)
    fmt = lora_format(path, keys)
    if not any("lora" in k.lower() for k in keys):  # diffusers would say only "Invalid LoRA checkpoint"
        example = f", e.g. '{keys[0][:80]}'" if keys else ""
        raise BenchkitError(f"lora {path}: not a LoRA file: none of its {len(keys)} tensors{example}, is a LoRA weight "
                            "(kohya lora_unet_*, PEFT .lora_A/.lora_B or diffusers .lora.down); point 'lora' at a LoRA file")
    hint = f"{fmt} format" if fmt != "unknown" else "keys in no LoRA format benchkit knows"
    try:
        with _quiet_diffusers():
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=adapter, **where)
    except (ValueError, KeyError, RuntimeError, OSError, IndexError, TypeError, AttributeError) as exc:
        # diffusers' converters fail in many ways on keys they do not expect
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchkitError(f"lora {path}: cannot load into {type(pipe).__name__} ({hint}: {first[:300]}); "
                            "is it a LoRA for this base model?") from None
    if not _adapter_present(pipe, adapter):
        raise BenchkitError(f"lora {path}: no layer of the model matched its keys ({hint}); is it a LoRA for this base model?")
    if fused:
        into = {"components": ["transformer_2"]} if second_denoiser else {}  # else each mixin's own default
        pipe.fuse_lora(lora_scale=scale, adapter_names=[adapter], **into)
        pipe.unload_lora_weights()  # the delta is in the weights now; drop the adapter layers
    else:
        active = [a for a in (ADAPTER, ADAPTER + "_2") if _adapter_present(pipe, a, strict=True)]
        pipe.set_adapters(active, adapter_weights=[scale] * len(active))
    out = {"file": str(path), "format": fmt, "scale": scale, "fused": fused}
    return {**out, "into": "transformer_2"} if second_denoiser else out


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


def _adapter_present(pipe: Any, adapter: str = ADAPTER, strict: bool = False) -> bool:
    try:
        adapters = pipe.get_list_adapters()
    except (AttributeError, ValueError):
        return not strict  # cannot tell; load_lora_weights would have raised on a mismatch
    return any(adapter in names for names in adapters.values())
