"""VBench's motion smoothness against the ``vbench`` 0.1.5 package's own ``compute_motion_smoothness``, on the same
mp4 clips with the same random AMT-S weights.

The clips are written as `benchkit eval` writes them (benchkit.models.video.write_video, mp4 through PyAV): a
still one, a moving one, and one neither square nor a multiple of 16 (so padding and cropping show) with an even
number of frames (its last frame is not scored). The weights are a random full-size AMT-S saved as amt-s.pth is
(``{'state_dict': ...}``); VBench runs unmodified: it reads its own cfgs/AMT-S.yaml with OmegaConf, builds its
vendored network, ``torch.load``s the file, loads it strictly and reads the clips with OpenCV. The random network
is tamed (``amt_state``) to interpolate about as a blend of its two inputs, so the still clip scores high and the
moving one lower, and made to heed the time it is asked for.

Needs the reference installed without its pins: pip install --no-deps vbench==0.1.5, and av, decord,
opencv-python-headless, omegaconf and imageio (vbench imports the last two on the way); without them the parity
tests skip.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys

import numpy as np
import pytest
import torch

from benchkit.core.errors import BenchkitError
from metrics import REGISTRY, build_metrics
from metrics import vbench_motion_smoothness as MS
from metrics import weights as W
from metrics.amt import AMTS, load_amt_s
from metrics.base import MetricContext, SampleBatch, ScorePlan
from run_files import score_in_two_chunks

NAME = "vbench-motion-smoothness"
# Both sides run the same float32 operations in the same order on the same CPU: measured equal to the last bit
# (per clip and mean |diff| 0; the network's output torch.equal). tensor2img truncates, so a float difference
# elsewhere (another BLAS, a GPU) flips a pixel by 1 where x*255 sits near an integer: one flip moves a 128x128
# clip's score by 1/(128*128*3*255) = 8e-8 over its number of interpolated frames. The tolerance allows about a
# dozen flips per interpolated frame, far under what the mistakes below move a clip (measured 3.5e-4 and more).
TOL = 1e-6
TAMED = ("decoder4.convblock.2", "decoder3.convblock.2", "decoder2.convblock.2", "decoder1.convblock.2",
         "update4.flow_head.2", "update3.flow_head.2", "update2.flow_head.2", "comb_block.2")


def amt_state(seed: int, tame: float = 0.05, time_gain: float = 30.0) -> dict[str, torch.Tensor]:
    """A random AMT-S that interpolates about as a blend of its inputs: the layers that output flows, residuals and
    the final correction scaled by ``tame`` (decoder1's 3 blend-mask channels left as drawn), and the time channel
    of decoder4's input (``embt``, ifrnet.py:86-89) scaled by ``time_gain`` so the time asked for shows in the output,
    as it does in a trained AMT-S."""
    torch.manual_seed(seed)
    model = AMTS()
    with torch.no_grad():
        for name, module in model.named_modules():
            if name in TAMED:
                keep = torch.full((module.bias.shape[0],), tame)
                if name == "decoder1.convblock.2":  # out: 2x6 flow deltas, 3 masks, 9 residual channels
                    keep[12:15] = 1.0
                module.weight.mul_(keep.view(1, -1, 1, 1) if isinstance(module, torch.nn.ConvTranspose2d) else keep.view(-1, 1, 1, 1))
                module.bias.mul_(keep)
        model.decoder4.convblock[0][0].weight[:, -1:].mul_(time_gain)
    return model.state_dict()


def _clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)

    def smooth(h, w):  # a blurred random image: H.264 keeps it close, and it moves visibly when rolled
        small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
        big = np.kron(small, np.ones((8, 8, 1)))[:h, :w]
        return np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)

    still, wide = smooth(128, 128), smooth(114, 146)
    return {
        "static": np.stack([still] * 5),
        "moving": np.stack([np.roll(still, 3 * t, axis=1) for t in range(7)]),
        "wide": np.stack([np.roll(wide, 4 * t, axis=0) for t in range(6)]),  # pads to 128x160; frame 5 unscored
    }


@pytest.fixture(scope="module")
def vb():
    """vbench.motion_smoothness (imported without its side effects on logging and sys.path surviving the module)."""
    for module in ("av", "decord", "cv2", "omegaconf", "imageio", "vbench"):
        pytest.importorskip(module)
    root = logging.getLogger()
    handlers, level, path = list(root.handlers), root.level, list(sys.path)
    try:
        from vbench import motion_smoothness
    finally:  # vbench.utils calls logging.basicConfig at import
        root.handlers[:] = handlers
        root.setLevel(level)
    yield motion_smoothness
    # vbench's build_utils puts third_party/amt on sys.path so that its cfg's 'networks.AMT-S.Model' imports
    sys.path[:] = path
    for module in [m for m in sys.modules if m == "networks" or m.startswith("networks.")]:
        del sys.modules[module]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from benchkit.models.video import write_video

    pytest.importorskip("av")  # the clips are mp4, as a run with PyAV installed writes them
    root = tmp_path_factory.mktemp("motion")
    run = root / "run"
    run.mkdir()
    records, info = [], []
    for name, frames in _clips().items():
        rec = {"prompt_id": name, "prompt": f"a {name} clip", "seed": 0, "meta": {}}
        rec.update(write_video(run, f"{name}_0", frames, 8))
        assert rec["video_format"] == "mp4"
        records.append(rec)
        info.append({"prompt_en": rec["prompt"], "dimension": ["motion_smoothness"], "video_list": [str(run / rec["video"])]})
    (root / "full_info.json").write_text(json.dumps(info))
    ckpt = root / "weights" / "amt-s.pth"
    ckpt.parent.mkdir()
    torch.save({"state_dict": amt_state(7)}, ckpt)  # amt-s.pth's layout
    return {"root": root, "run": run, "records": records, "info": str(root / "full_info.json"), "ckpt": ckpt, "vbench": {}}


def _vbench(vb, world) -> tuple[float, dict[str, float]]:
    """VBench's value and per-clip results by clip path (computed once)."""
    if not world["vbench"]:
        cfg = os.path.join(os.path.dirname(vb.__file__), "third_party", "amt", "cfgs", "AMT-S.yaml")
        value, per_clip = vb.compute_motion_smoothness(world["info"], torch.device("cpu"),
                                                       {"config": cfg, "ckpt": str(world["ckpt"])})
        world["vbench"] = {"value": float(value), "clips": {r["video_path"]: float(r["video_results"]) for r in per_clip}}
    return world["vbench"]["value"], world["vbench"]["clips"]


def _context(world, monkeypatch) -> MetricContext:
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({"amt-s": str(world["ckpt"])}))
    spec = W.REGISTRY["amt-s"]  # the registry may pin the real file's sha256; this one is random
    monkeypatch.setitem(W.REGISTRY, spec.name, dataclasses.replace(spec, sha256=None))
    ctx = MetricContext(cache_dir=world["root"] / "cache")
    ctx.run_dir = world["run"]  # records name their clips relative to the run folder
    return ctx


def _score(world, ctx):
    """The metric over the clips in two chunks, merged as the scorer merges them."""
    metric = build_metrics([NAME], ctx)[0]
    score_in_two_chunks(metric, world["records"], 1)  # merged as the scorer merges chunks
    return metric


def _per_clip(world, metric) -> dict[str, float]:
    return {str(world["run"] / r["video"]): metric.videos[f"{r['prompt_id']}\x1f0"][0] for r in world["records"]}


def test_motion_smoothness_equals_vbench(vb, world, monkeypatch):
    torch.set_num_threads(1)
    want, want_clips = _vbench(vb, world)
    metric = _score(world, _context(world, monkeypatch))
    value = metric.compute()[0]
    got_clips = _per_clip(world, metric)
    assert set(got_clips) == set(want_clips) and value.n == len(world["records"])
    worst = max(abs(got_clips[k] - want_clips[k]) for k in want_clips)
    print(f"{NAME}: benchkit {value.value:.10f} vbench {want:.10f} |diff| {abs(value.value - want):.2e}, per clip max {worst:.2e}")
    assert abs(value.value - want) <= TOL and worst <= TOL
    assert value.variant["dimension"] == "motion_smoothness" and value.variant["amt_scale"].startswith("1 ")
    assert set(value.variant["weights_sha256"]) == {"amt-s"}
    # the tamed random AMT-S blends its inputs: the still clip scores near 1, the moving one lower
    run = world["run"]
    assert got_clips[str(run / "videos/static_0.mp4")] > 0.95 > got_clips[str(run / "videos/moving_0.mp4")]


def test_the_network_is_vbenchs_to_the_last_bit(vb, world):
    """The port against VBench's vendored AMT-S on one padded pair: the same parameter names (strict load both ways)
    and the same output floats."""
    from omegaconf import OmegaConf
    from vbench.third_party.amt.utils.build_utils import build_from_cfg

    torch.set_num_threads(1)
    cfg = os.path.join(os.path.dirname(vb.__file__), "third_party", "amt", "cfgs", "AMT-S.yaml")
    theirs = build_from_cfg(OmegaConf.load(cfg).network).eval()
    theirs.load_state_dict(torch.load(world["ckpt"], map_location="cpu", weights_only=True)["state_dict"], strict=True)
    ours = load_amt_s(world["ckpt"], "test")
    assert list(theirs.state_dict()) == list(ours.state_dict())
    frames = torch.from_numpy(_clips()["wide"][:3:2].copy()).permute(0, 3, 1, 2) / 255.0
    x = torch.nn.functional.pad(frames, list(MS.pad_amounts(114, 146)), mode="replicate")
    embt = torch.tensor(0.5).view(1, 1, 1, 1)
    with torch.no_grad():
        want = theirs(x[:1], x[1:], embt, scale_factor=1.0, eval=True)["imgt_pred"]
        got = ours(x[:1], x[1:], embt)
        assert torch.equal(got, want)
        # at 112 px VBench's AMT-S gives NaN (the coarsest correlation level is 1 cell): benchkit refuses such clips
        small = torch.rand(2, 3, 112, 128)
        assert theirs(small[:1], small[1:], embt, scale_factor=1.0, eval=True)["imgt_pred"].isnan().all()


def test_mistakes_are_caught(vb, world, monkeypatch):
    """What the tolerance catches: interpolating at another time than halfway, scoring the interpolations against the
    even frames (the inputs) instead of the odd ones between them, and rounding them to uint8 where tensor2img
    truncates. Compared per clip (their mean can hide a mistake: clips move it both ways)."""
    torch.set_num_threads(1)
    want, want_clips = _vbench(vb, world)
    ctx = _context(world, monkeypatch)
    right = MS.motion_smoothness

    def even_scored(frames, model, device):  # each odd frame replaced by the even one before it: the network sees the same
        frames = frames.copy()
        frames[1::2] = frames[0::2][: len(frames[1::2])]
        return right(frames, model, device)

    def rounded(pred):
        return np.round(pred.squeeze(0).permute(1, 2, 0).cpu().numpy() * 255.0).clip(0, 255).astype(np.uint8)

    mistakes = {"embt 0.25": ("motion_smoothness", functools.partial(right, embt=0.25)),
                "even frames scored": ("motion_smoothness", even_scored), "rounded to uint8": ("to_uint8", rounded)}
    for what, (attr, wrong) in mistakes.items():
        with monkeypatch.context() as m:
            m.setattr(MS, attr, wrong)
            metric = _score(world, ctx)
        got, got_clips = metric.compute()[0].value, _per_clip(world, metric)
        worst = max(abs(got_clips[k] - want_clips[k]) for k in want_clips)
        print(f"{NAME} with {what}: |diff| {abs(got - want):.2e}, per clip max {worst:.2e}")
        assert worst > 20 * TOL, what


def test_clips_it_cannot_score_and_image_runs_are_one_line(tmp_path, monkeypatch):
    from benchkit.models import video

    with pytest.raises(BenchkitError) as err:
        REGISTRY[NAME].check(ScorePlan(records=[], seeds_per_prompt=1, family="sdxl", media="image"), MetricContext(cache_dir=tmp_path))
    assert "makes images" in str(err.value) and "\n" not in str(err.value)
    ckpt = tmp_path / "amt-s.pth"
    torch.save({"state_dict": amt_state(1)}, ckpt)
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({"amt-s": str(ckpt)}))
    monkeypatch.setitem(W.REGISTRY, "amt-s", dataclasses.replace(W.REGISTRY["amt-s"], sha256=None))
    monkeypatch.setattr(video, "mp4_encoder", lambda: None)  # APNG: exact frames, no PyAV needed
    ctx = MetricContext(cache_dir=tmp_path / "cache")
    ctx.run_dir = tmp_path
    metric = build_metrics([NAME], ctx)[0]
    rng = np.random.default_rng(1)
    for shape, words in (((2, 128, 128, 3), "at least 3 frames"), ((5, 112, 128, 3), "at least 113x113")):
        rec = {"prompt_id": f"p{shape[1]}", "seed": 0, **video.write_video(tmp_path, f"p{shape[1]}_0", rng.integers(0, 256, shape, dtype=np.uint8), 8)}
        with pytest.raises(BenchkitError) as err:
            metric.update(SampleBatch([], [rec]))
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_wrong_weight_files_are_one_line(tmp_path):
    amt_l_like = AMTS(channels=(84, 96, 112, 128), skip_channels=48).state_dict()  # AMT-L's encoder widths
    dino = {"cls_token": torch.zeros(1, 1, 8), "pos_embed": torch.zeros(1, 5, 8)}
    for name, state, words in (("amt-l", amt_l_like, "of another shape"), ("dino", dino, "missing")):
        path = tmp_path / f"{name}.pth"
        torch.save({"state_dict": state}, path)
        with pytest.raises(BenchkitError) as err:
            load_amt_s(path, f"weights 'amt-s' at {path}")
        assert words in str(err.value) and "amt-s.pth" in str(err.value) and "\n" not in str(err.value), str(err.value)
