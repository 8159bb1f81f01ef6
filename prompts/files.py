"""Prompt files users bring or export: txt, csv, tsv and jsonl, read and written with the same rules.

Reading: txt is one prompt per non-blank line; csv/tsv need a ``prompt``/``text``/``caption``
column and may have a ``prompt_id``/``id``/``image_id`` column; jsonl holds objects with the same
keys. Other columns become meta. Writing is the inverse, so an exported file loads back to the
same prompts and ids. An exported item list (one row per prompt and seed) loads back as its
prompt set: rows repeating a prompt id with a ``seed`` are folded into one prompt.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

from benchkit.core.atomic import write_text_atomic
from benchkit.core.errors import BenchkitError, describe_os_error
from prompts.sets import PromptRecord, PromptSet

SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl")  # what prompt files are read from and exported to
READ_SUFFIXES = (*SUFFIXES, ".json")  # plus MJHQ-30K's meta_data.json: {image id: {"prompt", "category"}}
_PROMPT_KEYS = ("prompt", "text", "caption", "Prompt")
_ID_KEYS = ("prompt_id", "id", "image_id")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # used with fullmatch: "$" would let a trailing newline in


def index_ids(n: int) -> list[str]:
    """Zero-padded row indices, the id of a prompt whose file gives none."""
    width = max(5, len(str(n)))
    return [str(i).zfill(width) for i in range(n)]


def _check_id(pid: str, where: str) -> str:
    if not _SAFE_ID.fullmatch(pid):
        raise BenchkitError(f"{where}: prompt id {pid!r} must start with a letter or digit and use only letters, digits, "
                            "'.', '_' and '-'")
    return pid


def _records_from_rows(rows: list[tuple[int, dict[str, Any]]], path: Path) -> list[PromptRecord]:
    records: list[PromptRecord] = []
    seen: dict[str, PromptRecord] = {}
    for (line_no, row), default_id in zip(rows, index_ids(len(rows))):
        prompt_key = next((k for k in _PROMPT_KEYS if k in row), None)
        if prompt_key is None:
            raise BenchkitError(f"{path}:{line_no}: no prompt column; name one of {', '.join(_PROMPT_KEYS)}")
        prompt = row[prompt_key]
        if not isinstance(prompt, str):
            raise BenchkitError(f"{path}:{line_no}: prompt must be text, got {prompt!r}")
        id_key = next((k for k in _ID_KEYS if k in row and row[k] not in (None, "")), None)
        pid = _check_id(str(row[id_key]) if id_key else default_id, f"{path}:{line_no}")
        meta = {k: v for k, v in row.items() if k not in (prompt_key, id_key)}
        if pid in seen:
            if "seed" in meta and seen[pid].prompt == prompt:
                continue  # another seed of the same prompt in an item list
            raise BenchkitError(f"{path}:{line_no}: prompt id '{pid}' appears more than once; ids must be unique")
        seen[pid] = record = PromptRecord(pid, prompt, meta)
        records.append(record)
    if len(records) < len(rows):  # an item list: the seed belongs to the item, not the prompt
        records = [PromptRecord(r.prompt_id, r.prompt, {k: v for k, v in r.meta.items() if k != "seed"}) for r in records]
    return records


def _read_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
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
    elif suffix == ".json":
        rows = _id_keyed_rows(path, text)
    else:
        rows = [(n, {"prompt": line}) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    return rows


def _id_keyed_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """MJHQ-30K's ``meta_data.json`` (and any file shaped like it): one object mapping each id to its
    prompt and columns, in file order; the entry's position stands in for a line number in errors."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise BenchkitError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, dict) for v in obj.values()):
        raise BenchkitError(f"{path}: a .json prompt file maps each id to an object with a prompt, as MJHQ-30K's "
                            "meta_data.json ({\"id\": {\"prompt\": ..., \"category\": ...}}); use .jsonl for one object per line")
    return [(n, {**value, "prompt_id": key}) for n, (key, value) in enumerate(obj.items(), 1)]


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
    records = parse_records(text, path)
    # MJHQ-30K reports FID per category: its meta_data.json breaks results down by it (and a category
    # reference, see metrics.reference_sets, is matched group by group)
    by_category = path.suffix.lower() == ".json" and all("category" in r.meta for r in records)
    default_name = path.parent.name if path.name == "meta_data.json" else path.stem
    return PromptSet(name=name or default_name, records=records, sha256=hashlib.sha256(data).hexdigest(), source=str(path),
                     group_fields=("category",) if by_category else ())


def parse_records(text: str, path: Path) -> list[PromptRecord]:
    """The records of a prompt file's text; ``path`` gives the format (suffix) and names errors."""
    rows = _read_rows(path, text)
    if not rows:
        raise BenchkitError(f"{path}: no prompts found")
    return _records_from_rows(rows, path)


def _cell(value: Any) -> str:
    """A meta value as one csv/tsv cell: text as is, lists and objects as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def write_prompt_file(prompt_set: PromptSet, path: Path, seeds: list[int] | None = None, overwrite: bool = False) -> Path:
    """Export by suffix; with seeds, one row per (prompt, seed) item in generation order (txt: prompts only).

    An existing file is replaced only with ``overwrite``: benchkit cannot tell its own export from
    a user's file of the same name.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise BenchkitError(f"--out {path} exists; choose a new file name, or pass --overwrite to replace it")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise BenchkitError(f"--out {path}: use a .txt, .csv, .tsv or .jsonl file name")
    records = prompt_set.records
    if suffix == ".txt":
        if seeds is not None:
            raise BenchkitError(f"--out {path}: a .txt file holds prompts only; use .jsonl, .csv or .tsv with --seeds")
        bad = next((r for r in records if len(r.prompt.splitlines()) != 1 or not r.prompt.strip()), None)
        if bad is not None:
            raise BenchkitError(f"--out {path}: prompt {bad.prompt_id} is blank or spans lines, which txt cannot hold; "
                                "export to .jsonl, .csv or .tsv")
        text = "".join(r.prompt + "\n" for r in records)
    else:
        meta_keys = list(dict.fromkeys(k for r in records for k in r.meta if k not in ("prompt_id", "prompt", "seed")))
        rows = [{"prompt_id": r.prompt_id, **({"seed": s} if seeds is not None else {}), "prompt": r.prompt,
                 **{k: r.meta.get(k) for k in meta_keys}}
                for r in records for s in (seeds if seeds is not None else [None])]
        if suffix == ".jsonl":
            text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        else:
            buf = io.StringIO(newline="")
            writer = csv.writer(buf, delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\n")
            writer.writerow(rows[0].keys() if rows else ["prompt_id", "prompt"])
            writer.writerows([_cell(v) for v in row.values()] for row in rows)
            text = buf.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise describe_os_error(exc, path.parent, "creating") from None
    write_text_atomic(path, text)
    return path
