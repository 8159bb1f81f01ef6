"""A reduced demo: the trained teacher improves with steps and the report is written.

Without the eight shipped students (two thirds of the demo's runs): test_distill_students runs the
demo with them and checks their rows."""

from benchkit.demo import run_demo


def test_demo_small(tmp_path):
    summary = run_demo(tmp_path / "demo", device="cpu", show_progress=False, steps=(8, 1), seeds="0-4", students=False)
    assert len(summary["rows"]) == 4
    rows = {(r["scheduler"], r["steps"]): r for r in summary["rows"]}
    for sched in ("ddim", "euler"):
        assert rows[(sched, 8)]["toy-fid"] * 3 < rows[(sched, 1)]["toy-fid"]
        assert rows[(sched, 8)]["nfe"] == 8 * rows[(sched, 1)]["nfe"]
    html = summary["report"]["html"].read_text()
    assert "<svg" in html and html.count("data:image/png;base64") >= 4
    assert summary["report"]["markdown"].exists()
