"""Reference statistics cached by content hash, in a cache directory benchkit controls.

The key hashes the reference images' bytes, the extractor's weights and the protocol, so
a changed reference, extractor or preprocessing can never reuse stale statistics (clean-fid
writes its statistics into site-packages and keys them by a name only). An entry that does not
read back as plain arrays (damaged, or holding pickled objects) is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchkit.core.errors import describe_os_error

# What reading a truncated, foreign or tampered entry raises. Entries are read with
# allow_pickle=False: an object array (a pickle inside the .npz) is refused, never unpickled.
_DAMAGED = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)


def stats_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cached_stats(cache_dir: Path, parts: dict[str, Any], compute: Callable[[], tuple[np.ndarray, np.ndarray, int]]):
    """(mu, sigma, n, key, was_cached): load the statistics for ``parts`` or compute and store them."""
    key = stats_key(parts)
    path = Path(cache_dir) / "refstats" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                return data["mu"], data["sigma"], int(data["n"]), key, True
        except _DAMAGED:
            path.unlink(missing_ok=True)  # a damaged cache entry is recomputed, never trusted
    mu, sigma, n = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{os.getpid()}.tmp.npz")
        np.savez(tmp, mu=mu, sigma=sigma, n=n, parts=json.dumps(parts, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:
        raise describe_os_error(exc, path, "caching reference statistics in") from None
    return mu, sigma, n, key, False


def _entry_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "refstats" / f"{key}.npz"


def load_cached_arrays(cache_dir: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``key``, or None when absent or unreadable."""
    path = _entry_path(cache_dir, key)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except _DAMAGED:
        return None


def cached_arrays(cache_dir: Path, parts: dict[str, Any], compute: Callable[[], dict[str, np.ndarray]]):
    """(arrays, key, was_cached): like ``cached_stats`` for any named arrays (FID moments plus KID features)."""
    key = stats_key(parts)
    found = load_cached_arrays(cache_dir, key)
    # the entry names the parts it was computed for: a foreign or partial file is recomputed
    if found is not None and "parts" in found and str(found["parts"]) == json.dumps(parts, sort_keys=True):
        return found, key, True
    _entry_path(cache_dir, key).unlink(missing_ok=True)  # a damaged entry is recomputed, never trusted
    arrays = compute()
    path = _entry_path(cache_dir, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{os.getpid()}.tmp.npz")
        np.savez(tmp, parts=json.dumps(parts, sort_keys=True), **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        raise describe_os_error(exc, path, "caching reference statistics in") from None
    return arrays, key, False
