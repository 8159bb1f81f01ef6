"""Prompt sets: vendored benchmark files with provenance, and loaders for users' own files.

A prompt set is an ordered list of (prompt_id, prompt, meta) with a name and the sha256 of
the file it came from; crossed with a seed list it becomes the items a run generates.

- ``prompts.sets``: ``PromptSet`` and its subsets (filter by meta, seeded sample, prefix);
- ``prompts.files``: users' txt/csv/tsv/jsonl files, and export to them;
- ``prompts.registry``: the built-in sets (COCO, PartiPrompts, VBench, GenEval, DrawBench, ...),
  their sources and licenses (``prompts/data/SOURCES.md``).
"""

from __future__ import annotations

from pathlib import Path

from benchkit.core.errors import BenchkitError
from prompts.files import READ_SUFFIXES, load_prompt_file, write_prompt_file
from prompts.registry import BUILTIN_SETS, DATA_DIR, BuiltinSet, load_builtin
from prompts.sets import PromptRecord, PromptSet

__all__ = ["BUILTIN_SETS", "DATA_DIR", "BuiltinSet", "PromptRecord", "PromptSet", "load_prompt_file",
           "load_prompt_set", "parse_seeds", "is_seed", "MAX_SEED", "write_prompt_file"]


_MAX_SEEDS = 100_000
# Seeds are integers from 0 to 2**63 - 1, what torch.Generator.manual_seed takes as given. A negative
# seed is refused rather than given a meaning: other tools read -1 as "random", and benchkit's file
# names ({prompt_id}_{seed}.png), which `benchkit score` reads back, hold the seed as digits.
MAX_SEED = 2**63 - 1


def is_seed(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED


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
                if hi_i - lo_i >= _MAX_SEEDS:
                    raise BenchkitError(f"--seeds '{text}': more than {_MAX_SEEDS} seeds per prompt; give a smaller range")
                seeds.extend(range(lo_i, hi_i + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise BenchkitError(f"--seeds '{text}': use a range like 0-3 or a list like 0,1,7") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise BenchkitError(f"--seeds '{text}': give at least one seed and no duplicates")
    if not all(is_seed(s) for s in seeds):
        raise BenchkitError(f"--seeds '{text}': seeds are integers from 0 to 2**63-1; negative seeds are not accepted")
    if len(seeds) > _MAX_SEEDS:
        raise BenchkitError(f"--seeds '{text}': more than {_MAX_SEEDS} seeds per prompt; give fewer")
    return seeds


def load_prompt_set(name_or_path: str) -> PromptSet:
    """A built-in set by name (see ``benchkit prompts list``) or a prompt file path."""
    if name_or_path in BUILTIN_SETS:
        return load_builtin(name_or_path)
    path = Path(name_or_path)
    if path.exists() or path.suffix in READ_SUFFIXES:
        return load_prompt_file(path)
    raise BenchkitError(f"unknown prompt set '{name_or_path}': not a built-in set (see `benchkit prompts list`) or a file")
