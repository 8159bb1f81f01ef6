"""What the benchmark modules share: the row every benchmark returns, timing whole processes, the table.

A benchmark module (``benchmarks/<name>.py``) exposes ``run(quick: bool) -> list[dict]``; each dict
is a :func:`row`. ``python -m benchmarks`` prints them all in one table (see ``benchmarks/__main__.py``).
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parent.parent

GOAL_OPS = ("<=", ">=")


def row(benchmark: str, measurement: str, benchkit: float, peer: float | None, goal: float | None,
        goal_op: str = "<=", unit: str = "s", note: str = "") -> dict[str, Any]:
    """One line of the table.

    ``benchkit`` and ``peer`` are the same measurement (``unit``) of benchkit and of what it is compared
    with; ``ratio`` is benchkit / peer and the goal is ``ratio goal_op goal``. Without a peer (a
    benchmark of benchkit alone, e.g. flat memory) the goal applies to the benchkit value itself.
    """
    if goal_op not in GOAL_OPS:
        raise ValueError(f"goal_op must be one of {GOAL_OPS}, got {goal_op!r}")
    ratio = benchkit / peer if peer else None
    judged = ratio if peer is not None else benchkit
    met = None
    if goal is not None and judged is not None and math.isfinite(judged):
        met = judged <= goal if goal_op == "<=" else judged >= goal
    return {"benchmark": benchmark, "measurement": measurement, "unit": unit, "benchkit": benchkit, "peer": peer,
            "ratio": ratio, "goal": goal, "goal_op": goal_op, "goal_on": "ratio" if peer is not None else "benchkit",
            "met": met, "note": note}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def subprocess_env(pycache: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment both sides of a whole-process comparison run in: offline, quiet, same threads.

    ``BENCH_THREADS=N`` in the environment sets both sides' thread count (default: torch's own).
    ``pycache``: compile caches go there (``PYTHONPYCACHEPREFIX``), for every module of both sides.
    Without it, a ``PYTHONDONTWRITEBYTECODE=1`` environment recompiles the project's own (editable)
    sources in every process while site-packages keep their install-time ``.pyc`` files, which charges
    a cost users do not pay to one side only.
    """
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error", "TQDM_DISABLE": "1",
                "PYTHONWARNINGS": "ignore"})
    threads = os.environ.get("BENCH_THREADS")  # e.g. 1 on a machine shared with other work: no spin-waiting
    if threads:
        env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.update(extra)
    return env


def timed_process(cmd: Sequence[str], env: dict[str, str], cwd: Path | None = None, what: str = "") -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process (start, imports, work, exit), its output captured.

    CPU seconds are user + system time of the process and the children it waited for: on a machine
    shared with other work they move much less than wall time. A failure raises with the tail of
    its output: a benchmark of a command that did not do its work would be a number about nothing.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"{what or cmd[0]} exited with {proc.returncode}:\n  $ {' '.join(map(str, cmd))}\n{tail}")
    return seconds, cpu


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): how busy the machine was."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def python() -> str:
    return sys.executable


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
        return f"{text} {unit}".strip() if unit else text
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table (readable in a terminal, pasteable into the README) plus numbered notes."""
    header = ["benchmark", "measurement", "benchkit", "peer", "ratio", "goal", "met"]
    lines, notes = [], []
    for r in rows:
        note = ""
        if r.get("note"):
            notes.append(r["note"])
            note = f" [{len(notes)}]"
        goal = f"{r['goal_op']} {r['goal']:g}" if r.get("goal") is not None else "-"
        if r.get("goal") is not None and r.get("goal_on") == "benchkit":
            goal += " (benchkit)"
        met = {True: "yes", False: "NO", None: "-"}[r.get("met")]
        if r.get("error"):
            met = "ERROR"
        lines.append([r["benchmark"], r["measurement"] + note, _fmt(r.get("benchkit"), r.get("unit", "")),
                      _fmt(r.get("peer"), r.get("unit", "")), _fmt(r.get("ratio")) + ("x" if r.get("ratio") is not None else ""),
                      goal, met])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]

    def fmt_line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [fmt_line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt_line(line) for line in lines]
    out += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(out)
