"""Crash states of a run directory and how recovery repairs each one."""

import json

import numpy as np
import pytest

from benchkit.core.errors import BenchkitError
from benchkit.core.rundir import RunDir


def make_run(tmp_path, n=3):
    run = RunDir.open(tmp_path / "run", {"k": 1}, {"spec": {}})
    recs = [{"prompt_id": "p", "prompt": "x", "seed": s} for s in range(n)]
    run.write_batch(recs, [np.full((8, 8), s * 10, np.uint8) for s in range(n)])
    return run


def test_write_and_reopen(tmp_path):
    run = make_run(tmp_path)
    again = RunDir.open(tmp_path / "run", {"k": 1}, {"spec": {}})
    assert sorted(again.recover()) == ["p_0", "p_1", "p_2"]
    assert sorted(f.name for f in again.images_dir.iterdir()) == ["p_0.png", "p_1.png", "p_2.png"]
    assert run.manifest()["status"] == "running"


def test_torn_last_line_is_dropped(tmp_path):
    run = make_run(tmp_path)
    with open(run.samples_path, "a") as f:
        f.write('{"prompt_id": "p", "seed": 3, "fi')  # killed mid-append
    (run.images_dir / "p_3.png").write_bytes(b"\x89PNG partial")
    done = run.recover()
    assert sorted(done) == ["p_0", "p_1", "p_2"]
    assert len(run.samples_path.read_text().splitlines()) == 3
    assert not (run.images_dir / "p_3.png").exists()


def test_orphan_and_temp_files_are_removed(tmp_path):
    run = make_run(tmp_path)
    (run.images_dir / "p_9.png").write_bytes(b"written but never committed")
    (run.images_dir / ".p_10.png.tmp").write_bytes(b"half")
    run.recover()
    assert sorted(f.name for f in run.images_dir.iterdir()) == ["p_0.png", "p_1.png", "p_2.png"]


def test_missing_or_corrupt_image_is_regenerated(tmp_path):
    run = make_run(tmp_path)
    (run.images_dir / "p_0.png").unlink()
    (run.images_dir / "p_1.png").write_bytes(b"corrupt")
    assert sorted(run.recover()) == ["p_2"]
    lines = [json.loads(l) for l in run.samples_path.read_text().splitlines()]
    assert [l["seed"] for l in lines] == [2]


def test_identity_mismatch_is_refused(tmp_path):
    make_run(tmp_path)
    with pytest.raises(BenchkitError, match="different 'k'.*--overwrite"):
        RunDir.open(tmp_path / "run", {"k": 2}, {"spec": {}})
    fresh = RunDir.open(tmp_path / "run", {"k": 2}, {"spec": {}}, overwrite=True)
    assert fresh.recover() == {}


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(BenchkitError, match="not a benchkit run"):
        RunDir.open(tmp_path / "x", {"k": 1}, {})


def test_no_space_is_one_line(tmp_path, monkeypatch):
    import errno
    import shutil

    run = make_run(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 1000))
    with pytest.raises(BenchkitError, match="not enough space in .*choose another --out"):
        run.check_free_space(1000, 64)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("benchkit.core.rundir.os.replace", full)
    with pytest.raises(BenchkitError, match="no space left on device while writing .*--out"):
        run.write_batch([{"prompt_id": "p", "prompt": "x", "seed": 7}], [np.zeros((8, 8), np.uint8)])
