"""The quality-vs-latency trade-off plot, with its Pareto front.

Distillation trades quality for speed, so the useful picture is where each run sits in
that plane and which runs no other run beats on both axes. The SVG is byte-for-byte
deterministic so reports can be diffed and cached.
"""

from __future__ import annotations

import io
import math
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import pandas as pd  # noqa: E402

QUALITY_PREFERENCE = ["fid", "toy-fid", "clip-score", "toy-alignment"]
LATENCY_DEFAULT = "latency_image_p50"
SVG_RC = {"svg.hashsalt": "benchkit", "svg.fonttype": "none"}
NO_SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def default_latency(columns: Sequence[str]) -> str | None:
    return LATENCY_DEFAULT if LATENCY_DEFAULT in columns else None


def default_quality(columns: Sequence[str], latency: str | None = None) -> str | None:
    """The preferred quality metric present, else the first metric that is not the latency one."""
    present = [c for c in QUALITY_PREFERENCE if c in columns]
    rest = [c for c in columns if c != latency]
    return (present or rest or [None])[0]


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of (latency, quality) points no other point beats, ordered by latency.

    A point is dominated when another is at least as fast and at least as good, and strictly
    better on one of the two. Points with a NaN coordinate are never on the front.
    """
    sign = 1.0 if higher_is_better else -1.0
    valid = [i for i, (x, y) in enumerate(points) if not (math.isnan(x) or math.isnan(y))]

    def dominates(j: int, i: int) -> bool:
        (xj, yj), (xi, yi) = points[j], points[i]
        return xj <= xi and sign * yj >= sign * yi and (xj < xi or sign * yj > sign * yi)

    front = [i for i in valid if not any(dominates(j, i) for j in valid)]
    return sorted(front, key=lambda i: (points[i][0], -sign * points[i][1]))


def _svg_bytes(fig) -> bytes:
    """The figure as deterministic SVG (fixed hash salt, no date metadata)."""
    buf = io.BytesIO()
    with plt.rc_context(SVG_RC):
        fig.savefig(buf, format="svg", metadata=NO_SVG_METADATA)
    return buf.getvalue()


def _axis_title(name: str, unit: str, higher_is_better: bool | None) -> str:
    shown = f"{name} [{unit}]" if unit else name
    if higher_is_better is None:
        return f"{shown} (direction unknown)"
    return f"{shown} ({'higher' if higher_is_better else 'lower'} is better)"


def quality_latency_plot(df: pd.DataFrame, quality: str, latency: str,
                         higher_is_better: Mapping[str, bool | None] | None = None) -> bytes | None:
    """SVG of quality against latency per run, or None when either metric is missing.

    Directions come from ``higher_is_better`` where given, else from the table's attrs
    (set by :func:`reports.runs.metrics_table`). Without a quality direction there is no
    Pareto front to draw.
    """
    if quality not in df.columns or latency not in df.columns:
        return None
    data = df[[latency, quality]].dropna()
    if data.empty:
        return None
    directions = {**df.attrs.get("higher_is_better", {}), **(higher_is_better or {})}
    units = df.attrs.get("unit", {})
    better_up = directions.get(quality)
    fig, ax = plt.subplots(figsize=(10, 5))
    try:
        ax.scatter(data[latency], data[quality], color="tab:blue", zorder=3)
        # Points carry numbers and the key sits beside the axes: full run labels are long
        # and overlap where few-step runs crowd together.
        key = []
        for number, (label, (x, y)) in enumerate(data.iterrows(), 1):
            ax.annotate(str(number), (x, y), xytext=(5, 4), textcoords="offset points", fontsize=9)
            key.append(f"{number}: {label}")
        fig.subplots_adjust(left=0.08, right=0.58, bottom=0.12, top=0.9)
        fig.text(0.6, 0.9, "\n".join(key), fontsize=8, va="top", family="monospace")
        positive = data[latency][data[latency] > 0]
        if len(positive) == len(data) and positive.max() > 20 * positive.min():
            ax.set_xscale("log")  # latencies spanning orders of magnitude (1 to 50 steps)
        if better_up is not None:
            points = list(zip(data[latency], data[quality]))
            front = [points[i] for i in pareto_front(points, better_up)]
            ax.plot(*zip(*front), color="tab:orange", marker="o", markerfacecolor="none",
                    markersize=12, label="Pareto front", zorder=2)
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel(_axis_title(latency, units.get(latency, ""), False))
        ax.set_ylabel(_axis_title(quality, units.get(quality, ""), better_up))
        ax.set_title(f"{quality} vs {latency}")
        ax.grid(True, alpha=0.3)
        return _svg_bytes(fig)
    finally:
        plt.close(fig)


def trend_plot(series: Mapping[str, Sequence[tuple[str, float]]], metric: str,
               higher_is_better: bool | None = None, order: Sequence[str] | None = None) -> bytes | None:
    """SVG of one metric over nights, a line per job; None when there is nothing to draw."""
    series = {job: points for job, points in series.items() if points}
    if not series:
        return None
    # ``order``: the nights by start time (the history's order); custom ids need not sort by time
    present = {night for points in series.values() for night, _ in points}
    nights = [n for n in order if n in present] if order is not None else sorted(present)
    position = {night: i for i, night in enumerate(nights)}
    fig, ax = plt.subplots(figsize=(10, 4))
    try:
        for job, points in sorted(series.items()):
            ax.plot([position[n] for n, _ in points], [v for _, v in points], marker="o", label=job)
        ax.set_xticks(range(len(nights)), nights, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(_axis_title(metric, "", higher_is_better))
        ax.set_title(f"{metric} over nights")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        return _svg_bytes(fig)
    finally:
        plt.close(fig)
