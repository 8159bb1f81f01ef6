"""PromptSet: an ordered list of prompts with provenance, and the ways to take a subset of it.

Every subset step (filter, sample, limit) appends a readable rule to ``subset``, so a run's
manifest says exactly which prompts of which file it used, and the same command picks the
same prompts again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchkit.core.errors import BenchkitError
from benchkit.core.items import meta_values


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
    group_fields: tuple[str, ...] = ()  # meta fields a report can break metrics down by
    default_seeds: str = "0-3"  # seeds per prompt when none are given: the set's protocol (VBench samples 5)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def file(self) -> str | None:
        """``source`` when it is a file on this machine (a user's prompt file or a built-in set's data)."""
        from pathlib import Path

        return self.source if self.source and Path(self.source).is_file() else None

    def _narrowed(self, records: list[PromptRecord], rule: str) -> "PromptSet":
        subset = rule if self.subset == "all" else f"{self.subset}; {rule}"
        return replace(self, records=records, subset=subset)

    def limit(self, n: int | None) -> "PromptSet":
        """The first n prompts (a documented prefix, e.g. COCO-10k)."""
        if n is None or n >= len(self.records):
            return self
        if n < 1:
            raise BenchkitError(f"--limit must be at least 1, got {n}")
        return self._narrowed(self.records[:n], f"first {n}")

    def filter(self, name: str, value: str) -> "PromptSet":
        """Prompts whose meta ``name`` equals ``value`` or, for a list field, contains it (case-insensitive)."""
        values: dict[str, str] = {}
        for r in self.records:
            for v in meta_values(r.meta, name):
                values.setdefault(v.casefold(), v)
        if not values:
            fields = sorted({k for r in self.records for k in r.meta})
            raise BenchkitError(f"prompt set {self.name} has no '{name}' field; its fields: {', '.join(fields) or 'none'}")
        canonical = values.get(str(value).casefold())
        if canonical is None:
            raise BenchkitError(f"no prompt of {self.name} has {name}={value}; valid values: {', '.join(sorted(values.values()))}")
        kept = [r for r in self.records if canonical in meta_values(r.meta, name)]
        return self._narrowed(kept, f"{name}={canonical}")

    def sample(self, n: int | None, seed: int = 0) -> "PromptSet":
        """n prompts drawn without replacement by numpy's default_rng(seed), kept in file order."""
        if n is None or n >= len(self.records):
            return self
        if n < 1:
            raise BenchkitError(f"--sample must be at least 1, got {n}")
        import numpy as np

        picked = sorted(np.random.default_rng(seed).choice(len(self.records), size=n, replace=False).tolist())
        return self._narrowed([self.records[i] for i in picked], f"sample {n} of {len(self.records)} seed {seed}")

    def select(self, filters: dict[str, str | None] | None = None, sample: int | None = None, sample_seed: int = 0,
               limit: int | None = None) -> "PromptSet":
        """Filters (in the given order), then sample, then limit: the order the CLI applies them in."""
        ps = self
        for name, value in (filters or {}).items():
            if value is not None:
                ps = ps.filter(name, value)
        return ps.sample(sample, sample_seed).limit(limit)

    def with_image_dir(self, folder: Path | str) -> "PromptSet":
        """The set with each relative input ``image`` read under ``folder`` (VBench-I2V's crop folder of one aspect
        ratio, say). Every image is checked here, before any model is loaded; the folder is part of the subset, so
        another folder makes another run."""
        from benchkit.core.items import IMAGE_COLUMN

        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise BenchkitError(f"--image-dir {folder}: not a folder; give the folder the prompt set's images are in")
        records, missing = [], []
        for r in self.records:
            value = r.meta.get(IMAGE_COLUMN)
            if value in (None, "") or Path(str(value)).is_absolute():
                records.append(r)
                continue
            path = root / str(value)
            if not path.is_file():
                missing.append(str(value))
            records.append(PromptRecord(r.prompt_id, r.prompt, {**r.meta, IMAGE_COLUMN: str(path)}))
        if len(records) == len(self.records) and all(r.meta.get(IMAGE_COLUMN) in (None, "") for r in self.records):
            raise BenchkitError(f"--image-dir: prompt set {self.name} names no input images (no '{IMAGE_COLUMN}' field)")
        if missing:
            raise BenchkitError(f"--image-dir {root}: {len(missing)} of the set's {len(self.records)} input images are not "
                                f"there (first: {missing[0]}); point it at the folder that holds them")
        return self._narrowed(records, f"images under {root}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "count": len(self.records), "subset": self.subset,
                "source": self.source, "group_fields": list(self.group_fields)}
