"""The HTML report in a real headless Chromium, over seven toy runs with a baseline: it renders, images decode,
the summary is the first table and fits the first screen (also on a screenshot), the plot's point numbers do not
overlap, a clicked header sorts (numbers by value), and the page logs nothing to the console. `.ci/run` installs
Debian's chromium."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchkit.evaluate import run_eval
from benchkit.models.presets import PRESETS
from benchkit.models.spec import load_spec_file
from prompts import load_prompt_set
from reports import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,800", "--hide-scrollbars"]
STUDENTS = Path(__file__).resolve().parents[1] / "benchkit" / "toy" / "assets" / "students"
EXTRA = ("First run, second run and size", ["setting", "NFE"], [["b", "10"], ["a", "9"], ["c", "100"], ["d", "n/a"]])
# Appended to a copy of the page only (the report's own script sorts tables and reads nothing).
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const svg = document.querySelector("figure svg");
  const box = svg ? svg.getBBox() : {width: 0, height: 0};
  const tables = Array.from(document.querySelectorAll("table"));
  const rect = t => { const r = t.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const labels = Array.from(document.querySelectorAll('figure svg g[id^="point-label-"] text')).map(rect);
  const firstColumn = t => Array.from(t.tBodies[0].rows).map(r => r.cells[0].textContent);
  const extra = tables.find(t => t.tHead && t.tHead.rows[0].cells[0].textContent === "setting");
  const before = firstColumn(extra);
  extra.tHead.rows[0].cells[1].click();
  const ascending = firstColumn(extra);
  extra.tHead.rows[0].cells[1].click();
  const descending = firstColumn(extra);
  const summary = tables[0];
  const heads = Array.from(summary.tHead.rows[0].cells).map(c => c.textContent);
  const ms = heads.findIndex(h => h.startsWith("ms / image"));
  const msOf = () => Array.from(summary.tBodies).map(b => Array.from(b.rows).map(r => Number(r.cells[ms].dataset.sort)));
  const msBefore = msOf();
  summary.tHead.rows[0].cells[ms].click();
  document.title = "PROBE" + JSON.stringify({
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    svgWidth: box.width, svgHeight: box.height,
    tables: tables.length,
    firstTableId: summary.id, summaryRect: rect(summary), viewport: [innerWidth, innerHeight],
    labels, before, ascending, descending, msBefore, msAfter: msOf(),
    groups: Array.from(summary.tBodies).map(b => Array.from(b.rows).map(r => r.cells[1].textContent)),
  }) + "PROBE";
});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory, session_cache):
    """Seven toy runs (the teacher at 1, 2, 4 and 8 steps, a copy of the 1-step run, two shipped students)
    reported against 8 steps."""
    root = tmp_path_factory.mktemp("browser")
    prompts = load_prompt_set("toy-digits").limit(4)
    specs = {f"teacher-{n}": PRESETS["toy-digits"].with_recipe(steps=n) for n in (8, 1, 2, 4)}
    specs.update({s: load_spec_file(STUDENTS / s / "spec.toml", PRESETS) for s in ("dmd2-1step", "lightning-4step")})
    runs = []
    for name, spec in specs.items():
        runs.append(root / name)
        run_eval(spec, prompts, [0], runs[-1], device="cpu", batch_size=4, cache_dir=session_cache,
                 show_progress=False)
    # a copy of a run: the same point twice, the crowding a fixed label offset cannot handle
    runs.append(root / "teacher-1-copy")
    shutil.copytree(root / "teacher-1", runs[-1])
    paths = write_report(runs, root / "report", baseline=runs[0], tables=[EXTRA])
    return paths["html"]


def _chromium(tmp_path, *args):
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line for line in proc.stderr.splitlines() if ":CONSOLE" in line] == []  # the page logs nothing
    return proc


def _overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_report_renders_in_chromium(report, tmp_path):
    html = report.read_text()
    assert html.count("<script>") == 1  # the table sorter; nothing from the network
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    proc = _chromium(tmp_path, "--dump-dom", page.as_uri())
    probe = json.loads(re.search(r"PROBE(.*?)PROBE", proc.stdout).group(1))
    assert probe["images"] == html.count("<img ") >= 7 * 4 and probe["decoded"] == probe["images"]
    assert probe["svgWidth"] > 100 and probe["svgHeight"] > 100 and probe["tables"] >= 5

    # the summary is the first table and ends within the first 1280x800 screen
    assert probe["viewport"][0] == 1280  # (--dump-dom's window keeps some of the 800 px for itself; the layout is
    # the width's, and the screenshot below shows the 1280x800 screen)
    assert probe["firstTableId"] == "summary" and 0 < probe["summaryRect"][3] <= 800, probe
    assert probe["groups"] == [["teacher"] * 5, ["students"] * 2]

    # every run's number in the plot, no two overlapping
    labels = probe["labels"]
    assert len(labels) == 7 and all(r[2] > r[0] and r[3] > r[1] for r in labels)
    assert [(i, j) for i in range(7) for j in range(i + 1, 7) if _overlap(labels[i], labels[j])] == []

    # a click sorts by the column's numbers (a text sort would put 10 and 100 before 9), empty cells last
    assert probe["before"] == ["b", "a", "c", "d"]
    assert probe["ascending"] == ["a", "b", "c", "d"] and probe["descending"] == ["c", "b", "a", "d"]
    after = probe["msAfter"]  # within each group, so the teacher's rows stay together
    assert after == [sorted(group) for group in probe["msBefore"]] and after != probe["msBefore"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_first_screen_screenshot_shows_the_summary(report, tmp_path):
    shot = tmp_path / "first-screen.png"
    _chromium(tmp_path, f"--screenshot={shot}", report.as_uri())
    with Image.open(shot) as image:
        assert image.size == (1280, 800)
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    top = pixels[:400]
    assert top.std() > 20, top.std()  # the title and summary table, not a blank page
    ink_rows = (top < 128).any(axis=1).sum()  # rows holding dark text or rules
    assert ink_rows > 100, ink_rows
