"""Reference statistics cached by content hash, in a cache directory benchkit controls.

The key hashes the reference images' bytes, the extractor's weights and the protocol, so
a changed reference, extractor or preprocessing can never reuse stale statistics (clean-fid
writes its statistics into site-packages and keys them by a name only).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchkit.errors import describe_os_error


def stats_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cached_stats(cache_dir: Path, parts: dict[str, Any], compute: Callable[[], tuple[np.ndarray, np.ndarray, int]]):
    """(mu, sigma, n, key, was_cached): load the statistics for ``parts`` or compute and store them."""
    key = stats_key(parts)
    path = Path(cache_dir) / "refstats" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                return data["mu"], data["sigma"], int(data["n"]), key, True
        except (OSError, ValueError, KeyError):
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
