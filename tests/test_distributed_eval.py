"""Two CPU ranks (torchrun, gloo) against one process: same images, no item twice, same metrics,
and a rank killed mid-run resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from run_files import committed_hashes, metrics_by_name

from benchkit.evaluate import run_eval
from benchkit.models.presets import PRESETS
from prompts import load_prompt_set

METRICS = "toy-fid,toy-alignment,toy-diversity,latency"
QUALITY = ("toy-fid", "toy-alignment", "toy-diversity")


# torchrun jobs start three interpreters that import torch, diffusers and transformers: on a busy
# 2-core machine one job has taken 90 s where an idle one takes 35 s, so leave room for much worse.
LAUNCH_TIMEOUT = 900


def launch(cmd: list[str], timeout: float = LAUNCH_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a torchrun job to the end; a failure names the command and shows its output.

    The job gets its own process group, and on a timeout the whole group is killed: killing
    torchrun alone (what ``subprocess.run(timeout=...)`` does) orphans its workers, which go
    on generating into the test's folder and loading the machine for the tests after it."""
    what = "torchrun ... benchkit " + cmd[cmd.index("benchkit") + 1]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{what} timed out after {timeout}s\n{_tails(stdout, stderr)}")
    except BaseException:  # Ctrl-C or pytest-timeout: the job is in its own group, so end it here
        _kill_group(proc.pid)
        raise
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    assert done.returncode == 0, f"{what} exited {done.returncode}\n{_tails(stdout, stderr)}"
    return done


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tails(stdout: str, stderr: str, n: int = 4000) -> str:
    return f"--- stdout (last {n} chars) ---\n{stdout[-n:]}\n--- stderr (last {n} chars) ---\n{stderr[-n:]}"


def torchrun(out: Path, cache: Path, steps: int, batch: int, limit: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "benchkit", "eval", "--prompts", "toy-digits", "--limit", str(limit), "--seeds", "0-3",
            "--steps", str(steps), "--batch-size", str(batch), "--metrics", METRICS, "--device", "cpu",
            "--quiet", "--out", str(out), "--cache-dir", str(cache)]


def single(out: Path, cache: Path, steps: int, batch: int, limit: int) -> None:
    """The one-process run, with the thread count torchrun gives each rank (OMP_NUM_THREADS=1):
    CPU kernels may round differently with another thread count, so compare like with like."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _single(out, cache, steps, batch, limit)
    finally:
        torch.set_num_threads(threads)


def _single(out: Path, cache: Path, steps: int, batch: int, limit: int) -> None:
    run_eval(PRESETS["toy-digits"].with_recipe(steps=steps), load_prompt_set("toy-digits").limit(limit), [0, 1, 2, 3],
             out, metrics=METRICS.split(","), device="cpu", batch_size=batch, cache_dir=cache, show_progress=False)


def assert_same_run(got: Path, want: Path, n: int) -> None:
    a, b = committed_hashes(got), committed_hashes(want)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    assert a == b and len(a) == n, f"{len(a)} vs {len(b)} items (want {n}); differing or missing: {differ}"
    assert sorted(p.name for p in (got / "images").iterdir()) == sorted(f"{k}.png" for k in b)
    assert not (got / "shards").exists(), "shard files were not folded into samples.jsonl"
    ra, rb = metrics_by_name(got), metrics_by_name(want)
    for name in QUALITY:
        assert ra[name]["value"] == rb[name]["value"], (name, ra[name]["value"], rb[name]["value"])  # chunks merge in one fixed order
        assert ra[name]["n"] == rb[name]["n"] and ra[name]["variant"] == rb[name]["variant"]
    for name in ("nfe", "model_size"):
        assert ra[name]["value"] == rb[name]["value"]
    assert ra["latency_image_p50"]["n"] == n


def _worker_pid(launcher: int, rank: int) -> int | None:
    """The pid of torchrun's worker with this RANK (Linux /proc)."""
    try:
        children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(pid)
    return None


def _kill_rank_1_mid_run(cmd: list[str], run: Path) -> int:
    """Start the torchrun job, SIGKILL rank 1 once it has committed 2 items, and return how many it had."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        shard = run / "shards" / "samples-rank1.jsonl"
        deadline = time.time() + 400  # generous: a loaded machine is slow, a fast one never waits
        while (not shard.exists() or len(shard.read_text().splitlines()) < 2) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        victim = _worker_pid(proc.pid, 1)
        assert proc.poll() is None and victim, "the run finished before rank 1 could be killed"
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            _kill_group(proc.pid)
        proc.communicate()
    assert not (run / "results.json").exists()
    left = len(shard.read_text().splitlines()) if shard.exists() else 0
    assert left >= 2
    return left


@pytest.mark.timeout(3 * LAUNCH_TIMEOUT + 600)
def test_two_ranks_equal_one_process_after_a_killed_rank_resumes(tmp_path):
    """Two ranks, rank 1 killed mid-run (where /proc finds torchrun's workers), the same command again: the run
    equals the one-process run item for item and metric for metric; `benchkit score` sharded agrees.
    (One job killed and resumed rather than a clean job and a killed one: each torchrun job costs three
    interpreters' imports.)"""
    cache, run = tmp_path / "cache", tmp_path / "two"
    cmd = torchrun(run, cache, 8, 3, 6)  # 24 items, 12 a rank in batches of 3
    killed = Path("/proc/self/task").exists()
    left = _kill_rank_1_mid_run(cmd, run) if killed else 0
    done = launch(cmd)
    assert done.stdout.count("run written to") == 1, f"only rank 0 prints the summary\n{_tails(done.stdout, done.stderr)}"
    single(tmp_path / "one", cache, 8, 3, 6)
    assert_same_run(run, tmp_path / "one", 24)

    sessions = json.loads((run / "manifest.json").read_text())["sessions"]
    assert [(s["rank"], s["world_size"], s["backend"]) for s in sessions[-2:]] == [(0, 2, "gloo"), (1, 2, "gloo")]
    if killed:
        assert len(sessions) == 3 and sessions[-1]["resumed_with"] >= left  # two ranks' sessions now, one before
        assert sum(s["generated"] for s in sessions[1:]) == 24 - sessions[-1]["resumed_with"]
    else:
        assert [s["generated"] for s in sessions] == [12, 12]
    batch_ids = {json.loads(l)["batch_id"] for l in (run / "samples.jsonl").read_text().splitlines()}
    assert {b.split("-")[1] for b in batch_ids} == {"r0", "r1"}, "latency batches must not collide across ranks"
    assert json.loads((run / "results.json").read_text())["run"]["scored_by"]["world_size"] == 2

    # `benchkit score` on the images alone, sharded over two ranks, agrees with the eval's scores
    scored = tmp_path / "scored"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "benchkit",
           "score", str(run / "images"), "--prompts", "toy-digits", "--metrics", "toy-fid,toy-diversity",
           "--device", "cpu", "--quiet", "--out", str(scored), "--cache-dir", str(cache)]
    launch(cmd)
    got, want = metrics_by_name(scored), metrics_by_name(tmp_path / "one")
    for name in ("toy-fid", "toy-diversity"):
        assert got[name]["value"] == want[name]["value"] and got[name]["n"] == 24, (name, got[name], want[name])
