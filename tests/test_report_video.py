"""Reports over video runs: the clip grid plays each run's clip of the same (prompt, seed) (mp4 in
<video>, APNG in <img>), its caps say what they leave out, the Markdown links copies that resolve,
and runs with VBench dimensions get a grouped bar chart whose bars are the results.json values
and whose labels do not overlap. One module-scoped set of tiny runs serves every test."""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from benchkit.core.errors import BenchkitError
from benchkit.models import video
from metrics.vbench_scores import BY_NAME, DIMENSIONS, run_aggregates
from reports import write_report
from reports.plots import grouped_bars_figure


# As tests/test_report_browser.py finds and runs chromium (not imported: that module loads the eval stack)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]

ITEMS = [("p1", 0), ("p2", 0), ("p1", 1)]


def _clip(seed: int, noisy: bool, n: int = 6, size: int = 32) -> np.ndarray:
    """A small moving clip; ``noisy`` ones compress worse, so the two runs' clips differ in size."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size // 8, size // 8, 3)).repeat(8, 0).repeat(8, 1)
    frames = np.stack([np.roll(base, 2 * t, axis=1) for t in range(n)]).astype(np.int16)
    if noisy:
        frames += rng.integers(-60, 60, frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


def _dimension_values(seed: int, drop: tuple[str, ...] = ()) -> dict[str, float]:
    """Raw scores inside each dimension's VBench bounds (so normalised values lie in [0, 1])."""
    rng = np.random.default_rng(seed)
    return {d.name: float(rng.uniform(d.low, d.high)) for d in DIMENSIONS if d.name not in drop}


def make_run(root: Path, name: str, noisy: bool = False, clips: bool = True, dims: dict[str, float] | None = None) -> Path:
    """A run folder as `benchkit eval` leaves a video model's (first-frame image, clip via write_video) or an image
    model's (clips=False), with the VBench dimensions and aggregates as benchkit's scoring writes them."""
    run = root / name
    (run / "images").mkdir(parents=True)
    records = []
    for i, (prompt_id, seed) in enumerate(ITEMS):
        frames = _clip(10 * i + seed, noisy)
        Image.fromarray(frames[0]).save(run / f"images/{prompt_id}_{seed}.png")
        rec = {"prompt_id": prompt_id, "prompt": f"a prompt {prompt_id}", "seed": seed,
               "file": f"images/{prompt_id}_{seed}.png", "sha256": "0" * 64}
        if clips:
            rec.update(video.write_video(run, f"{prompt_id}_{seed}", frames, 8))
        records.append(rec)
    metrics = [{"name": "toy-fid", "value": 1.0, "unit": "", "higher_is_better": False, "n": 3, "variant": {},
                "extra": {}}]
    if dims:
        raw = [{"name": BY_NAME[n].metric, "value": v, "unit": "score", "higher_is_better": True, "n": 3,
                "variant": {"protocol": "vbench-standard"}, "extra": {}} for n, v in dims.items()]
        metrics = raw + run_aggregates(raw)
    (run / "manifest.json").write_text(json.dumps({"status": "complete", "command": "eval"}))
    (run / "results.json").write_text(json.dumps({"run": {"label": name}, "metrics": metrics}))
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Runs with mp4 clips (when PyAV is importable), with APNG clips, an image run, and VBench runs."""
    root = tmp_path_factory.mktemp("runs")
    out = {"root": root}
    if video.mp4_encoder() == "av":
        out["mp4"] = [make_run(root / "mp4", "teacher"), make_run(root / "mp4", "student", noisy=True)]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(video, "mp4_encoder", lambda: None)  # APNG, as without an mp4 encoder
        out["apng"] = [make_run(root / "apng", "teacher"), make_run(root / "apng", "student", noisy=True)]
    out["image"] = make_run(root / "image", "image-model", clips=False)
    out["vbench"] = [make_run(root / "vb", "full", clips=False, dims=_dimension_values(0)),
                     make_run(root / "vb", "no-color", clips=False, dims=_dimension_values(1, drop=("color",)))]
    return out


class Cells(HTMLParser):
    """Every <video> and <img> of the page (by their title/alt "run: prompt_id seed N"), and its text."""

    def __init__(self):
        super().__init__()
        self.media: dict[str, tuple[str, dict[str, str | None]]] = {}
        self.text, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("video", "img"):
            key = attrs.get("title") or attrs.get("alt")
            assert key not in self.media, f"two elements for {key}"
            self.media[key] = (tag, attrs)
        if tag == "a":
            self.links.append(attrs["href"])

    def handle_data(self, data):
        self.text.append(data)


def _page(path: Path) -> Cells:
    cells = Cells()
    cells.feed(path.read_text())
    return cells


def _data(src: str) -> tuple[str, bytes]:
    mime, data = re.fullmatch(r"data:([\w/]+);base64,([A-Za-z0-9+/=]+)", src).groups()
    return mime, base64.b64decode(data)


def _cell(page: Cells, run: Path, prompt_id: str, seed: int) -> bytes:
    """The bytes the page shows in ``run``'s cell of the item."""
    return _data(page.media[f"{run.name}: {prompt_id} seed {seed}"][1]["src"])[1]


def _clip_file(run: Path, prompt_id: str, seed: int) -> Path:
    rec = next(json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()
               if json.loads(line)["prompt_id"] == prompt_id and json.loads(line)["seed"] == seed)
    return run / rec["video"]


@pytest.mark.parametrize("fmt", ["mp4", "apng"])
def test_each_run_plays_its_clip_of_each_item_and_markdown_links_resolve(world, tmp_path, fmt):
    if fmt not in world:
        pytest.skip("PyAV is not installed: no mp4 clips")
    runs = world[fmt]
    before = {run: _listing(run) for run in runs}
    paths = write_report(runs, tmp_path / "report")
    page = _page(paths["html"])
    assert len(page.media) == len(runs) * len(ITEMS)
    for run, (prompt_id, seed) in itertools.product(runs, ITEMS):
        tag, attrs = page.media[f"{run.name}: {prompt_id} seed {seed}"]
        mime, data = _data(attrs["src"])
        assert data == _clip_file(run, prompt_id, seed).read_bytes()  # this run's clip of this item, whole
        if fmt == "mp4":
            assert (tag, mime) == ("video", "video/mp4")
            assert {"autoplay", "loop", "muted", "playsinline"} <= set(attrs)
        else:
            assert (tag, mime) == ("img", "image/png")
            with Image.open(_clip_file(run, prompt_id, seed)) as im:
                assert sum(1 for _ in ImageSequence.Iterator(im)) == 6  # animated: every frame is there
    assert "not inlined" not in "".join(page.text) and "left out" not in "".join(page.text)

    md = paths["markdown"].read_text()
    links = re.findall(r"\[(mp4|png)\]\(([^)]+)\)", md)
    assert len(links) == len(runs) * len(ITEMS) and {kind for kind, _ in links} == {"mp4" if fmt == "mp4" else "png"}
    copies = {(paths["markdown"].parent / link).read_bytes() for _, link in links}  # every link resolves
    assert copies == {_clip_file(run, *item).read_bytes() for run in runs for item in ITEMS}
    assert "](grid.png)" in md and "first frame" in md  # the still grid of first frames
    assert {run: _listing(run) for run in runs} == before  # nothing written into a run folder


def test_caps_leave_out_clips_and_items_and_say_so(world, tmp_path):
    teacher, student = runs = world["apng"]
    small = max(_clip_file(teacher, *item).stat().st_size for item in ITEMS)
    large = min(_clip_file(student, *item).stat().st_size for item in ITEMS)
    assert small < large

    # per clip: the student's (noisier, larger) clips become first frames with a note; the teacher's still play
    paths = write_report(runs, tmp_path / "a", max_grid_items=2, max_clip_bytes=small)
    page = _page(paths["html"])
    text = " ".join(page.text)
    assert len(page.media) == 2 * 2
    for item in ITEMS[:2]:
        assert _cell(page, teacher, *item) == _clip_file(teacher, *item).read_bytes()
        still = _cell(page, student, *item)
        with Image.open(io.BytesIO(still)) as im:  # the first frame, not the clip
            assert getattr(im, "n_frames", 1) == 1
            assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(Image.open(_clip_file(student, *item))))
    assert "Showing 2 of the 3 (prompt, seed) items common to all runs" in text and "1 more is left out" in text
    assert "2 of 4 clips are not inlined" in text and "2 over the" in text
    assert text.count("first frame: clip not inlined") == 2 and text.count("cap per clip") == 3  # 2 cells + summary
    assert page.links == ["clips/run2-p1_0.png", "clips/run2-p2_0.png"]  # where the left-out clips are
    assert all((tmp_path / "a" / link).read_bytes() == _clip_file(student, *item).read_bytes()
               for link, item in zip(page.links, ITEMS))
    md = paths["markdown"].read_text()
    assert "Showing 2 of the 3" in md and "2 of 4 clips are not inlined" in md
    assert len(re.findall(r"\]\(clips/", md)) == 4  # the Markdown links every shown clip, inlined or not
    assert sorted(p.name for p in (tmp_path / "a" / "clips").iterdir()) == \
        ["run1-p1_0.png", "run1-p2_0.png", "run2-p1_0.png", "run2-p2_0.png"]

    # page budget: whole items (columns) stop being inlined once the budget runs out
    first = sum(_clip_file(run, *ITEMS[0]).stat().st_size for run in runs)
    page = _page(write_report(runs, tmp_path / "b", max_page_clip_bytes=first)["html"])
    inlined = {(run.name, item) for run in runs for item in ITEMS
               if _cell(page, run, *item) == _clip_file(run, *item).read_bytes()}
    assert inlined == {("teacher", ITEMS[0]), ("student", ITEMS[0])}
    assert "4 of 6 clips are not inlined" in " ".join(page.text) and "4 past the page's" in " ".join(page.text)


def test_report_folder_keeps_only_current_clips_and_refuses_foreign_files(world, tmp_path):
    out = tmp_path / "report"
    write_report(world["apng"], out)
    assert len(list((out / "clips").iterdir())) == 6
    write_report(world["apng"], out, max_grid_items=1)  # a rewrite removes the earlier report's other copies
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["run1-p1_0.png", "run2-p1_0.png"]
    write_report([world["image"]], out)  # no clips now: no clips folder
    assert not (out / "clips").exists()
    write_report(world["apng"], out)
    (out / "clips" / "notes.txt").write_text("mine")
    with pytest.raises(BenchkitError, match=r"holds clips/notes\.txt.*choose an empty or new folder"):
        write_report(world["apng"], out)
    assert (out / "clips" / "notes.txt").read_text() == "mine"


def test_image_and_video_runs_side_by_side(world, tmp_path):
    runs = [world["apng"][0], world["image"]]
    paths = write_report(runs, tmp_path / "report")
    page = _page(paths["html"])
    assert len(page.media) == 2 * len(ITEMS)
    for prompt_id, seed in ITEMS:
        assert _cell(page, runs[0], prompt_id, seed) == _clip_file(runs[0], prompt_id, seed).read_bytes()
        with Image.open(io.BytesIO(_cell(page, runs[1], prompt_id, seed))) as im:  # the image run's sample, as before
            assert np.array_equal(np.asarray(im.convert("RGB")),
                                  np.asarray(Image.open(runs[1] / f"images/{prompt_id}_{seed}.png").convert("RGB")))
    md = paths["markdown"].read_text()
    assert "| image-model | – | – | – |" in md
    # an image-only report has no clips section and no clips folder
    image_only = write_report([world["image"]], tmp_path / "images")
    assert "### Clips" not in image_only["markdown"].read_text() and not (tmp_path / "images" / "clips").exists()
    assert "<video" not in image_only["html"].read_text()


# -- VBench chart ---------------------------------------------------------------------------------------------
def _svg_bars(svg: str) -> dict[str, float]:
    """id -> width (SVG points) of every bar: each is one <g id="bar-..."> holding a rectangle's path."""
    bars = {}
    for gid, d in re.findall(r'<g id="(bar-[^"]+)">\s*<path d="([^"]+)"', svg):
        xs = [float(x) for x in re.findall(r"([-\d.]+) [-\d.]+", d)]
        bars[gid] = max(xs) - min(xs)
    return bars


def _results(run: Path) -> dict[str, float]:
    return {m["name"]: m["value"] for m in json.loads((run / "results.json").read_text())["metrics"]}


def test_vbench_chart_has_a_bar_per_run_and_dimension_with_the_results_values(world, tmp_path):
    runs = world["vbench"]
    paths = write_report(runs, tmp_path / "report")
    svg = (tmp_path / "report" / "vbench_dimensions.svg").read_text()
    expected = {}
    for r, run in enumerate(runs, 1):
        values = _results(run)
        for key in ("total", "quality", "semantic"):
            value = values.get(f"vbench-{key}", values.get(f"vbench-{key}-partial"))
            expected[f"bar-{key}-{r}"] = value
        for d in DIMENSIONS:
            if d.metric in values:
                expected[f"bar-{d.name}-{r}"] = values[d.metric]
    assert len(expected) == 2 * 19 - 1  # no-color has no color bar
    bars = _svg_bars(svg)
    assert set(bars) == set(expected)
    scale = [bars[k] / v for k, v in expected.items()]  # every bar's length is its value on one axis
    assert max(scale) - min(scale) < 1e-3 * max(scale)
    for key, value in expected.items():
        assert re.search(rf'<g id="value-{key[4:]}">.*?<text[^>]*>{re.escape(f"{value:.4g}")}</text>', svg, re.DOTALL)

    md = paths["markdown"].read_text()
    table = md[md.index("## VBench dimensions"):md.index("## Provenance")]
    assert "](vbench_dimensions.svg)" in table
    values = [_results(run) for run in runs]
    assert f"| Total | {values[0]['vbench-total']:.4g} | {values[1]['vbench-total-partial']:.4g} (partial) |" in table
    assert f"| color | {values[0]['vbench-color']:.4g} | – |" in table
    assert "no-color: Total, Semantic partial, over the dimensions it has (without color" in table
    # the metrics table keeps the aggregates but leaves the 32 dimension columns to this section
    metrics = md[:md.index("## Quality vs latency")]
    assert "vbench-total" in metrics and "vbench-subject-consistency" not in metrics
    html_text = paths["html"].read_text()
    assert html_text.count('<g id="bar-') == len(expected) and "VBench dimensions" in html_text
    assert "vbench_dimensions.svg" not in write_report(world["apng"], tmp_path / "none")["markdown"].read_text()


def _text_overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes intersect, and texts reaching outside the figure."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = set()  # tick labels beyond the axis limits exist but are not drawn
    for axes in fig.axes:
        for axis, (lo, hi) in ((axes.xaxis, axes.get_xlim()), (axes.yaxis, sorted(axes.get_ylim()))):
            hidden |= {id(label) for tick in axis.get_major_ticks() if not lo <= tick.get_loc() <= hi
                       for label in (tick.label1, tick.label2)}
    texts = [(text.get_text(), text.get_window_extent(renderer)) for text in fig.findobj(Text)
             if text.get_visible() and text.get_text().strip() and id(text) not in hidden]
    bad = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(texts, 2) if box_a.overlaps(box_b)]
    bad += [(a, "outside the figure") for a, box in texts
            if box.x0 < 0 or box.y0 < 0 or box.x1 > fig.bbox.x1 or box.y1 > fig.bbox.y1]
    return bad


def test_chart_labels_do_not_overlap_and_the_check_catches_crowding():
    runs = ["teacher-50-steps", "dmd-4-steps " + "with a very long label " * 4, "lcm-2-steps"]
    groups = ["Total", "Quality", "Semantic"] + [d.label for d in DIMENSIONS]
    values = np.random.default_rng(0).uniform(0.0, 1.0, (len(groups), len(runs))).tolist()
    values[0][1] = math.nan
    values[1] = [0.5, 0.5, 0.5]  # the hardest case: value labels at one x, stacked one bar apart
    hatched = [[g < 3 and r == 2 for r in range(len(runs))] for g in range(len(groups))]
    import matplotlib.pyplot as plt

    fig = grouped_bars_figure(groups, runs, values, hatched, "VBench dimensions", "score")
    try:
        assert _text_overlaps(fig) == []
    finally:
        plt.close(fig)
    crowded = grouped_bars_figure(groups[:6], runs, values[:6], hatched[:6], "VBench dimensions", "score",
                                  bar_inches=0.04)
    try:
        assert _text_overlaps(crowded)  # bars too thin for their value labels: the check sees it
    finally:
        plt.close(crowded)


# -- in a browser ---------------------------------------------------------------------------------------------
PROBE = """<script>
window.addEventListener("load", () => {
  const videos = Array.from(document.querySelectorAll("video"));
  const settled = v => new Promise(done => {
    if (v.readyState >= 2 || v.error) return done();
    v.addEventListener("loadeddata", done); v.addEventListener("error", done);
  });
  Promise.all(videos.map(settled)).then(() => {
    const imgs = Array.from(document.images);
    document.title = "PROBE" + JSON.stringify({
      h264: document.createElement("video").canPlayType('video/mp4; codecs="avc1.64001e"'),
      videos: videos.length,
      ready: videos.filter(v => v.readyState >= 2 && !v.error && v.videoWidth > 0).length,
      errors: videos.filter(v => v.error).map(v => v.error.code),
      images: imgs.length,
      decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    }) + "PROBE";
  });
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_clips_load_in_chromium(world, tmp_path):
    runs = world.get("mp4", []) + world["apng"]
    html = write_report(runs, tmp_path / "report")["html"].read_text()
    assert html.count("<script>") == 1  # the report's table sorter only
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    proc = subprocess.run([CHROMIUM, *FLAGS, "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=5000",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r"PROBE(.*?)PROBE", proc.stdout)
    assert found, proc.stdout[-2000:]
    probe = json.loads(found.group(1))
    if "mp4" in world and not probe["h264"]:
        pytest.skip("this chromium build has no H.264 decoder (Debian's has)")
    n_mp4 = len(world.get("mp4", [])) * len(ITEMS)
    assert probe["videos"] == n_mp4 and probe["ready"] == n_mp4 and probe["errors"] == []
    assert probe["images"] == len(world["apng"]) * len(ITEMS) and probe["decoded"] == probe["images"]
    assert [line for line in proc.stderr.splitlines() if ":CONSOLE" in line] == []
