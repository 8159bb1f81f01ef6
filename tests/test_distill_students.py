"""The shipped toy students load through their spec folders and beat the teacher's own 1-step sample."""

from __future__ import annotations

import json
from pathlib import Path

from benchkit.demo import run_demo, shipped_students

METHODS = ("adm", "dmd2", "hyper-sd", "lightning")


def test_every_method_ships_a_1_and_a_4_step_student():
    names = {p.parent.name for p in shipped_students()}
    assert names == {f"{m}-{n}step" for m in METHODS for n in (1, 4)}


def test_demo_compares_students_with_the_teacher(tmp_path):
    summary = run_demo(tmp_path / "demo", device="cpu", show_progress=False, steps=(1,), seeds="0-4")
    rows = summary["rows"]
    teacher_1 = next(r for r in rows if r["scheduler"] == "ddim" and r["steps"] == 1)
    students = {(r["scheduler"], r["steps"]): r for r in rows if r["scheduler"].endswith("student")}
    assert len(students) == 8
    def fid_interval(row):
        found = next(m for m in json.loads((Path(row["run"]) / "results.json").read_text())["metrics"] if m["name"] == "toy-fid")
        return found["extra"]["interval"]

    teacher_interval = fid_interval(teacher_1)
    for (label, steps), row in students.items():
        assert row["nfe"] == steps  # guidance-free recipes: one UNet call per step
        assert row["toy-fid"] * 2.5 < teacher_1["toy-fid"], (label, steps, row["toy-fid"], teacher_1["toy-fid"])
        # issue 18: the 1-step teacher loses to every student with non-overlapping 95% bootstrap intervals
        got = fid_interval(row)
        assert got["low"] <= row["toy-fid"] <= got["high"] < teacher_interval["low"], (label, steps, got, teacher_interval)
    # issue 6: "4-step students come closer still": each method's 4-step student is clearly better than
    # its own 1-step one. On these 100 images the shipped students measured 0.60-0.78 of the 1-step FID;
    # the earlier ADM 4-step student (the teacher under LCM re-noising, 100 steps from a cold start)
    # scored 21.08 against 23.96 (0.88) and fails this.
    for method in METHODS:
        one, four = (students[(f"{method} student", n)]["toy-fid"] for n in (1, 4))
        assert four < 0.85 * one, (method, four, one)
