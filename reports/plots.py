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


BAR_INCHES = 0.2  # one bar's height: above the 7 pt value labels' line height, so they never touch
GROUP_GAP_BARS = 0.8  # space between groups, in bars
LEGEND_CHARS = 60  # run labels longer than this are cut in the legend (tables carry them whole)


def _cut(text: str, n: int = LEGEND_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def grouped_bars_figure(groups: Sequence[str], runs: Sequence[str], values: Sequence[Sequence[float]],
                        hatched: Sequence[Sequence[bool]] | None = None, title: str = "", xlabel: str = "",
                        ids: Sequence[str] | None = None, bar_inches: float = BAR_INCHES):
    """Horizontal bars, one group per row of ``values`` (``values[group][run]``, NaN: no bar), one bar per run.

    The figure grows with the number of bars rather than squeezing them, so group labels, value
    labels and the legend (above the axes, one run a line) keep clear of each other however many
    dimensions and runs there are. ``ids`` name each group's bars and value labels in the SVG
    (``bar-<id>-<run number>``, ``value-<id>-<run number>``) so they can be found in it.
    """
    n_groups, n_runs = len(groups), len(runs)
    pitch = n_runs + GROUP_GAP_BARS
    finite = [v for row in values for v in row if not math.isnan(v)]
    high, low = max([1.0, *finite]), min([0.0, *finite])
    height = n_groups * pitch * bar_inches + 1.2 + 0.2 * (n_runs + 1)  # bars, axis and title, legend lines
    fig, ax = plt.subplots(figsize=(9, height), layout="constrained")
    colors = plt.get_cmap("tab10" if n_runs <= 10 else "tab20")
    for r, run in enumerate(runs):
        for g, group in enumerate(groups):
            value = values[g][r]
            if math.isnan(value):
                continue
            y = g * pitch + r
            hatch = "////" if hatched and hatched[g][r] else None
            (bar,) = ax.barh([y], [value], height=0.9, color=colors(r % colors.N), hatch=hatch, edgecolor="white",
                             linewidth=0.5)
            text = ax.annotate(f"{value:.4g}", (max(value, 0.0), y), xytext=(3, 0), textcoords="offset points",
                               va="center", ha="left", fontsize=7)
            if ids is not None:
                bar.set_gid(f"bar-{ids[g]}-{r + 1}")
                text.set_gid(f"value-{ids[g]}-{r + 1}")
    ax.set_yticks([g * pitch + (n_runs - 1) / 2 for g in range(n_groups)], list(groups), fontsize=8)
    ax.set_ylim(n_groups * pitch - GROUP_GAP_BARS / 2 - 0.5, -GROUP_GAP_BARS / 2 - 0.5)  # first group on top
    ax.set_xlim(low * 1.15, high * 1.15)  # room right of the longest bar for its value label
    ax.tick_params(axis="y", length=0)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors(r % colors.N)) for r in range(n_runs)]
    labels = [_cut(run) for run in runs]
    if hatched and any(any(row) for row in hatched):
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="gray", hatch="////"))
        labels.append("hatched: partial (over the dimensions that run has)")
    fig.legend(handles, labels, loc="outside upper left", fontsize=8, frameon=False)
    return fig


def grouped_bar_chart(*args, **kwargs) -> bytes:
    """:func:`grouped_bars_figure` as deterministic SVG."""
    fig = grouped_bars_figure(*args, **kwargs)
    try:
        return _svg_bytes(fig)
    finally:
        plt.close(fig)
