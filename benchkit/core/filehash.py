"""sha256 of weight files, remembered by (path, size, mtime): real checkpoints are gigabytes, and
provenance (run manifests, the weights registry) hashes the same files on every run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from benchkit.core.atomic import write_text_atomic
from benchkit.core.errors import BenchkitError


def sha256_file(path: Path, cache_file: Path | None = None) -> str:
    """The file's sha256; with ``cache_file``, looked up there first and recorded there after."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache: dict[str, str] = {}
    if cache_file is not None:
        try:
            cache = json.loads(Path(cache_file).read_text())
        except (OSError, ValueError):
            cache = {}
        if key in cache:
            return cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    if cache_file is not None:
        cache[key] = digest
        try:
            cache_file = Path(cache_file)
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(cache_file, json.dumps(cache))
        except (OSError, BenchkitError):
            pass  # a read-only cache only costs re-hashing next time
    return digest
