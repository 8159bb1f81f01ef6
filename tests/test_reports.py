"""Reports over synthetic run directories: tables, ranking, warnings, plot, grid, HTML."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from benchkit.core.errors import BenchkitError
from reports import load_run, metrics_table, write_report
from reports.plots import pareto_front, place_numbers, quality_latency_plot
from reports.render import GRID_GAP_PX, common_items, metric_cells, variant_conflicts
from reports.runs import load_runs

FID_VARIANT = {"extractor": "toy-cnn", "reference": "sklearn-digits-all", "protocol": "full",
               "reference_stats_key": "abc"}
ITEMS = [("digit3-a", 0), ("digit3-a", 1), ("digit7-b", 0)]


def metric(name, value, higher_is_better, unit="", variant=None):
    return {"name": name, "value": value, "unit": unit, "higher_is_better": higher_is_better, "n": 3,
            "variant": variant or {}, "extra": {}}


def make_run(root: Path, name: str, metrics: list[dict], items=ITEMS, shade: int = 0, label: str | None = None,
             device: str = "cpu") -> Path:
    """A run folder as `benchkit eval` leaves it, with 8x8 grayscale samples of a known shade."""
    run = root / name
    (run / "images").mkdir(parents=True)
    records = []
    for index, (prompt_id, seed) in enumerate(items):
        file = f"images/{prompt_id}_{seed}.png"
        Image.new("L", (8, 8), shade + index).save(run / file)
        records.append({"prompt_id": prompt_id, "prompt": f"a handwritten {prompt_id}", "seed": seed,
                        "file": file, "sha256": "0" * 64})
    manifest = {"spec": {"name": name, "recipe": {"scheduler": "ddim", "steps": 4}}, "device": device,
                "dtype": "float32", "batch_size": 4, "prompt_set": {"name": "toy-digits", "count": 2},
                "seeds": [0, 1], "hardware": {"cpu": "x86", "versions": {"torch": "2.5.0"}, "cuda": None},
                "status": "complete", "command": "eval"}
    results = {"run": {"path": str(run), "name": name, "label": label or name, "spec_hash": f"{name}-hash-0123456789",
                       "n_images": len(items), "device": device, "dtype": "float32"},
               "metrics": metrics}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "results.json").write_text(json.dumps(results))
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def standard_metrics(fid, alignment, latency, memory, fid_variant=FID_VARIANT, device="cpu"):
    timing = {"device": device, "hardware": device, "batch_size": 4}
    return [metric("toy-fid", fid, False, "fid", fid_variant),
            metric("toy-alignment", alignment, True, "probability"),
            metric("latency_image_p50", latency, False, "s", timing),
            metric("peak_memory", memory, False, "bytes", timing)]


@pytest.fixture
def two_runs(tmp_path):
    fast = make_run(tmp_path, "fast", standard_metrics(12.5, 0.61, 0.020, 2.5e8), shade=10)
    slow = make_run(tmp_path, "slow", standard_metrics(8.25, 0.93, 0.150, 4.0e8), shade=100)
    return [fast, slow]


class ImageCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.title, self._in_title = [], "", False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag):
        self._in_title = False


def test_metrics_table_holds_written_values_and_directions(two_runs):
    table = metrics_table([load_run(p) for p in two_runs])
    assert list(table.index) == ["fast", "slow"]
    assert list(table.columns) == ["toy-fid", "toy-alignment", "latency_image_p50", "peak_memory"]
    assert table.loc["fast", "toy-fid"] == 12.5
    assert table.loc["slow", "toy-alignment"] == 0.93
    assert table.loc["slow", "peak_memory"] == 4.0e8
    assert table.attrs["higher_is_better"]["toy-fid"] is False
    assert table.attrs["unit"]["peak_memory"] == "bytes"


def test_metric_missing_from_one_run_is_nan(tmp_path):
    a = make_run(tmp_path, "a", [metric("toy-fid", 1.0, False), metric("nfe", 8.0, False)])
    b = make_run(tmp_path, "b", [metric("toy-fid", 2.0, False)])
    table = metrics_table([load_run(a), load_run(b)])
    assert table.loc["a", "nfe"] == 8.0
    assert table["nfe"].isna().tolist() == [False, True]


def test_label_falls_back_and_duplicates_are_disambiguated(tmp_path):
    a = make_run(tmp_path / "x", "run-a", [metric("toy-fid", 1.0, False)], label="sd15")
    b = make_run(tmp_path / "y", "run-b", [metric("toy-fid", 2.0, False)], label="sd15")
    c = make_run(tmp_path, "run-c", [metric("toy-fid", 3.0, False)])
    results = json.loads((c / "results.json").read_text())
    results["run"].pop("label")
    (c / "results.json").write_text(json.dumps(results))
    assert [r.label for r in load_runs([a, b, c])] == ["sd15 (run-a)", "sd15 (run-b)", "run-c"]
    table = metrics_table([load_run(a), load_run(b)])
    assert table["toy-fid"].to_dict() == {"sd15 (run-a)": 1.0, "sd15 (run-b)": 2.0}


def test_best_value_bold_respects_direction(two_runs, tmp_path):
    table = metrics_table([load_run(p) for p in two_runs])
    headers, rows = metric_cells(table)
    bold = {headers[i]: row[0].text for row in rows for i, cell in enumerate(row) if cell.bold}
    assert bold["toy-fid (fid)"] == "slow"  # lower is better
    assert bold["toy-alignment (probability)"] == "slow"  # higher is better
    assert bold["latency_image_p50 (s)"] == "fast"
    assert bold["peak_memory (MB)"] == "fast"
    md = Path(write_report(two_runs, tmp_path / "out")["markdown"]).read_text()
    metrics = md[md.index("## Metrics"):]  # the full table, in results.json's units (the summary comes first)
    fast_row = next(line for line in metrics.splitlines() if line.startswith("| fast |"))
    assert fast_row.split(" | ")[1:] == ["12.5", "0.61", "**0.02**", "**250** |"]
    assert "| slow | **8.25** | **0.93** | 0.15 | 400 |" in metrics
    summary = md[md.index("## Summary"):md.index("## Metrics")]
    assert "| fast | 12.50 | 0.6100 | **20.00** |" in summary  # toy-fid, toy-alignment, ms / image
    assert "| slow | **8.250** | **0.9300** | 150.0 |" in summary


def test_html_is_self_contained_with_one_image_per_run_and_item(two_runs, tmp_path):
    html_text = Path(write_report(two_runs, tmp_path / "out", title="A <b> report")["html"]).read_text()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html_text)
    parser = ImageCollector()
    parser.feed(html_text)
    assert parser.title == "A <b> report"
    assert "<title>A &lt;b&gt; report</title>" in html_text
    assert len(parser.images) == html_text.count("data:image/png;base64") == 2 * len(ITEMS)
    assert all(int(img["width"]) >= 64 and int(img["height"]) >= 64 for img in parser.images)
    assert "image-rendering: pixelated" in html_text
    assert "<svg" in html_text and "<!DOCTYPE svg" not in html_text


def test_grid_only_includes_items_common_to_all_runs(tmp_path):
    a = make_run(tmp_path, "a", [metric("toy-fid", 1.0, False)], items=[("p1", 0), ("p1", 1), ("p2", 0)])
    b = make_run(tmp_path, "b", [metric("toy-fid", 2.0, False)], items=[("p2", 0), ("p3", 0), ("p1", 0)])
    assert common_items(load_runs([a, b])) == [("p1", 0), ("p2", 0)]
    c = make_run(tmp_path, "c", [metric("toy-fid", 1.0, False)], items=[("p2", 0), ("p2", 1), ("p1", 0), ("p1", 1)])
    assert common_items(load_runs([c])) == [("p2", 0), ("p1", 0), ("p2", 1), ("p1", 1)]  # seed-major, prompt order
    parser = ImageCollector()
    parser.feed(Path(write_report([a, b], tmp_path / "out")["html"]).read_text())
    expected = ["a: p1 seed 0", "a: p2 seed 0", "b: p1 seed 0", "b: p2 seed 0"]
    assert sorted(img["alt"] for img in parser.images) == expected


def test_max_grid_items_limits_columns(two_runs, tmp_path):
    html_text = Path(write_report(two_runs, tmp_path / "out", max_grid_items=1)["html"]).read_text()
    assert html_text.count("data:image/png;base64") == 2


def test_variant_mismatch_warns_and_context_differences_do_not(tmp_path):
    other_protocol = {**FID_VARIANT, "protocol": "subset", "reference_stats_key": "xyz"}
    a = make_run(tmp_path, "a", standard_metrics(10.0, 0.5, 0.1, 1e8))
    b = make_run(tmp_path, "b", standard_metrics(11.0, 0.6, 0.2, 1e8, device="cuda"))
    c = make_run(tmp_path, "c", standard_metrics(12.0, 0.7, 0.3, 1e8, fid_variant=other_protocol))
    assert variant_conflicts(load_runs([a, b])) == {}
    assert variant_conflicts(load_runs([a, c])) == {"toy-fid": ["protocol"]}
    same = Path(write_report([a, b], tmp_path / "same")["markdown"]).read_text()
    differ = write_report([a, c], tmp_path / "differ")
    assert "not comparable" not in same
    for path in differ.values():
        assert "toy-fid is not comparable" in Path(path).read_text()


def test_pareto_front_on_hand_made_points():
    # (latency, quality): C is beaten by A (faster, better); D ties A's quality but is slower.
    points = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.4), (1.5, 0.5), (0.5, 0.1), (float("nan"), 1.0)]
    assert pareto_front(points, higher_is_better=True) == [4, 0, 1]
    # Lower-is-better quality (FID): the same points, ranked the other way.
    assert pareto_front(points, higher_is_better=False) == [4]
    assert pareto_front([(1.0, 3.0), (1.0, 3.0)], higher_is_better=False) == [0, 1]


def test_plot_is_deterministic_labelled_and_skipped_without_latency(two_runs, tmp_path):
    table = metrics_table([load_run(p) for p in two_runs])
    svg = quality_latency_plot(table, "toy-fid", "latency_image_p50")
    assert svg == quality_latency_plot(table, "toy-fid", "latency_image_p50")
    text = svg.decode()
    assert "fast" in text and "slow" in text and "Pareto front" in text
    assert text.count('<g id="point-label-') == 2  # each point's number, findable in the SVG
    assert "toy-fid [fid] (lower is better)" in text
    assert quality_latency_plot(table, "toy-alignment", "latency_image_p50", {"toy-alignment": True}) != svg
    assert quality_latency_plot(table.drop(columns="latency_image_p50"), "toy-fid", "latency_image_p50") is None

    scored = make_run(tmp_path, "scored", [metric("toy-fid", 3.0, False)])
    out = write_report([scored], tmp_path / "out")
    assert not (tmp_path / "out" / "quality_latency.svg").exists()
    assert "No quality-vs-latency plot" in Path(out["markdown"]).read_text()


def test_point_numbers_are_placed_clear_of_each_other_and_of_the_points():
    # five runs on one spot and three close by: the fixed offset of old put all five numbers on one place
    points = [(100.0, 100.0)] * 5 + [(104.0, 100.0), (100.0, 106.0), (300.0, 50.0)]
    sizes, radii, bounds = [(7.0, 11.0)] * 8, [3.5] * 8, (0.0, 0.0, 400.0, 300.0)
    placed = place_numbers(points, sizes, radii, bounds)
    assert placed == place_numbers(points, sizes, radii, bounds)  # deterministic
    boxes = []
    for (x, y), (w, h), (dx, dy, ha, va, _) in zip(points, sizes, placed):
        x0 = x + dx - {"left": 0, "right": w, "center": w / 2}[ha]
        y0 = y + dy - {"bottom": 0, "top": h, "center": h / 2}[va]
        boxes.append((x0, y0, x0 + w, y0 + h))

    def clear(a, b):
        return min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])

    assert all(clear(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(clear(box, (x - 3.5, y - 3.5, x + 3.5, y + 3.5)) for box in boxes for x, y in points)
    assert all(bounds[0] <= b[0] and b[2] <= bounds[2] and bounds[1] <= b[1] and b[3] <= bounds[3] for b in boxes)
    assert placed[-1][4] is False and any(p[4] for p in placed)  # the lone point keeps its number beside it


def test_markdown_references_plot_and_grid_png_of_expected_size(two_runs, tmp_path):
    out = write_report(two_runs, tmp_path / "out")
    md = Path(out["markdown"]).read_text()
    assert "](grid.png)" in md and "](quality_latency.svg)" in md
    assert (tmp_path / "out" / "quality_latency.svg").read_bytes().startswith(b"<?xml")
    with Image.open(tmp_path / "out" / "grid.png") as grid:
        cell, gap = 64, GRID_GAP_PX
        assert grid.size == (3 * cell + 4 * gap, 2 * cell + 3 * gap)
        # Row 1 column 3 is run "slow" (shade 100); columns are seed-major, so column 3 is
        # ("digit3-a", 1), written as item index 1; upscaled nearest-neighbour.
        centre = (gap + 2 * (cell + gap) + cell // 2, gap + (cell + gap) + cell // 2)
        assert grid.convert("L").getpixel(centre) == 101


def test_missing_or_invalid_results_raise_benchkit_error(tmp_path):
    run = make_run(tmp_path, "a", [metric("toy-fid", 1.0, False)])
    (run / "results.json").unlink()
    with pytest.raises(BenchkitError, match="benchkit eval") as info:
        load_run(run)
    assert str(run / "results.json") in str(info.value)
    (run / "results.json").write_text("{not json")
    with pytest.raises(BenchkitError, match="results.json"):
        write_report([run], tmp_path / "out")
