"""A comparison report over run directories, as Markdown (for repos) and HTML (to share).

Both formats carry the same content: metrics with the best value per metric in bold, a
warning wherever runs measured a metric differently, the quality-vs-latency plot, where
each number came from, and the same (prompt, seed) samples from every run side by side
(video runs' clips play in the HTML page; reports.video). Runs with VBench dimensions get a
chart and table of them. The HTML page is self-contained (images, clips and plots inline) so
it can be mailed or archived.
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
from reports.plots import (
    LATENCY_DEFAULT,
    default_latency,
    default_quality,
    grouped_bar_chart,
    quality_latency_plot,
)
from reports.runs import RunSummary, load_runs, metrics_table
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

# Variant keys that describe where a number was measured (shown in the provenance table),
# not how: runs that differ only in these are still comparable.
CONTEXT_VARIANT_KEYS = frozenset({"device", "dtype", "batch_size", "hardware", "torch", "sync",
                                  "warmup_batches", "reference_stats_key"})
GRID_MIN_PX = 64  # small (8x8) samples are upscaled to at least this, so they can be seen
GRID_GAP_PX = 4
THUMB_MAX_PX = 256  # large samples are shrunk so the page stays small
PROMPT_CHARS = 40
MISSING = "–"


@dataclass
class Cell:
    text: str
    bold: bool = False


Table = tuple[list[str], list[list[Cell]]]


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


# -- metrics --------------------------------------------------------------------------------
def format_value(value: float, unit: str) -> str:
    """Four significant digits; bytes as MB so memory and size read at a glance."""
    if math.isnan(value):
        return MISSING
    return f"{value / 1e6 if unit == 'bytes' else value:.4g}"


def _header(name: str, unit: str) -> str:
    unit = "MB" if unit == "bytes" else unit
    return f"{name} ({unit})" if unit else name


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
        [Cell(label), *(Cell(format_value(row[name], units[name]), label in best[name]) for name in table.columns)]
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
            body.append([Cell(value)] + [Cell(format_value(column[run.label], unit), run.label in best) for run in runs])
        tables.append((f"{_header(name, unit)} by {field}", (headers, body)))
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
                row.append(Cell(format_value(float(entry["value"]), unit) if entry else MISSING))
            rows.append(row)
        tables.append((f"{_header(metric, unit)} by hardware", (["model"] + columns, rows)))
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


def to_markdown(c: Content, plot_file: str | None, grid_file: str | None) -> str:
    lines = [f"# {c.title}", "", "## Metrics", ""]
    lines += [f"**Warning:** {w}" for w in c.warnings] + ([""] if c.warnings else [])
    lines += _md_table(c.metrics) + ["", "Bold: best value per metric.", ""]
    lines += [f"{_md_text(note)}\n" for note in c.metrics_notes] + ["## Quality vs latency", ""]
    lines += [f"![quality vs latency]({plot_file})", ""] if plot_file else []
    lines += [c.plot_note, ""]
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
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warning { background: #fff3cd; border-left: 4px solid #e0a800; padding: 6px 10px; }
.grid th { font-weight: normal; font-size: 0.85em; max-width: 12em; }
.grid img, .grid video { image-rendering: pixelated; min-width: 64px; min-height: 64px; }
.grid small { display: block; max-width: 16em; color: #666; }
"""


def _html_table(table: Table, numeric: bool = False) -> str:
    headers, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    td = '<td class="num">' if numeric else "<td>"
    body = []
    for row in rows:
        cells = [f"<th>{html.escape(row[0].text)}</th>"]
        for c in row[1:]:
            text = f"<strong>{html.escape(c.text)}</strong>" if c.bold else html.escape(c.text)
            cells.append(f"{td}{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_clip(clip: Clip, w: int, h: int, alt: str) -> str:
    """The clip inline: a muted looping <video> (browsers autoplay only muted media) or an animated <img>."""
    data = f"data:{clip.mime};base64,{base64.b64encode(read_clip_bytes(clip)).decode('ascii')}"
    if clip.element == "video":
        return (f'<video src="{data}" width="{w}" height="{h}" autoplay loop muted playsinline title="{alt}" '
                f'aria-label="{alt}"></video>')
    return f'<img src="{data}" width="{w}" height="{h}" alt="{alt}">'


def _html_grid(grid: Grid) -> str:
    head = "<th>run</th>" + "".join(f"<th>{html.escape(_item_caption(item))}</th>" for item in grid.items)
    rows = []
    clip_rows = grid.clips.clips if grid.clips else [[None] * len(grid.items) for _ in grid.labels]
    for label, images, clips in zip(grid.labels, grid.images, clip_rows):
        cells = []
        for item, image, clip in zip(grid.items, images, clips):
            w, h = display_size(image)
            alt = html.escape(f"{label}: {item[0]} seed {item[1]}")
            if clip is not None and clip.inline:
                cells.append(f"<td>{_html_clip(clip, w, h, alt)}</td>")
                continue
            data = base64.b64encode(_png_bytes(image)).decode("ascii")
            still = f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" alt="{alt}">'
            if clip is not None:  # the first frame stands in; say why and where the clip is
                name = f"{CLIPS_DIR}/{clip.name}"
                still += (f"<small>first frame: clip not inlined ({html.escape(clip.left_out)}); "
                          f'<a href="{html.escape(name)}">{html.escape(name)}</a> beside this page</small>')
            cells.append(f"<td>{still}</td>")
        rows.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _inline_svg(svg: bytes) -> str:
    """The <svg> element alone: the XML prolog and DOCTYPE (an external DTD) do not belong in HTML."""
    text = svg.decode("utf-8")
    return text[text.index("<svg"):]


def to_html(c: Content) -> str:
    parts = [f"<h1>{html.escape(c.title)}</h1>", "<h2>Metrics</h2>"]
    parts += [f'<p class="warning">Warning: {html.escape(w)}</p>' for w in c.warnings]
    parts += [_html_table(c.metrics, numeric=True), "<p>Bold: best value per metric.</p>"]
    parts += [f"<p>{html.escape(note)}</p>" for note in c.metrics_notes]
    parts.append("<h2>Quality vs latency</h2>")
    parts += [f"<figure>{_inline_svg(c.plot_svg)}</figure>"] if c.plot_svg else []
    parts.append(f"<p>{html.escape(c.plot_note)}</p>")
    if c.vbench:
        parts += ["<h2>VBench dimensions</h2>", f"<figure>{_inline_svg(c.vbench.svg)}</figure>",
                  _html_table(c.vbench.table, numeric=True)]
        parts += [f"<p>{html.escape(note)}</p>" for note in c.vbench.notes]
    for caption, svg in c.figures:
        parts += [f"<h2>{html.escape(caption)}</h2>", f"<figure>{_inline_svg(svg)}</figure>"]
    if c.hardware:
        parts.append("<h2>Hardware</h2>")
        for caption, table in c.hardware:
            parts += [f"<h3>{html.escape(caption)}</h3>", _html_table(table, numeric=True)]
    if c.breakdowns:
        parts.append("<h2>Breakdown</h2>")
        for caption, table in c.breakdowns:
            parts += [f"<h3>{html.escape(caption)}</h3>", _html_table(table, numeric=True)]
    parts += ["<h2>Provenance</h2>", _html_table(c.provenance)]
    parts.append("<h2>Samples</h2>")
    parts += [f"<p>{html.escape(note)}</p>" for note in (c.grid.notes() if c.grid.items else [])]
    parts.append(_html_grid(c.grid) if c.grid.items else "<p>No (prompt, seed) items are common to all runs.</p>")
    head = f'<meta charset="utf-8">\n{GENERATOR_META}\n<title>{html.escape(c.title)}</title>\n<style>{CSS}</style>'
    body = "\n".join(parts)
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


def write_report(run_paths: list[Path], out_dir: Path, title: str = "benchkit report",
                 max_grid_items: int = 8, figures: list[tuple[str, bytes]] | None = None,
                 max_clip_bytes: int = CLIP_MAX_BYTES, max_page_clip_bytes: int = PAGE_MAX_BYTES) -> dict[str, Path]:
    """Write out_dir/report.md (with quality_latency.svg, vbench_dimensions.svg, grid.png and clips/ beside it)
    and out_dir/report.html; the page inlines clips up to ``max_clip_bytes`` each and ``max_page_clip_bytes`` in all."""
    if not run_paths:
        raise BenchkitError("no runs to report on: pass one or more run directories")
    out_dir = Path(out_dir)
    check_report_dir(out_dir)
    runs = load_runs(run_paths)
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
                      hardware_tables(runs), figures or [], vbench, notes)
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
    _write(paths["html"], to_html(content))
    return paths
