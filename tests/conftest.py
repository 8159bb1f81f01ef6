"""Shared fixtures: a private cache dir, quiet libraries, and small toy evaluations."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

# diffusers and transformers bind their log handlers to the sys.stderr of their first import. A test's
# capsys stream is closed when that test ends, so a first import inside one would make every later
# library warning print "--- Logging error ---" with a traceback into the next CLI test's stderr.
import diffusers.utils.logging  # noqa: E402,F401
import transformers.utils.logging  # noqa: E402,F401


@pytest.fixture(autouse=True)
def restore_process_state():
    """Each test starts from the same process: the CLI's --weights writes an environment variable and
    some tests pin torch's thread count (which changes CPU rounding, hence image hashes)."""
    environ, threads = dict(os.environ), torch.get_num_threads()
    yield
    os.environ.clear()
    os.environ.update(environ)
    torch.set_num_threads(threads)


@pytest.fixture()
def every_clip_static(monkeypatch):
    """vbench-temporal-flickering without its RAFT: the static filter calls every clip static (no flow), so the value
    is the mean flickering score of every clip. For tests of the flickering score and of what scores clips; the filter
    itself is tests/test_vbench_static_filter.py's."""
    from metrics import vbench_dimensions as V

    monkeypatch.setattr(V.VBenchTemporalFlickering, "weights", ())
    monkeypatch.setattr(V.VBenchTemporalFlickering, "min_side", 0)
    monkeypatch.setattr(V, "raft_for", lambda ctx: (None, {}))
    monkeypatch.setattr(V, "static_pair_scores", lambda model, frames, device, pairs_per_call=4: [0.0] * (len(frames) + 1))


@pytest.fixture()
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bkcache")


@pytest.fixture()
def cli(capsys):
    """Run the CLI in-process: returns (exit status, stdout, stderr)."""
    from benchkit.cli import main

    def run(*argv: str):
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
            raise SystemExit(0)
        cap = capsys.readouterr()
        return exc.value.code, cap.out, cap.err

    return run
