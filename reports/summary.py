"""The summary a report opens on: one row per run with the answer (quality with its interval, preference scores,
milliseconds per image, NFE, the verdict against a baseline), runs grouped as teacher / students / other runs,
and the one place where numbers become text people read (ms, MB, images/s).

Everything here reads run folders only (reports.runs); reports.render lays the rows out as HTML and Markdown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit.core.errors import BenchkitError
from reports.compare import compare_runs, interval_of
from reports.plots import default_latency, default_quality
from reports.runs import RunSummary

MISSING = "–"
# Preference and alignment scores people compare few-step models on (the toy world's alignment among them).
PREFERENCE_METRICS = ("clip-score", "clip-score-l14", "pickscore", "hpsv21", "hpsv2", "image-reward", "aesthetic",
                      "mps", "toy-alignment")
LATENCY = "latency_image_p50"
NFE = "nfe"
TEACHER, STUDENTS, OTHER = "teacher", "students", "other runs"
# Units the formatter writes into each value, so a header need not carry them.
SELF_DESCRIBING_UNITS = frozenset({"s", "ms", "bytes", "images/s"})


# -- numbers as people read them ------------------------------------------------------------------------------
def _decimals(value: float, digits: int) -> int | None:
    """Decimals that give ``value`` ``digits`` significant digits; None where fixed point would not read well."""
    if value == 0:
        return digits - 1
    exponent = math.floor(math.log10(abs(value)))
    if exponent < -4 or exponent >= 15:
        return None
    return min(max(digits - 1 - exponent, 0), 8)


def format_number(value: float, digits: int = 4) -> str:
    """``digits`` significant digits in fixed point (12345 stays 12345, not 1.234e+04); – for NaN."""
    if value is None or math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    d = _decimals(value, digits)
    return f"{value:.{digits - 1}e}" if d is None else f"{value:.{d}f}"


def format_quantity(value: float, unit: str = "", digits: int = 4) -> str:
    """The one formatter of the HTML report: seconds below 1 as ms (above 2 minutes as min), bytes as kB/MB/GB,
    throughput with its unit; any other unit is left to the column header."""
    if value is None or math.isnan(value):
        return MISSING
    if unit == "ms":
        value, unit = value / 1000, "s"
    if unit == "s":
        if abs(value) < 1:
            return f"{format_number(value * 1000, digits)} ms"
        if abs(value) >= 120:
            return f"{format_number(value / 60, digits)} min"
        return f"{format_number(value, digits)} s"
    if unit == "bytes":
        for scale, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(value) >= scale:
                return f"{format_number(value / scale, digits)} {name}"
        return f"{value:.0f} B"
    if unit == "images/s":
        return f"{format_number(value, digits)} images/s"
    return format_number(value, digits)


def format_interval(value: float, interval: tuple[float, float] | None, digits: int = 4) -> str:
    """'16.07 [9.67, 26.21]': the bounds with the value's decimals, so the three line up when read."""
    text = format_number(value, digits)
    if interval is None or text == MISSING:
        return text
    d = _decimals(value, digits)
    low, high = interval
    if d is None:
        return f"{text} [{format_number(low, digits)}, {format_number(high, digits)}]"
    return f"{text} [{low:.{d}f}, {high:.{d}f}]"


def header_with_unit(name: str, unit: str) -> str:
    """'toy-fid (fid)'; no unit where the values carry their own (seconds, bytes, images/s)."""
    return f"{name} ({unit})" if unit and unit not in SELF_DESCRIBING_UNITS else name


def best_labels(values: dict[str, float], higher_is_better: bool | None) -> set[str]:
    """Keys holding the best value (ties share it); none when direction is unknown or fewer than two values."""
    present = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if higher_is_better is None or len(present) < 2:
        return set()
    best = max(present.values()) if higher_is_better else min(present.values())
    return {k for k, v in present.items() if v == best}


# -- groups ---------------------------------------------------------------------------------------------------
_DISTILL_DESCRIPTION = re.compile(r"^\S+ student of \S+, \d+-step, \d+ training steps")


def is_student(manifest: dict[str, Any]) -> bool:
    """Whether the run's model is a `benchkit distill` output.

    distill writes its student as a spec folder: spec.toml with ``base = "model"`` beside ``model/`` and
    ``distill.json``, described as "<method> student of <teacher>, N-step, M training steps". A run's manifest
    keeps that spec (``spec.base`` resolved to the absolute model folder, ``spec.description``) but not
    distill.json, so a run is a student when its model folder is named ``model`` and either distill.json sits
    beside it (checked when the folder is on this machine) or, when it is not (a report built elsewhere), the
    description is distill's own. Released students from presets are not distill outputs: they are other runs.
    """
    spec = manifest.get("spec") if isinstance(manifest.get("spec"), dict) else {}
    base = spec.get("base") or (manifest.get("model") or {}).get("path")
    if not isinstance(base, str) or Path(base).name != "model":
        return False
    folder = Path(base).parent
    try:
        if (folder / "distill.json").is_file():
            return True
        if folder.is_dir():  # the folder is here and has no distill.json: not a distill output
            return False
    except OSError:
        pass
    return bool(_DISTILL_DESCRIPTION.match(str(spec.get("description") or "")))


def _model_name(run: RunSummary) -> str | None:
    spec = run.manifest.get("spec")
    return spec.get("name") if isinstance(spec, dict) else None


def group_of(run: RunSummary, baseline: RunSummary | None) -> str:
    """teacher: the baseline's model (same spec name); students: distill outputs; other runs: the rest."""
    name = _model_name(run)
    if baseline is not None and (run is baseline or (name is not None and name == _model_name(baseline))):
        return TEACHER
    return STUDENTS if is_student(run.manifest) else OTHER


def grouped(runs: list[RunSummary], baseline: RunSummary | None) -> list[tuple[str, list[RunSummary]]]:
    """Runs by group: with a baseline teacher, students, other runs (the baseline first among the teachers);
    without one, the groups in the order their first run comes. Within a group the given order is kept."""
    groups: dict[str, list[RunSummary]] = {}
    if baseline is not None:
        groups = {TEACHER: [baseline], STUDENTS: [], OTHER: []}
    for run in runs:
        if run is not baseline:
            groups.setdefault(group_of(run, baseline), []).append(run)
    return [(g, members) for g, members in groups.items() if members]


# -- the summary ----------------------------------------------------------------------------------------------
@dataclass
class SummaryCell:
    text: str
    sort: float | None = None  # the raw number, so a sorted column orders by value rather than by text
    bold: bool = False
    css: str = ""  # e.g. the verdict's class


@dataclass
class Column:
    key: str
    header: str
    numeric: bool = True
    higher_is_better: bool | None = None


@dataclass
class SummaryRow:
    run: RunSummary
    group: str
    cells: dict[str, SummaryCell] = field(default_factory=dict)


@dataclass
class Summary:
    columns: list[Column]
    rows: list[SummaryRow]
    quality: str | None
    baseline: str | None  # the baseline's label
    notes: list[str] = field(default_factory=list)

    def groups(self) -> list[tuple[str, list[SummaryRow]]]:
        out: dict[str, list[SummaryRow]] = {}
        for row in self.rows:
            out.setdefault(row.group, []).append(row)
        return list(out.items())

    def show_groups(self) -> bool:
        return len({row.group for row in self.rows}) > 1

    def table(self) -> tuple[list[str], list[list[SummaryCell]]]:
        """Headers and cells, the group column only when there is more than one group."""
        columns = [c for c in self.columns if c.key != "group" or self.show_groups()]
        return [c.header for c in columns], [[row.cells.get(c.key, SummaryCell(MISSING)) for c in columns]
                                             for row in self.rows]


def _arrow(higher_is_better: bool | None) -> str:
    return "" if higher_is_better is None else (" ↑" if higher_is_better else " ↓")


def _value(run: RunSummary, name: str) -> float:
    entry = run.metrics.get(name)
    try:
        return float(entry["value"]) if entry else math.nan
    except (TypeError, ValueError, KeyError):
        return math.nan


def _verdict(baseline: RunSummary, run: RunSummary, quality: str) -> str:
    """compare_runs's verdict on the quality metric; – when either run lacks it."""
    # (compare imports reports.render, which imports this module)
    if quality not in baseline.metrics or quality not in run.metrics:
        return MISSING
    try:
        return compare_runs(baseline, run, metrics=[quality])[0].verdict
    except BenchkitError:
        return "not comparable"


def build_summary(runs: list[RunSummary], baseline: RunSummary | None = None) -> Summary:
    """One row per run, grouped (see :func:`grouped`); columns only for what some run has."""
    names = list(dict.fromkeys(name for run in runs for name in run.metrics))
    quality = default_quality(names, default_latency(names))
    ordered = [(group, run) for group, members in grouped(runs, baseline) for run in members]
    metric_columns = ([quality] if quality else []) + [m for m in PREFERENCE_METRICS if m in names and m != quality]

    def direction(name: str) -> bool | None:
        return next((run.metrics[name].get("higher_is_better") for run in runs if name in run.metrics), None)

    columns = [Column("run", "run", numeric=False), Column("group", "group", numeric=False)]
    columns += [Column(name, name + _arrow(direction(name)), True, direction(name)) for name in metric_columns]
    if LATENCY in names:
        columns.append(Column(LATENCY, "ms / image ↓", True, False))
    if NFE in names:
        columns.append(Column(NFE, "NFE ↓", True, False))
    if baseline is not None and quality:
        columns.append(Column("verdict", f"vs baseline ({quality})", numeric=False))
    rows = []
    for group, run in ordered:
        row = SummaryRow(run, group, {"run": SummaryCell(run.label), "group": SummaryCell(group)})
        for name in metric_columns:
            value = _value(run, name)
            found = interval_of(run.metrics[name]) if name in run.metrics else None
            row.cells[name] = SummaryCell(format_interval(value, found), None if math.isnan(value) else value)
        if LATENCY in names:
            ms = _value(run, LATENCY) * 1000
            row.cells[LATENCY] = SummaryCell(format_number(ms), None if math.isnan(ms) else ms)
        if NFE in names:
            nfe = _value(run, NFE)
            text = MISSING if math.isnan(nfe) else (f"{nfe:.0f}" if nfe == round(nfe) else format_number(nfe))
            row.cells[NFE] = SummaryCell(text, None if math.isnan(nfe) else nfe)
        if baseline is not None and quality:
            verdict = "baseline" if run is baseline else _verdict(baseline, run, quality)
            row.cells["verdict"] = SummaryCell(verdict, css="verdict-" + verdict.replace(" ", "-"))
        rows.append(row)
    for column in columns:
        if column.higher_is_better is not None:
            values = {str(i): row.cells[column.key].sort for i, row in enumerate(rows)}
            for i in best_labels({k: math.nan if v is None else v for k, v in values.items()}, column.higher_is_better):
                rows[int(i)].cells[column.key].bold = True
    summary = Summary(columns, rows, quality, baseline.label if baseline else None)
    summary.notes = _notes(summary, runs, names, baseline)
    return summary


def _notes(summary: Summary, runs: list[RunSummary], names: Sequence[str], baseline: RunSummary | None) -> list[str]:
    notes = []
    levels = {(run.metrics[n].get("extra") or {}).get("interval", {}).get("level", 0.95)
              for run in runs for n in names if n in run.metrics and interval_of(run.metrics[n])}
    if levels:
        level = ", ".join(f"{lv:.0%}" for lv in sorted(levels))
        notes.append(f"[low, high]: the {level} bootstrap interval (prompts, then seeds, resampled). "
                     "↑ higher is better, ↓ lower is better; bold: best value per column.")
    else:
        notes.append("↑ higher is better, ↓ lower is better; bold: best value per column.")
    if baseline is not None and summary.quality:
        notes.append(f"vs baseline: benchkit compare's verdict on {summary.quality} against {baseline.label} "
                     "(better or worse only outside the noise band: the intervals where both have them).")
    if summary.quality is None:
        notes.append("No quality metric: these runs hold timing or model metrics only.")
    return notes
