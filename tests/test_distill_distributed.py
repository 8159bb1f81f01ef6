"""`benchkit distill` on two CPU processes (torchrun, gloo) against one process with the same
global batch: the same loss curve, one set of outputs, a student that loads, and a run stopped
part-way on two ranks resumes. Plus, in-process: each rank's rows of the global draws, every
method on two ranks run as two threads, and the memory options (gradient checkpointing, a bf16 teacher)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_distill_loops import make_data, teacher

from benchkit.core.distributed import World
from benchkit.core.errors import BenchkitError
from distillers.run import distill, method_class
from distillers.training import Trainer, read_checkpoint, step_generator

STEPS, GLOBAL_BATCH, STOP_AT = 4, 4, 2
# dmd2 on the toy teacher at its own lr (1e-5), generator every 2nd step.
SETTINGS = {"ttur": 2}
# Losses: two half batches averaged vs one full batch differ only in float32 summation order
# (seen: <3e-6 relative over 4 steps); without the gradient all-reduce step 2 is already 4% off.
RTOL, ATOL = 1e-4, 1e-6
# Weights: Adam's first steps are sign-like (m / sqrt(v)), so a gradient component near zero may
# flip sign under another summation order and move a whole lr. Compare the difference of the two
# runs' weights with the size of the update itself: seen 2e-4 (student) and 2e-3 (fake score) of
# it; without the all-reduce 1.07 and 0.62.
UPDATE_RTOL = 0.05


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: two OpenMP threads on a busy 2-core machine cost 20x more than one
    (conftest restores the thread count after each test)."""
    torch.set_num_threads(1)


def torchrun(out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "benchkit",
           "distill", "--method", "dmd2", "--teacher", "toy-digits", "--steps", str(STEPS), "--batch-size", str(GLOBAL_BATCH),
           *[a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")], "--checkpoint-every", "1",
           "--device", "cpu", "-q", "--out", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def losses(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Two ranks stop after STOP_AT steps, then the same command resumes to STEPS."""
    out = tmp_path_factory.mktemp("two") / "student"
    first = torchrun(out, "--stop-after", str(STOP_AT))
    after_first = {"files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()),
                   "checkpoint": read_checkpoint(out / "checkpoints" / "latest.safetensors"), "stdout": first.stdout}
    # What a kill after that checkpoint leaves: a logged step beyond it, which the resume must redo.
    with open(out / "losses.jsonl", "a") as f:
        f.write(json.dumps({"step": STOP_AT + 1, "loss_fake": -1.0}) + "\n")
    second = torchrun(out)
    return out, after_first, second.stdout


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The one-process run with torchrun's per-rank thread count (CPU kernels may round differently
    with another thread count, so compare like with like)."""
    out = tmp_path_factory.mktemp("one") / "student"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = distill("dmd2", "toy-digits", STEPS, out, {**SETTINGS, "batch_size": GLOBAL_BATCH}, device="cpu",
                         checkpoint_every=1, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    assert result["finished"]
    return out


def test_two_ranks_follow_the_one_process_loss_curve(two_ranks, one_process):
    from benchkit.models.loading import load_model
    from benchkit.models.presets import resolve_spec

    out, _, stdout = two_ranks
    got, want = losses(out), losses(one_process)
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, STEPS + 1))
    for g, w in zip(got, want):
        assert g.keys() == w.keys(), g["step"]
        for key in w:
            assert g[key] == pytest.approx(w[key], rel=RTOL, abs=ATOL), (g["step"], key)

    # one set of outputs, from rank 0 only
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == {str(p.relative_to(one_process)) for p in one_process.rglob("*") if p.is_file()}
    assert not any(".tmp" in f for f in files)
    log = (out / "train.log").read_text()
    assert log.count("exported") == 1 and log.count(" step 0 of ") == 1
    assert stdout.count("student spec:") == 1
    provenance = json.loads((out / "distill.json").read_text())
    assert provenance["parallel"]["world_size"] == 2 and provenance["parallel"]["backend"] == "gloo"
    assert provenance["parallel"]["per_rank_batch"] == 2 and provenance["parallel"]["global_batch"] == GLOBAL_BATCH
    assert provenance["config"]["batch_size"] == GLOBAL_BATCH

    # the exported student loads as a model spec and took the one-process updates (so did the fake score)
    load = lambda spec: load_model(resolve_spec(str(spec)), torch.device("cpu"), torch.float32).unet.state_dict()  # noqa: E731
    start, two, one = load("toy-digits"), load(out / "spec.toml"), load(one_process / "spec.toml")
    assert two.keys() == one.keys() == start.keys()
    assert update_gap(two, one, start) < UPDATE_RTOL
    final = read_checkpoint(out / "checkpoints" / "latest.safetensors")
    reference = read_checkpoint(one_process / "checkpoints" / "latest.safetensors")
    assert final["step"] == STEPS and final["world_size"] == 2
    fake_two, fake_one = final["distiller"]["nets"]["fake"], reference["distiller"]["nets"]["fake"]
    assert update_gap(fake_two, fake_one, start) < UPDATE_RTOL


def update_gap(got: dict, want: dict, start: dict) -> float:
    """|got - want| / |want - start| over all weights: how far apart two runs' updates are."""
    gap = sum(float(((got[k].double() - want[k].double()) ** 2).sum()) for k in start) ** 0.5
    size = sum(float(((want[k].double() - start[k].double()) ** 2).sum()) for k in start) ** 0.5
    assert size > 0, "the run did not move the weights"
    return gap / size


def test_stopped_two_rank_run_resumes(two_ranks):
    out, first, stdout = two_ranks
    assert f"stopped at step {STOP_AT} of {STEPS}" in first["stdout"] and first["stdout"].count("stopped") == 1
    assert "spec.toml" not in first["files"] and "distill.json" not in first["files"]
    assert first["checkpoint"]["step"] == STOP_AT and first["checkpoint"]["world_size"] == 2
    assert f"resume at step {STOP_AT} of {STEPS} on 2 processes" in (out / "train.log").read_text()
    rows = losses(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1)), "steps after the checkpoint are redone, once"
    assert all(r["loss_fake"] > 0 for r in rows)
    assert (out / "spec.toml").exists()


def test_each_rank_draws_its_rows_of_the_global_batch():
    cls = method_class("dmd2")
    cfg = cls.Config(steps=2, batch_size=4, ttur=1)
    one = cls(teacher(False), make_data(False), cfg)
    ranks = [cls(teacher(False), make_data(False), cfg, world=World(rank=r, size=2)) for r in (0, 1)]
    assert one.cfg.batch_size == 4 and all(d.cfg.batch_size == 2 and d.global_cfg.batch_size == 4 for d in ranks)

    def draws(d):
        gen, n = step_generator(0, 3), d.cfg.batch_size
        cond = d.data.sample_cond(n, gen)
        real, real_cond = d.data.sample_real(n, gen)
        noise, x0, pair_cond = d.data.sample_pairs(n, gen)
        return [cond.hidden, real, real_cond.hidden, noise, x0, pair_cond.hidden, d.randn((n, 4, 8, 8), gen),
                d.randint(0, 1000, n, gen), d.rand(n, gen), torch.randint(0, 9, (1,), generator=gen)]

    full, r0, r1 = draws(one), draws(ranks[0]), draws(ranks[1])
    for f, a, b in zip(full[:-1], r0[:-1], r1[:-1]):
        assert len(a) == len(b) == 2
        assert torch.equal(a, f[0::2]) and torch.equal(b, f[1::2])
    assert torch.equal(full[-1], r0[-1]) and torch.equal(full[-1], r1[-1])  # the generators stay in step

    with pytest.raises(BenchkitError, match="must split evenly over 3 processes"):
        cls(teacher(False), make_data(False), cfg, world=World(rank=0, size=3))


def _curve(tmp_path: Path, **options) -> tuple[list[dict], object]:
    cls = method_class("dmd2")
    d = cls(teacher(False), make_data(False), cls.Config(steps=2, batch_size=2, ttur=2, **options))
    Trainer(d, tmp_path, checkpoint_every=0, show_progress=False).run()
    return losses(tmp_path), d


def test_gradient_checkpointing_keeps_the_losses_and_a_bf16_teacher_runs(tmp_path):
    plain, _ = _curve(tmp_path / "plain")
    ckpt, d = _curve(tmp_path / "ckpt", gradient_checkpointing=True)
    assert d.student.model.is_gradient_checkpointing and d.fake.model.is_gradient_checkpointing
    assert len(plain) == len(ckpt) == 2
    for a, b in zip(plain, ckpt):  # recomputation repeats the same float ops
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9)
    low, d = _curve(tmp_path / "bf16", teacher_dtype="bf16")
    assert next(d.teacher.model.parameters()).dtype == torch.bfloat16
    assert next(d.student.model.parameters()).dtype == torch.float32 and next(d.fake.model.parameters()).dtype == torch.float32
    assert [r["step"] for r in low] == [1, 2]
    # The fake score starts as an fp32 copy of the teacher, so step 1's DM loss is the gap between the
    # two (~0 in fp32): a bf16 real score changes it; the critic's first loss has no teacher in it.
    assert low[0]["loss_dm"] != plain[0]["loss_dm"]
    assert low[0]["loss_fake"] == pytest.approx(plain[0]["loss_fake"], rel=1e-6)
    with pytest.raises(BenchkitError, match="--teacher-dtype fp8"):
        _curve(tmp_path / "bad", teacher_dtype="fp8")


class ThreadWorld(World):
    """Two ranks as two threads of this process, with the collectives the trainer uses done
    through shared slots: every method's data-parallel step checked without launching processes."""

    def __init__(self, rank: int, shared: dict):
        super().__init__(rank=rank, size=2)
        self.shared = shared

    def _exchange(self, value):
        self.shared["slots"][self.rank] = value
        self.shared["barrier"].wait()
        both = list(self.shared["slots"])
        self.shared["barrier"].wait()  # nobody writes the next value before both have read this one
        return both

    def average_(self, tensors, bucket_numel=0):
        both = self._exchange([t.detach().clone() for t in tensors])
        for t, a, b in zip(tensors, *both):
            t.copy_((a + b) / 2)

    def mean(self, values):
        both = self._exchange(dict(values))
        return {k: (both[0][k] + both[1][k]) / 2 for k in values}

    def any(self, flag):
        return any(self._exchange(bool(flag)))

    def gather(self, obj):
        return self._exchange(obj)

    def barrier(self):
        self._exchange(None)


# Each method across the phases its loop test crosses, at a small lr (Adam's first steps are
# sign-like, so at a large lr float noise in near-zero gradients shows up in later losses).
# Tolerance: one process on 2 threads instead of 1 already moves ADM's small losses (loss_dm
# ~3e-5, loss_g_adv ~1e-2) by up to 3.5e-4 relative; a missing gradient sync moved DMD2's by 4e-2.
METHOD_RTOL = 1e-3
PHASES = [
    ("dmd2", {"student_steps": 4, "ttur": 2, "ode_pretrain_steps": 1}, 3),
    ("hyper-sd", {"student_steps": 1, "stages": (2, 1), "grid_points": 10, "score_distill_fraction": 0.5}, 4),
    ("adm", {"student_steps": 1, "adp_steps": 1, "dm_weight": 1.0}, 3),
    ("lightning", {"student_steps": 1, "stages": (2, 1), "teacher_substeps": 2}, 5),
]


@pytest.mark.parametrize("method,overrides,steps", PHASES, ids=[p[0] for p in PHASES])
def test_every_method_takes_the_one_process_steps_on_two_ranks(tmp_path, monkeypatch, method, overrides, steps):
    import threading

    cls = method_class(method)
    if hasattr(cls, "enter_phase"):  # threads share torch's global RNG (processes do not): a phase change's
        lock, enter = threading.Lock(), cls.enter_phase  # seeded head init must not interleave with the other rank's

        def locked(self, phase):
            with lock:
                return enter(self, phase)
        monkeypatch.setattr(cls, "enter_phase", locked)
    cfg = cls.Config(**{"steps": steps, "batch_size": 4, "lr": 1e-5, "seed": 3, **overrides})
    Trainer(cls(teacher(False), make_data(False), cfg), tmp_path / "one", checkpoint_every=0, show_progress=False).run()
    shared = {"slots": [None, None], "barrier": threading.Barrier(2, timeout=120)}
    ranks = [cls(teacher(False), make_data(False), cfg, world=ThreadWorld(r, shared)) for r in (0, 1)]
    errors = []

    def run(d):
        try:
            Trainer(d, tmp_path / "two", checkpoint_every=0, show_progress=False).run()
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the test's thread
            errors.append(exc)
            shared["barrier"].abort()

    threads = [threading.Thread(target=run, args=(d,)) for d in ranks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    got, want = losses(tmp_path / "two"), losses(tmp_path / "one")
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, steps + 1))
    for g, w in zip(got, want):
        assert g == pytest.approx(w, rel=METHOD_RTOL, abs=ATOL), g["step"]
    a, b = ranks[0].student.model.state_dict(), ranks[1].student.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "the ranks' students drifted apart"
