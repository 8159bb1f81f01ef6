"""The report of a sweep: Pareto fronts of quality against latency and against NFE, and the timing table.

The fronts name the settings no other setting beats on both axes (reports.plots.pareto_front); NFE (network
evaluations per image) is the hardware-free cost, latency the cost on the machine that ran. The timing table is the
"first run / second run / size" table of community timing notes: a first batch pays for kernel selection, caches
and lazy initialisation, so its seconds per image (the untimed warm-up batch of the run's first session) are shown
beside the warm median; load seconds, model size and peak memory complete what a user needs to pick a setting for
a device.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchkit.core.errors import BenchkitError
from reports.plots import default_quality, pareto_front, quality_latency_plot
from reports.runs import RunSummary, load_runs, metrics_table

LATENCY, NFE = "latency_image_p50", "nfe"
TIMING_HEADER = ["setting", "device", "dtype", "NFE", "first run (ms/image)", "second run (ms/image)", "load (s)",
                 "model size (MB)", "peak memory (MB)"]  # one unit a column, so that the columns sort


def _first_run_seconds(run: RunSummary) -> float:
    """Seconds per image of the first batch in a fresh process: the measured cold image where the pipeline records
    one, else the run's first session's untimed warm-up batch."""
    cold = run.metrics.get("latency_cold_image")
    if cold is not None:
        return float(cold["value"])
    sessions = run.manifest.get("sessions") or []
    first = sessions[0] if sessions else {}
    if first.get("warmup_seconds") and first.get("warmup_images"):
        return float(first["warmup_seconds"]) / int(first["warmup_images"])
    return math.nan


def _value(run: RunSummary, name: str) -> float:
    found = run.metrics.get(name)
    return float(found["value"]) if found is not None else math.nan


def _fmt(value: float, digits: str = ".3g") -> str:
    return "n/a" if math.isnan(value) else format(value, digits)


def timing_rows(runs: list[RunSummary]) -> list[list[str]]:
    """One row per setting: device, dtype, NFE, cold and warm seconds per image, load, size, peak memory."""
    rows = []
    for run in runs:
        m = run.manifest
        rows.append([run.path.name, str(m.get("device", "")), str(m.get("dtype", "")), _fmt(_value(run, NFE), "g"),
                     _fmt(_first_run_seconds(run) * 1000), _fmt(_value(run, LATENCY) * 1000),
                     _fmt(_value(run, "cold_start")), _fmt(_value(run, "model_size") / 1e6),
                     _fmt(_value(run, "peak_memory") / 1e6)])
    return rows


def fronts(runs: list[RunSummary], quality: str) -> dict[str, list[str]]:
    """The settings (run folder names) on the quality-vs-latency and quality-vs-NFE Pareto fronts."""
    directions = {run.metrics[quality].get("higher_is_better") for run in runs if quality in run.metrics}
    if len(directions) != 1 or None in directions:
        raise BenchkitError(f"the sweep's quality metric {quality} has no single known direction; choose --quality")
    higher = directions.pop()
    out = {}
    for key, cost in (("latency", LATENCY), ("nfe", NFE)):
        points = [(_value(run, cost), _value(run, quality)) for run in runs]
        out[key] = [runs[i].path.name for i in pareto_front(points, higher)]
    return out


def sweep_report(run_paths: list[Path], out_dir: Path, quality: str | None = None,
                 title: str = "benchkit sweep") -> dict[str, Any]:
    """Write the sweep's report (reports.render.write_report with the NFE front and the timing table)."""
    from reports.render import write_report

    if not run_paths:
        raise BenchkitError("the sweep has no finished run to report on")
    runs = load_runs(run_paths)
    table = metrics_table(runs)
    quality = quality or default_quality([c for c in table.columns if c not in (LATENCY, NFE)], LATENCY)
    if quality is None:
        raise BenchkitError("the sweep's runs have no quality metric to trade against cost: add one with --metrics")
    if quality not in table.columns:
        raise BenchkitError(f"--quality {quality}: no run of the sweep has it; choose one of {', '.join(table.columns)}")
    pareto = fronts(runs, quality)
    figures = []
    svg = quality_latency_plot(table, quality, NFE)
    if svg is not None:
        figures.append((f"{quality} against NFE (network evaluations per image)", svg))
    timing = timing_rows(runs)
    report = write_report(list(run_paths), out_dir, title=title, figures=figures,
                          tables=[("First run, second run and size, by setting", TIMING_HEADER, timing)])
    return {"quality": quality, "pareto": pareto, "report": report, "timing": timing}
