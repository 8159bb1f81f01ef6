"""The summary a report opens on (reports.summary): units people read, one row per run with its intervals,
runs grouped as teacher / students / other runs, compare's verdict against a baseline; and the report around it
(summary first, the caller's tables, collapsed details, the paired section), on hand-written run folders."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from PIL import Image

from benchkit.core.errors import BenchkitError
from reports import write_report
from reports.runs import load_runs
from reports.summary import (
    build_summary,
    format_interval,
    format_number,
    format_quantity,
    grouped,
    header_with_unit,
    is_student,
)

ITEMS = [("p1", 0), ("p2", 0), ("p1", 1), ("p2", 1)]
DISTILL_DESCRIPTION = "dmd2 student of teacher, 1-step, 150 training steps"


def m(name, value, higher=False, unit="", interval=None):
    extra = {"interval": {"low": interval[0], "high": interval[1], "level": 0.95}} if interval else {}
    return {"name": name, "value": value, "unit": unit, "higher_is_better": higher, "n": 4, "variant": {},
            "extra": extra}


def timing(latency, nfe):
    return [m("latency_image_p50", latency, False, "s"), m("nfe", nfe, False, "unet calls/image")]


def write_run(root: Path, name: str, metrics: list[dict], spec: dict | None = None, items=ITEMS, shade: int = 0,
              prompt_sha: str = "same", scores: dict[tuple[str, int], float] | None = None) -> Path:
    """A run folder as `benchkit eval` leaves it: 8x8 samples, manifest, results and (optionally) per-image scores."""
    run = root / name
    (run / "images").mkdir(parents=True)
    records = []
    for i, (prompt_id, seed) in enumerate(items):
        file = f"images/{prompt_id}_{seed}.png"
        Image.new("L", (8, 8), shade + 7 * i).save(run / file)
        records.append({"prompt_id": prompt_id, "prompt": f"a drawing of {prompt_id}", "seed": seed, "file": file,
                        "sha256": "0" * 64})
    manifest = {"spec": spec or {"name": name, "base": f"builtin:{name}"}, "status": "complete", "command": "eval",
                "prompt_set": {"name": "toy-digits", "sha256": prompt_sha, "count": 2}, "seeds": [0, 1]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "results.json").write_text(json.dumps({"run": {"label": name}, "metrics": metrics}))
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if scores is not None:
        nested: dict[str, dict[str, float]] = {}
        for (prompt_id, seed), value in scores.items():
            nested.setdefault(prompt_id, {})[str(seed)] = value
        (run / "item_scores.json").write_text(json.dumps(
            {"metrics": {"clip-score": {"higher_is_better": True, "scores": nested}}}))
    return run


def scores(offsets: dict[str, float]) -> dict[tuple[str, int], float]:
    return {(p, s): 0.3 + offsets[p] + 0.001 * s for p, s in ITEMS}


@pytest.fixture
def world(tmp_path):
    """A teacher baseline, the teacher at fewer steps, two students (one found by distill.json, one by its
    description only), another model measured on other prompts, and a run sharing no (prompt, seed) item."""
    distilled = tmp_path / "distilled"
    (distilled / "model").mkdir(parents=True)
    (distilled / "distill.json").write_text("{}")
    teacher = {"name": "teacher", "base": "builtin:teacher"}
    runs = {
        "base": write_run(tmp_path, "base", [m("fid", 16.0712, False, "fid", (9.671, 26.2104)),
                                             m("clip-score", 0.31, True, "", (0.30, 0.32)), *timing(0.0352, 50)],
                          teacher, scores=scores({"p1": 0.0, "p2": 0.0})),
        "fast": write_run(tmp_path, "fast", [m("fid", 40.0, False, "fid", (35.0, 45.0)),
                                             m("clip-score", 0.29, True, "", (0.28, 0.30)), *timing(0.004, 4)],
                          teacher, shade=40, scores=scores({"p1": -0.05, "p2": -0.01})),
        "student": write_run(tmp_path, "student", [m("fid", 15.0, False, "fid", (10.0, 20.0)), *timing(0.0051, 1)],
                             {"name": "teacher-dmd2", "base": str(distilled / "model"), "description": "mine"},
                             shade=80),
        "described": write_run(tmp_path, "described", [m("fid", 5.0, False, "fid", (4.0, 6.0)), *timing(0.006, 1)],
                               {"name": "teacher-lcm", "base": str(tmp_path / "elsewhere" / "model"),
                                "description": DISTILL_DESCRIPTION}, shade=120),
        "other": write_run(tmp_path, "other", [m("fid", 16.0, False, "fid", (10.0, 20.0)), *timing(0.02, 8)],
                           prompt_sha="another"),
        "apart": write_run(tmp_path, "apart", [m("fid", 30.0, False, "fid")], items=[("q1", 0), ("q2", 0)]),
    }
    return runs


def test_units_people_read():
    assert format_quantity(0.0352, "s") == "35.20 ms"
    assert format_quantity(35.2, "ms") == "35.20 ms"
    assert format_quantity(1.5, "s") == "1.500 s" and format_quantity(300.0, "s") == "5.000 min"
    assert format_quantity(953_806_848, "bytes") == "953.8 MB" and format_quantity(2.5e9, "bytes") == "2.500 GB"
    assert format_quantity(4324, "bytes") == "4.324 kB" and format_quantity(12, "bytes") == "12 B"
    assert format_quantity(15.19, "images/s") == "15.19 images/s"
    assert format_quantity(12345.6, "fid") == "12346"  # fixed point, not 1.235e+04; the unit stays in the header
    assert format_quantity(math.nan, "s") == "–" and format_number(math.nan) == "–"
    assert format_interval(16.0712, (9.671, 26.2104)) == "16.07 [9.67, 26.21]"  # the bounds take the value's decimals
    assert format_interval(0.99994, (0.99982, 0.999996)) == "0.9999 [0.9998, 1.0000]"
    assert format_interval(-0.00012, (-0.0004, 0.00008)) == "-0.0001200 [-0.0004000, 0.0000800]"
    assert format_interval(1.5e-6, (1e-7, 3e-6)) == "1.500e-06 [1.000e-07, 3.000e-06]"
    assert format_interval(2.0, None) == "2.000"
    assert header_with_unit("peak_memory", "bytes") == "peak_memory" and header_with_unit("fid", "fid") == "fid (fid)"


def test_students_are_distill_outputs(tmp_path):
    here = tmp_path / "here"
    (here / "model").mkdir(parents=True)
    plain = tmp_path / "plain"
    (plain / "model").mkdir(parents=True)

    def manifest(base, description=""):
        return {"spec": {"name": "x", "base": base, "description": description}}

    (here / "distill.json").write_text("{}")
    assert is_student(manifest(str(here / "model")))
    assert not is_student(manifest(str(plain / "model"), DISTILL_DESCRIPTION))  # here, and no distill.json
    assert is_student(manifest(str(tmp_path / "gone" / "model"), DISTILL_DESCRIPTION))  # built elsewhere
    assert not is_student(manifest(str(tmp_path / "gone" / "model"), "my fine-tune"))
    assert not is_student(manifest("builtin:toy-digits", DISTILL_DESCRIPTION))
    assert not is_student({})


def test_summary_rows_groups_intervals_and_verdicts(world):
    order = [world[n] for n in ("other", "described", "fast", "student")]
    runs = load_runs([world["base"], *order])
    summary = build_summary(runs, baseline=runs[0])
    headers, cells = summary.table()
    assert headers == ["run", "group", "fid ↓", "clip-score ↑", "ms / image ↓", "NFE ↓", "vs baseline (fid)"]
    table = {row[0].text: [c.text for c in row[1:]] for row in cells}
    assert [row[0].text for row in cells] == ["base", "fast", "described", "student", "other"]
    assert table["base"] == ["teacher", "16.07 [9.67, 26.21]", "0.3100 [0.3000, 0.3200]", "35.20", "50", "baseline"]
    assert table["fast"] == ["teacher", "40.00 [35.00, 45.00]", "0.2900 [0.2800, 0.3000]", "4.000", "4", "worse"]
    assert table["described"][:2] == ["students", "5.000 [4.000, 6.000]"] and table["described"][-1] == "better"
    assert table["student"][0] == "students" and table["student"][-1] == "within noise"
    assert table["other"][0] == "other runs" and table["other"][-1] == "not comparable"  # other prompts
    assert table["student"][2] == "–"  # no clip-score
    bold = {(row[0].text, headers[i]) for row in cells for i, c in enumerate(row) if c.bold}
    assert bold == {("described", "fid ↓"), ("base", "clip-score ↑"), ("fast", "ms / image ↓"),
                    ("described", "NFE ↓"), ("student", "NFE ↓")}
    assert any("95% bootstrap interval" in note for note in summary.notes)

    # without a baseline: students against the rest, in the order the groups first come; no verdict column
    alone = load_runs([world["fast"], world["student"], world["base"]])
    assert [(g, [r.label for r in rs]) for g, rs in grouped(alone, None)] == [("other runs", ["fast", "base"]),
                                                                               ("students", ["student"])]
    headers, _ = build_summary(alone).table()
    assert headers[1] == "group" and not any(h.startswith("vs baseline") for h in headers)
    headers, _ = build_summary(load_runs([world["fast"], world["base"]])).table()
    assert "group" not in headers  # one group: no column for it


def _section(md: str, start: str, end: str) -> str:
    return md[md.index(start):md.index(end)]


def test_report_opens_on_the_summary_and_pairs_runs_with_the_baseline(world, tmp_path):
    runs = [world[n] for n in ("fast", "student", "apart")]
    extra = [("First run, second run and size", ["setting", "NFE"], [["fast", "4"], ["base", "50"]])]
    paths = write_report(runs, tmp_path / "report", baseline=world["base"], tables=extra)
    md, page = paths["markdown"].read_text(), paths["html"].read_text()

    # Markdown: the summary, then the caller's table, then the full metrics as before
    assert md.index("## Summary") < md.index("## First run, second run and size") < md.index("## Metrics")
    summary = _section(md, "## Summary", "## First run")
    assert summary.index("| base | teacher | 16.07 [9.67, 26.21] |") < summary.index("| fast | teacher |")
    assert "| fast | 4 |" in _section(md, "## First run", "## Metrics")
    assert "| base | 16.07 |" in _section(md, "## Metrics", "## Quality vs latency")  # raw units, as results.json

    # HTML: the summary is the first table; the tables it carries sort; details collapse the rest
    tables = re.findall(r"<table[^>]*>", page)
    assert tables[0] == '<table class="summary sortable" id="summary">' and tables[1] == '<table class="sortable">'
    assert page.index('id="summary"') < page.index("<h2>First run, second run and size</h2>") < \
        page.index("<h2>Quality vs latency</h2>")
    assert '<td class="verdict-worse">worse</td>' in page and '<td class="num" data-sort="35.2">35.20</td>' in page
    details = page[page.index("<details><summary>All metrics"):]
    assert "<th scope=\"col\">latency_image_p50</th>" in details and "35.20 ms" in details  # ms, not 0.0352 (s)
    assert details.index("</details>") < details.index("<details><summary>Provenance")
    assert page.count("<script>") == 1 and "console." not in page and not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)

    # paired: score line, distance line, where it loses most with both runs' images; one line for "apart"
    paired = page[page.index("<h2>Against the baseline, pair by pair</h2>"):page.index("<h2>Samples</h2>")]
    fast = paired[paired.index("<h3>fast</h3>"):paired.index("<h3>student</h3>")]
    assert "clip-score (higher is better): difference -0.03000" in fast and 'class="verdict-' in fast
    assert "pixel-rmse from the baseline" in fast
    assert "Where it loses most (clip-score" in fast and fast.index("a drawing of p1") < fast.index("a drawing of p2")
    assert 'alt="baseline (base): p1 seed 0"' in fast and 'alt="this run (fast): p1 seed 0"' in fast
    assert "pixel-rmse from the baseline" in paired[paired.index("<h3>student</h3>"):]  # no scores: distances
    assert "shares 0 (prompt, seed) items with the baseline over 0 prompts" in paired
    assert "### apart" in md and "shares 0 (prompt, seed) items" in md
    assert '<table class="grid">' not in page  # "apart" shares no item with the others: no grid


def test_baseline_among_the_runs_is_moved_first_and_bad_tables_are_refused(world, tmp_path):
    paths = write_report([world["fast"], world["base"]], tmp_path / "a", baseline=world["base"])
    summary = _section(paths["markdown"].read_text(), "## Summary", "## Metrics")
    assert summary.index("| base |") < summary.index("| fast |") and summary.count("| base |") == 1
    grid = paths["html"].read_text().split('<table class="grid">', 1)[1]  # the prompt beside each row
    assert '<th scope="row" class="prompt">a drawing of p1<small>p1 · seed 0</small></th>' in grid
    with pytest.raises(BenchkitError, match="table 'x': row 1 has 1 cells for 2 columns"):
        write_report([world["fast"]], tmp_path / "b", tables=[("x", ["a", "b"], [["1"]])])
