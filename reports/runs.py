"""Reading finished run directories into one comparable table.

A report compares runs side by side, so every run needs a unique, human label and its
metrics keyed by name; the direction and unit of each metric travel with the table
(``DataFrame.attrs``) so plots and formatting need not guess them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from benchkit.core.errors import BenchkitError
from benchkit.core.rundir import RESULTS, RunDir


# Variant keys that say where and how a number was measured rather than what it measures: they do not make two
# quality numbers incomparable (timing numbers are compared on them; reports.compare), nor a report's variant warning.
CONTEXT_VARIANT_KEYS = frozenset({"device", "dtype", "batch_size", "hardware", "torch", "sync",
                                  "warmup_batches", "reference_stats_key"})


@dataclass
class RunSummary:
    """What a report needs from one run directory."""

    path: Path
    label: str
    manifest: dict[str, Any]
    results: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """Metric entries by name; the first wins if a name repeats."""
        out: dict[str, dict[str, Any]] = {}
        for metric in self.results["metrics"]:
            out.setdefault(metric["name"], metric)
        return out


def _read_results(path: Path) -> dict[str, Any]:
    """results.json, or an error that says how to produce it (it is written by scoring)."""
    file = path / RESULTS
    hint = "run `benchkit eval` or `benchkit score` first"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchkitError(f"{file} not found: {hint}") from None
    except (OSError, ValueError) as exc:
        raise BenchkitError(f"{file} is not valid results JSON ({exc}): {hint}") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), list):
        raise BenchkitError(f"{file} has no 'metrics' list: {hint}")
    return data


def load_run(path: Path | str) -> RunSummary:
    """Load one run; its label is the results label, else the manifest label, else the folder name."""
    path = Path(path)
    results = _read_results(path)
    run = RunDir(path)
    manifest = run.manifest()
    label = (results.get("run") or {}).get("label") or manifest.get("label") or path.name
    return RunSummary(path, str(label), manifest, results, run.records())


def unique_labels(runs: list[RunSummary]) -> list[str]:
    """Labels with the folder name (then the full path) appended where they collide, since labels index tables."""
    labels = [run.label for run in runs]
    for suffix in (lambda run: run.path.name, lambda run: str(run.path)):
        counts = Counter(labels)
        labels = [f"{label} ({suffix(run)})" if counts[label] > 1 else label for label, run in zip(labels, runs)]
    return labels


def load_runs(paths: Iterable[Path | str]) -> list[RunSummary]:
    """Load several runs, relabelled so that every label is unique."""
    runs = [load_run(p) for p in paths]
    for run, label in zip(runs, unique_labels(runs)):
        run.label = label
    return runs


def metrics_table(runs: list[RunSummary]) -> pd.DataFrame:
    """One row per run (index = label), one column per metric name in first-seen order.

    ``attrs["higher_is_better"]`` and ``attrs["unit"]`` map each column to what the runs
    reported, so consumers can rank and label values without knowing metric names.
    """
    rows = {label: {name: float(m["value"]) for name, m in run.metrics.items()}
            for label, run in zip(unique_labels(runs), runs)}
    columns = list(dict.fromkeys(name for run in runs for name in run.metrics))
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns, dtype=float)
    table.index.name = "run"
    first = {name: m for run in reversed(runs) for name, m in run.metrics.items()}  # first reporter wins
    table.attrs["higher_is_better"] = {name: first[name].get("higher_is_better") for name in columns}
    table.attrs["unit"] = {name: first[name].get("unit", "") for name in columns}
    return table
