"""A comparison report over run directories, as Markdown (for repos) and HTML (to share).

Both open on the answer: a summary with one row per run (the quality metric with its bootstrap interval, the
preference scores, milliseconds per image, NFE and, against a baseline, compare's verdict), runs grouped as
teacher, students and other runs (reports.summary). Then any tables the caller adds, the quality-vs-latency plot
(numbered points, a key beside it), against a baseline the paired comparison of each run (reports.paired: paired
score differences, image distances, the prompts where it loses most with both runs' images), the same (prompt,
seed) samples from every run with the prompt beside each row (video runs' clips play; reports.video), VBench
dimensions where runs have them, and, collapsed, every metric, breakdowns, hardware tables and provenance, with a
warning wherever runs measured a metric differently. The HTML page is self-contained (images, clips and plots
inline) so it can be mailed or archived; its tables sort by a clicked header (a small inline script that reads
nothing from the network and logs nothing) and read the same without it.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from benchkit.core.atomic import write_bytes_atomic
from benchkit.core.errors import BenchkitError, describe_os_error
from benchkit.core.rundir import read_image
from metrics.breakdown import SEED_FIELD
from reports.compare import interval_bounds
from reports.plots import (
    LATENCY_DEFAULT,
    default_latency,
    default_quality,
    grouped_bar_chart,
    quality_latency_plot,
)
from reports.runs import CONTEXT_VARIANT_KEYS, RunSummary, load_runs, metrics_table
from reports.summary import (
    PREFERENCE_METRICS,
    Summary,
    build_summary,
    format_interval,
    format_number,
    format_quantity,
    header_with_unit,
)
from reports.video import (
    CLIP_MAX_BYTES,
    CLIPS_DIR,
    PAGE_MAX_BYTES,
    Clip,
    ClipPlan,
    check_clips_dir,
    copy_clips,
    dimension_chart,
    dimension_metrics,
    plan_clips,
    read_clip_bytes,
)

GRID_MIN_PX = 64  # small (8x8) samples are upscaled to at least this, so they can be seen
GRID_GAP_PX = 4
THUMB_MAX_PX = 256  # large samples are shrunk so the page stays small
PROMPT_CHARS = 40
MISSING = "–"


@dataclass
class Cell:
    """A table cell; ``value`` and ``unit`` (metrics) let the HTML show the number in units people read and sort
    by the number, while ``text`` is what the Markdown shows (the raw unit, as results.json has it)."""

    text: str
    bold: bool = False
    value: float | None = None
    unit: str = ""


class Label(str):
    """A header or caption whose HTML form differs: the HTML writes units into each value (reports.summary), so
    its headers drop them; the Markdown keeps them. Compares and hashes as the Markdown text."""

    shown: str

    def __new__(cls, text: str, shown: str | None = None) -> Label:
        label = super().__new__(cls, text)
        label.shown = text if shown is None else shown
        return label


def _shown(text: str) -> str:
    return text.shown if isinstance(text, Label) else text


Table = tuple[list[str], list[list[Cell]]]
ExtraTable = tuple[str, list[str], list[list[str]]]  # caption, header, rows of formatted strings


@dataclass
class Grid:
    """Samples for the items every run has: ``images[run][item]``."""

    labels: list[str]
    items: list[tuple[str, int, str]]  # prompt_id, seed, prompt
    images: list[list[Image.Image]]
    common: int = 0  # items every run has, shown or not
    clips: ClipPlan | None = None  # video runs: the clip of each cell

    def notes(self) -> list[str]:
        """What the grid leaves out, so that a cap never hides samples silently."""
        notes = []
        if self.common > len(self.items):
            left = self.common - len(self.items)
            notes.append(f"Showing {len(self.items)} of the {self.common} (prompt, seed) items common to all runs "
                         f"(the first, seed-major); {left} more {'is' if left == 1 else 'are'} left out.")
        return notes + (self.clips.notes if self.clips else [])


@dataclass
class VBenchSection:
    """The per-dimension chart (SVG), its values as a table, and what the partial aggregates leave out."""

    svg: bytes
    table: Table
    notes: list[str]


@dataclass
class Content:
    title: str
    metrics: Table
    warnings: list[str]
    plot_svg: bytes | None
    plot_note: str
    provenance: Table
    grid: Grid
    breakdowns: list[tuple[str, Table]]
    hardware: list[tuple[str, Table]]
    figures: list[tuple[str, bytes]]  # extra titled SVGs, e.g. nightly trends
    vbench: VBenchSection | None = None
    metrics_notes: list[str] = dataclasses.field(default_factory=list)
    summary: Summary | None = None
    tables: list[ExtraTable] = dataclasses.field(default_factory=list)
    paired: list[PairedBlock] | None = None  # None without a baseline
    paired_notes: list[str] = dataclasses.field(default_factory=list)
    baseline: str | None = None  # its label


# -- metrics --------------------------------------------------------------------------------
def format_value(value: float, unit: str) -> str:
    """Four significant digits; bytes as MB so memory and size read at a glance."""
    if math.isnan(value):
        return MISSING
    return f"{value / 1e6 if unit == 'bytes' else value:.4g}"


def _header(name: str, unit: str, suffix: str = "") -> Label:
    """'peak_memory (MB)' for the Markdown; 'peak_memory' in the HTML, whose cells carry the unit."""
    shown = "MB" if unit == "bytes" else unit
    return Label((f"{name} ({shown})" if shown else name) + suffix, header_with_unit(name, unit) + suffix)


def best_labels(column: pd.Series, higher_is_better: bool | None) -> set[str]:
    """Runs holding the best value (ties share it); none when direction is unknown or nothing to compare."""
    values = column.dropna()
    if higher_is_better is None or len(values) < 2:
        return set()
    best = values.max() if higher_is_better else values.min()
    return set(values.index[values == best])


def metric_cells(table: pd.DataFrame) -> Table:
    units, directions = table.attrs["unit"], table.attrs["higher_is_better"]
    best = {name: best_labels(table[name], directions[name]) for name in table.columns}
    headers = ["run", *(_header(name, units[name]) for name in table.columns)]
    rows = [
        [Cell(label), *(Cell(format_value(row[name], units[name]), label in best[name], row[name], units[name])
                        for name in table.columns)]
        for label, row in table.iterrows()
    ]
    return headers, rows


def variant_conflicts(runs: list[RunSummary]) -> dict[str, list[str]]:
    """Metric name -> variant keys whose values differ between runs (context keys ignored)."""
    conflicts: dict[str, list[str]] = {}
    names = dict.fromkeys(name for run in runs for name in run.metrics)
    for name in names:
        variants = [run.metrics[name].get("variant") or {} for run in runs if name in run.metrics]
        keys = sorted({k for v in variants for k in v} - CONTEXT_VARIANT_KEYS, key=str)
        differing = [k for k in keys if len({repr(v.get(k)) for v in variants}) > 1]
        if differing:
            conflicts[name] = differing
    return conflicts


def _warnings(runs: list[RunSummary]) -> list[str]:
    return [f"{name} is not comparable between these runs: its variant differs in {', '.join(keys)}."
            for name, keys in variant_conflicts(runs).items()]


# -- provenance -----------------------------------------------------------------------------
def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def seeds_text(seeds: list[int] | None) -> str:
    """'0–7' for a contiguous range, else the first few seeds and the count."""
    if not seeds:
        return MISSING
    s = sorted(seeds)
    if len(s) > 2 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}–{s[-1]}"
    more = f", … ({len(s)} seeds)" if len(s) > 8 else ""
    return ", ".join(map(str, s[:8])) + more


def _provenance_row(run: RunSummary) -> list[Cell]:
    m, r = run.manifest, run.results.get("run") or {}
    prompt_set = m.get("prompt_set") or r.get("prompt_set") or {}
    spec_hash = r.get("spec_hash") or _get(m, "identity", "spec_hash")
    values = [
        run.label,
        m.get("device") or r.get("device"),
        m.get("dtype") or r.get("dtype"),
        m.get("batch_size"),
        _get(m, "hardware", "versions", "torch"),
        f"{prompt_set.get('name', '?')} ({prompt_set.get('count', '?')})" if prompt_set else None,
        seeds_text(m.get("seeds") or r.get("seeds")),
        spec_hash[:12] if spec_hash else None,
    ]
    return [Cell(MISSING if v is None else str(v)) for v in values]


def provenance_cells(runs: list[RunSummary]) -> Table:
    headers = ["run", "device", "dtype", "batch size", "torch", "prompt set (n)", "seeds", "spec hash"]
    return headers, [_provenance_row(run) for run in runs]


# -- breakdowns -----------------------------------------------------------------------------
def breakdown_tables(runs: list[RunSummary]) -> list[tuple[str, Table]]:
    """One table per (field, metric) found in the runs' results: rows = field values, columns = runs.

    The best run per row is bold when the metric's direction is known and several runs have it.
    """
    data: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    meta: dict[str, tuple[str, bool | None]] = {}
    for run in runs:
        for group in run.results.get("breakdowns") or []:
            if group["field"] == SEED_FIELD:  # per-seed values feed compare's noise bands, not tables
                continue
            for m in group["metrics"]:
                rows = data.setdefault((group["field"], m["name"]), {})
                rows.setdefault(group["value"], {})[run.label] = float(m["value"])
                meta[m["name"]] = (m.get("unit", ""), m.get("higher_is_better"))
    tables = []
    for (field, name), rows in sorted(data.items()):
        unit, higher = meta[name]
        headers = [field] + [run.label for run in runs]
        body = []
        for value in sorted(rows):
            column = pd.Series({run.label: rows[value].get(run.label, math.nan) for run in runs})
            best = best_labels(column, higher)
            body.append([Cell(value)] + [Cell(format_value(column[run.label], unit), run.label in best,
                                              column[run.label], unit) for run in runs])
        tables.append((_header(name, unit, f" by {field}"), (headers, body)))
    return tables


# -- hardware -------------------------------------------------------------------------------
HARDWARE_METRICS = ("latency_image_p50", "throughput", "peak_memory")


def hardware_key(variant: dict[str, Any]) -> str:
    """Where a timing was taken: device, its name, dtype and batch size (from the latency variant)."""
    return " · ".join([str(variant.get("device")), str(variant.get("hardware") or "?"), str(variant.get("dtype")),
                       f"batch {variant.get('batch_size')}"])


def hardware_tables(runs: list[RunSummary]) -> list[tuple[str, Table]]:
    """Timing of the same model and recipe (same spec hash) pivoted by where it ran.

    Only models measured in at least two places appear; one table per timing metric, rows =
    models, columns = hardware/dtype/batch combinations.
    """
    cells: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}  # spec -> hardware -> metric -> entry
    names: dict[str, str] = {}
    for run in runs:
        latency = run.metrics.get("latency_image_p50")
        spec = (run.results.get("run") or {}).get("spec_hash")
        if not latency or not spec:
            continue
        names.setdefault(spec, (run.results.get("run") or {}).get("label") or run.label)
        cells.setdefault(spec, {})[hardware_key(latency.get("variant") or {})] = run.metrics
    specs = [s for s in cells if len(cells[s]) > 1]
    if not specs:
        return []
    columns = sorted({hw for s in specs for hw in cells[s]})
    tables = []
    for metric in HARDWARE_METRICS:
        unit = next((cells[s][hw][metric].get("unit", "") for s in specs for hw in cells[s] if metric in cells[s][hw]), "")
        rows = []
        for spec in specs:
            row = [Cell(names[spec])]
            for hw in columns:
                entry = cells[spec].get(hw, {}).get(metric)
                value = float(entry["value"]) if entry else math.nan
                row.append(Cell(format_value(value, unit), value=value, unit=unit))
            rows.append(row)
        tables.append((_header(metric, unit, " by hardware"), (["model"] + columns, rows)))
    return tables


# -- samples --------------------------------------------------------------------------------
def common_items(runs: list[RunSummary]) -> list[tuple[str, int]]:
    """(prompt_id, seed) pairs present in every run: only these compare like with like.

    Ordered seed-major in the first run's prompt order, so a short grid shows many prompts
    (one seed each) rather than many seeds of the first prompt.
    """
    if not runs:
        return []
    shared = set.intersection(*[{(rec["prompt_id"], rec["seed"]) for rec in run.records} for run in runs])
    prompt_order = {pid: i for i, pid in enumerate(dict.fromkeys(rec["prompt_id"] for rec in runs[0].records))}
    return sorted(shared, key=lambda item: (item[1], prompt_order[item[0]], item[0]))


def _thumbnail(run: RunSummary, record: dict[str, Any]) -> Image.Image:
    file = Path(record["file"])
    image = Image.fromarray(read_image(file if file.is_absolute() else run.path / file))
    image.thumbnail((THUMB_MAX_PX, THUMB_MAX_PX))
    return image


def build_grid(runs: list[RunSummary], max_items: int, max_clip_bytes: int = CLIP_MAX_BYTES,
               max_page_bytes: int = PAGE_MAX_BYTES) -> Grid:
    """Thumbnails of the first ``max_items`` common items (a video's first frame) and, for video runs, their clips."""
    common = common_items(runs)
    items = common[:max(max_items, 0)]
    by_key = [{(rec["prompt_id"], rec["seed"]): rec for rec in run.records} for run in runs]
    images = [[_thumbnail(run, recs[item]) for item in items] for run, recs in zip(runs, by_key)]
    prompts = [str(by_key[0][item].get("prompt", "")) for item in items]
    return Grid([run.label for run in runs], [(p, s, t) for (p, s), t in zip(items, prompts)], images, len(common),
                plan_clips(runs, items, max_clip_bytes, max_page_bytes))


def display_size(image: Image.Image) -> tuple[int, int]:
    """Whole-number upscale to at least GRID_MIN_PX, so pixels stay square and sharp."""
    w, h = image.size
    k = max(1, math.ceil(GRID_MIN_PX / max(w, h)))
    return w * k, h * k


def grid_png(grid: Grid) -> Image.Image:
    """All samples in one picture (rows = runs, columns = items), nearest-neighbour upscaled."""
    cell = max(max(display_size(im)) for row in grid.images for im in row)
    n_rows, n_cols = len(grid.images), len(grid.items)
    size = (n_cols * cell + (n_cols + 1) * GRID_GAP_PX, n_rows * cell + (n_rows + 1) * GRID_GAP_PX)
    canvas = Image.new("RGB", size, (221, 221, 221))
    for r, row in enumerate(grid.images):
        for c, image in enumerate(row):
            w, h = display_size(image)
            x = GRID_GAP_PX + c * (cell + GRID_GAP_PX) + (cell - w) // 2
            y = GRID_GAP_PX + r * (cell + GRID_GAP_PX) + (cell - h) // 2
            canvas.paste(image.convert("RGB").resize((w, h), Image.Resampling.NEAREST), (x, y))
    return canvas


def _truncate(text: str, n: int = PROMPT_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _item_caption(item: tuple[str, int, str]) -> str:
    prompt_id, seed, prompt = item
    return f"{_truncate(prompt or prompt_id)} (seed {seed})"


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# -- VBench dimensions ----------------------------------------------------------------------
VBENCH_FILE = "vbench_dimensions.svg"
VBENCH_NOTE = ("Dimensions are VBench's raw scores; Total, Quality and Semantic are its weighted means of the "
               "normalised dimensions (Vchitect/VBench scripts/cal_final_score.py). Higher is better throughout.")


def _same_kind(row, present: list[int]) -> bool:
    """Values that rank against each other: all full aggregates, or partials leaving out the same dimensions."""
    return len({(row.partial[i], tuple(row.missing[i])) for i in present}) <= 1


def vbench_section(runs: list[RunSummary]) -> VBenchSection | None:
    """Grouped bars (one group per dimension, one bar per run) and a table of the same values; None without any."""
    chart = dimension_chart(runs)
    if chart is None:
        return None
    svg = grouped_bar_chart([row.label for row in chart.rows], chart.runs, [row.values for row in chart.rows],
                            [row.partial for row in chart.rows], title="VBench dimensions",
                            xlabel="score (higher is better)", ids=[row.key for row in chart.rows])
    body = []
    for row in chart.rows:
        column = pd.Series(row.values, index=range(len(runs)))
        present = [i for i in range(len(runs)) if not math.isnan(row.values[i])]
        best = best_labels(column, True) if _same_kind(row, present) else set()
        cells = [Cell(format_value(v, "") + (" (partial)" if part else ""), i in best)
                 for i, (v, part) in enumerate(zip(row.values, row.partial))]
        body.append([Cell(row.label), *cells])
    notes = [VBENCH_NOTE]
    for i, run in enumerate(runs):
        partial = [row for row in chart.rows if row.partial[i]]
        if partial:
            missing = list(dict.fromkeys(m for row in partial for m in row.missing[i]))
            notes.append(f"{run.label}: {', '.join(row.label for row in partial)} partial, over the dimensions it has "
                         f"(without {', '.join(missing) or '?'}; VBench's script would count those as 0). "
                         "A partial compares only with a partial that leaves out the same dimensions.")
    return VBenchSection(svg, (["VBench", *chart.runs], body), notes)


# -- plot -----------------------------------------------------------------------------------
def _plot(table: pd.DataFrame) -> tuple[bytes | None, str]:
    latency = default_latency(list(table.columns))
    if latency is None:
        return None, (f"No quality-vs-latency plot: no run has {LATENCY_DEFAULT} "
                      "(runs from `benchkit score` are not timed).")
    quality = default_quality(list(table.columns), latency)
    svg = quality_latency_plot(table, quality, latency) if quality else None
    if svg is None:
        return None, f"No quality-vs-latency plot: no run has both a quality metric and {latency}."
    return svg, f"{quality} against {latency}; the line joins the Pareto front (runs no other run beats on both)."


# -- paired comparison with the baseline ---------------------------------------------------------------------
# A report with a baseline pairs every run with it each time it is written, so it measures no network distance
# (LPIPS, DINOv2 and the toy features are `benchkit compare --paired`'s), and pixel-rmse only while all the images
# it would read stay within this many pixels.
REPORT_DISTANCES = ["pixel-rmse"]
PAIRED_PIXEL_BUDGET = 50_000_000
WORST_SHOWN = 3  # prompts where a run loses most
SEEDS_SHOWN = 2  # images per prompt and side
PAIRED_MIN_PX, PAIRED_MAX_PX = 48, 96


@dataclass
class PairedBlock:
    """One run against the baseline: the paired comparison, or the one line that says why there is none."""

    label: str
    comparison: Any = None  # reports.paired.PairedComparison
    line: str = ""
    worst_metric: str = ""  # whose worst prompts are shown ("" with none)
    worst: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    worst_kind: str = "loses"  # "loses" (a score) or "differs" (a distance, when no score was paired)
    notes: list[str] = dataclasses.field(default_factory=list)


def _shared_prompts(a: RunSummary, b: RunSummary) -> tuple[int, int]:
    keys = {(r["prompt_id"], r["seed"]) for r in a.records} & {(r["prompt_id"], r["seed"]) for r in b.records}
    return len(keys), len({p for p, _ in keys})


def _report_distances(baseline: RunSummary, shared: list[int]) -> tuple[list[str], str]:
    """pixel-rmse, or no distance (and why) when the images all pairs would read are past the pixel budget."""
    first = baseline.records[0]["file"] if baseline.records else None
    try:
        with Image.open(baseline.path / first) as im:
            width, height = im.size
    except (OSError, TypeError):
        return list(REPORT_DISTANCES), ""
    reads = 2 * sum(shared)
    if reads * width * height <= PAIRED_PIXEL_BUDGET:
        return list(REPORT_DISTANCES), ""
    return [], (f"image distances left out: the {reads} images of {width}x{height} the pairs would read are past "
                "the report's budget (benchkit compare --paired measures them)")


def _worst_of(pc: Any, quality: str | None) -> tuple[str, list[dict[str, Any]], str]:
    """The score whose worst prompts are shown: the quality metric, a preference score, else the first; without
    a paired score, the first distance's farthest prompts."""
    order = [quality, *PREFERENCE_METRICS]
    scores = sorted(pc.scores, key=lambda s: order.index(s.name) if s.name in order else len(order))
    if scores:
        return scores[0].name, scores[0].worst_prompts[:WORST_SHOWN], "loses"
    if pc.distances:
        return pc.distances[0].name, pc.distances[0].farthest_prompts[:WORST_SHOWN], "differs"
    return "", [], "loses"


def paired_blocks(baseline: RunSummary, runs: list[RunSummary],
                  quality: str | None) -> tuple[list[PairedBlock], list[str]]:
    """reports.paired.paired_comparison of every other run with the baseline (a line for runs it cannot pair),
    and the section's notes."""
    from reports.paired import paired_comparison  # (scipy's statistics load only for a report with a baseline)

    others = [run for run in runs if run is not baseline]
    shared = {run.label: _shared_prompts(baseline, run) for run in others}
    names, note = _report_distances(baseline, [items for items, prompts in shared.values() if prompts >= 2])
    blocks = []
    for run in others:
        items, prompts = shared[run.label]
        if prompts < 2:
            blocks.append(PairedBlock(run.label, line=(
                f"shares {items} (prompt, seed) item{'' if items == 1 else 's'} with the baseline over {prompts} "
                f"prompt{'' if prompts == 1 else 's'}: a paired comparison needs the same prompts and seeds (at "
                "least 2 prompts)")))
            continue
        try:
            pc = paired_comparison(baseline, run, distances=names)
        except (BenchkitError, OSError) as exc:
            blocks.append(PairedBlock(run.label, line=f"not paired: {exc}"))
            continue
        metric, worst, kind = _worst_of(pc, quality)
        notes = [f"{name} not paired: {why}" for name, why in pc.left_out.items() if not why.startswith("does not apply")]
        blocks.append(PairedBlock(run.label, pc, worst_metric=metric, worst=worst, worst_kind=kind, notes=notes))
    return blocks, [note] if note else []


def _signed(value: float) -> str:
    text = format_number(value)
    return text if text.startswith("-") or text == MISSING else "+" + text


def paired_lines(block: PairedBlock) -> list[tuple[str, str, str]]:
    """Each paired score and distance as one line: (text before the verdict, the verdict, text after it)."""
    pc = block.comparison
    lines = []
    for s in pc.scores:
        rate_low, rate_high = s.win_rate_interval
        delta = format_interval(s.delta, interval_bounds(s.interval))
        if not delta.startswith("-"):
            delta = "+" + delta
        lines.append((f"{s.name} ({'higher' if s.higher_is_better else 'lower'} is better): difference {delta}, ",
                      s.verdict, f"; wins / losses / ties over the prompts {s.wins} / {s.losses} / {s.ties} (win "
                      f"rate {s.win_rate:.0%} [{rate_low:.0%}, {rate_high:.0%}], sign test p = {s.sign_test_p:.2g})"))
    for d in pc.distances:
        lines.append((f"{d.name} from the baseline's image of the same prompt and seed: "
                      f"{format_interval(d.mean, interval_bounds(d.interval))} {d.unit}", "", ""))
    if not lines:
        lines.append(("no per-image score both runs kept and no image distance to pair", "", ""))
    return lines


def _paired_header(block: PairedBlock) -> str:
    pc = block.comparison
    return f"{pc.items} (prompt, seed) pairs over {pc.prompts} prompts"


# -- Markdown -------------------------------------------------------------------------------
def _md_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    headers, rows = table
    lines = ["| " + " | ".join(map(_md_text, headers)) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [f"**{_md_text(c.text)}**" if c.bold else _md_text(c.text) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _summary_md(summary: Summary) -> list[str]:
    headers, rows = summary.table()
    cells = [[Cell(c.text, c.bold) for c in row] for row in rows]
    return _md_table((headers, cells)) + [""] + [f"{_md_text(note)}\n" for note in summary.notes]


def _paired_md(c: Content) -> list[str]:
    lines = ["## Against the baseline, pair by pair", "",
             f"Each run's images against {_md_text(c.baseline or '')}'s of the same prompt and seed "
             "(reports.paired; intervals: paired bootstrap).", ""]
    lines += [f"{_md_text(note)}\n" for note in c.paired_notes]
    for block in c.paired or []:
        lines.append(f"### {_md_text(block.label)}")
        lines.append("")
        if block.comparison is None:
            lines += [_md_text(block.line), ""]
            continue
        lines += [f"{_paired_header(block)}:", ""] + [f"- {_md_text(''.join(parts))}" for parts in paired_lines(block)]
        if block.worst:
            what = "loses most on" if block.worst_kind == "loses" else "differs most from the baseline on"
            key = "delta" if block.worst_kind == "loses" else "distance"
            worst = "; ".join(f"\"{_md_text(w['prompt'] or w['prompt_id'])}\" "
                              f"({_signed(w[key]) if key == 'delta' else format_number(w[key])})" for w in block.worst)
            lines.append(f"- {what} ({block.worst_metric}): {worst}")
        lines += [f"- {_md_text(note)}" for note in block.notes] + [""]
    return lines


def to_markdown(c: Content, plot_file: str | None, grid_file: str | None) -> str:
    lines = [f"# {c.title}", ""]
    lines += [f"**Warning:** {w}" for w in c.warnings] + ([""] if c.warnings else [])
    if c.summary is not None:
        lines += ["## Summary", ""] + _summary_md(c.summary)
    for caption, header, rows in c.tables:
        lines += [f"## {_md_text(caption)}", ""] + _md_table((header, [[Cell(x) for x in row] for row in rows])) + [""]
    lines += ["## Metrics", ""]
    lines += _md_table(c.metrics) + ["", "Bold: best value per metric.", ""]
    lines += [f"{_md_text(note)}\n" for note in c.metrics_notes] + ["## Quality vs latency", ""]
    lines += [f"![quality vs latency]({plot_file})", ""] if plot_file else []
    lines += [c.plot_note, ""]
    if c.paired:
        lines += _paired_md(c)
    if c.vbench:
        lines += ["## VBench dimensions", "", f"![VBench dimensions]({VBENCH_FILE})", ""]
        lines += _md_table(c.vbench.table) + [""] + [f"{_md_text(note)}\n" for note in c.vbench.notes]
    for i, (caption, _) in enumerate(c.figures):
        lines += [f"## {_md_text(caption)}", "", f"![{_md_text(caption)}](figure{i + 1}.svg)", ""]
    if c.hardware:
        lines += ["## Hardware", ""]
        for caption, table in c.hardware:
            lines += [f"### {_md_text(caption)}", ""] + _md_table(table) + [""]
    if c.breakdowns:
        lines += ["## Breakdown", ""]
        for caption, table in c.breakdowns:
            lines += [f"### {_md_text(caption)}", ""] + _md_table(table) + [""]
    lines += ["## Provenance", ""] + _md_table(c.provenance) + ["", "## Samples", ""]
    if grid_file:
        lines += [f"{_md_text(note)}\n" for note in c.grid.notes()]
        if c.grid.clips:
            lines += ["Video runs show each clip's first frame here; the clips are linked below.", ""]
        lines += [f"![samples]({grid_file})", "", "Rows, top to bottom:", ""]
        lines += [f"{i}. {_md_text(label)}" for i, label in enumerate(c.grid.labels, 1)]
        lines += ["", "Columns, left to right:", ""]
        lines += [f"{i}. {_md_text(_item_caption(item))}" for i, item in enumerate(c.grid.items, 1)]
        if c.grid.clips:
            lines += ["", "### Clips", ""] + _md_table(_clip_links(c.grid))
    else:
        lines.append("No (prompt, seed) items are common to all runs.")
    return "\n".join(lines) + "\n"


def _clip_links(grid: Grid) -> Table:
    """Rows = runs, columns = items, each cell a link to the clip's copy beside the report (– for image runs)."""
    headers = ["run", *(_item_caption(item) for item in grid.items)]
    rows = [[Cell(label), *(Cell(f"[{Path(clip.name).suffix[1:]}]({CLIPS_DIR}/{clip.name})" if clip else MISSING)
                            for clip in clips)]
            for label, clips in zip(grid.labels, grid.clips.clips)]
    return headers, rows


# -- HTML -----------------------------------------------------------------------------------
CSS = """
body { font-family: system-ui, sans-serif; margin: 1.2em 2em; color: #222; }
h1 { font-size: 1.5em; margin: 0 0 0.3em; }
h2 { font-size: 1.2em; margin-top: 1.6em; }
p.lead { margin: 0 0 0.6em; color: #444; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #f3f3f3; }
tbody th { font-weight: normal; }
caption { text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.summary { font-size: 0.92em; }
table.summary tbody + tbody { border-top: 3px solid #999; }
table.sortable thead th { cursor: pointer; }
table.sortable thead th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 0.7em; }
table.sortable thead th[aria-sort=descending]::after { content: " \\25BC"; font-size: 0.7em; }
.verdict-better { color: #126b12; font-weight: 600; }
.verdict-worse { color: #b00020; font-weight: 600; }
.verdict-not-comparable { color: #8a6d00; }
.note { color: #555; font-size: 0.88em; margin: 0.2em 0; }
.warning { background: #fff3cd; border-left: 4px solid #e0a800; padding: 6px 10px; }
details { margin: 0.5em 0; }
details > summary { cursor: pointer; font-weight: 600; }
figure { margin: 0.5em 0; }
figure svg { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; }
.grid th { font-weight: normal; font-size: 0.85em; }
.grid thead th { max-width: 8em; }
.grid th.prompt { max-width: 18em; }
.grid img, .grid video, .pair img { image-rendering: pixelated; }
.grid img, .grid video { min-width: 64px; min-height: 64px; }
.grid small, .pair small { display: block; max-width: 16em; color: #666; }
.pair { margin: 0.4em 0 1.2em; }
.pair h3 { font-size: 1em; margin: 0.8em 0 0.2em; }
.pair ul { margin: 0.2em 0; padding-left: 1.4em; }
.pair td.images img { margin-right: 2px; }
"""

# Sorts a table by a clicked header (numbers by value: a cell's data-sort, else its leading number; text in
# natural order; empty cells last either way), each <tbody> on its own so groups stay together. Logs nothing.
SORT_SCRIPT = """(function () {
  "use strict";
  var EMPTY = ["", "\\u2013", "-", "n/a"];
  function key(cell) {
    if (!cell) return {empty: true};
    var raw = cell.getAttribute("data-sort");
    var text = (raw === null ? cell.textContent : raw).trim();
    if (EMPTY.indexOf(text) >= 0) return {empty: true};
    var m = /^[-+]?(\\d+\\.?\\d*|\\.\\d+)(e[-+]?\\d+)?/i.exec(text.replace(/,/g, ""));
    return {empty: false, num: m ? parseFloat(m[0]) : null, text: text};
  }
  function sortBy(table, col, th) {
    var up = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var rows = Array.prototype.slice.call(body.rows);
      var keys = rows.map(function (row) { return key(row.cells[col]); });
      var numeric = keys.every(function (k) { return k.empty || k.num !== null; });
      var order = rows.map(function (row, i) { return i; });
      order.sort(function (i, j) {
        var a = keys[i], b = keys[j];
        if (a.empty || b.empty) return a.empty === b.empty ? i - j : (a.empty ? 1 : -1);
        var c = numeric ? a.num - b.num : a.text.localeCompare(b.text, undefined, {numeric: true});
        return (up ? c : -c) || i - j;
      });
      order.forEach(function (i) { body.appendChild(rows[i]); });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.title = "sort by this column";
      th.addEventListener("click", function () { sortBy(table, col, th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sortBy(table, col, th); });
    });
  });
})();"""

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?(\s.*)?", re.IGNORECASE)


def _cell_html(c: Cell, numeric: bool) -> str:
    """A data cell; a metric's value in units people read, its raw number kept for sorting."""
    if c.value is not None and not math.isnan(c.value):
        text, sort = format_quantity(c.value, c.unit), f' data-sort="{c.value!r}"'
    else:
        text, sort = c.text, ""
    shown = f"<strong>{html.escape(text)}</strong>" if c.bold else html.escape(text)
    css = ' class="num"' if numeric else ""
    return f"<td{css}{sort}>{shown}</td>"


def _html_table(table: Table, numeric: bool = False, sortable: bool = True, css: str = "") -> str:
    headers, rows = table
    head = "".join(f'<th scope="col">{html.escape(_shown(h))}</th>' for h in headers)
    body = []
    for row in rows:
        cells = [f'<th scope="row">{html.escape(row[0].text)}</th>']
        cells += [_cell_html(c, numeric) for c in row[1:]]
        body.append("<tr>" + "".join(cells) + "</tr>")
    classes = " ".join(x for x in (css, "sortable" if sortable else "") if x)
    attr = f' class="{classes}"' if classes else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary_html(summary: Summary) -> str:
    """The summary table: one <tbody> per group (the script sorts within each), numbers sortable by value."""
    columns = [c for c in summary.columns if c.key != "group" or summary.show_groups()]
    head = "".join(f'<th scope="col">{html.escape(c.header)}</th>' for c in columns)
    bodies = []
    for _, rows in summary.groups():
        trs = []
        for row in rows:
            cells = []
            for column in columns:
                cell = row.cells.get(column.key)
                text = cell.text if cell else MISSING
                shown = f"<strong>{html.escape(text)}</strong>" if cell and cell.bold else html.escape(text)
                if column.key == "run":
                    cells.append(f'<th scope="row">{shown}</th>')
                    continue
                attrs = ' class="num"' if column.numeric else ""
                if cell and cell.css:
                    attrs = f' class="{cell.css}"'
                if cell and cell.sort is not None:
                    attrs += f' data-sort="{cell.sort!r}"'
                cells.append(f"<td{attrs}>{shown}</td>")
            trs.append("<tr>" + "".join(cells) + "</tr>")
        bodies.append("<tbody>" + "".join(trs) + "</tbody>")
    return f'<table class="summary sortable" id="summary"><thead><tr>{head}</tr></thead>{"".join(bodies)}</table>'


def _extra_table_html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in header)
    body = []
    for row in rows:
        cells = [f'<th scope="row">{html.escape(row[0])}</th>'] if row else []
        cells += [f'<td class="num">{html.escape(x)}</td>' if _NUMBER.fullmatch(x.strip()) else f"<td>{html.escape(x)}</td>"
                  for x in row[1:]]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _html_clip(clip: Clip, w: int, h: int, alt: str) -> str:
    """The clip inline: a muted looping <video> (browsers autoplay only muted media) or an animated <img>."""
    data = f"data:{clip.mime};base64,{base64.b64encode(read_clip_bytes(clip)).decode('ascii')}"
    if clip.element == "video":
        return (f'<video src="{data}" width="{w}" height="{h}" autoplay loop muted playsinline title="{alt}" '
                f'aria-label="{alt}"></video>')
    return f'<img src="{data}" width="{w}" height="{h}" alt="{alt}">'


def _grid_cell(label: str, item: tuple[str, int, str], image: Image.Image, clip: Clip | None) -> str:
    w, h = display_size(image)
    alt = html.escape(f"{label}: {item[0]} seed {item[1]}")
    if clip is not None and clip.inline:
        return f"<td>{_html_clip(clip, w, h, alt)}</td>"
    data = base64.b64encode(_png_bytes(image)).decode("ascii")
    still = f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" alt="{alt}">'
    if clip is not None:  # the first frame stands in; say why and where the clip is
        name = f"{CLIPS_DIR}/{clip.name}"
        still += (f"<small>first frame: clip not inlined ({html.escape(clip.left_out)}); "
                  f'<a href="{html.escape(name)}">{html.escape(name)}</a> beside this page</small>')
    return f"<td>{still}</td>"


def _html_grid(grid: Grid) -> str:
    """One row per (prompt, seed) item with its prompt beside it, one column per run."""
    head = '<th scope="col">prompt</th>' + "".join(f'<th scope="col">{html.escape(label)}</th>' for label in grid.labels)
    clip_rows = grid.clips.clips if grid.clips else [[None] * len(grid.items) for _ in grid.labels]
    rows = []
    for i, item in enumerate(grid.items):
        prompt_id, seed, prompt = item
        caption = (f'<th scope="row" class="prompt">{html.escape(prompt or prompt_id)}'
                   f"<small>{html.escape(prompt_id)} · seed {seed}</small></th>")
        cells = [_grid_cell(label, item, images[i], clips[i])
                 for label, images, clips in zip(grid.labels, grid.images, clip_rows)]
        rows.append(f"<tr>{caption}{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table class="grid"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


class _Thumbs:
    """Small data-URI thumbnails of run images, each encoded once per page."""

    def __init__(self):
        self._done: dict[str, str] = {}

    def img(self, path: str, alt: str) -> str:
        if path not in self._done:
            try:
                image = Image.fromarray(read_image(Path(path)))
            except (OSError, BenchkitError, ValueError):
                self._done[path] = ""
            else:
                image.thumbnail((PAIRED_MAX_PX, PAIRED_MAX_PX))
                k = max(1, math.ceil(PAIRED_MIN_PX / max(image.size)))
                w, h = image.size[0] * k, image.size[1] * k
                data = base64.b64encode(_png_bytes(image)).decode("ascii")
                self._done[path] = f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}"'
        found = self._done[path]
        return f'{found} alt="{html.escape(alt)}">' if found else html.escape(f"({Path(path).name} unreadable)")


def _seed_of(run_records: dict[str, int], path: str) -> str:
    seed = run_records.get(str(Path(path)))
    return "?" if seed is None else str(seed)


def _paired_html(c: Content, runs: dict[str, RunSummary]) -> str:
    thumbs = _Thumbs()
    seeds = {label: {str(run.path / r["file"]): r["seed"] for r in run.records} for label, run in runs.items()}
    base_label = c.baseline or ""
    parts = [f'<p class="note">Each run\'s images against {html.escape(base_label)}\'s of the same prompt and seed '
             "(reports.paired): score differences with paired bootstrap intervals, per-prompt wins with the sign "
             "test, distances between the two images, and the prompts where the run loses most.</p>"]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in c.paired_notes]
    for block in c.paired or []:
        parts.append(f'<div class="pair"><h3>{html.escape(block.label)}</h3>')
        if block.comparison is None:
            parts.append(f'<p class="note">{html.escape(block.line)}</p></div>')
            continue
        items = "".join(f'<li>{html.escape(before)}<span class="verdict-{verdict.replace(" ", "-")}">'
                        f"{html.escape(verdict)}</span>{html.escape(after)}</li>"
                        for before, verdict, after in paired_lines(block))
        parts.append(f'<p class="note">{html.escape(_paired_header(block))}</p><ul>{items}</ul>')
        if block.worst:
            key = "delta" if block.worst_kind == "loses" else "distance"
            what = "Where it loses most" if block.worst_kind == "loses" else "Where it differs most from the baseline"
            rows = []
            for w in block.worst:
                cells = []
                for role, label, files in (("baseline", base_label, w["baseline_images"]),
                                           ("this run", block.label, w["candidate_images"])):
                    imgs = "".join(thumbs.img(f, f"{role} ({label}): {w['prompt_id']} seed {_seed_of(seeds.get(label, {}), f)}")
                                   for f in files[:SEEDS_SHOWN])
                    cells.append(f'<td class="images">{imgs}</td>')
                rows.append(f'<tr><th scope="row">{html.escape(w["prompt"] or w["prompt_id"])}'
                            f'<small>{html.escape(w["prompt_id"])}</small></th>'
                            f'<td class="num">{html.escape(_signed(w[key]) if key == "delta" else format_number(w[key]))}'
                            f'</td>{"".join(cells)}</tr>')
            parts.append(f'<p class="note">{what} ({html.escape(block.worst_metric)}, seed means; first {SEEDS_SHOWN} '
                         "seeds shown):</p>")
            parts.append(f'<table class="losses"><thead><tr><th>prompt</th>'
                         f"<th>{'difference' if key == 'delta' else 'distance'}</th><th>baseline</th><th>this run</th>"
                         f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')
        parts += [f'<p class="note">{html.escape(note)}</p>' for note in block.notes]
        parts.append("</div>")
    return "".join(parts)


def _inline_svg(svg: bytes) -> str:
    """The <svg> element alone: the XML prolog and DOCTYPE (an external DTD) do not belong in HTML."""
    text = svg.decode("utf-8")
    return text[text.index("<svg"):]


def _lead(c: Content, n_runs: int) -> str:
    parts = [f"{n_runs} run{'' if n_runs == 1 else 's'}"]
    if c.summary is not None and c.summary.quality:
        parts.append(f"quality: {c.summary.quality}")
    if c.baseline:
        parts.append(f"baseline: {c.baseline}")
    return " · ".join(parts)


def _details(summary: str, body: list[str]) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>\n" + "\n".join(body) + "\n</details>"


def to_html(c: Content, runs: list[RunSummary] | None = None) -> str:
    runs = runs or []
    parts = [f"<h1>{html.escape(c.title)}</h1>", f'<p class="lead">{html.escape(_lead(c, len(c.metrics[1])))}</p>']
    parts += [f'<p class="warning">Warning: {html.escape(w)}</p>' for w in c.warnings]
    if c.summary is not None:
        parts.append(_summary_html(c.summary))
        parts += [f'<p class="note">{html.escape(note)}</p>' for note in c.summary.notes]
    for caption, header, rows in c.tables:
        parts += [f"<h2>{html.escape(caption)}</h2>", _extra_table_html(header, rows)]
    parts.append("<h2>Quality vs latency</h2>")
    parts += [f"<figure>{_inline_svg(c.plot_svg)}</figure>"] if c.plot_svg else []
    parts.append(f'<p class="note">{html.escape(c.plot_note)}</p>')
    if c.paired:
        parts += ["<h2>Against the baseline, pair by pair</h2>", _paired_html(c, {run.label: run for run in runs})]
    parts.append("<h2>Samples</h2>")
    parts += [f"<p>{html.escape(note)}</p>" for note in (c.grid.notes() if c.grid.items else [])]
    parts.append(_html_grid(c.grid) if c.grid.items else "<p>No (prompt, seed) items are common to all runs.</p>")
    if c.vbench:
        parts += ["<h2>VBench dimensions</h2>", f"<figure>{_inline_svg(c.vbench.svg)}</figure>",
                  _html_table(c.vbench.table, numeric=True)]
        parts += [f"<p>{html.escape(note)}</p>" for note in c.vbench.notes]
    for caption, svg in c.figures:
        parts += [f"<h2>{html.escape(caption)}</h2>", f"<figure>{_inline_svg(svg)}</figure>"]
    parts.append("<h2>Details</h2>")
    metrics = [_html_table(c.metrics, numeric=True), '<p class="note">Bold: best value per metric.</p>']
    metrics += [f'<p class="note">{html.escape(note)}</p>' for note in c.metrics_notes]
    parts.append(_details(f"All metrics ({len(c.metrics[0]) - 1})", metrics))
    if c.breakdowns:
        parts.append(_details(f"Breakdowns ({len(c.breakdowns)} tables)", [
            f"<h3>{html.escape(_shown(caption))}</h3>\n{_html_table(table, numeric=True)}" for caption, table in c.breakdowns]))
    if c.hardware:
        parts.append(_details("Hardware", [
            f"<h3>{html.escape(_shown(caption))}</h3>\n{_html_table(table, numeric=True)}" for caption, table in c.hardware]))
    parts.append(_details("Provenance", [_html_table(c.provenance)]))
    head = f'<meta charset="utf-8">\n{GENERATOR_META}\n<title>{html.escape(c.title)}</title>\n<style>{CSS}</style>'
    body = "\n".join(parts) + f"\n<script>\n{SORT_SCRIPT}\n</script>"
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n'


# -- entry point ----------------------------------------------------------------------------
def _write(path: Path, data: str | bytes) -> None:
    write_bytes_atomic(path, data if isinstance(data, bytes) else data.encode("utf-8"))


GENERATOR_META = '<meta name="generator" content="benchkit report">'
# The files a report folder holds; a folder holding anything else is not written into.
_REPORT_FILE = re.compile(r"report\.(md|html)|quality_latency\.svg|vbench_dimensions\.svg|grid\.png|figure\d+\.svg|"
                          r"\..+\.tmp")


def check_report_dir(out_dir: Path) -> None:
    """A report goes into a new or empty folder, or replaces an earlier benchkit report; never other files."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise BenchkitError(f"--out {out_dir} is a file; give a folder for the report")
    others = sorted(p.name for p in out_dir.iterdir() if not _REPORT_FILE.fullmatch(p.name) and p.name != CLIPS_DIR)
    clips = out_dir / CLIPS_DIR  # an earlier report's copies of clips, and nothing else
    if clips.exists():
        others += [f"{CLIPS_DIR}/{name}" for name in check_clips_dir(clips)] if clips.is_dir() else [CLIPS_DIR]
    html_file = out_dir / "report.html"
    foreign_html = html_file.is_file() and GENERATOR_META not in html_file.read_text(encoding="utf-8", errors="replace")
    if others or foreign_html:
        what = ", ".join(others[:3]) if others else "a report.html benchkit did not write"
        raise BenchkitError(f"--out {out_dir} holds {what}; a report only replaces an earlier benchkit report: "
                            "choose an empty or new folder")


def _with_baseline(run_paths: list[Path], baseline: Path | None) -> list[Path]:
    """The baseline first: moved there when it is one of the runs, added when it is not."""
    paths = [Path(p) for p in run_paths]
    if baseline is None:
        return paths
    base = Path(baseline)
    target = base.resolve()
    return [base] + [p for p in paths if p.resolve() != target]


def _check_tables(tables: list[ExtraTable]) -> list[ExtraTable]:
    for caption, header, rows in tables:
        for i, row in enumerate(rows, 1):
            if len(row) != len(header):
                raise BenchkitError(f"table '{caption}': row {i} has {len(row)} cells for {len(header)} columns")
    return [(str(caption), [str(h) for h in header], [[str(x) for x in row] for row in rows])
            for caption, header, rows in tables]


def write_report(run_paths: list[Path], out_dir: Path, title: str = "benchkit report",
                 max_grid_items: int = 8, figures: list[tuple[str, bytes]] | None = None,
                 max_clip_bytes: int = CLIP_MAX_BYTES, max_page_clip_bytes: int = PAGE_MAX_BYTES,
                 baseline: Path | None = None,
                 tables: list[ExtraTable] | None = None) -> dict[str, Path]:
    """Write out_dir/report.md (with quality_latency.svg, vbench_dimensions.svg, grid.png and clips/ beside it)
    and out_dir/report.html; the page inlines clips up to ``max_clip_bytes`` each and ``max_page_clip_bytes`` in all.

    ``baseline``: one of the runs, or another run folder (reported first): the summary gives each run's verdict
    against it and the report pairs every run with it. ``tables``: (caption, header, rows of formatted strings),
    shown right after the summary."""
    if not run_paths and baseline is None:
        raise BenchkitError("no runs to report on: pass one or more run directories")
    out_dir = Path(out_dir)
    check_report_dir(out_dir)
    extra = _check_tables(tables or [])
    loaded = load_runs(_with_baseline(list(run_paths), baseline))
    base_run = loaded[0] if baseline is not None else None
    summary = build_summary(loaded, base_run)
    runs = [row.run for row in summary.rows]  # the summary's order (groups) throughout the report
    paired, paired_notes = paired_blocks(base_run, runs, summary.quality) if base_run is not None else (None, [])
    table = metrics_table(runs)
    svg, note = _plot(table)
    vbench = vbench_section(runs)
    shown, notes = table, []
    if vbench:  # 32 columns of dimensions (raw and normalised) would bury the other metrics
        shown = table.drop(columns=[name for name in table.columns if name in dimension_metrics()])
        shown.attrs = table.attrs
        notes.append("The 16 VBench dimensions have their own section below (raw scores; results.json also "
                     "holds each one normalised).")
    content = Content(title, metric_cells(shown), _warnings(runs), svg, note, provenance_cells(runs),
                      build_grid(runs, max_grid_items, max_clip_bytes, max_page_clip_bytes), breakdown_tables(runs),
                      hardware_tables(runs), figures or [], vbench, notes, summary, extra,
                      paired, paired_notes, base_run.label if base_run is not None else None)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise describe_os_error(exc, out_dir, "creating") from None
    plot_file = grid_file = None
    if svg:
        plot_file = "quality_latency.svg"
        _write(out_dir / plot_file, svg)
    if content.vbench:
        _write(out_dir / VBENCH_FILE, content.vbench.svg)
    for i, (_, figure) in enumerate(content.figures):
        _write(out_dir / f"figure{i + 1}.svg", figure)
    copy_clips(content.grid.clips, out_dir)
    if content.grid.items:
        grid_file = "grid.png"
        _write(out_dir / grid_file, _png_bytes(grid_png(content.grid)))
    paths = {"markdown": out_dir / "report.md", "html": out_dir / "report.html"}
    _write(paths["markdown"], to_markdown(content, plot_file, grid_file))
    _write(paths["html"], to_html(content, runs))
    return paths
