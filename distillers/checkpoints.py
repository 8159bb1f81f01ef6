"""Distill checkpoint files: one safetensors file, never a pickle.

The tensors go in the safetensors body and the rest of the state (step, config, optimizer
hyper-parameters, history...) as JSON in its metadata header. Loading it reads data only; a
pickle (torch.save) would run whatever code the file names. One file is also its own commit
point: it is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from benchkit.core.errors import BenchkitError

CHECKPOINT = "latest.safetensors"
LEGACY_CHECKPOINT = "latest.pt"  # the old pickled format: refused, never loaded
CHECKPOINT_FORMAT = "benchkit-distill-checkpoint/1"
# JSON has no tensors, tuples (Adam's betas), int dict keys (optimizer state) or NaN: such values are tagged.
_TAGS = ("__tensor__", "__tuple__", "__items__", "__float__")


def _pack(obj: Any, where: str, tensors: dict[str, torch.Tensor], stored: dict[tuple, str], storages: set[int]) -> Any:
    """``obj`` as JSON, with each tensor put in ``tensors`` under its path and replaced by a reference."""
    if torch.is_tensor(obj):
        t = obj.detach()
        view = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype, str(t.device))
        if view in stored:  # the same tensor twice (tied weights): stored once, shared again on load
            return {"__tensor__": stored[view]}
        if view[0] and view[0] in storages:  # another view of a stored tensor's memory: safetensors wants a copy
            t = t.clone()
        storages.add(view[0])
        name = where if where not in tensors else f"{where}#{len(tensors)}"
        tensors[name] = t.cpu().contiguous()
        stored[view] = name
        return {"__tensor__": name}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, (list, tuple)):
        items = [_pack(v, f"{where}/{i}", tensors, stored, storages) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: _pack(v, f"{where}/{k}", tensors, stored, storages) for k, v in obj.items()}
        return {"__items__": [[_pack(k, f"{where}/key", tensors, stored, storages),
                               _pack(v, f"{where}/{k}", tensors, stored, storages)] for k, v in obj.items()]}
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # a numpy scalar in the history
        return _pack(obj.item(), where, tensors, stored, storages)
    raise TypeError(f"checkpoint state {where}: a {type(obj).__name__} is neither a tensor nor a JSON value")


def _unpack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1 and next(iter(obj)) in _TAGS:
            tag, value = next(iter(obj.items()))
            if tag == "__tensor__":
                return tensors[value]
            if tag == "__tuple__":
                return tuple(_unpack(v, tensors) for v in value)
            if tag == "__items__":
                return {_unpack(k, tensors): _unpack(v, tensors) for k, v in value}
            return float(value)
        return {k: _unpack(v, tensors) for k, v in obj.items()}
    return obj


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``state`` (tensors and JSON values) as one safetensors file, atomically: a kill leaves the old file or the new one."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from benchkit.core.atomic import atomic_target

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    header = _pack(state, "state", tensors, {}, set())
    metadata = {"format": CHECKPOINT_FORMAT, "state": json.dumps(header, allow_nan=False, separators=(",", ":"))}
    try:
        with atomic_target(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as exc:  # e.g. a full disk, as safetensors reports it
        raise BenchkitError(f"writing {path} failed ({str(exc).splitlines()[0][:200]}); check the free space of --out") from None


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """What ``write_checkpoint`` wrote, its tensors on ``device``; a damaged or foreign file is one line."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format {metadata.get('format')!r}, not {CHECKPOINT_FORMAT!r}")
            tensors = {k: f.get_tensor(k).to(device) for k in f.keys()}
        state = _unpack(json.loads(metadata["state"]), tensors)
        if not isinstance(state, dict):
            raise ValueError("the state is not a mapping")
        return state
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # a bad file, its JSON or its layout
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BenchkitError(f"{path} is damaged or not a benchkit distill checkpoint ({first}); use a new --out or "
                            f"delete {path.parent} to start over") from None
