"""Comparability: quality numbers over other samples are refused; nightly baselines follow start
time, dead nights are marked aborted, and bad nightly configs fail in one line before any work.

Runs here are fabricated (results.json + manifest.json), so nothing is generated.
"""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

import benchkit.nightly as nightly
from benchkit.nightly import run_nightly
from reports.compare import compare_runs, exit_code
from reports.history import History
from reports.runs import load_run

SHA = "a" * 64


def fake_run(path, fid=10.0, prompts=4, seeds=(0, 1), sha=SHA, per_seed=None, subset=None):
    """A scored run directory as `benchkit eval` leaves it, without images."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "images").mkdir(exist_ok=True)
    prompt_set = {"name": "toy-digits", "sha256": sha, "count": prompts,
                  "subset": subset or (f"first {prompts}" if prompts < 10 else "all"), "source": "", "group_fields": []}
    n = prompts * len(seeds)
    (path / "manifest.json").write_text(json.dumps({"spec": {"name": "toy"}, "prompt_set": prompt_set, "seeds": list(seeds),
                                                    "device": "cpu", "dtype": "float32"}))
    (path / "samples.jsonl").write_text("")
    metric = {"name": "toy-fid", "value": fid, "unit": "fid", "higher_is_better": False, "n": n, "variant": {"protocol": "toy"}}
    timing = {"name": "throughput", "value": 5.0, "unit": "images/s", "higher_is_better": True, "n": n,
              "variant": {"device": "cpu"}}
    breakdowns = [{"field": "seed", "value": str(s), "n": prompts, "skipped": {},
                   "metrics": [{**metric, "value": v, "n": prompts}]} for s, v in zip(seeds, per_seed or [])]
    (path / "results.json").write_text(json.dumps({
        "run": {"path": str(path), "label": path.name, "spec_hash": "s", "prompt_set": prompt_set, "seeds": list(seeds),
                "n_images": n, "device": "cpu", "dtype": "float32"},
        "metrics": [metric, timing], "breakdowns": breakdowns}))
    return path


# --- compare -------------------------------------------------------------------------------------

def test_different_prompt_subsets_are_refused_unless_allowed(tmp_path, cli):
    two = fake_run(tmp_path / "two", fid=10.0, prompts=2)
    four = fake_run(tmp_path / "four", fid=20.0, prompts=4)
    code, out, err = cli("compare", str(two), str(four), "--json")
    assert code == 3, err
    by_name = {m["name"]: m for m in json.loads(out)[0]["metrics"]}
    fid = by_name["toy-fid"]
    assert fid["verdict"] == "not comparable"
    assert fid["reason"].startswith("prompt subset differs: first 2 vs first 4") and "--allow-different-prompts" in fid["reason"]
    assert by_name["throughput"]["verdict"] == "within noise"  # timing does not depend on which prompts

    code, out, _ = cli("compare", str(two), str(four))  # the table names the difference too
    assert code == 3 and "prompt subset differs: first 2 vs first 4" in out

    code, out, _ = cli("compare", str(two), str(four), "--json", "--allow-different-prompts")
    assert code == 1  # an ordinary verdict: fid 10 -> 20 with no band is worse
    fid = next(m for m in json.loads(out)[0]["metrics"] if m["name"] == "toy-fid")
    assert fid["verdict"] == "worse" and fid["reason"] == "compared anyway: prompt subset differs: first 2 vs first 4"


def test_other_prompt_set_seeds_or_image_count_are_refused(tmp_path):
    base = load_run(fake_run(tmp_path / "base"))
    cases = {
        "seeds": (fake_run(tmp_path / "seeds", seeds=(0, 1, 2)), "seed list differs: 0-1 vs 0-2"),
        "sha": (fake_run(tmp_path / "sha", sha="b" * 64), "prompt set toy-digits differs in content"),
    }
    for name, (path, reason) in cases.items():
        (fid,) = [c for c in compare_runs(base, load_run(path)) if c.name == "toy-fid"]
        assert fid.verdict == "not comparable" and fid.reason.startswith(reason), name
    partial = fake_run(tmp_path / "partial")
    results = json.loads((partial / "results.json").read_text())
    results["run"]["n_images"] = 5  # scored before every image existed
    (partial / "results.json").write_text(json.dumps(results))
    comps = compare_runs(base, load_run(partial))
    assert exit_code(comps) == 3 and comps[0].reason.startswith("image count differs: 8 vs 5")
    allowed = compare_runs(base, load_run(partial), allow_different_samples=True)
    assert allowed[0].verdict == "within noise" and exit_code(allowed) == 0


def test_different_seed_lists_exit_3(tmp_path, cli):
    base, other = fake_run(tmp_path / "base"), fake_run(tmp_path / "other", seeds=(2, 3))
    code, out, _ = cli("compare", str(base), str(other), "--json")
    assert code == 3
    fid = next(m for m in json.loads(out)[0]["metrics"] if m["name"] == "toy-fid")
    assert fid["reason"].startswith("seed list differs: 0-1 vs 2-3")


def test_same_samples_compare_as_before(tmp_path, cli):
    base = fake_run(tmp_path / "base", fid=10.0, per_seed=[9.0, 11.0])
    cand = fake_run(tmp_path / "cand", fid=11.0, per_seed=[10.0, 12.0])
    code, out, _ = cli("compare", str(base), str(cand), "--json")
    fid = next(m for m in json.loads(out)[0]["metrics"] if m["name"] == "toy-fid")
    assert code == 0 and fid["verdict"] == "within noise" and fid["reason"] == ""
    assert json.loads(out)[0]["sample_difference"] == []


# --- nightly baselines and aborted nights ---------------------------------------------------------

CONFIG = """
out = "out"
seeds = "0-1"
metrics = ["toy-fid"]
gate = ["toy-fid"]
[[models]]
name = "a"
spec = "toy-digits"
[[prompts]]
set = "toy-digits"
limit = 4
"""
JOB = "a--toy-digits--cpu"


@pytest.fixture()
def fake_eval(monkeypatch):
    """run_eval replaced by a fabricated run whose toy-fid is ``values[night]`` (a bad night raises)."""
    values: dict[str, float] = {}

    def run_eval(spec, prompt_set, seeds, out, **_):
        night = out.parent.name
        if values[night] is None:
            raise KeyboardInterrupt  # as if interrupted mid-night
        fake_run(out, fid=values[night], prompts=len(prompt_set), seeds=seeds, sha=prompt_set.sha256,
                 subset=prompt_set.subset, per_seed=[values[night]] * len(seeds))
        return json.loads((out / "results.json").read_text())

    monkeypatch.setattr(nightly, "run_eval", run_eval)
    return values


def nights(tmp_path):
    db = sqlite3.connect(tmp_path / "out" / "history.sqlite")
    try:
        return dict(db.execute("SELECT night, status FROM nights"))
    finally:
        db.close()


def test_baseline_is_newest_earlier_pass_by_start_time(tmp_path, fake_eval):
    config = tmp_path / "nightly.toml"
    config.write_text(CONFIG)
    fake_eval.update(zeta=10.0, alpha=10.0, mid=30.0, beta=10.0)
    assert run_nightly(config, night="zeta", show_progress=False)["status"] == "pass"
    alpha = run_nightly(config, night="alpha", show_progress=False)  # "alpha" < "zeta" as strings, but later
    assert alpha["status"] == "pass" and alpha["jobs"][0]["baseline_night"] == "zeta"
    mid = run_nightly(config, night="mid", show_progress=False)
    assert mid["status"] == "fail" and mid["jobs"][0]["baseline_night"] == "alpha"
    beta = run_nightly(config, night="beta", show_progress=False)  # a failed night is never a baseline
    assert beta["jobs"][0]["baseline_night"] == "alpha" and beta["status"] == "pass"
    history = History(tmp_path / "out" / "history.sqlite")
    try:
        assert [n for n, _ in history.nights()] == ["zeta", "alpha", "mid", "beta"]
        assert [n for n, _ in history.trend("toy-fid")[JOB]] == ["zeta", "alpha", "mid", "beta"]
    finally:
        history.close()


def test_other_prompt_limit_does_not_use_an_incomparable_baseline(tmp_path, fake_eval):
    config = tmp_path / "nightly.toml"
    config.write_text(CONFIG)
    fake_eval.update(n1=10.0, n2=50.0, n3=10.0)
    run_nightly(config, night="n1", show_progress=False)
    config.write_text(CONFIG.replace("limit = 4", "limit = 2"))
    second = run_nightly(config, night="n2", show_progress=False)
    assert second["jobs"][0]["baseline_night"] is None  # n1 ran other prompts
    config.write_text(CONFIG)
    third = run_nightly(config, night="n3", show_progress=False)
    assert third["jobs"][0]["baseline_night"] == "n1"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_night_is_marked_aborted_and_never_a_baseline(tmp_path, fake_eval):
    config = tmp_path / "nightly.toml"
    config.write_text(CONFIG)
    fake_eval.update(n1=10.0, killed=99.0, n3=10.0)
    run_nightly(config, night="n1", show_progress=False)
    # what a process killed mid-night leaves: its row 'running', with metrics but no verdict
    history = History(tmp_path / "out" / "history.sqlite")
    history.start_night("killed", nightly._timestamp(), "x")
    with history.db:
        history.db.execute("UPDATE nights SET pid = ? WHERE night = 'killed'", (dead_pid(),))
    history.record_run("killed", JOB, tmp_path / "out" / "killed" / JOB,
                       json.loads((fake_run(tmp_path / "out" / "killed" / JOB, fid=99.0) / "results.json").read_text()), {})
    history.close()
    assert nights(tmp_path)["killed"] == "running"

    third = run_nightly(config, night="n3", show_progress=False)
    assert third["aborted"] == ["killed"] and third["jobs"][0]["baseline_night"] == "n1"
    assert nights(tmp_path) == {"n1": "pass", "killed": "aborted", "n3": "pass"}

    resumed = run_nightly(config, night="killed", show_progress=False)  # re-running its id resumes it
    assert resumed["status"] == "fail" and nights(tmp_path)["killed"] == "fail"


def test_interrupted_night_is_aborted_at_once(tmp_path, fake_eval):
    config = tmp_path / "nightly.toml"
    config.write_text(CONFIG)
    fake_eval.update(n1=10.0, n2=None)
    run_nightly(config, night="n1", show_progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_nightly(config, night="n2", show_progress=False)
    assert nights(tmp_path) == {"n1": "pass", "n2": "aborted"}


@pytest.mark.skipif(os.name != "posix", reason="liveness of another process is only checked on POSIX")
def test_night_of_a_live_process_is_left_running(tmp_path, fake_eval):
    config = tmp_path / "nightly.toml"
    config.write_text(CONFIG)
    fake_eval.update(n2=10.0)
    history = History(tmp_path / "out" / "history.sqlite")
    history.start_night("n1", "2000-01-01T00:00:00+00:00", "x")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with history.db:
            history.db.execute("UPDATE nights SET pid = ? WHERE night = 'n1'", (live.pid,))
        history.close()
        assert run_nightly(config, night="n2", show_progress=False)["aborted"] == []
        assert nights(tmp_path)["n1"] == "running"
    finally:
        live.kill()
        live.wait()


def test_history_of_an_older_benchkit_gains_columns(tmp_path, fake_eval):
    config = tmp_path / "nightly.toml"
    config.write_text(CONFIG)
    (tmp_path / "out").mkdir()
    db = sqlite3.connect(tmp_path / "out" / "history.sqlite")
    with db:
        db.execute("CREATE TABLE nights (night TEXT PRIMARY KEY, started TEXT, config_sha256 TEXT, status TEXT)")
        db.execute("INSERT INTO nights VALUES ('old', '2020-01-01T00:00:00+00:00', 'x', 'running')")
    db.close()
    fake_eval.update(n1=10.0)
    assert run_nightly(config, night="n1", show_progress=False)["aborted"] == ["old"]
    assert nights(tmp_path) == {"old": "aborted", "n1": "pass"}


# --- nightly config validation -----------------------------------------------------------------

GOOD = CONFIG.strip()
BAD_CONFIGS = {
    "steps": (GOOD.replace('spec = "toy-digits"', 'spec = "toy-digits"\nsteps = "four"'), "models[0].steps must be a positive integer, got 'four'"),
    "steps zero": (GOOD.replace('spec = "toy-digits"', 'spec = "toy-digits"\nsteps = 0'), "models[0].steps must be a positive integer"),
    "steps bool": (GOOD.replace('spec = "toy-digits"', 'spec = "toy-digits"\nsteps = true'), "models[0].steps must be a positive integer, got true"),
    "scheduler": (GOOD.replace('spec = "toy-digits"', 'spec = "toy-digits"\nscheduler = 3'), "models[0].scheduler must be a non-empty string"),
    "guidance": (GOOD.replace('spec = "toy-digits"', 'spec = "toy-digits"\nguidance_scale = nan'), "models[0].guidance_scale must be a finite number"),
    "spec type": (GOOD.replace('spec = "toy-digits"', "spec = 1"), "models[0].spec must be a non-empty string"),
    "spec unknown": (GOOD.replace('spec = "toy-digits"', 'spec = "no-such-model"'), "models[0]: unknown model 'no-such-model'"),
    "model key": (GOOD.replace('spec = "toy-digits"', 'spec = "toy-digits"\nstesp = 2'), "models[0] has unknown field 'stesp'"),
    "models type": ('models = "toy"\n[[prompts]]\nset = "toy-digits"\n', "models must be one or more [[models]] tables"),
    "limit": (GOOD.replace("limit = 4", 'limit = "4"'), "prompts[0].limit must be a positive integer, got '4'"),
    "limit negative": (GOOD.replace("limit = 4", "limit = -1"), "prompts[0].limit must be a positive integer, got -1"),
    "set type": (GOOD.replace('set = "toy-digits"', "set = 5"), "prompts[0].set must be a non-empty string"),
    "set unknown": (GOOD.replace('set = "toy-digits"', 'set = "no-such-set"'), "prompts[0].set: unknown prompt set"),
    "prompt key": (GOOD.replace("limit = 4", "limit = 4\nsample = 2"), "prompts[0] has unknown field 'sample'"),
    "devices": (GOOD.replace('seeds = "0-1"', 'seeds = "0-1"\ndevices = "cpu"'), "devices must be a non-empty list of strings"),
    "device item": (GOOD.replace('seeds = "0-1"', 'seeds = "0-1"\ndevices = ["cpu", 1]'), "devices[1] must be a non-empty string"),
    "device name": (GOOD.replace('seeds = "0-1"', 'seeds = "0-1"\ndevices = ["tpu"]'), "devices[0]: --device tpu: unknown device"),
    "seeds": (GOOD.replace('seeds = "0-1"', 'seeds = "zero"'), "seeds must be a range like"),
    "seeds list": (GOOD.replace('seeds = "0-1"', 'seeds = [0, "1"]'), "seeds must be a string like"),
    "seeds float": (GOOD.replace('seeds = "0-1"', "seeds = 1.5"), "seeds must be a string like"),
    "metrics": (GOOD.replace('metrics = ["toy-fid"]', 'metrics = ["toy-fdi"]'), "metrics: unknown metric 'toy-fdi'"),
    "metrics type": (GOOD.replace('metrics = ["toy-fid"]', "metrics = 3"), "metrics must be a non-empty list of strings"),
    "gate": (GOOD.replace('gate = ["toy-fid"]', 'gate = ["toy-alignment"]'), "gate[0] 'toy-alignment' is not a value"),
    "gate type": (GOOD.replace('gate = ["toy-fid"]', 'gate = "toy-fid"'), "gate must be a non-empty list of strings"),
    "tolerance value": (GOOD + '\n[tolerances]\ntoy-fid = "five"\n', "tolerances.toy-fid must be a non-negative number or a percentage"),
    "tolerance name": (GOOD + "\n[tolerances]\ntoy-fdi = 1\n", "tolerances.toy-fdi names no metric value"),
    "tolerance negative": (GOOD + '\n[tolerances]\ntoy-fid = "-5%"\n', "tolerances.toy-fid must be a non-negative number"),
    "tolerances type": (GOOD.replace('seeds = "0-1"', 'seeds = "0-1"\ntolerances = 5'), "tolerances must be a table"),
    "sigma": (GOOD.replace('seeds = "0-1"', 'seeds = "0-1"\nsigma = "2"'), "sigma must be a positive number, got '2'"),
    "batch": (GOOD.replace('seeds = "0-1"', 'seeds = "0-1"\nbatch_size = 0'), "batch_size must be a positive integer, got 0"),
    "dtype": (GOOD.replace('seeds = "0-1"', 'seeds = "0-1"\ndtype = "float8"'), "dtype must be one of auto"),
    "out": (GOOD.replace('out = "out"', "out = 1"), "out must be a non-empty string"),
    "unknown top": ("colour = 1\n" + GOOD, "unknown field 'colour'"),
    "repeated job": (GOOD + '\n[[models]]\nname = "a"\nspec = "toy-digits"\n', "models[1] x prompts[0] x devices[0] gives job 'a--toy-digits--cpu' again"),
    "invalid toml": (GOOD + "\nseeds = \n", "invalid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_nightly_config_is_one_line_exit_2_and_writes_nothing(tmp_path, cli, case):
    text, message = BAD_CONFIGS[case]
    config = tmp_path / "nightly.toml"
    config.write_text(text)
    code, out, err = cli("nightly", str(config), "--quiet")
    assert code == 2, (case, out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"nightly.toml: {message}" in err, err
    assert not (tmp_path / "out").exists()


def test_non_utf8_config_and_bad_night_id_are_one_line(tmp_path, cli):
    config = tmp_path / "nightly.toml"
    config.write_bytes(b'seeds = "0-1"\n# caf\xe9\n')
    code, _, err = cli("nightly", str(config))
    assert code == 2 and "nightly.toml: not UTF-8 text" in err and len(err.strip().splitlines()) == 1
    config.write_text(CONFIG)
    code, _, err = cli("nightly", str(config), "--night", "../escape")
    assert code == 2 and "--night '../escape'" in err and not (tmp_path / "out").exists()


def test_good_config_with_seed_list_and_percent_tolerance_loads(tmp_path):
    config = tmp_path / "nightly.toml"
    config.write_text(GOOD.replace('seeds = "0-1"', "seeds = [0, 1]\nmetrics = \"toy-fid,latency\"", 1)
                      .replace('metrics = ["toy-fid"]\n', "") + '\n[tolerances]\ntoy-fid = "5%"\nthroughput = 0.5\n')
    cfg = nightly.load_config(config)
    assert cfg.seeds == [0, 1] and cfg.metrics == ["toy-fid", "latency"]
    assert cfg.tolerances["toy-fid"].relative and cfg.tolerances["toy-fid"].value == pytest.approx(0.05)
    assert [j.key for j in cfg.jobs] == [JOB]


def test_unreadable_history_and_bad_sigma_are_one_line(tmp_path, cli, fake_eval):
    config = tmp_path / "nightly.toml"
    config.write_text(CONFIG)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "history.sqlite").write_bytes(b"not a database" * 100)
    code, _, err = cli("nightly", str(config), "--night", "n1")
    assert code == 2 and "history.sqlite is not a readable benchkit history" in err and "Traceback" not in err
    run = fake_run(tmp_path / "run")
    code, _, err = cli("compare", str(run), str(run), "--sigma", "nan")
    assert code == 2 and "--sigma must be a positive number" in err
