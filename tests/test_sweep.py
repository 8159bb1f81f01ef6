"""Issue 18: `benchkit sweep` runs a steps x guidance x scheduler grid of ordinary runs and reports the fronts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchkit.core.errors import BenchkitError
from benchkit.sweep import SweepPoint, parse_grid
from reports.plots import pareto_front


def test_the_grid_is_parsed_and_checked_before_any_work():
    points = parse_grid("1,2", "1, 2.5", "ddim,EulerDiscreteScheduler")
    assert [p.name for p in points] == ["ddim-01steps-cfg1", "ddim-02steps-cfg1", "ddim-01steps-cfg2.5",
                                        "ddim-02steps-cfg2.5", "eulerdiscretescheduler-01steps-cfg1",
                                        "eulerdiscretescheduler-02steps-cfg1", "eulerdiscretescheduler-01steps-cfg2.5",
                                        "eulerdiscretescheduler-02steps-cfg2.5"]
    assert parse_grid("4") == [SweepPoint(4)] and SweepPoint(4).name == "recipe-04steps"
    for args, message in [(("0",), "'0' is not a whole number of steps"), (("2,x",), "'x' is not a whole number"),
                          (("2", "-1"), "'-1' is not a guidance scale"), (("2", "nan"), "'nan' is not a guidance"),
                          (("2", None, "ddim,nosuch"), "'nosuch' is neither a short name"),
                          (("2,2",), "names setting 'recipe-02steps' twice"), ((",",), "give one or more values")]:
        with pytest.raises(BenchkitError, match=message):
            parse_grid(*args)


def test_toy_sweep_writes_the_pareto_report_and_resumes(tmp_path, cli, session_cache):
    out = tmp_path / "sweep"
    args = ["sweep", "toy-digits", "--steps", "1,2", "--scheduler", "ddim,euler", "--guidance", "1,2", "-p", "toy-digits",
            "--limit", "4", "--seeds", "0-1", "--metrics", "toy-fid,toy-alignment,latency", "--out", str(out),
            "--batch-size", "8", "--workers", "0", "--device", "cpu", "-q", "--cache-dir", str(session_cache)]
    code, stdout, err = cli(*args)
    assert code in (0, None), err
    state = json.loads((out / "sweep.json").read_text())
    assert len(state["points"]) == 8 and all(p["status"] == "done" for p in state["points"].values())
    results = {name: json.loads((out / "runs" / name / "results.json").read_text()) for name in state["points"]}
    values = {name: {m["name"]: m["value"] for m in r["metrics"]} for name, r in results.items()}
    assert values["ddim-02steps-cfg2"]["nfe"] == 4 and values["ddim-02steps-cfg1"]["nfe"] == 2  # cfg 1: no guidance pass
    # the fronts are the settings no other beats on both axes, recomputed here from the runs' own values
    names = sorted(values)
    for key, cost in (("latency", "latency_image_p50"), ("nfe", "nfe")):
        points = [(values[n][cost], values[n]["toy-fid"]) for n in names]
        assert state["pareto"][key] == [names[i] for i in pareto_front(points, False)]
    assert state["quality"] == "toy-fid" and "Pareto fronts on toy-fid" in stdout
    html = (out / "report" / "report.html").read_text()
    assert "First run, second run and size" in html and "toy-fid against NFE" in html
    assert all(name in html for name in names)
    # rerun: every setting is finished, nothing is generated again, the same fronts come back
    mtimes = {n: (out / "runs" / n / "samples.jsonl").stat().st_mtime_ns for n in names}
    code, _, err = cli(*args)
    assert code in (0, None), err
    assert {n: (out / "runs" / n / "samples.jsonl").stat().st_mtime_ns for n in names} == mtimes
    assert json.loads((out / "sweep.json").read_text())["pareto"] == state["pareto"]
    # the folder holds this model's sweep: another model there is refused, before any work
    student = str(Path(__file__).resolve().parents[1] / "benchkit/toy/assets/students/dmd2-1step/spec.toml")
    code, _, err = cli(*[student if i == 1 else a for i, a in enumerate(args)])
    assert code == 2 and "holds a sweep with a different 'model" in err
    assert sorted(p.name for p in out.iterdir()) == ["report", "runs", "sweep.json"]


def test_sweep_refuses_a_folder_that_is_not_a_sweep(tmp_path, cli):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = cli("sweep", "toy-digits", "--steps", "1", "--out", str(out), "-q", "--device", "cpu")
    assert code == 2 and "is not a benchkit sweep" in err and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
