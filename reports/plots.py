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
from matplotlib.font_manager import FontProperties  # noqa: E402

from reports.compare import SAMPLE_FREE_METRICS  # noqa: E402

QUALITY_PREFERENCE = ["fid", "toy-fid", "clip-score", "toy-alignment", "vbench-total"]
LATENCY_DEFAULT = "latency_image_p50"
SVG_RC = {"svg.hashsalt": "benchkit", "svg.fonttype": "none"}
NO_SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def default_latency(columns: Sequence[str]) -> str | None:
    return LATENCY_DEFAULT if LATENCY_DEFAULT in columns else None


def default_quality(columns: Sequence[str], latency: str | None = None) -> str | None:
    """The preferred quality metric present, else the first metric of the images (not the latency one, nor a
    timing or model metric such as throughput or NFE, which say what a run costs, not how good it is)."""

    present = [c for c in QUALITY_PREFERENCE if c in columns]
    rest = [c for c in columns if c != latency and c not in SAMPLE_FREE_METRICS and not c.startswith("latency_")]
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


# The numbers that mark the points: each is tried at these directions around its point (right first), on rings
# of these radii (points); past the first ring a thin leader line joins it to its point. A place is taken when the
# number's box (padded for the browser's font, which may be wider than matplotlib's) is clear of every point's
# marker, every number placed before it and the axes' edges.
NUMBER_POINTS = 9
KEY_POINTS = 8
_DIRECTIONS = ((1, 0.6), (1, -0.6), (-1, 0.6), (-1, -0.6), (0, 1), (0, -1), (1, 0), (-1, 0))
_RINGS = (5.0, 12.0, 20.0, 30.0, 44.0, 60.0)
_PAD = 2.0  # points around a number's box
_MARKER_RADIUS, _FRONT_RADIUS = 3.5, 6.5  # scatter dot, Pareto front's open circle
KEY_CHARS = 52  # run labels longer than this are cut in the key (tables carry them whole)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in points


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def place_numbers(points: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]],
                  radii: Sequence[float], bounds: Box) -> list[tuple[float, float, str, str, bool]]:
    """Deterministic greedy placement: for each point in order, the first (ring, direction) whose box is clear.

    ``points`` and ``bounds`` in points (display units / dpi * 72), ``sizes`` the (width, height) of each number,
    ``radii`` each point's marker radius. Returns each number's offset from its point and its alignment
    (dx, dy, ha, va) and whether it is off the first ring (then a leader line joins it to its point); when no
    place is clear, the one overlapping least.
    """
    markers = [(x - r, y - r, x + r, y + r) for (x, y), r in zip(points, radii)]
    placed: list[Box] = []
    out = []
    for (x, y), (w, h), r in zip(points, sizes, radii):
        best, best_cost = None, math.inf
        for ring in _RINGS:
            for ux, uy in _DIRECTIONS:
                dx, dy = ux * (ring + r), uy * (ring + r)
                ha = "left" if ux > 0 else "right" if ux < 0 else "center"
                va = "bottom" if uy > 0 else "top" if uy < 0 else "center"
                x0 = x + dx - (0 if ha == "left" else w if ha == "right" else w / 2)
                y0 = y + dy - (0 if va == "bottom" else h if va == "top" else h / 2)
                box = (x0 - _PAD, y0 - _PAD, x0 + w + _PAD, y0 + h + _PAD)
                outside = max(bounds[0] - box[0], 0) + max(box[2] - bounds[2], 0) + \
                    max(bounds[1] - box[1], 0) + max(box[3] - bounds[3], 0)
                cost = 1e6 * outside + 100 * sum(_overlap(box, b) for b in placed) + \
                    sum(_overlap(box, m) for m in markers)
                if cost < best_cost:
                    best, best_cost = (dx, dy, ha, va, ring != _RINGS[0], box), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        *place, box = best
        placed.append(box)
        out.append(tuple(place))
    return out


def quality_latency_plot(df: pd.DataFrame, quality: str, latency: str,
                         higher_is_better: Mapping[str, bool | None] | None = None) -> bytes | None:
    """SVG of quality against latency per run, or None when either metric is missing.

    Directions come from ``higher_is_better`` where given, else from the table's attrs
    (set by :func:`reports.runs.metrics_table`). Without a quality direction there is no
    Pareto front to draw. Points carry numbers placed clear of each other (:func:`place_numbers`; the
    SVG groups them as ``point-label-<n>``) and a key beside the axes names each run: full run labels are
    long and would overlap where few-step runs crowd together.
    """
    if quality not in df.columns or latency not in df.columns:
        return None
    data = df[[latency, quality]].dropna()
    if data.empty:
        return None
    directions = {**df.attrs.get("higher_is_better", {}), **(higher_is_better or {})}
    units = df.attrs.get("unit", {})
    better_up = directions.get(quality)
    n = len(data)
    height = max(5.0, 1.4 + 0.16 * n)  # the key's lines and the legend below them fit beside the axes
    fig, ax = plt.subplots(figsize=(10, height))
    try:
        fig.subplots_adjust(left=0.08, right=0.58, bottom=0.6 / height, top=1 - 0.5 / height)
        ax.scatter(data[latency], data[quality], color="tab:blue", zorder=3, s=36)
        positive = data[latency][data[latency] > 0]
        if len(positive) == len(data) and positive.max() > 20 * positive.min():
            ax.set_xscale("log")  # latencies spanning orders of magnitude (1 to 50 steps)
        front: list[int] = []
        handles = []
        if better_up is not None:
            points = list(zip(data[latency], data[quality]))
            front = pareto_front(points, better_up)
            (line,) = ax.plot(*zip(*[points[i] for i in front]), color="tab:orange", marker="o",
                              markerfacecolor="none", markersize=12, label="Pareto front", zorder=2)
            handles.append(line)
        ax.margins(0.08, 0.12)
        ax.autoscale_view()
        ax.set_xlim(ax.get_xlim())
        ax.set_ylim(ax.get_ylim())  # fixed before the numbers are placed in display space
        renderer = fig.canvas.get_renderer()
        to_points = 72.0 / fig.dpi
        frame = ax.get_window_extent(renderer)
        bounds = (frame.x0 * to_points, frame.y0 * to_points, frame.x1 * to_points, frame.y1 * to_points)
        xy = [tuple(v * to_points for v in ax.transData.transform((x, y)))
              for x, y in zip(data[latency], data[quality])]
        font = FontProperties(size=NUMBER_POINTS)
        sizes = []
        for number in range(1, n + 1):
            w, _, _ = renderer.get_text_width_height_descent(str(number), font, ismath=False)
            sizes.append((w * to_points * 1.25 + 1.0, NUMBER_POINTS * 1.25))  # the browser's box is the font's em
        radii = [_FRONT_RADIUS if i in front else _MARKER_RADIUS for i in range(n)]
        key = []
        for number, ((label, (x, y)), (dx, dy, ha, va, leader)) in enumerate(
                zip(data.iterrows(), place_numbers(xy, sizes, radii, bounds)), 1):
            text = ax.annotate(str(number), (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                               fontsize=NUMBER_POINTS, zorder=4,
                               arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 1, "shrinkB": 3}
                               if leader else None)
            text.set_gid(f"point-label-{number}")
            # no-break spaces: an SVG viewer collapses runs of ordinary spaces, and the numbers line up
            key.append(str(number).rjust(len(str(n)), "\u00a0") + "\u00a0\u00a0" + _cut(str(label), KEY_CHARS))
        fig.text(0.6, 1 - 0.5 / height, "\n".join(key), fontsize=KEY_POINTS, va="top", family="monospace")
        if handles:
            fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.6, 0.1 / height), fontsize=KEY_POINTS,
                       frameon=False)
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
