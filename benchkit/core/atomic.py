"""Atomic file writes: every file benchkit writes appears whole or not at all.

A write goes to a unique temporary name in the same folder, is fsynced, renamed over the
target (atomic on POSIX and on Windows' ``os.replace``), and the folder is fsynced so the
rename itself survives a power loss. A crash leaves either the old file or the new one, plus
at most a ``.*.tmp`` file that benchkit's own recovery removes.

JSON is written with ``allow_nan=False``: NaN and infinity are not JSON, and a number that
other tools cannot parse is an error here, not a file they later choke on.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from benchkit.core.errors import BenchkitError, describe_os_error


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that needs a file name (safetensors' save_file
    streams a multi-GB checkpoint without holding it in memory); when the block ends without an
    error the file is fsynced and renamed over ``path``, otherwise it is removed."""
    path = Path(path)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp_name)
        with open(tmp_name, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        fsync_dir(path.parent)
    except OSError as exc:
        raise describe_os_error(exc, path) from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temp file, fsync, rename and folder fsync."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def dumps_json(data: Any, indent: int | None = 2) -> str:
    """Strict JSON: a NaN or infinity anywhere is a BenchkitError naming where it is."""
    try:
        return json.dumps(data, indent=indent, allow_nan=False, default=str)
    except ValueError:
        where = _first_non_finite(data, "")
        raise BenchkitError(
            f"refusing to write a non-finite number (NaN or infinity) at {where or 'top level'}: "
            "check the input that produced it"
        ) from None


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, dumps_json(data) + "\n")


def _first_non_finite(data: Any, where: str) -> str | None:
    if isinstance(data, float) and (data != data or data in (float("inf"), float("-inf"))):
        return where
    if isinstance(data, dict):
        for k, v in data.items():
            found = _first_non_finite(v, f"{where}.{k}" if where else str(k))
            if found is not None:
                return found
    if isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            found = _first_non_finite(v, f"{where}[{i}]")
            if found is not None:
                return found
    return None
