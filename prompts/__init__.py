"""Prompt sets: vendored data files with provenance, and loaders for users' own files.

A prompt set is an ordered list of (prompt_id, prompt, meta) with a name and the sha256 of
the file it came from; crossed with a seed list it becomes the items a run generates.
Files: txt (one prompt per line), csv/tsv (a ``prompt``/``text``/``caption`` column and an
optional ``prompt_id``/``id``/``image_id`` column), jsonl (objects with the same keys).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit.errors import BenchkitError

DATA_DIR = Path(__file__).parent / "data"

# name -> (file, description, source, license)
BUILTIN_SETS: dict[str, dict[str, str]] = {
    "toy-digits": {
        "file": "toy-digits.tsv",
        "description": "20 prompts for the toy digits world (two phrasings x ten digits)",
        "source": "written for benchkit",
        "license": "same as benchkit",
    },
}

_PROMPT_KEYS = ("prompt", "text", "caption", "Prompt")
_ID_KEYS = ("prompt_id", "id", "image_id")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PromptRecord:
    prompt_id: str
    prompt: str
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class PromptSet:
    name: str
    records: list[PromptRecord]
    sha256: str
    source: str = ""
    subset: str = "all"

    def __len__(self) -> int:
        return len(self.records)

    def limit(self, n: int | None) -> "PromptSet":
        if n is None or n >= len(self.records):
            return self
        if n < 1:
            raise BenchkitError(f"--limit must be at least 1, got {n}")
        return PromptSet(self.name, self.records[:n], self.sha256, self.source, subset=f"first {n}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "count": len(self.records), "subset": self.subset, "source": self.source}


def parse_seeds(text: str) -> list[int]:
    """'0-3' -> [0, 1, 2, 3]; '0,5,7' -> [0, 5, 7]; ranges and lists combine."""
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise BenchkitError(f"--seeds '{text}': use a range like 0-3 or a list like 0,1,7") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise BenchkitError(f"--seeds '{text}': give at least one seed and no duplicates")
    return seeds


def _check_id(pid: str, where: str) -> str:
    if not _SAFE_ID.match(pid):
        raise BenchkitError(f"{where}: prompt id '{pid}' must use only letters, digits, '.', '_' and '-'")
    return pid


def _records_from_rows(rows: list[tuple[int, dict[str, Any]]], path: Path) -> list[PromptRecord]:
    records = []
    width = max(5, len(str(len(rows))))
    for index, (line_no, row) in enumerate(rows):
        prompt_key = next((k for k in _PROMPT_KEYS if k in row), None)
        if prompt_key is None:
            raise BenchkitError(f"{path}:{line_no}: no prompt column; name one of {', '.join(_PROMPT_KEYS)}")
        prompt = row[prompt_key]
        if not isinstance(prompt, str):
            raise BenchkitError(f"{path}:{line_no}: prompt must be text, got {prompt!r}")
        id_key = next((k for k in _ID_KEYS if k in row and row[k] not in (None, "")), None)
        pid = str(row[id_key]) if id_key else str(index).zfill(width)
        meta = {k: v for k, v in row.items() if k not in (prompt_key, id_key)}
        records.append(PromptRecord(_check_id(pid, f"{path}:{line_no}"), prompt, meta))
    ids = [r.prompt_id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise BenchkitError(f"{path}: prompt id '{dup}' appears more than once; ids must be unique")
    return records


def load_prompt_file(path: Path, name: str | None = None) -> PromptSet:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BenchkitError(f"cannot read prompt file {path}: {exc.strerror}; check the path") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BenchkitError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        if not reader.fieldnames:
            raise BenchkitError(f"{path}: empty file; expected a header row")
        for row in reader:
            if None in row:
                raise BenchkitError(f"{path}:{reader.line_num}: more fields than the header has columns")
            rows.append((reader.line_num, dict(row)))
    elif suffix == ".jsonl":
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise BenchkitError(f"{path}:{line_no}: invalid JSON ({exc.msg}); one object per line") from None
            if not isinstance(obj, dict):
                raise BenchkitError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
            rows.append((line_no, obj))
    else:
        rows = [(n, {"prompt": line}) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise BenchkitError(f"{path}: no prompts found")
    return PromptSet(
        name=name or path.stem,
        records=_records_from_rows(rows, path),
        sha256=hashlib.sha256(data).hexdigest(),
        source=str(path),
    )


def load_prompt_set(name_or_path: str) -> PromptSet:
    """A built-in set by name (see ``benchkit prompts``) or a prompt file path."""
    if name_or_path in BUILTIN_SETS:
        info = BUILTIN_SETS[name_or_path]
        ps = load_prompt_file(DATA_DIR / info["file"], name=name_or_path)
        ps.source = info["source"]
        return ps
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".txt", ".csv", ".tsv", ".jsonl"):
        return load_prompt_file(path)
    raise BenchkitError(f"unknown prompt set '{name_or_path}': not a built-in set (see `benchkit prompts`) or a file")
