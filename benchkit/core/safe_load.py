"""Reading weight files as data, never as code: safetensors, or torch's weights-only unpickler.

Every file benchkit loads (checkpoints, LoRAs, metric weights) comes through here, so a file
that would run code when unpickled is refused with one line, wherever it is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchkit.core.errors import BenchkitError


def weights_only_reason(exc: BaseException) -> str:
    """What torch's weights-only unpickler refused, in one line. Its message also advises retrying
    without the weights-only guard, which would run the file's code: that part is left out."""
    for line in (line.strip() for line in str(exc).splitlines()):
        if "WeightsUnpickler error:" in line:
            line = line.split("WeightsUnpickler error:", 1)[1].strip()
        elif not line or "weights_only" in line or line.startswith(("Weights only load failed", "Check the documentation")):
            continue
        return line.split(". Please use", 1)[0][:200].rstrip(".")
    return type(exc).__name__


def numpy_scalar_globals() -> list[Any]:
    """What a numpy number or bool in a checkpoint unpickles through (a training script's learning rate or epoch saved
    beside the weights, as AMT's trainer does): numpy's scalar constructor and the numeric and bool dtypes, all data.
    torch's weights-only loader refuses them unless allowed; object, string and void dtypes stay refused."""
    import numpy as np

    numeric = ("Bool", "Int", "UInt", "Float", "Complex", "Byte", "UByte", "Short", "UShort", "Long", "ULong",
               "LongLong", "ULongLong", "LongDouble", "CLongDouble", "Half")
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes)
              if n.endswith("DType") and n.startswith(numeric) and not n.startswith(("Bytes", "Object", "Str", "Void"))]
    core = getattr(np, "_core", None) or np.core  # numpy 2 moved it; numpy 1 has only np.core
    return [core.multiarray.scalar, np.dtype, *dtypes]


def read_state_dict(file: Path, what: str = "weights", fix: str | None = None) -> Any:
    """What a .safetensors file or a torch.save file holds, read as data only: a torch.save file goes
    through torch's weights-only unpickler, which refuses every class or function it does not know
    (a plain pickle would run them). A truncated, damaged or refused file is one line naming it,
    ending with ``fix`` (what to do) where the caller knows better than the generic advice."""
    import pickle

    from safetensors import SafetensorError

    file = Path(file)
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except (SafetensorError, OSError) as exc:
            raise BenchkitError(f"{what} {file}: not a readable .safetensors file ({weights_only_reason(exc)}); "
                                f"{fix or 'it may be truncated or damaged: download or copy it again'}") from None
    try:
        with torch.serialization.safe_globals(numpy_scalar_globals()):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BenchkitError(f"{what} {file}: refused: it holds more than tensors ({weights_only_reason(exc)}) and loading "
                            f"it could run code; {fix or 'use a .safetensors file or a plain state dict'}") from None
    except Exception as exc:  # torch raises many types for a damaged file (RuntimeError, EOFError, ValueError...)
        raise BenchkitError(f"{what} {file}: not a readable state dict ({weights_only_reason(exc)}); "
                            f"{fix or 'it may be truncated or damaged: download or copy it again, or use .safetensors'}") from None


def load_state_dict_file(file: Path) -> dict[str, torch.Tensor]:
    state = read_state_dict(file)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BenchkitError(f"weights {file}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return state
