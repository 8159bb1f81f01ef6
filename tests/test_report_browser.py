"""The HTML report in a real headless Chromium: it renders, images decode, the plot is laid
out, and the page logs nothing to the console. `.ci/run` installs Debian's chromium."""

import json
import re
import shutil
import subprocess

import pytest

from benchkit.evaluate import run_eval
from benchkit.models.presets import PRESETS
from prompts import load_prompt_set
from reports import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
# Appended to a copy of the page only: the report itself ships no JavaScript.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const svg = document.querySelector("figure svg");
  const box = svg ? svg.getBBox() : {width: 0, height: 0};
  document.title = "PROBE" + JSON.stringify({
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    svgWidth: box.width, svgHeight: box.height,
    tables: document.querySelectorAll("table").length,
  }) + "PROBE";
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_report_renders_in_chromium(tmp_path):
    runs = []
    for steps in (1, 4):
        runs.append(tmp_path / f"run{steps}")
        run_eval(PRESETS["toy-digits"].with_recipe(steps=steps), load_prompt_set("toy-digits").limit(3), [0, 1], runs[-1],
                 device="cpu", batch_size=6, cache_dir=tmp_path / "cache", show_progress=False)
    html = write_report(runs, tmp_path / "report")["html"].read_text()
    assert "<script" not in html
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe = json.loads(re.search(r"PROBE(.*?)PROBE", proc.stdout).group(1))
    assert probe["images"] == 2 * 6 and probe["decoded"] == probe["images"]  # 2 runs x 6 (prompt, seed) items
    assert probe["svgWidth"] > 100 and probe["svgHeight"] > 100
    assert probe["tables"] >= 3
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
