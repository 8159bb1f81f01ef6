"""Video runs in a report: which clips the sample grid plays, and each run's VBench dimensions.

A video run's record names its clip (``video``, relative to the run folder: metrics.clips.clip_path).
The HTML page plays each clip where an image run's grid shows a still, inlined as a data: URI so
the page stays one file; mp4 in ``<video autoplay loop muted playsinline>`` (browsers autoplay
only muted media), APNG in ``<img>`` (browsers animate it). A clip over ``max_clip_bytes``, or
past the page's ``max_page_bytes``, shows its first frame and a note instead, so the page stays
mailable. The Markdown report links copies of the shown clips in ``clips/`` beside it: runs are
only ever read, and a report folder committed or zipped on its own keeps its clips working.

The VBench section reads the dimensions' raw scores (``vbench-<dimension>``) and Quality,
Semantic and Total (or their ``-partial`` forms) from results.json, as benchkit's own scoring
(metrics.vbench_scores.run_aggregates) and ``benchkit import vbench`` write them.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit.core.atomic import atomic_target
from benchkit.core.errors import BenchkitError, describe_os_error
from metrics.clips import clip_path
from metrics.vbench_scores import DIMENSIONS
from reports.runs import RunSummary

CLIP_MAX_BYTES = 2_000_000  # one clip inlined at most (a few seconds of 480p H.264 is about 1 MB)
# All inlined clips together: base64 makes 12 MB about 16 MB of page, and mail's own encoding of an
# attachment about 21 MB, under the 25 MB most mail services accept.
PAGE_MAX_BYTES = 12_000_000
CLIPS_DIR = "clips"
# What the page can play inline, by file suffix: <video> for these...
VIDEO_MIME = {".mp4": "video/mp4", ".webm": "video/webm"}
# ...and <img> (animated) for these.
IMAGE_MIME = {".png": "image/png", ".apng": "image/apng", ".gif": "image/gif"}
# The copies write_report puts in clips/ (and atomic_target's temporaries): nothing else lives there.
CLIP_FILE = re.compile(r"run\d+-[A-Za-z0-9._-]+|\..+\.tmp")


@dataclass
class Clip:
    """One shown clip: where it is, its copy's name in clips/, and whether the page inlines it."""

    source: Path
    name: str
    mime: str | None  # None: a format the page cannot play (linked only)
    size: int
    inline: bool = False
    left_out: str = ""  # why the page shows the first frame instead

    @property
    def element(self) -> str:
        """The HTML element that plays it: 'video' or 'img'."""
        return "video" if self.mime in VIDEO_MIME.values() else "img"


@dataclass
class ClipPlan:
    """``clips[run][item]`` for the grid's items (None where that run has no clip: an image run), and notes."""

    clips: list[list[Clip | None]]
    notes: list[str] = field(default_factory=list)

    def shown(self) -> list[Clip]:
        return [clip for row in self.clips for clip in row if clip is not None]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:80]


def _mb(n: float) -> str:
    return f"{n / 1e6:.3g} MB"


def plan_clips(runs: list[RunSummary], items: list[tuple[str, int]], max_clip_bytes: int = CLIP_MAX_BYTES,
               max_page_bytes: int = PAGE_MAX_BYTES) -> ClipPlan | None:
    """The clips of ``items`` (the grid's (prompt_id, seed) pairs) in every run, or None when no run has clips.

    Clips are admitted item by item (every run's clip of the first item, then of the second),
    so that a budget running out leaves whole columns as stills rather than some runs' cells.
    """
    by_key = [{(rec["prompt_id"], rec["seed"]): rec for rec in run.records} for run in runs]
    if not any(recs[item].get("video") for recs in by_key for item in items):
        return None
    clips: list[list[Clip | None]] = [[None] * len(items) for _ in runs]
    used: set[str] = set()
    for r, (run, recs) in enumerate(zip(runs, by_key)):
        for c, item in enumerate(items):
            rec = recs[item]
            if not rec.get("video"):
                continue
            source = clip_path(rec, run.path)
            try:
                size = source.stat().st_size
            except FileNotFoundError:
                raise BenchkitError(f"clip {source} of run {run.path} not found: was the run folder moved or the clip "
                                    "deleted? Generate the run again, or leave it out of the report") from None
            except OSError as exc:
                raise describe_os_error(exc, source, "reading") from None
            suffix = source.suffix.lower()
            name = f"run{r + 1}-{_safe(str(item[0]))}_{item[1]}{suffix}"
            if name in used:  # two prompt ids that differ only in characters a file name cannot hold
                name = f"run{r + 1}-{c + 1}-{_safe(str(item[0]))}_{item[1]}{suffix}"
            used.add(name)
            clips[r][c] = Clip(source, name, VIDEO_MIME.get(suffix) or IMAGE_MIME.get(suffix), size)
    page = 0
    over, past, unplayable = 0, 0, 0
    for c in range(len(items)):
        column = [row[c] for row in clips if row[c] is not None]
        for clip in column:
            if clip.mime is None:
                clip.left_out = f"{Path(clip.name).suffix} clips do not play in a page"
                unplayable += 1
            elif clip.size > max_clip_bytes:
                clip.left_out = f"{_mb(clip.size)}, over the {_mb(max_clip_bytes)} cap per clip"
                over += 1
        fits = [clip for clip in column if not clip.left_out]
        need = sum(clip.size for clip in fits)
        if page + need > max_page_bytes:
            for clip in fits:
                clip.left_out = f"past the page's {_mb(max_page_bytes)} budget for clips"
            past += len(fits)
            continue
        page += need
        for clip in fits:
            clip.inline = True
    plan = ClipPlan(clips)
    if over or past or unplayable:
        why = [f"{over} over the {_mb(max_clip_bytes)} cap per clip" if over else "",
               f"{past} past the page's {_mb(max_page_bytes)} budget for clips" if past else "",
               f"{unplayable} in a format a page cannot play" if unplayable else ""]
        plan.notes.append(f"{over + past + unplayable} of {len(plan.shown())} clips are not inlined in the HTML page "
                          f"({', '.join(w for w in why if w)}): their cells show the first frame; every shown clip "
                          f"is in {CLIPS_DIR}/ beside the report.")
    return plan


def read_clip_bytes(clip: Clip) -> bytes:
    try:
        return clip.source.read_bytes()
    except OSError as exc:
        raise describe_os_error(exc, clip.source, "reading") from None


def check_clips_dir(folder: Path) -> list[str]:
    """Names in a report's clips/ folder that an earlier report did not put there (empty: ours to replace)."""
    return sorted(p.name for p in folder.iterdir() if not (p.is_file() and CLIP_FILE.fullmatch(p.name)))


def copy_clips(plan: ClipPlan | None, out_dir: Path) -> None:
    """Copy the shown clips into ``out_dir/clips`` and remove an earlier report's copies that are not shown now."""
    folder = Path(out_dir) / CLIPS_DIR
    wanted = {clip.name: clip for clip in (plan.shown() if plan else [])}
    if folder.is_dir():
        for stale in folder.iterdir():
            if stale.name not in wanted and CLIP_FILE.fullmatch(stale.name):
                stale.unlink(missing_ok=True)
        if not wanted and not any(folder.iterdir()):
            folder.rmdir()
    if not wanted:
        return
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise describe_os_error(exc, folder, "creating") from None
    for name, clip in wanted.items():
        with atomic_target(folder / name) as tmp:
            try:
                shutil.copyfile(clip.source, tmp)
            except OSError as exc:
                raise describe_os_error(exc, clip.source, "reading") from None


# -- VBench dimensions --------------------------------------------------------------------------
AGGREGATES = (("total", "Total"), ("quality", "Quality"), ("semantic", "Semantic"))


@dataclass
class DimensionRow:
    """One group of the chart and row of the table: a VBench aggregate or dimension across runs."""

    key: str  # "total", "quality", "semantic" or a dimension name
    label: str
    values: list[float]  # per run; NaN where the run lacks it
    partial: list[bool]  # per run: a -partial aggregate (over the dimensions that run has)
    missing: list[list[str]]  # per run: what a partial aggregate leaves out


@dataclass
class DimensionChart:
    runs: list[str]
    rows: list[DimensionRow]


def dimension_metrics() -> frozenset[str]:
    """The results.json names of the 16 dimensions, raw and normalised (the aggregates are not among them)."""
    return frozenset(name for d in DIMENSIONS for name in (d.metric, f"{d.metric}-normalized"))


def _missing(entry: dict[str, Any]) -> list[str]:
    return list((entry.get("extra") or {}).get("missing") or (entry.get("variant") or {}).get("missing") or [])


def dimension_chart(runs: list[RunSummary]) -> DimensionChart | None:
    """Aggregates (Total, Quality, Semantic) then the 16 dimensions in VBench's order, those any run has.

    Dimensions are the raw scores, as VBench reports them (all lie in [0, 1]); the aggregates are
    VBench's weighted means of the normalised dimensions (metrics.vbench_scores). None without any.
    """
    rows = []
    for key, label in AGGREGATES:
        values, partial, missing = [], [], []
        for run in runs:
            full, part = run.metrics.get(f"vbench-{key}"), run.metrics.get(f"vbench-{key}-partial")
            entry = full or part
            values.append(float(entry["value"]) if entry else math.nan)
            partial.append(full is None and part is not None)
            missing.append(_missing(part) if full is None and part is not None else [])
        if not all(math.isnan(v) for v in values):
            rows.append(DimensionRow(key, label, values, partial, missing))
    for dim in DIMENSIONS:
        values = [float(run.metrics[dim.metric]["value"]) if dim.metric in run.metrics else math.nan for run in runs]
        if not all(math.isnan(v) for v in values):
            rows.append(DimensionRow(dim.name, dim.label, values, [False] * len(runs), [[] for _ in runs]))
    if not rows:
        return None
    return DimensionChart([run.label for run in runs], rows)
