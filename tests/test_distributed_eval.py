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

from benchkit.evaluate import run_eval
from benchkit.presets import PRESETS
from prompts import load_prompt_set
from run_files import committed_hashes, metrics_by_name

METRICS = "toy-fid,toy-alignment,toy-diversity,latency"
QUALITY = ("toy-fid", "toy-alignment", "toy-diversity")


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
    assert a == b and len(a) == n
    assert sorted(p.name for p in (got / "images").iterdir()) == sorted(f"{k}.png" for k in b)
    assert not (got / "shards").exists(), "shard files were not folded into samples.jsonl"
    ra, rb = metrics_by_name(got), metrics_by_name(want)
    for name in QUALITY:
        assert ra[name]["value"] == rb[name]["value"], name  # chunk states merge in one fixed order
        assert ra[name]["n"] == rb[name]["n"] and ra[name]["variant"] == rb[name]["variant"]
    for name in ("nfe", "model_size"):
        assert ra[name]["value"] == rb[name]["value"]
    assert ra["latency_image_p50"]["n"] == n


def test_two_ranks_equal_one_process(tmp_path):
    cache = tmp_path / "cache"
    done = subprocess.run(torchrun(tmp_path / "two", cache, 8, 3, 5), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run written to") == 1, "only rank 0 prints the summary"
    single(tmp_path / "one", cache, 8, 3, 5)
    assert_same_run(tmp_path / "two", tmp_path / "one", 20)

    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    sessions = manifest["sessions"]
    assert [(s["rank"], s["world_size"], s["backend"]) for s in sessions] == [(0, 2, "gloo"), (1, 2, "gloo")]
    assert sum(s["generated"] for s in sessions) == 20 and all(s["generated"] == 10 for s in sessions)
    batch_ids = {json.loads(l)["batch_id"] for l in (tmp_path / "two" / "samples.jsonl").read_text().splitlines()}
    assert {b.split("-")[1] for b in batch_ids} == {"r0", "r1"}, "latency batches must not collide across ranks"
    assert json.loads((tmp_path / "two" / "results.json").read_text())["run"]["scored_by"]["world_size"] == 2

    # `benchkit score` on the images alone, sharded over two ranks, agrees with the eval's scores
    scored = tmp_path / "scored"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "benchkit",
           "score", str(tmp_path / "two" / "images"), "--prompts", "toy-digits", "--metrics", "toy-fid,toy-diversity",
           "--device", "cpu", "--quiet", "--out", str(scored), "--cache-dir", str(cache)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got, want = metrics_by_name(scored), metrics_by_name(tmp_path / "one")
    for name in ("toy-fid", "toy-diversity"):
        assert got[name]["value"] == want[name]["value"] and got[name]["n"] == 20


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


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds torchrun's workers through /proc")
def test_killed_rank_resumes(tmp_path):
    cache = tmp_path / "cache"
    run = tmp_path / "killed"
    proc = subprocess.Popen(torchrun(run, cache, 20, 1, 6), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shard = run / "shards" / "samples-rank1.jsonl"
    deadline = time.time() + 400  # generous: a loaded machine is slow, a fast one never waits
    while (not shard.exists() or len(shard.read_text().splitlines()) < 2) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    victim = _worker_pid(proc.pid, 1)
    assert proc.poll() is None and victim, "the run finished before rank 1 could be killed"
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(timeout=120) != 0
    assert not (run / "results.json").exists()
    left = len(shard.read_text().splitlines()) if shard.exists() else 0
    assert left >= 2

    resumed = subprocess.run(torchrun(run, cache, 20, 1, 6), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    single(tmp_path / "one", cache, 20, 1, 6)
    assert_same_run(run, tmp_path / "one", 24)
    sessions = json.loads((run / "manifest.json").read_text())["sessions"]
    assert len(sessions) == 3 and sessions[-1]["resumed_with"] >= left  # two ranks' sessions now, one before
    assert sum(s["generated"] for s in sessions[1:]) == 24 - sessions[-1]["resumed_with"]
