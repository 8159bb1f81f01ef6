"""Devices, dtypes, timing synchronisation, memory, and the hardware fingerprint.

The fingerprint goes into every manifest, so a number is never compared with one made on
different hardware or software without that being visible.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from typing import Any

import torch

from benchkit.core import settings
from benchkit.core.errors import BenchkitError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BenchkitError(f"--device {name}: no CUDA device is visible to torch {torch.__version__}; use --device cpu or auto")
        return torch.device(name)
    if name == "mps":
        if not mps_available():
            raise BenchkitError("--device mps: MPS is not available on this machine; use --device cpu or auto")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise BenchkitError(f"--device {name}: unknown device; use auto, cpu, cuda, cuda:N or mps")


def resolve_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """The compute dtype; default float32 on cpu, float16 on cuda/mps."""
    if name is None or name == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    if name.lower() not in DTYPES:
        raise BenchkitError(f"--dtype {name}: unknown dtype; use float32, float16 or bfloat16")
    dtype = DTYPES[name.lower()]
    if device.type == "cpu" and dtype == torch.float16:
        raise BenchkitError("--dtype float16 is not supported for generation on cpu; use float32 or bfloat16")
    return dtype


def model_dtype(requested: str | None, spec_default: str | None, device: torch.device) -> torch.dtype:
    """--dtype wins; a spec's dtype is its card's advice for accelerators, so cpu keeps float32."""
    if requested not in (None, "auto"):
        return resolve_dtype(requested, device)
    if spec_default and device.type != "cpu":
        return resolve_dtype(spec_default, device)
    return resolve_dtype(None, device)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock timings measure the work, not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif device.type == "mps":
        torch.mps.empty_cache()  # mps has no peak counter; start from released cached blocks


def configure_tf32(enabled: bool | None = None) -> bool:
    """TF32 matmuls/convolutions on cuda: faster fp32 with ~1e-3 relative error, so it is part of
    what ran. ``None`` reads BENCHKIT_TF32 (1/0); unset leaves torch's defaults."""
    if enabled is None:
        enabled = settings.tf32()
        if enabled is None:
            return bool(torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    return enabled


def runtime_settings(device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The numerics and measurement APIs a run actually used (recorded in its manifest)."""
    out: dict[str, Any] = {"device": str(device), "dtype": dtype_name(dtype), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        tf32 = configure_tf32()
        out.update(tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32), tf32_cudnn=bool(torch.backends.cudnn.allow_tf32),
                   tf32_applies=dtype == torch.float32 and tf32, device_name=torch.cuda.get_device_name(device),
                   sync="torch.cuda.synchronize", memory="torch.cuda.max_memory_allocated",
                   matmul_precision=torch.get_float32_matmul_precision())
    elif device.type == "mps":
        out.update(sync="torch.mps.synchronize", memory="torch.mps.driver_allocated_memory",
                   vae_upcast_fp32=dtype == torch.float16)
    else:
        out.update(sync="none (synchronous)", memory="process peak RSS",
                   bf16_matmul=dtype == torch.bfloat16)
    return out


def peak_memory_bytes(device: torch.device) -> tuple[int, str]:
    """Peak memory and what it measures: allocator peak on cuda, driver memory on mps, RSS on cpu."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_memory_allocated"
    if device.type == "mps":  # no allocator peak on mps: the driver's current allocation, taken at the end
        return int(max(torch.mps.driver_allocated_memory(), torch.mps.current_allocated_memory())), "mps_driver_allocated_memory"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss * (1 if sys.platform == "darwin" else 1024)), "process_peak_rss"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _dtype_support(device: torch.device) -> dict[str, bool]:
    support = {}
    for name in ("float32", "float16", "bfloat16"):
        try:
            a = torch.ones(4, 4, dtype=DTYPES[name], device=device)
            (a @ a).sum().item()
            support[name] = True
        except (RuntimeError, TypeError):
            support[name] = False
    return support


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("benchkit", "torch", "diffusers", "transformers", "numpy", "safetensors", "scikit-learn", "pillow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def fingerprint(include_dtype_support: bool = True) -> dict[str, Any]:
    """Hardware and software fingerprint: recorded in every manifest and shown by `benchkit env`."""
    fp: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": _total_memory_bytes(),
        "versions": _versions(),
        "cuda": None,
        "mps": mps_available(),
    }
    if torch.cuda.is_available():
        fp["cuda"] = {
            "runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "devices": [
                {
                    "name": torch.cuda.get_device_name(i),
                    "memory_bytes": torch.cuda.get_device_properties(i).total_memory,
                    "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                }
                for i in range(torch.cuda.device_count())
            ],
        }
    if include_dtype_support:
        devices = [torch.device("cpu")]
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        if mps_available():
            devices.append(torch.device("mps"))
        fp["dtype_support"] = {d.type: _dtype_support(d) for d in devices}
    return fp
