"""The bridge to the official VBench toolkit: exported clips are the ones its standard-mode loader
finds for each prompt, and its results file imports as a run that compare and report read.

The export tests make real mp4 clips through benchkit's own writer (PyAV) and check them with
the installed `vbench` package's loader (install it without its pinned dependencies: `pip
install --no-deps vbench==0.1.5 decord`); each skips when its package is missing. The import
tests need neither.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from run_files import one_line_error, tree
from test_vbench_scores import (  # noqa: F401 (fixture)
    official,
    official_results,
    run_official,
    transcribed_formula,
)

from benchkit.core.atomic import write_json_atomic
from benchkit.core.rundir import RunDir
from metrics.vbench_scores import BY_NAME, vbench_scores
from prompts import load_prompt_set

DUPLICATE = "The bund Shanghai, oil painting"  # listed twice in VBench's prompts, probing different dimensions


def make_run(path: Path, records: list[dict], clips: dict[str, np.ndarray] | None = None) -> Path:
    """A finished video run: manifest, samples.jsonl, and a clip per record (benchkit's writer: mp4 with PyAV)."""
    from benchkit.models.video import write_video

    path.mkdir(parents=True)
    write_json_atomic(path / "manifest.json", {"benchkit_run": 1, "command": "eval", "identity": {}, "status": "complete",
                                               "prompt_set": load_prompt_set("vbench").describe()})
    rng = np.random.default_rng(0)
    for rec in records:
        if "video" not in rec:
            frames = clips[rec["prompt_id"]] if clips else rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
            rec.update(write_video(path, f"{rec['prompt_id']}_{rec['seed']}", frames, 8))
    RunDir(path).replace_records(records)
    return path


@pytest.fixture(scope="module")
def vbench_prompts():
    ps = load_prompt_set("vbench")
    first = {}
    for rec in ps.records:
        first.setdefault(rec.prompt, []).append(rec)
    picked = [ps.records[0], ps.records[500], *first[DUPLICATE]]  # two single prompts, and both ids of a duplicate
    return picked


@pytest.fixture(scope="module")
def video_run(tmp_path_factory, vbench_prompts):
    pytest.importorskip("av", reason="PyAV writes the mp4 clips (pip install av)")
    records = [{"prompt_id": r.prompt_id, "prompt": r.prompt, "meta": dict(r.meta), "seed": seed}
               for r in vbench_prompts for seed in (7, 3, 11, 0, 5, 9)]  # six seeds, unsorted: the sixth is left out
    return make_run(tmp_path_factory.mktemp("vb") / "run", records)


def expected_exports(run: Path) -> dict[str, str]:
    """{file name in DIR: source clip}: per prompt text the first prompt id's clips, index by ascending seed."""
    out: dict[str, str] = {}
    records = RunDir(run).records()
    for prompt in dict.fromkeys(r["prompt"] for r in records):
        first_id = min(r["prompt_id"] for r in records if r["prompt"] == prompt)
        mine = sorted((r for r in records if r["prompt_id"] == first_id), key=lambda r: r["seed"])
        out.update({f"{prompt}-{i}.mp4": rec["video"] for i, rec in enumerate(mine[:5])})
    return out


def test_exported_clips_are_what_vbench_standard_mode_loads_for_each_prompt(cli, video_run, tmp_path):
    pytest.importorskip("decord", reason="vbench imports decord (pip install --no-deps decord)")
    vbench = pytest.importorskip("vbench", reason="pip install --no-deps vbench==0.1.5")
    from vbench.utils import get_prompt_from_filename, load_video

    before = tree(video_run)
    dest = tmp_path / "clips"
    code, out, err = cli("export", "vbench", str(video_run), str(dest))
    assert code == 0, err
    assert tree(video_run) == before, "the run was changed by exporting it"
    expected = expected_exports(video_run)
    assert sorted(p.name for p in dest.iterdir()) == sorted(expected)
    for name, source in expected.items():  # copies of the right clips, byte for byte
        assert (dest / name).read_bytes() == (video_run / source).read_bytes(), name

    # the package's own standard-mode loader over its own VBench_full_info.json (vbench/__init__.py:110-128)
    bench = vbench.VBench("cpu", str(Path(vbench.__file__).parent / "VBench_full_info.json"), str(tmp_path / "vbench-out"))
    info = json.loads(Path(bench.build_full_info_json(str(dest), "t", bench.build_full_dimension_list())).read_text())
    found = {Path(v).name: entry["prompt_en"] for entry in info for v in entry["video_list"]}
    assert found == {name: name.rsplit("-", 1)[0] for name in expected}, "a clip VBench found under another prompt, or missed"
    for entry in info:
        if entry["prompt_en"] in {name.rsplit("-", 1)[0] for name in expected}:
            assert [Path(v).name for v in entry["video_list"]] == [f"{entry['prompt_en']}-{i}.mp4" for i in range(5)]
    # its custom-input mode reads the prompt from the file name the same way (vbench/utils.py:375-384)
    assert all(get_prompt_from_filename(name) == name.rsplit("-", 1)[0] for name in expected)
    frames = load_video(str(dest / next(iter(expected))))  # and its reader decodes the copies
    assert tuple(frames.shape) == (6, 3, 32, 32)
    assert "score them with: vbench evaluate --videos_path" in out


def test_export_again_writes_nothing_and_never_overwrites_another_file(cli, video_run, tmp_path):
    dest = tmp_path / "clips"
    assert cli("export", "vbench", str(video_run), str(dest))[0] == 0
    mtimes = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    name = min(mtimes)
    stale = dest / f".{name}.abc123_x.tmp"  # a killed export's partial copy, under benchkit's temp name
    stale.write_bytes(b"partial")
    code, out, err = cli("export", "vbench", str(video_run), str(dest))
    assert code == 0 and "(0 written, 15 already there)" in out, out + err
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == mtimes  # and the temp file is gone

    (dest / name).write_bytes(b"somebody's own clip")
    before = tree(dest)
    code, _, err = cli("export", "vbench", str(video_run), str(dest))
    one_line_error(code, err, "exists and is not this run's clip; benchkit never overwrites a file it did not write")
    assert tree(dest) == before

    (dest / name).unlink()
    (dest / "Another model's clip-0.mp4").write_bytes(b"not this run's")
    code, _, err = cli("export", "vbench", str(video_run), str(dest))
    one_line_error(code, err, "which is not one of this run's clips, and VBench would score it with them")
    assert (dest / "Another model's clip-0.mp4").read_bytes() == b"not this run's" and not (dest / name).exists()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, _, err = cli("export", "vbench", str(video_run), str(mine))
    one_line_error(code, err, "holds notes.txt, not a clip")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_export_refuses_too_few_clips_unless_allowed(cli, vbench_prompts, tmp_path):
    pytest.importorskip("av", reason="PyAV writes the mp4 clips (pip install av)")
    r = vbench_prompts[0]
    run = make_run(tmp_path / "run", [{"prompt_id": r.prompt_id, "prompt": r.prompt, "meta": dict(r.meta), "seed": s}
                                      for s in range(3)])
    code, _, err = cli("export", "vbench", str(run), str(tmp_path / "clips"))
    one_line_error(code, err, "1 of 1 prompts have fewer than 5 clips")
    assert "--allow-fewer" in err and not (tmp_path / "clips").exists()
    code, _, err = cli("export", "vbench", str(run), str(tmp_path / "clips"), "--allow-fewer")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == [f"{r.prompt}-{i}.mp4" for i in range(3)]


def test_vbench_long_clips_are_named_after_the_short_prompt(cli, tmp_path):
    """VBench scores its GPT-enhanced prompts under the original ones (meta short_prompt)."""
    pytest.importorskip("av", reason="PyAV writes the mp4 clips (pip install av)")
    r = load_prompt_set("vbench-long").records[0]
    run = make_run(tmp_path / "run", [{"prompt_id": r.prompt_id, "prompt": r.prompt, "meta": dict(r.meta), "seed": s}
                                      for s in range(5)])
    assert cli("export", "vbench", str(run), str(tmp_path / "clips"))[0] == 0
    assert r.meta["short_prompt"] != r.prompt
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == [f"{r.meta['short_prompt']}-{i}.mp4" for i in range(5)]


def test_export_refuses_apng_clips_and_runs_without_clips(cli, tmp_path):
    run = tmp_path / "run"
    (run / "videos").mkdir(parents=True)
    write_json_atomic(run / "manifest.json", {"benchkit_run": 1, "command": "eval", "identity": {}})
    (run / "videos" / "00000_0.png").write_bytes(b"an animated png")
    RunDir(run).replace_records([{"prompt_id": "00000", "prompt": "a cat", "seed": 0, "video": "videos/00000_0.png",
                                  "video_format": "apng"}])
    code, _, err = cli("export", "vbench", str(run), str(tmp_path / "clips"))
    one_line_error(code, err, "as APNG")
    assert "VBench reads mp4" in err and not (tmp_path / "clips").exists()
    RunDir(run).replace_records([{"prompt_id": "00000", "prompt": "a cat", "seed": 0, "file": "images/00000_0.png"}])
    one_line_error(*cli("export", "vbench", str(run), str(tmp_path / "clips"))[::2], "has no clips")
    one_line_error(*cli("export", "vbench", str(run), str(run / "videos" / "x"))[::2], "export into a folder of its own")
    one_line_error(*cli("export", "vbench", str(tmp_path), str(tmp_path / "clips"))[::2], "is not a benchkit run")


# -- import ---------------------------------------------------------------------------------------

PROMPTS = ("A beautiful coastal beach in spring, waves lapping on sand by Hokusai, in the style of Ukiyo", DUPLICATE)


def results_file(path: Path, seed: int = 0, drop: tuple[str, ...] = ()) -> Path:
    path.write_text(json.dumps(official_results(seed, drop, PROMPTS)))
    return path


def metrics_of(run: Path) -> dict[str, dict]:
    return {m["name"]: m for m in json.loads((run / "results.json").read_text())["metrics"]}


def test_import_reproduces_the_toolkit_scores(cli, tmp_path, request):
    source = results_file(tmp_path / "model_eval_results.json")
    data = json.loads(source.read_text())
    code, _, err = cli("import", "vbench", str(source), "--out", str(tmp_path / "run"), "--vbench-version", "0.1.5")
    assert code == 0, err
    got = metrics_of(tmp_path / "run")
    _, quality, semantic, total = transcribed_formula({k.replace("_", " "): v[0] for k, v in data.items()})
    if os.environ.get("VBENCH_REPO"):  # the official script itself, when a checkout is at hand
        module = request.getfixturevalue("official")
        (tmp_path / "official").mkdir()
        _, quality, semantic, total = run_official(module, data, tmp_path / "official", request.getfixturevalue("monkeypatch"))
    assert (got["vbench-quality"]["value"], got["vbench-semantic"]["value"], got["vbench-total"]["value"]) == \
        pytest.approx((quality, semantic, total), rel=1e-12)
    scores = vbench_scores({k: v[0] for k, v in data.items()})
    for dim, (mean, per_video) in data.items():
        name = BY_NAME[dim].metric  # vbench-subject-consistency, as benchkit's own dimension metrics are named
        assert got[name]["value"] == mean and got[name]["n"] == len(per_video)
        assert got[f"{name}-normalized"]["value"] == scores["normalized"][dim]
    assert len(got) == 16 * 2 + 3
    for m in got.values():
        assert m["variant"]["implementation"] == "VBench official toolkit, imported"
        assert m["variant"]["vbench_version"] == "0.1.5" and m["higher_is_better"] is True
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["command"] == "import" and manifest["kind"] == "vbench-official" and manifest["status"] == "complete"
    assert manifest["source"][0]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["prompt_set"]["name"] == "vbench" and RunDir(tmp_path / "run").kind() == "import"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["manifest.json", "results.json"]
    from metrics.base import MetricValue

    assert all(MetricValue(**m).to_dict() == m for m in got.values())  # the shape every results.json has


def test_compare_and_report_read_imported_runs(cli, tmp_path):
    runs = {}
    for name, seed, drop in (("a", 0, ()), ("b", 1, ()), ("no-color", 2, ("color",)), ("no-scene", 3, ("scene",))):
        runs[name] = tmp_path / name
        source = results_file(tmp_path / f"{name}_eval_results.json", seed, drop)
        code, out, err = cli("import", "vbench", str(source), "--out", str(runs[name]))
        assert code == 0, err
        assert ("missing (not counted as 0): " + ", ".join(drop)) in out if drop else "partial" not in out

    code, out, err = cli("compare", str(runs["a"]), str(runs["b"]), "--json")
    assert code in (0, 1), err
    comps = {c["name"]: c for c in json.loads(out)[0]["metrics"]}
    assert len(comps) == 35 and not [c for c in comps.values() if c["verdict"] == "not comparable"]
    a, b = metrics_of(runs["a"]), metrics_of(runs["b"])
    assert comps["vbench-total"]["delta"] == pytest.approx(b["vbench-total"]["value"] - a["vbench-total"]["value"])

    # a full total and a partial one are different numbers; partials missing different dimensions are not comparable
    code, out, _ = cli("compare", str(runs["a"]), str(runs["no-color"]), "--json")
    names = {c["name"] for c in json.loads(out)[0]["metrics"]}
    assert "vbench-total" not in names and "vbench-total-partial" not in names and "vbench-quality" in names
    code, out, _ = cli("compare", str(runs["no-color"]), str(runs["no-scene"]), "--json")
    comps = {c["name"]: c for c in json.loads(out)[0]["metrics"]}
    assert code in (1, 3) and comps["vbench-total-partial"]["verdict"] == "not comparable"  # 1 wins over 3
    assert "variant differs in missing" in comps["vbench-total-partial"]["reason"]
    assert comps["vbench-quality"]["verdict"] != "not comparable"

    code, out, err = cli("report", *(str(p) for p in runs.values()), "--out", str(tmp_path / "report"))
    assert code == 0, err
    md = (tmp_path / "report" / "report.md").read_text()
    assert "vbench-total" in md and "vbench-semantic-partial" in md and "no-scene" in md


BAD = [
    ("not json", b"{oops", "is not JSON"),
    ("a list", b"[1, 2]", "is not a VBench results file"),
    ("empty", b"{}", "is not a VBench results file"),
    ("unknown dimension", b'{"warp_speed": [0.5, [{"video_path": "x-0.mp4"}]]}', "'warp_speed' is not one of VBench's 16"),
    ("no per-video list", b'{"color": 0.5}', "is not [score, [per-video results]]"),
    ("NaN", b'{"color": [NaN, [{"video_path": "x-0.mp4"}]]}', "is not a finite number"),
    ("a bool", b'{"color": [true, [{"video_path": "x-0.mp4"}]]}', "is not a finite number"),
    ("no videos", b'{"color": [0.5, []]}', "expected a non-empty list of per-video results"),
    ("foreign clips", b'{"color": [0.5, [{"video_path": "/v/not a vbench prompt-0.mp4"}]]}',
     "which is not named after a prompt of vbench"),
]


@pytest.mark.parametrize("what, content, message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_results_file_is_one_line_before_anything_is_written(cli, tmp_path, what, content, message):
    source = tmp_path / "bad_eval_results.json"
    source.write_bytes(content)
    code, _, err = cli("import", "vbench", str(source), "--out", str(tmp_path / "run"))
    one_line_error(code, err, message)
    assert not (tmp_path / "run").exists()


def test_import_refuses_folders_it_did_not_make_and_files_given_twice(cli, tmp_path):
    source = results_file(tmp_path / "r_eval_results.json")
    one_line_error(*cli("import", "vbench", str(tmp_path / "missing.json"), "--out", str(tmp_path / "run"))[::2], "not found")
    one_line_error(*cli("import", "vbench", str(source), str(source), "--out", str(tmp_path / "run"))[::2],
                   "is in both")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("three years of work")
    one_line_error(*cli("import", "vbench", str(source), "--out", str(mine))[::2], "is not empty and not a benchkit run")
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]

    run = tmp_path / "run"
    assert cli("import", "vbench", str(source), "--out", str(run))[0] == 0
    (run / "notes.md").write_text("my notes")
    other = results_file(tmp_path / "s_eval_results.json", seed=5)
    assert cli("import", "vbench", str(other), "--out", str(run))[0] == 0  # an earlier import is replaced
    assert (run / "notes.md").read_text() == "my notes"
    assert json.loads((run / "manifest.json").read_text())["source"][0]["path"] == str(other.resolve())
    (tmp_path / "evalrun").mkdir()
    write_json_atomic(tmp_path / "evalrun" / "manifest.json", {"benchkit_run": 1, "command": "eval"})
    one_line_error(*cli("import", "vbench", str(source), "--out", str(tmp_path / "evalrun"))[::2], "is a benchkit eval run")


def test_per_dimension_results_files_import_together(cli, tmp_path):
    """`vbench evaluate --dimension X` writes one file per dimension; together they are the full set."""
    data = official_results(6, (), PROMPTS)
    files = []
    for dim, entry in data.items():
        files.append(tmp_path / f"{dim}_eval_results.json")
        files[-1].write_text(json.dumps({dim: entry}))
    assert cli("import", "vbench", *(str(f) for f in files), "--out", str(tmp_path / "run"))[0] == 0
    _, quality, semantic, total = transcribed_formula({k.replace("_", " "): v[0] for k, v in data.items()})
    got = metrics_of(tmp_path / "run")
    assert (got["vbench-quality"]["value"], got["vbench-semantic"]["value"], got["vbench-total"]["value"]) == \
        pytest.approx((quality, semantic, total), rel=1e-12)
