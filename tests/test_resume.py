"""Kill -9 a real `benchkit eval` process mid-run, start it again, and compare with a clean run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_files import committed_hashes, metrics_by_name

from benchkit.evaluate import run_eval
from benchkit.models.presets import PRESETS
from prompts import load_prompt_set

STEPS = 8  # few: the run only has to last long enough to be killed mid-way (24 items, batches of one)
ARGS = ["--prompts", "toy-digits", "--limit", "6", "--seeds", "0-3", "--steps", str(STEPS), "--batch-size", "1",
        "--metrics", "toy-fid,toy-alignment,toy-diversity,latency", "--device", "cpu", "--quiet"]
QUALITY = ("toy-fid", "toy-alignment", "toy-diversity", "nfe", "model_size")


def cli(out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "benchkit.cli", "eval", *ARGS, "--out", str(out), "--cache-dir", str(cache)]


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def metric_values(run: Path) -> dict[str, float]:
    return {name: m["value"] for name, m in metrics_by_name(run).items()}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The uninterrupted run both kills are compared with, and the cache they share (made once)."""
    root = tmp_path_factory.mktemp("clean")
    run_eval(PRESETS["toy-digits"].with_recipe(steps=STEPS), load_prompt_set("toy-digits").limit(6), [0, 1, 2, 3],
             root / "run", metrics=["toy-fid", "toy-alignment", "toy-diversity", "latency"], device="cpu", batch_size=1,
             cache_dir=root / "cache", show_progress=False)
    return root / "run", root / "cache"


def _start_and_kill(out: Path, cache: Path, kill_after: int) -> int:
    """Start `benchkit eval`, SIGKILL it once ``kill_after`` items are committed; the items it had."""
    proc = subprocess.Popen(cli(out, cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 400  # generous: a loaded machine is slow, a fast one never waits
    while lines(out / "samples.jsonl") < kill_after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()[-500:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = lines(out / "samples.jsonl")
    assert kill_after <= done_at_kill < 24
    assert not (out / "results.json").exists()
    return done_at_kill


def test_sigkill_twice_then_resume_matches_uninterrupted(tmp_path, clean):
    """Killed early (3 items), started again and killed later (13), started again: the third session finishes a
    run equal to the uninterrupted one, image for image and metric for metric."""
    clean, cache = clean
    killed = tmp_path / "killed"
    first = _start_and_kill(killed, cache, 3)
    second = _start_and_kill(killed, cache, 13)
    resumed = subprocess.run(cli(killed, cache), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    got, want = committed_hashes(killed), committed_hashes(clean)
    assert got == want and len(got) == 24
    assert sorted(p.name for p in (killed / "images").iterdir()) == sorted(f"{k}.png" for k in want)
    a, b = metric_values(killed), metric_values(clean)
    for name in QUALITY:
        assert a[name] == b[name], name
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert [s["resumed_with"] for s in manifest["sessions"]] == [0, first, second]
