"""`benchkit distill --fsdp`: two CPU processes (torchrun, gloo) with the student and fake score
sharded by FSDP2 take the one-process steps on the same global batch; a checkpoint is the same
file with or without FSDP (a one-process checkpoint resumes sharded, a sharded one resumes in one
process); the exported student loads; what FSDP cannot do is refused in one line.

Reuses test_distill_distributed's launcher, settings, tolerances and one-process reference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_distill_distributed import (  # noqa: F401
    ATOL,
    GLOBAL_BATCH,
    RTOL,
    SETTINGS,
    STEPS,
    UPDATE_RTOL,
    losses,
    one_thread,
    torchrun,
    update_gap,
)
from test_distill_loops import make_data, teacher

from benchkit.core.distributed import World
from benchkit.core.errors import BenchkitError
from distillers.run import distill, method_class
from distillers.training import read_checkpoint

HANDOVER = 2  # the one-process run stops here; two sharded ranks take steps HANDOVER+1..STEPS (at ttur 2 one with a generator update, one without)
EMA = {"ema_decay": 0.9}  # the exported student is then the EMA: sharded too, updated shard by shard, gathered


def one_process_run(out: Path, steps: int, stop_after: int | None = None) -> dict:
    """dmd2 on the toy teacher in this process, one thread (as each torchrun rank), resuming ``out`` if it has a checkpoint."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return distill("dmd2", "toy-digits", steps, out, {**SETTINGS, **EMA, "batch_size": GLOBAL_BATCH}, device="cpu",
                       checkpoint_every=1, show_progress=False, stop_after=stop_after)
    finally:
        torch.set_num_threads(threads)


def copy_on(src: Path, dst: Path, steps: int, *launch: str) -> Path:
    """A copy of run ``src`` resumed to ``steps``: here in one process, or under torchrun with ``launch``'s options."""
    shutil.copytree(src, dst)
    if launch:
        torchrun(dst, *launch, *[a for k, v in EMA.items() for a in ("--set", f"{k}={v}")])
    else:
        assert one_process_run(dst, steps)["finished"]
    return dst


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process takes step 1 and checkpoints. From that file: the one-process reference goes on
    to STEPS (and one step more), and two FSDP ranks go on to STEPS (loading, training and saving
    sharded), whose checkpoint one process resumes for the step more."""
    root = tmp_path_factory.mktemp("fsdp")
    first = root / "first"
    assert not one_process_run(first, STEPS, stop_after=HANDOVER)["finished"]
    reference = copy_on(first, root / "reference", STEPS)
    sharded = copy_on(first, root / "sharded", STEPS, "--fsdp")
    return {"reference": reference, "sharded": sharded,
            "reference_on": copy_on(reference, root / "reference_on", STEPS + 1),
            "sharded_on": copy_on(sharded, root / "sharded_on", STEPS + 1),
            "checkpoint": read_checkpoint(sharded / "checkpoints" / "latest.safetensors")}


def test_fsdp_ranks_follow_the_one_process_loss_curve(runs):
    from benchkit.models.loading import load_model
    from benchkit.models.presets import resolve_spec

    out, one_process, checkpoint = runs["sharded"], runs["reference"], runs["checkpoint"]
    got, want = losses(out), losses(one_process)
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, STEPS + 1))
    log = (out / "train.log").read_text()
    assert f"resume at step {HANDOVER} of {STEPS} on 2 processes" in log and log.count("exported") == 1
    for g, w in zip(got, want):
        assert g.keys() == w.keys(), g["step"]
        for key in w:
            assert g[key] == pytest.approx(w[key], rel=RTOL, abs=ATOL), (g["step"], key)

    provenance = json.loads((out / "distill.json").read_text())["parallel"]
    assert provenance["fsdp"] is True and provenance["world_size"] == 2 and provenance["backend"] == "gloo"
    units = provenance["sharding"]["units"]
    assert set(units) == {"student", "fake", "ema"}  # the GAN head is small: replicated, all-reduced
    assert units["student"][-1] == "(root)" and "mid_block" in units["student"] and units["ema"] == units["student"]

    # the checkpoint holds full tensors in the one-process layout, and the updates the one process made
    reference = read_checkpoint(one_process / "checkpoints" / "latest.safetensors")
    assert checkpoint["step"] == STEPS and checkpoint["world_size"] == 2 and checkpoint["config"]["fsdp"] is True
    mine, theirs = checkpoint["distiller"], reference["distiller"]
    assert mine["nets"].keys() == theirs["nets"].keys()
    for key, net in theirs["nets"].items():
        assert {k: v.shape for k, v in mine["nets"][key].items()} == {k: v.shape for k, v in net.items()}, key
    for key, opt in theirs["opts"].items():
        assert mine["opts"][key]["state"].keys() == opt["state"].keys()
        for idx, entry in opt["state"].items():
            assert {k: getattr(v, "shape", None) for k, v in mine["opts"][key]["state"][idx].items()} == \
                {k: getattr(v, "shape", None) for k, v in entry.items()}, (key, idx)

    # the exported student (the EMA, gathered whole on rank 0) loads as a model spec and took the one-process updates
    load = lambda spec: load_model(resolve_spec(str(spec)), torch.device("cpu"), torch.float32).unet.state_dict()  # noqa: E731
    start, two, one = load("toy-digits"), load(out / "spec.toml"), load(one_process / "spec.toml")
    assert two.keys() == one.keys() == start.keys()
    assert update_gap(two, one, start) < UPDATE_RTOL
    assert update_gap(mine["nets"]["fake"], theirs["nets"]["fake"], start) < UPDATE_RTOL
    assert update_gap(mine["nets"]["student"], theirs["nets"]["student"], start) < UPDATE_RTOL
    assert update_gap(mine["ema"], theirs["ema"], start) < UPDATE_RTOL
    assert update_gap(two, mine["ema"], start) == 0  # the export is the EMA


def test_fsdp_checkpoint_resumes_in_one_process(runs):
    onward = runs["sharded_on"]
    got, want = losses(onward), losses(runs["reference_on"])
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, STEPS + 2))
    assert "resume at step 4 of 5" in (onward / "train.log").read_text()
    for key in want[-1]:  # step 5: a generator and a critic update from the resumed optimizer state
        assert got[-1][key] == pytest.approx(want[-1][key], rel=RTOL, abs=ATOL), key
    assert json.loads((onward / "distill.json").read_text())["parallel"]["fsdp"] is False


@pytest.mark.parametrize("method,options,message", [
    ("dmd2", {}, "launch with torchrun --nproc-per-node N"),
    ("dmd2", {"lora": True}, "--fsdp with --lora is not supported"),
    ("lightning", {}, "--fsdp is supported for dmd2, adm, not lightning"),
    ("hyper-sd", {}, "--fsdp is supported for dmd2, adm, not hyper-sd"),
])
def test_fsdp_refuses_what_it_cannot_shard(method, options, message):
    cls = method_class(method)
    world = World() if method == "dmd2" and not options else World(rank=0, size=2)  # refused before any collective
    with pytest.raises(BenchkitError, match=message):
        cls(teacher(False), make_data(False), cls.Config(steps=2, batch_size=2, fsdp=True, **options), world=world)


def test_fsdp_on_one_process_is_one_line(cli, tmp_path):
    code, out, err = cli("distill", "--method", "dmd2", "--teacher", "toy-digits", "--steps", "1", "--set", "fsdp=true",
                         "--device", "cpu", "-q", "--out", str(tmp_path / "s"))
    assert code != 0
    text = (out + err).strip()
    assert "--fsdp shards networks over processes" in text and "Traceback" not in text
