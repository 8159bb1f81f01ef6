"""Users' data is sacred: benchkit replaces only what it made, never writes into or over its inputs,
writes atomically, and lets one process at a time write a run folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_files import one_line_error, tree

from benchkit.core.errors import BenchkitError
from benchkit.core.lock import LOCK_NAME, folder_lock

FAST = ["--limit", "2", "--seeds", "0-1", "--steps", "1", "--quiet", "--metrics", "toy-fid,toy-diversity"]


@pytest.fixture()
def user_folder(tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.tex").write_text("three years of work")
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return folder


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A small eval run to score and to replace (made once: copies are taken per test)."""
    from benchkit.cli import main

    out = tmp_path_factory.mktemp("toyrun") / "run"
    main(["eval", *FAST, "--out", str(out), "--cache-dir", str(out.parent / "cache")])  # returns on success
    assert (out / "results.json").exists()
    return out


# -- eval --overwrite and recovery ---------------------------------------------------------------------

def test_overwrite_refuses_a_folder_that_is_not_a_run(cli, tmp_path, user_folder):
    before = tree(user_folder)
    code, _, err = cli("eval", *FAST, "--out", str(user_folder), "--overwrite", "--cache-dir", str(tmp_path / "c"))
    one_line_error(code, err, "is a folder that is not a benchkit run; benchkit only replaces its own eval runs")
    assert tree(user_folder) == before


def test_overwrite_replaces_only_the_runs_own_files(cli, tmp_path, toy_run):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    (run / "notes.md").write_text("my notes on this run")
    (run / "images" / "favourite.jpg").write_bytes(b"not benchkit's")
    code, _, err = cli("eval", *FAST, "--out", str(run), "--overwrite", "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    assert (run / "notes.md").read_text() == "my notes on this run"
    assert (run / "images" / "favourite.jpg").read_bytes() == b"not benchkit's"
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(manifest["sessions"]) == 1 and manifest["sessions"][0]["generated"] == 4  # a new run, made again


def test_overwrite_refuses_another_kind_of_run(cli, tmp_path, toy_run):
    scored = tmp_path / "scored"
    code, _, err = cli("score", str(toy_run / "images"), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet", "-o", str(scored))
    assert code == 0, err
    before = tree(scored)
    code, _, err = cli("eval", *FAST, "--out", str(scored), "--overwrite", "--cache-dir", str(tmp_path / "c"))
    one_line_error(code, err, "is a benchkit score run; benchkit only replaces its own eval runs")
    assert tree(scored) == before


def test_resume_keeps_files_benchkit_did_not_name(cli, tmp_path, toy_run):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    (run / "images" / "README.txt").write_text("mine")
    (run / "images" / "digit0-a_7.png").write_bytes(b"an uncommitted image of a killed run")
    code, _, err = cli("eval", *FAST, "--out", str(run), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    assert (run / "images" / "README.txt").read_text() == "mine"
    assert not (run / "images" / "digit0-a_7.png").exists()  # benchkit's name, no committed line: removed


def test_eval_out_inside_the_model_folder(cli, tmp_path):
    from benchkit.toy import TEACHER_DIR

    model = tmp_path / "teacher"
    shutil.copytree(TEACHER_DIR, model)
    spec = tmp_path / "m.toml"
    spec.write_text(f'name = "copy"\nbase = "{model}"\n[recipe]\nsteps = 1\n')
    before = tree(model)
    for out, message in ((model / "runs" / "x", "lies inside the model folder"), (model, "is the model folder itself"),
                         (tmp_path, "contains the model folder")):
        code, _, err = cli("eval", "-m", str(spec), *FAST[:4], "--quiet", "--out", str(out), "--overwrite")
        one_line_error(code, err, message)
    assert tree(model) == before


# -- score never touches the images it reads ------------------------------------------------------------

@pytest.mark.parametrize("where, message", [
    ("images", "is the image folder itself"),
    ("images/scored", "lies inside the image folder"),
    (".", "contains the image folder"),
])
def test_score_out_overlapping_the_images(cli, tmp_path, toy_run, where, message):
    folder = tmp_path / "mine"
    shutil.copytree(toy_run / "images", folder / "images")
    before = tree(folder)
    code, _, err = cli("score", str(folder / "images"), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet",
                       "-o", str(folder / where))
    one_line_error(code, err, message)
    assert tree(folder) == before


def test_score_out_that_is_not_a_score_run(cli, tmp_path, toy_run, user_folder):
    before = tree(user_folder)
    code, _, err = cli("score", str(toy_run / "images"), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet",
                       "-o", str(user_folder))
    one_line_error(code, err, "is a folder that is not a benchkit run; benchkit only replaces its own score runs")
    assert tree(user_folder) == before
    run_before = tree(toy_run)
    code, _, err = cli("score", str(toy_run / "images"), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet",
                       "-o", str(toy_run))
    assert code == 2 and "Traceback" not in err  # the eval run holds the images: refused either way
    assert tree(toy_run) == run_before


def test_score_replaces_its_own_earlier_score(cli, tmp_path, toy_run):
    out = tmp_path / "scored"
    for metrics in ("toy-fid", "toy-fid,toy-diversity"):
        code, _, err = cli("score", str(toy_run / "images"), "-p", "toy-digits", "--metrics", metrics, "--quiet", "-o", str(out))
        assert code == 0, err
    names = [m["name"] for m in json.loads((out / "results.json").read_text())["metrics"]]
    assert names == ["toy-fid", "toy-diversity"]


def test_score_round_trips_eval_seeds(cli, tmp_path):
    """Every seed `eval` accepts comes back from the file names `score` reads, large ones too."""
    out = tmp_path / "run"
    seeds = "0,7,123456789012"
    code, _, err = cli("eval", "--limit", "2", "--seeds", seeds, "--steps", "1", "--metrics", "toy-fid", "--quiet",
                       "--out", str(out), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    code, _, err = cli("score", str(out / "images"), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet", "-o", str(tmp_path / "s"))
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "s" / "samples.jsonl").read_text().splitlines()]
    assert sorted({r["seed"] for r in records}) == [0, 7, 123456789012]


# -- other outputs -----------------------------------------------------------------------------------------

def test_report_replaces_its_own_report_only(cli, tmp_path, toy_run):
    out = tmp_path / "rep"
    assert cli("report", str(toy_run), "-o", str(out))[0] == 0
    assert cli("report", str(toy_run), "-o", str(out))[0] == 0  # an earlier benchkit report is replaced
    foreign = tmp_path / "site"
    foreign.mkdir()
    (foreign / "report.html").write_text("<html>my own page</html>")
    code, _, err = cli("report", str(toy_run), "-o", str(foreign))
    one_line_error(code, err, "holds a report.html benchkit did not write")
    assert (foreign / "report.html").read_text() == "<html>my own page</html>"


# -- atomic writes -----------------------------------------------------------------------------------------

def test_atomic_write_leaves_the_old_file_when_it_fails(tmp_path, monkeypatch):
    from benchkit.core import atomic

    target = tmp_path / "manifest.json"
    atomic.write_json_atomic(target, {"v": 1})

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(BenchkitError, match="no space left on device while writing"):
        atomic.write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"], "the temporary file was left behind"


def test_json_is_never_written_with_nan(tmp_path):
    from benchkit.core.atomic import write_json_atomic

    with pytest.raises(BenchkitError, match=r"non-finite number \(NaN or infinity\) at spec.recipe.guidance_scale"):
        write_json_atomic(tmp_path / "m.json", {"spec": {"recipe": {"guidance_scale": float("nan")}}})
    assert not (tmp_path / "m.json").exists()


def test_package_writes_files_atomically():
    """Files are written through benchkit.core.atomic (temp file, fsync, rename): a grep for direct writes.

    The exceptions write what is not replaced in place: the temporary file of an ``atomic_target``
    block (the line right after it), append-only logs (opened with "a"),
    RunDir's per-image temp files (fsynced and renamed by hand), and the toy world's retraining
    commands, which write a fresh asset folder.
    """
    import re

    root = Path(__file__).resolve().parent.parent
    allowed = {"benchkit/core/atomic.py", "benchkit/core/rundir.py", "benchkit/core/lock.py", "benchkit/toy/teacher.py",
               "benchkit/toy/classifier.py", "benchkit/models/video.py"}
    direct = re.compile(r"\.write_text\(|\.write_bytes\(|open\([^)]*[\"']w[b+]?[\"']")
    found = []
    for package in ("benchkit", "distillers", "metrics", "prompts", "reports"):
        for path in (root / package).rglob("*.py"):
            rel = str(path.relative_to(root))
            if rel in allowed:
                continue
            lines = path.read_text().splitlines()
            for no, line in enumerate(lines, 1):
                in_atomic_target = no > 1 and "atomic_target(" in lines[no - 2]  # the temp file atomic_target renames
                if direct.search(line) and not line.lstrip().startswith("#") and not in_atomic_target:
                    found.append(f"{rel}:{no}: {line.strip()}")
    assert not found, "direct (non-atomic) writes:\n" + "\n".join(found)


# -- one writer per run folder -------------------------------------------------------------------------------

def test_a_held_folder_is_refused_with_its_holder(cli, tmp_path, toy_run):
    out = tmp_path / "run"
    with folder_lock(out, "benchkit eval (test holder)"):
        code, _, err = cli("eval", *FAST, "--out", str(out), "--cache-dir", str(tmp_path / "c"))
        one_line_error(code, err, f"is in use by pid {os.getpid()} on ")
        assert "(benchkit eval (test holder)); wait for it to finish, or pass --wait" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME], "the refused process wrote into the folder"
        for argv in (["score", str(toy_run / "images"), "-p", "toy-digits", "--metrics", "toy-fid", "-o", str(out)],
                     ["distill", "--method", "dmd2", "--teacher", "toy-digits", "--steps", "1", "--out", str(out)]):
            code, _, err = cli(*argv, "--quiet")
            one_line_error(code, err, "is in use by pid")
    assert not out.exists(), "a folder the lock created and nothing filled is removed"


def test_a_dead_holders_lock_is_taken_over(cli, tmp_path, toy_run):
    """A lock file left by a killed process holds no flock: the next run takes it and resumes."""
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    (run / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "gone", "since": "2020-01-01", "command": "x"}))
    code, _, err = cli("eval", *FAST, "--out", str(run), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    assert not (run / LOCK_NAME).exists(), "the lock file goes with the command that held it"
    assert json.loads((run / "manifest.json").read_text())["sessions"][-1]["generated"] == 0  # resumed, complete


def test_ranks_of_one_job_share_rank_zeros_lock(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with folder_lock(out, "rank 0"):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "1")
        with folder_lock(out, "rank 1"):  # does not block: rank 0 of the same job holds it
            pass
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(BenchkitError, match="in use by"):
            with folder_lock(out, "another job's rank 0"):
                pass


def _eval_cmd(out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchkit", "eval", "--limit", "4", "--seeds", "0-3", "--steps", "4", "--quiet",
            "--metrics", "toy-fid", "--out", str(out), "--cache-dir", str(cache), *extra]


def test_two_processes_one_writer(tmp_path):
    """Two `benchkit eval` processes on one --out: the second is refused in one line while the first
    holds the folder, and with --wait it waits, then finds the run complete and generates nothing.

    The first is paused (SIGSTOP) as soon as it holds the lock, so that it cannot finish before the
    others reach the lock however slow the machine is."""
    out, cache = tmp_path / "run", tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(_eval_cmd(out, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while f'"pid": {first.pid},' not in _read(out / LOCK_NAME):
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGSTOP)
    try:  # the refused one and the waiter start together (each spends most of its time importing)
        waiter = subprocess.Popen(_eval_cmd(out, cache, "--wait"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
        second = subprocess.run(_eval_cmd(out, cache), capture_output=True, text=True, env=env, timeout=120)
        deadline = time.time() + 120
        while "waiting for" not in _read_pipe_nonblocking(waiter):
            assert waiter.poll() is None and time.time() < deadline, waiter.communicate()
            time.sleep(0.05)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, first_err = first.communicate(timeout=300)
    _, waiter_err = waiter.communicate(timeout=300)
    assert first.returncode == 0, first_err
    one_line_error(second.returncode, second.stderr, f"is in use by pid {first.pid} on ")
    assert waiter.returncode == 0, waiter_err
    lines = (out / "samples.jsonl").read_text().splitlines()
    keys = [(json.loads(line)["prompt_id"], json.loads(line)["seed"]) for line in lines]
    assert len(keys) == 16 and len(set(keys)) == 16
    sessions = json.loads((out / "manifest.json").read_text())["sessions"]
    assert [s["generated"] for s in sessions] == [16, 0], "exactly one process generated; the refused one left no session"
    assert [s["pid"] for s in sessions] == [first.pid, waiter.pid]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


_seen: dict[int, str] = {}


def _read_pipe_nonblocking(proc: subprocess.Popen) -> str:
    """What a process has written to stderr so far (kept per process), without blocking."""
    import fcntl as _fcntl

    fd = proc.stderr.fileno()
    _fcntl.fcntl(fd, _fcntl.F_SETFL, _fcntl.fcntl(fd, _fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        chunk = os.read(fd, 65536).decode(errors="replace")
    except BlockingIOError:
        chunk = ""
    _seen[proc.pid] = _seen.get(proc.pid, "") + chunk
    return _seen[proc.pid]
