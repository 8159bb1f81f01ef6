"""Output folders never overlap the inputs a command reads.

`benchkit score IMAGES -o IMAGES` once replaced the very images it was asked to score. An
output equal to, inside or containing an input is refused before anything is read or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from benchkit.core.errors import BenchkitError


def _real(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def check_separate(out: Path, inputs: Iterable[tuple[str, Path | str | None]], flag: str = "--out") -> None:
    """Refuse an ``out`` that is, lies inside, or contains one of ``inputs`` ((what, path) pairs)."""
    o = _real(out)
    for what, path in inputs:
        if path is None or str(path) == "":
            continue
        p = Path(path).expanduser()
        if not p.exists():
            continue
        i = _real(p)
        if o == i:
            raise BenchkitError(f"{flag} {out} is the {what} itself; write to a new folder")
        if i in o.parents:
            raise BenchkitError(f"{flag} {out} lies inside the {what} {path}; write outside it")
        if o in i.parents:
            raise BenchkitError(f"{flag} {out} contains the {what} {path}; choose a folder that does not hold the inputs")
