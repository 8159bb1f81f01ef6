"""``vbench-dynamic-degree`` against the ``vbench`` 0.1.5 package's own ``compute_dynamic_degree``, on the same mp4
clips with the same random RAFT weights.

The weights are princeton-vl's RAFT (VBench's vendored copy, vbench/third_party/RAFT/core) at random init, saved as
raft-things.pth is: a ``module.``-prefixed state dict (nn.DataParallel). The flow head's last convolution is scaled
by 0.3 so that the flows straddle the thresholds: with these weights dark frames give larger flows than bright
ones (about 3.8 px against 2.8 px at 128 px, whose threshold is 3.0), whatever moves. VBench's side reads that file
itself (its loader needs no replacing: it reads the path it is given); a spy on ``DynamicDegree.check_move`` records
the pair scores and the parameters it was handed, without changing them.

The clips (benchkit.models.video.write_video, mp4 through PyAV) cover each rule: the fps sampling (8, 16 and 24
fps: every frame, every 2nd, every 3rd), the pair count (``round(4 * frames / 16)``, including 0 for two frames
kept), padding (132x140 is not a multiple of 8), and frames under 128 px, whose flow is NaN in princeton-vl's RAFT.

Needs vbench (pip install --no-deps vbench==0.1.5), easydict (its dynamic_degree module imports it), av and
opencv-python-headless; without them the parity tests skip. RAFT on CPU: the parity test takes about a minute.
"""

from __future__ import annotations

import fractions
import json
import logging

import numpy as np
import pytest
import torch

from benchkit.core.errors import BenchkitError
from metrics import build_metrics
from metrics import raft_flow as R
from metrics import vbench_dynamic_degree as D
from metrics import weights as W
from metrics.base import MetricContext, SampleBatch, ScorePlan
from metrics.clips import read_clip
from run_files import score_in_two_chunks

NAME = "vbench-dynamic-degree"
# pair scores (px): RAFT in float32 on both sides, 4 pairs a call here and one in VBench (seen: 0 on one and on two threads; the
# flows of other batch sizes and thread counts differed by up to 1.4e-5 px); the mistakes below move them by 0.01-0.06
TOL = 2e-4


def _vbench_raft(small: bool = False, seed: int = 0) -> torch.nn.Module:
    from easydict import EasyDict
    from vbench.third_party.RAFT.core.raft import RAFT

    torch.manual_seed(seed)
    model = RAFT(EasyDict({"small": small, "mixed_precision": False, "alternate_corr": False}))
    if not small:
        with torch.no_grad():  # flows of a few px, either side of the thresholds (see above)
            model.update_block.flow_head.conv2.weight.mul_(0.3)
            model.update_block.flow_head.conv2.bias.mul_(0.3)
    return model.eval()


def _save_princeton(model: torch.nn.Module, path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)  # as nn.DataParallel saved it
    return str(path)


# ---- the clips -----------------------------------------------------------------------------------------------

def _texture(rng, h, w, low=0, high=256):
    small = rng.integers(low, high, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
    big = np.kron(small, np.ones((8, 8, 1)))[:h, :w]
    return np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)


def _clips() -> dict[str, tuple[np.ndarray, int]]:
    """name -> (frames, fps)."""
    rng = np.random.default_rng(0)
    dark, bright = _texture(rng, 128, 128, 0, 40), _texture(rng, 128, 128, 100, 256)
    odd = _texture(rng, 132, 140, 0, 60)
    tiny = _texture(rng, 96, 64)
    return {
        # 16 fps: frames 0, 2, .., 8 kept; 4 pairs, 1 needed; dark: dynamic
        "dark": (np.stack([np.roll(dark, 3 * t, axis=1) for t in range(9)]), 16),
        # 8 fps: all 6 kept, round(1.5) = 2 pairs needed; only the pair from the dark first frame passes: static
        "bright": (np.stack([dark] + [np.roll(bright, 2 * t, axis=0) for t in range(5)]), 8),
        # 24 fps: frames 0, 3, 6 kept; 132x140 is padded to 136x144
        "odd": (np.stack([np.roll(odd, 2 * t, axis=1) for t in range(7)]), 24),
        # 96x64: a one-column correlation level in RAFT, NaN flow, static
        "tiny": (np.stack([np.roll(tiny, 4 * t, axis=0) for t in range(4)]), 8),
        # 16 fps, 3 frames: frames 0 and 2 kept, round(0.5) = 0 pairs needed: dynamic, though bright
        "pair": (np.stack([np.roll(bright, t, axis=1) for t in range(3)]), 16),
    }


@pytest.fixture(scope="module")
def vb():
    """vbench.dynamic_degree (imported without its logging side effects)."""
    for module in ("av", "cv2", "easydict", "vbench"):
        pytest.importorskip(module)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from vbench import dynamic_degree
    finally:  # vbench.utils calls logging.basicConfig at import
        root.handlers[:] = handlers
        root.setLevel(level)
    return dynamic_degree


@pytest.fixture(scope="module")
def world(vb, tmp_path_factory):
    from benchkit.models.video import write_video

    root = tmp_path_factory.mktemp("dynamic")
    run = root / "run"
    run.mkdir()
    records, info = [], []
    for name, (frames, fps) in _clips().items():
        rec = {"prompt_id": name, "prompt": f"a {name} clip", "seed": 0, "meta": {}}
        rec.update(write_video(run, f"{name}_0", frames, fps))
        assert rec["video_format"] == "mp4"
        records.append(rec)
        info.append({"prompt_en": rec["prompt"], "dimension": ["dynamic_degree"], "video_list": [str(run / rec["video"])]})
    (root / "full_info.json").write_text(json.dumps(info))
    weights = _save_princeton(_vbench_raft(), root / "weights" / "raft-things.pth")
    return {"root": root, "run": run, "records": records, "info": str(root / "full_info.json"), "weights": weights}


@pytest.fixture(scope="module")
def vbench_result(vb, world):
    """VBench's value, per-clip booleans, and what check_move was handed per clip (scores, thres, count_num)."""
    seen, current = {}, {}
    infer, check_move = vb.DynamicDegree.infer, vb.DynamicDegree.check_move

    def spy_infer(self, video_path):
        current["path"] = video_path
        return infer(self, video_path)

    def spy_check_move(self, score_list):
        seen[current["path"]] = (list(score_list), self.params["thres"], self.params["count_num"])
        return check_move(self, score_list)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(vb.DynamicDegree, "infer", spy_infer)
        m.setattr(vb.DynamicDegree, "check_move", spy_check_move)
        value, per_clip = vb.compute_dynamic_degree(world["info"], torch.device("cpu"), {"model": world["weights"]})
    return float(value), {r["video_path"]: bool(r["video_results"]) for r in per_clip}, seen


def _context(world, monkeypatch) -> MetricContext:
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({"raft-things": world["weights"]}))
    ctx = MetricContext(cache_dir=world["root"] / "cache")
    ctx.run_dir = world["run"]
    return ctx


def _score(world, ctx, records=None):
    """The metric over the clips in two chunks, merged as the scorer merges them."""
    metric = build_metrics([NAME], ctx)[0]
    records = world["records"] if records is None else records
    score_in_two_chunks(metric, records, 2)  # merged as the scorer merges chunks
    return metric


def _same_scores(a, b) -> bool:
    return len(a) == len(b) and np.allclose(np.array(a, float), np.array(b, float), rtol=0, atol=TOL, equal_nan=True)


def test_dynamic_degree_equals_vbench(vb, world, vbench_result, monkeypatch):
    want, want_clips, want_seen = vbench_result
    metric = _score(world, _context(world, monkeypatch))
    (value,) = metric.compute()
    paths = {f"{r['prompt_id']}\x1f0": str(world["run"] / r["video"]) for r in world["records"]}
    assert set(want_clips) == set(paths.values())
    worst = 0.0
    for key, path in paths.items():
        state = metric.videos[key]
        dynamic, fps, thres, count_num, scores = bool(state[0]), state[1], state[2], int(state[3]), state[D.HEADER:]
        vb_scores, vb_thres, vb_count = want_seen[path]
        print(f"{key.split(chr(31))[0]}: fps {fps:g} thres {thres:.3f} need {count_num} dynamic {dynamic} "
              f"scores {np.round(scores, 4).tolist()} vbench {np.round(vb_scores, 4).tolist()}")
        assert (thres, count_num) == (vb_thres, vb_count), key
        assert _same_scores(scores, vb_scores), key
        assert dynamic == want_clips[path], key
        finite = [abs(a - b) for a, b in zip(scores, vb_scores) if np.isfinite(a)]
        worst = max([worst, *finite])
    print(f"{NAME}: benchkit {value.value} vbench {want} per-pair |diff| max {worst:.2e}")
    assert value.value == want and value.n == len(paths)
    assert value.variant["weights_sha256"] and value.variant["dimension"] == "dynamic_degree"
    # every rule is exercised: both outcomes; the pair count decides "bright" (1 of 5 pairs passes, 2 needed) and
    # "pair" (0 needed); the under-128 px clip has NaN flow; the fps sampling kept 5, 6, 3, 4 and 2 frames
    got = {k.split("\x1f")[0]: v for k, v in metric.videos.items()}
    outcome = {n: bool(v[0]) for n, v in got.items()}
    assert outcome["dark"] and outcome["pair"] and not outcome["bright"] and not outcome["tiny"]
    assert sum(s > got["bright"][2] for s in got["bright"][D.HEADER:]) == 1 and got["bright"][3] == 2
    assert got["pair"][3] == 0 and max(got["pair"][D.HEADER:]) < got["pair"][2]
    assert all(np.isnan(got["tiny"][D.HEADER:])) and value.extra["clips_without_flow"] == 1
    assert {n: len(v) - D.HEADER + 1 for n, v in got.items()} == {"dark": 5, "bright": 6, "odd": 3, "tiny": 4, "pair": 2}
    assert value.extra["dynamic_clips"] == round(want * len(paths))


def test_the_parity_test_sees_padding_sampling_and_the_pair_count(vb, world, vbench_result, monkeypatch):
    """Plausible mistakes give other numbers than VBench's: cropping to a multiple of 8 instead of padding, padding
    with zeros, scoring the unpadded flow, sampling every frame whatever the fps, and flooring the pair count."""
    ctx = _context(world, monkeypatch)
    _, want_clips, want_seen = vbench_result
    by_name = {r["prompt_id"]: r for r in world["records"]}

    def crop(frames):
        h, w = frames.shape[-2:]
        return frames[..., : h // 8 * 8, : w // 8 * 8]

    def zeros(frames):
        h, w = frames.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        return torch.nn.functional.pad(frames, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])

    def unpadded_score(flow, score=D.top_flow_score):  # padder.unpad(flow) before get_score: 132x140 of 136x144
        return score(flow[:, 2:-2, 2:-2])

    def floored(h, w, n):
        return 6.0 * min(h, w) / 256.0, int(4 * n / 16)

    cases = [("odd", "pad_to_8", crop), ("odd", "pad_to_8", zeros), ("odd", "top_flow_score", unpadded_score),
             ("pair", "frame_interval", lambda fps: 1),  # (every frame of 'odd' too: 6 RAFT pairs more, same lesson)
             ("bright", "thresholds", floored)]
    for clip, attr, wrong in cases:
        path = str(world["run"] / by_name[clip]["video"])
        with monkeypatch.context() as m:
            m.setattr(R if attr == "pad_to_8" else D, attr, wrong)  # the padding is raft_flow's, shared
            if attr == "thresholds":  # a decision rule: VBench's own pair scores, no RAFT run needed
                m.setattr(D.VBenchDynamicDegree, "pair_scores", lambda self, frames, got=want_seen[path][0]: list(got))
            state = _score(world, ctx, [by_name[clip]]).videos[f"{clip}\x1f0"]
        same_scores = _same_scores(state[D.HEADER:], want_seen[path][0])
        print(f"{clip} with {attr} -> {getattr(wrong, '__name__', attr)}: dynamic {bool(state[0])} (vbench "
              f"{want_clips[path]}), scores {np.round(state[D.HEADER:], 4).tolist()}")
        assert not same_scores or bool(state[0]) != want_clips[path], (clip, attr)


def test_raft_on_torchvision_equals_princeton_raft(vb):
    """The network alone: torchvision's RAFT with princeton-vl's correlation lookup gives princeton-vl's flow, NaN
    included (a one-row correlation level); torchvision's own lookup refuses frames under 128 px."""
    from torchvision.models.optical_flow import raft_large
    from vbench.third_party.RAFT.core.utils_core.utils import InputPadder

    ref = _vbench_raft(seed=1)
    state = R.torchvision_state({f"module.{k}": v for k, v in ref.state_dict().items()}, "test")
    ours = R.build_raft().eval()
    ours.load_state_dict(state, strict=True)
    stock = raft_large(weights=None, progress=False).eval()
    stock.load_state_dict(state, strict=True)
    g = torch.Generator().manual_seed(0)
    for h, w in ((128, 128), (96, 128)):
        a = torch.rand(1, 3, h, w, generator=g) * 255
        b = torch.roll(a, 3, dims=-1)
        with torch.no_grad():
            _, want = ref(*InputPadder(a.shape).pad(a, b), iters=20, test_mode=True)
        got = R.raft_flow(ours, R.pad_to_8(a), R.pad_to_8(b))
        assert got.shape == want.shape == (1, 2, h + (-h) % 8, w + (-w) % 8)
        if h >= 121:
            print(f"{h}x{w}: max |flow| {want.abs().max():.3f}, |diff| {(got - want).abs().max():.2e}")
            assert torch.isfinite(want).all() and torch.allclose(got, want, rtol=0, atol=1e-4)
            with torch.no_grad():
                stock_flow = stock(2 * (R.pad_to_8(a) / 255.0) - 1, 2 * (R.pad_to_8(b) / 255.0) - 1, num_flow_updates=20)[-1]
            assert torch.allclose(stock_flow, want, rtol=0, atol=1e-4)  # above 128 px the stock lookup is the same
        else:
            assert torch.isnan(want).all() and torch.isnan(got).all()
            with pytest.raises(ValueError, match="too small"):
                stock(2 * (R.pad_to_8(a) / 255.0) - 1, 2 * (R.pad_to_8(b) / 255.0) - 1, num_flow_updates=20)


# ---- without VBench ----------------------------------------------------------------------------------------------

def test_sampling_and_thresholds_round_as_python_does():
    assert [D.frame_interval(f) for f in (4, 8, 12, 15, 16, 20, 24, 25, 30, 60)] == [1, 1, 2, 2, 2, 2, 3, 3, 4, 8]
    assert [D.thresholds(480, 832, n)[1] for n in (1, 2, 3, 6, 10, 14, 16, 41)] == [0, 0, 1, 2, 2, 4, 4, 10]
    assert D.thresholds(480, 832, 41)[0] == 6.0 * 480 / 256
    assert D.is_dynamic([], 1.0, 0) is False and D.is_dynamic([0.5], 1.0, 0) is True
    assert D.is_dynamic([2.0, 0.5, 2.0], 1.0, 2) and not D.is_dynamic([2.0, 0.5, float("nan")], 1.0, 2)
    assert D.sample_frames(np.arange(10), 24).tolist() == [0, 3, 6, 9]


def test_clip_fps_is_what_opencv_reads(tmp_path):
    """OpenCV's CAP_PROP_FPS is the stream's average frame rate: on a variable-rate mp4 (24 fps timestamps, 12 on
    average) both say 12; on benchkit's constant-rate clips, the fps they were written at. APNG: the record's."""
    av, cv2 = pytest.importorskip("av"), pytest.importorskip("cv2")
    from benchkit.models import video

    frames = np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    paths = {}
    for fps in (8, 15, 24):
        paths[float(fps)] = tmp_path / video.write_video(tmp_path, f"c{fps}", frames, fps)["video"]
    vfr = tmp_path / "videos" / "vfr.mp4"
    with av.open(str(vfr), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        pts = 0
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 240)
            pts += 10 if i % 2 else 30
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    paths[12.0] = vfr
    for fps, path in paths.items():
        capture = cv2.VideoCapture(str(path))
        assert D.clip_fps(path, {}) == capture.get(cv2.CAP_PROP_FPS) == fps, path
        capture.release()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(video, "mp4_encoder", lambda: None)
        rec = video.write_video(tmp_path, "a_0", frames[:3], 15)
    assert rec["video_format"] == "apng"
    assert D.clip_fps(tmp_path / rec["video"], rec) == 15.0
    assert D.clip_fps(tmp_path / rec["video"], {}) == pytest.approx(1000 / 67)  # its frame duration, 67 ms


def _resolved(path) -> W.ResolvedWeight:
    return W.ResolvedWeight("raft-things", path, path, "0" * 64, "unverified", "--weights")


def test_wrong_weight_files_are_one_line(tmp_path):
    from torchvision.models.optical_flow import raft_large, raft_small

    files = {"torchvision": (raft_large(weights=None, progress=False).state_dict(), "torchvision's RAFT file"),
             "small-tv": (raft_small(weights=None, progress=False).state_dict(), "torchvision's RAFT file"),
             "other": ({"module.conv.weight": torch.zeros(3, 3)}, "not a RAFT state dict"),
             "list": ([torch.zeros(2)], "expected a state dict")}
    try:
        import easydict  # noqa: F401
        import vbench  # noqa: F401
    except ImportError:
        pass
    else:  # princeton-vl's RAFT-small, as raft-small.pth holds it
        small = _vbench_raft(small=True).state_dict()
        files["raft-small"] = ({f"module.{k}": v for k, v in small.items()}, "RAFT-small")
        full = {f"module.{k}": v for k, v in _vbench_raft().state_dict().items()}
        full["module.update_block.mask.2.weight"] = full["module.update_block.mask.2.weight"][:100]
        files["shapes"] = (full, "does not fit RAFT")
    for name, (state, words) in files.items():
        path = tmp_path / f"{name}.pth"
        torch.save(state, path)
        with pytest.raises(BenchkitError) as err:
            R.load_raft(_resolved(path), torch.device("cpu"))
        assert words in str(err.value) and "\n" not in str(err.value), (name, str(err.value))


def test_clips_under_57_px_and_image_runs_are_one_line(tmp_path, monkeypatch):
    from benchkit.models import video

    with pytest.raises(BenchkitError) as err:
        D.VBenchDynamicDegree.check(ScorePlan(records=[], seeds_per_prompt=1, family="sdxl", media="image"),
                                    MetricContext(cache_dir=tmp_path))
    assert "makes images" in str(err.value)
    # a metric whose RAFT is a stand-in: the size check comes before the network
    metric = D.VBenchDynamicDegree.__new__(D.VBenchDynamicDegree)
    D.VBenchDimension.__init__(metric, MetricContext(cache_dir=tmp_path, run_dir=tmp_path))
    metric.model, metric.weights_sha256 = None, {"raft-things": "0" * 64}
    monkeypatch.setattr(video, "mp4_encoder", lambda: None)
    frames = np.zeros((4, 48, 80, 3), np.uint8)
    record = {"prompt_id": "p", "seed": 0, **video.write_video(tmp_path, "p_0", frames, 8)}
    assert np.array_equal(read_clip(tmp_path / record["video"]), frames)
    with pytest.raises(BenchkitError) as err:
        metric.update(SampleBatch([], [record]))
    assert "at least 57x57" in str(err.value) and "p_0.png" in str(err.value) and "\n" not in str(err.value)
    # one frame: no pair, static (check_move of an empty list), as VBench
    assert metric.score_clip(frames[:1], 8.0)[:4] == [0.0, 8.0, 6.0 * 48 / 256, 0]


def test_registered_with_the_registry_weight():
    from metrics import REGISTRY

    assert REGISTRY[NAME] is D.VBenchDynamicDegree and D.VBenchDynamicDegree.reads_clips
    assert D.VBenchDynamicDegree.weights == ("raft-things",) and "raft-things" in W.REGISTRY
