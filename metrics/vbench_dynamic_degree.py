"""VBench's dynamic degree (Vchitect/VBench, the ``vbench`` 0.1.5 package's vbench/dynamic_degree.py) as the
benchkit metric ``vbench-dynamic-degree``: the share of clips whose optical flow says they move.

What ``compute_dynamic_degree`` does, step by step (dynamic_degree.py, by line), and benchkit with it:

- frames: every frame of the clip (VBench decodes with OpenCV, BGR->RGB; benchkit with PyAV as rgb24, the same
  frames), then every ``interval``-th from the first, ``interval = max(1, round(fps / 8))`` with Python's
  round (half to even: 12 fps -> 2, 20 fps -> 2, 24 fps -> 3) and ``fps`` OpenCV's CAP_PROP_FPS (:96-120).
  OpenCV reads the stream's average frame rate (FFmpeg's ``avg_frame_rate``; its stream time base when there
  is none), which benchkit reads through PyAV (:func:`clip_fps`); for an animated PNG, which VBench does not
  read, the fps benchkit wrote in the record.
- threshold (``set_params``, :59-61): ``thres = 6 * min(H, W) / 256`` on the unpadded frame and
  ``count_num = round(4 * frames / 16)`` on the number of frames kept (again half to even: 2 frames -> 0,
  6 -> 2, 10 -> 2).
- per consecutive pair (:74-79): both frames replicate-padded to multiples of 8 (``InputPadder``, 'sintel'
  mode), RAFT with 20 updates (``iters=20, test_mode=True``), and the score (``get_score``, :42-56): the mean
  of the largest 5% (``int(h * w * 0.05)`` of them, h and w the padded size: the flow is not unpadded) of the
  flow magnitudes, in float32 numpy as VBench computes it.
- decision (``check_move``, :84-93): the clip is dynamic when at least ``count_num`` pair scores exceed
  ``thres``; with ``count_num`` 0 (two frames kept) any clip with a pair is dynamic, a clip with no pair is not.
- value (:141-149): the mean over clips of that boolean, the fraction of dynamic clips.

RAFT is torchvision's ``raft_large`` holding princeton-vl's ``raft-things.pth`` (metrics/raft_flow.py: its
correlation lookup is princeton-vl's, where torchvision's differs). Frames whose padded height or width is
64 to 127 px (57 to 127 px before padding) give princeton-vl's RAFT a one-row or one-column correlation level,
whose lookup divides by zero: the flow is NaN on a CPU, every score fails the threshold, and VBench calls the
clip static. benchkit computes the same (the value equals VBench's) and counts such clips in the result's
``clips_without_flow``; under 57 px RAFT cannot run and the clip is one error line.

Per clip, the state keeps ``[dynamic (1/0), fps, thres, count_num, score of each pair...]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import MetricContext
from metrics.clips import clip_path
from metrics.raft_flow import ITERS, RAFT_MIN_SIDE, pair_flow_scores, raft_for
from metrics.raft_flow import top_flow_score as top_share_score
from metrics.vbench_dimensions import PROTOCOL, VBenchDimension
from metrics.weights import library_versions

TARGET_FPS = 8  # dynamic_degree.py:100: interval = max(1, round(fps / 8))
SAMPLING = ("every round(fps / 8)-th frame from the first (at least every frame; fps: the stream's average rate, "
            "as OpenCV's CAP_PROP_FPS; DynamicDegree.get_frames / extract_frame)")
HEADER = 4  # per-clip state: dynamic, fps, thres, count_num, then the pair scores
TOP_SHARE = 0.05  # dynamic_degree.py:50: cut_index = int(h*w*0.05)


def frame_interval(fps: float) -> int:
    """``max(1, round(fps / 8))`` (dynamic_degree.py:100), Python's round."""
    return max(1, round(fps / TARGET_FPS))


def sample_frames(frames: np.ndarray, fps: float) -> np.ndarray:
    """The frames VBench keeps (``extract_frame``, dynamic_degree.py:116-120): every ``frame_interval(fps)``-th."""
    return frames[:: frame_interval(fps)]


def thresholds(height: int, width: int, count: int) -> tuple[float, int]:
    """``set_params`` (dynamic_degree.py:59-61): (6 * min(H, W) / 256, round(4 * count / 16))."""
    return 6.0 * (min(height, width) / 256.0), round(4 * (count / 16.0))


def top_flow_score(flow: np.ndarray) -> float:
    """``get_score`` (dynamic_degree.py:42-56) of one (2, H, W) float32 flow: the mean of its largest 5% of
    magnitudes, in VBench's float32 numpy steps (NaN when the flow is NaN)."""
    return top_share_score(flow, TOP_SHARE)


def is_dynamic(scores: list[float], thres: float, count_num: int) -> bool:
    """``check_move`` (dynamic_degree.py:84-93): True once ``count_num`` scores have exceeded ``thres``."""
    count = 0
    for score in scores:
        if score > thres:
            count += 1
        if count >= count_num:
            return True
    return False


def clip_fps(path: Path, record: dict[str, Any]) -> float:
    """The frame rate VBench samples ``path`` by: OpenCV's CAP_PROP_FPS, which is FFmpeg's ``avg_frame_rate`` of the
    video stream (1 / its time base when that is unset), read here through PyAV; for an animated PNG or GIF (which
    VBench does not read) the ``fps`` benchkit recorded, else Pillow's frame duration."""
    path = Path(path)
    if path.suffix.lower() in (".png", ".apng", ".gif"):
        if record.get("fps"):
            return float(record["fps"])
        from PIL import Image

        with Image.open(path) as im:
            duration = im.info.get("duration")
        if not duration:
            raise BenchkitError("its frame rate is unknown (no 'fps' in its record, no frame duration in the file)")
        return 1000.0 / float(duration)
    try:
        import av
    except ImportError:
        raise BenchkitError(f"reading {path.name} needs PyAV: pip install av") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BenchkitError("it has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate
            if not rate or rate <= 0:
                rate = 1 / stream.time_base if stream.time_base else None
    except av.error.FFmpegError as exc:
        raise BenchkitError(f"cannot read it: {exc}") from None
    if not rate or rate <= 0:
        raise BenchkitError("its frame rate is unknown (no average frame rate or time base in the stream)")
    return float(rate)


@register_metric()
class VBenchDynamicDegree(VBenchDimension):
    name = "vbench-dynamic-degree"
    dimension = "dynamic_degree"
    weights = ("raft-things",)
    min_side, min_side_why = RAFT_MIN_SIDE, "RAFT has four correlation levels"
    protocol = (PROTOCOL + ": compute_dynamic_degree's code path: frames at about 8 per second, RAFT (20 updates) on each "
                "consecutive pair, the fraction of clips judged dynamic")
    description = ("VBench dynamic degree: fraction of clips whose RAFT flow (mean of the top 5% magnitudes) passes "
                   "6*min(H,W)/256 in round(frames/4) frame pairs")
    scale = "fraction of clips judged dynamic, 0-1 (VBench's raw value, before its normalisation)"
    unit = "fraction"
    pairs_per_call: ClassVar[int] = 4  # frame pairs per RAFT call, fewer when their correlation pyramids pass CORR_BYTES

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.model, self.weights_sha256 = raft_for(ctx)

    def score_item(self, record: dict[str, Any], frames: np.ndarray) -> list[float]:
        """The clip's result, sampled by the frame rate of its file (VBench reads it with the frames)."""
        return self.score_clip(frames, clip_fps(clip_path(record, self.ctx.run_dir), record))

    def pair_scores(self, frames: np.ndarray) -> list[float]:
        """``get_score`` of RAFT's flow for each consecutive pair of ``frames`` (T, H, W, 3 uint8)."""
        video = torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2)  # :105: 0-255 float32
        return pair_flow_scores(self.model, video[:-1], video[1:], self.ctx.device, top_flow_score, self.pairs_per_call)

    @torch.no_grad()
    def score_clip(self, frames: np.ndarray, fps: float) -> list[float]:  # type: ignore[override]
        kept = sample_frames(frames, fps)
        thres, count_num = thresholds(kept.shape[1], kept.shape[2], len(kept))
        scores = self.pair_scores(kept) if len(kept) > 1 else []
        return [float(is_dynamic(scores, thres, count_num)), fps, thres, count_num, *scores]

    def reduce(self, results: list[list[float]]) -> tuple[float, dict[str, Any]]:
        dynamic = np.array([r[0] for r in results], dtype=np.float64)
        no_flow = sum(1 for r in results if any(not np.isfinite(s) for s in r[HEADER:]))
        return float(dynamic.mean()), {"dynamic_clips": int(dynamic.sum()), "clips_without_flow": no_flow,
                                       "std_over_clips": float(dynamic.std(ddof=1)) if len(dynamic) > 1 else 0.0}

    def compute(self):
        values = super().compute()
        for value in values:
            value.variant["frames"] = SAMPLING
        return values

    def describe(self) -> dict[str, Any]:
        return {"model": "RAFT (princeton-vl raft-things.pth) on torchvision's raft_large, princeton-vl's correlation "
                         f"lookup, {ITERS} flow updates, the upsampled flow",
                "image": "0-255 RGB frames replicate-padded to multiples of 8 (RAFT's InputPadder, 'sintel'), "
                         "2*(x/255)-1",
                "pair_score": "mean of the largest int(0.05*H*W) flow magnitudes over the padded frame (get_score)",
                "decision": "dynamic when at least round(4*frames/16) pair scores exceed 6*min(H,W)/256 (check_move)",
                "reduction": "fraction of clips judged dynamic",
                "dtype": "float32", "libraries": library_versions("torch", "torchvision", "numpy", "av")}
