"""Nightly: two toy checkpoints over three nights; history, trend plot and the regression gate."""

import sqlite3

from benchkit.nightly import run_nightly

CONFIG = """
out = "out"
seeds = "0-1"
metrics = ["toy-fid", "toy-alignment", "latency"]
gate = ["toy-fid", "toy-alignment"]
batch_size = 16
[[models]]
name = "a"
spec = "toy-digits"
steps = 8
[[models]]
name = "b"
spec = "toy-digits"
steps = {b_steps}
[[prompts]]
set = "toy-digits"
limit = 20
"""
# 20 prompts, two of each digit: the gate decides on bootstrap intervals, which resample prompts within each digit;
# over 4 prompts of 4 digits a 4-step and a 1-step toy FID are not told apart, as they should not be


def test_nights_history_trend_and_gate(tmp_path, cli):
    good, worse = tmp_path / "good.toml", tmp_path / "worse.toml"
    good.write_text(CONFIG.format(b_steps=4))
    worse.write_text(CONFIG.format(b_steps=1))  # checkpoint b regresses: 1-step sampling

    first = run_nightly(good, night="n1", show_progress=False)
    assert first["status"] == "pass" and all(j["baseline_night"] is None for j in first["jobs"])

    code, out, _ = cli("nightly", str(worse), "--night", "n2", "--quiet")
    assert code == 1 and "n2: fail" in out

    third = run_nightly(good, night="n3", show_progress=False)  # the same candidates as n1 again
    assert third["status"] == "pass"
    assert {j["job"]: j["baseline_night"] for j in third["jobs"]} == {"a--toy-digits--cpu": "n1", "b--toy-digits--cpu": "n1"}
    assert all(v == "within noise" for j in third["jobs"] for v in j["verdicts"].values())

    db = sqlite3.connect(tmp_path / "out" / "history.sqlite")
    assert list(db.execute("SELECT night, status FROM nights ORDER BY night")) == [("n1", "pass"), ("n2", "fail"), ("n3", "pass")]
    verdicts = dict(db.execute("SELECT job || ':' || name, verdict FROM verdicts WHERE night = 'n2'"))
    assert verdicts["b--toy-digits--cpu:toy-fid"] == "worse"
    assert verdicts["a--toy-digits--cpu:toy-fid"] == "within noise"
    fids = list(db.execute("SELECT night, value FROM metrics WHERE job = 'b--toy-digits--cpu' AND name = 'toy-fid' ORDER BY night"))
    assert [n for n, _ in fids] == ["n1", "n2", "n3"] and fids[0][1] == fids[2][1] < fids[1][1]

    md = third["report"]["markdown"].read_text()
    assert "## Trend: toy-fid" in md and (tmp_path / "out" / "n3" / "report" / "figure1.svg").exists()
    assert "<svg" in third["report"]["html"].read_text().split("Trend: toy-fid", 1)[1]


def test_bad_config_is_one_line(tmp_path, cli):
    bad = tmp_path / "bad.toml"
    bad.write_text('seeds = "0-1"\ncolour = 1\n')
    code, _, err = cli("nightly", str(bad))
    assert code == 2 and "bad.toml: unknown field 'colour'" in err
    bad.write_text('seeds = "0-1"\n')
    code, _, err = cli("nightly", str(bad))
    assert code == 2 and "needs at least one [[models]]" in err
