"""VBench-I2V's camera motion dimension (Vchitect/VBench ``vbench2_beta_i2v/camera_motion.py`` @ 45e79ec) as the
benchkit metric ``vbench-camera-motion``.

Per clip (``CameraPredict.predict``, camera_motion.py:143-148): every frame, as float 0-255, goes to CoTracker2
(:mod:`metrics.cotracker`, the ``cotracker2`` torch.hub entry VBench loads, :40-46) with ``grid_size=10``: a 10 x 10
grid of points on the first frame, tracked through the clip at the model's 384 x 512 and scaled back to the clip's
pixels; the tracks are truncated to integers (``.long()``, :62). Of the first and the last frame's grids, the
middle point of each edge (``get_edge_point`` with ``number_points`` 1: row 0, row 9, column 0 and column 9, at
index 5, :65-77) gives four displacement vectors (last - first; ``transform``, :10-13); each is classed
right/left when its x is over ``min(H, W) * 0.005`` px or under minus that, down/up likewise on y, else static
(``transform_class``, :16-31). The top and bottom edges' pair and the left and right edges' pair each map to camera
motions (both moving left: the camera pans right; top up and bottom down: it zooms in; ...; :94-125); the union,
with "static" and "None" dropped when anything else is there (:128-140), is the clip's prediction. The clip scores
1 when the motion its prompt asks for is among the predicted ones, else 0 (:187); the value is the mean over
clips (:192), with the mean per asked motion beside it (VBench's second return value).

The motion asked for: VBench reads it from the video's file name (``get_type``, :152-168), which in its standard
mode is the prompt (``{prompt}-{index}.mp4``), the first of "camera pans left", "camera pans right", "camera tilts
up", "camera tilts down", "camera zooms in", "camera zooms out", "camera static" it contains (every prompt of the
``vbench-i2v`` set's camera_motion dimension ends with one; its info json has no ``auxiliary_info`` for it).
benchkit reads the same phrases from the clip's prompt; clips whose prompt names none are left out (VBench raises).

Clips need at least 5 frames: CoTracker2's sliding window (8 frames, moved by 4) runs no window at all for 4 or
fewer ((T - 8 + 3) // 4 + 1 = 0, cotracker.py:283), and VBench would score the tracks' zero initial values.
"""

from __future__ import annotations

from collections import Counter
from math import ceil
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import MetricContext
from metrics.model_cache import cached_model
from metrics.vbench_dimensions import VBenchDimension
from metrics.vbench_i2v import I2V_PROTOCOL
from metrics.weights import ResolvedWeight, library_versions, resolve

if TYPE_CHECKING:  # metrics.cotracker is CC-BY-NC 4.0 (co-tracker's code): imported only when the metric is built
    from metrics.cotracker import CoTracker2

WEIGHT = "cotracker2"
GRID_SIZE = 10  # CameraPredict.grid_size (camera_motion.py:38)
NUMBER_POINTS = 1  # CameraPredict.number_points (:39): the middle point of each edge
FACTOR = 0.005  # transform_class's factor of min(H, W) (:16)
WINDOW_LEN = 8  # the cotracker2 hub entry's window (co-tracker hubconf.py:43); cotracker2v1 has 16
MIN_FRAMES = 5  # the fewest for which CoTracker2 runs a window (see the module docstring)
# get_type's phrases in its dict order (camera_motion.py:153-161): the first one a prompt contains is its motion
CAMERA_PHRASES = (("camera pans left", "pan_left"), ("camera pans right", "pan_right"), ("camera tilts up", "tilt_up"),
                  ("camera tilts down", "tilt_down"), ("camera zooms in", "zoom_in"), ("camera zooms out", "zoom_out"),
                  ("camera static", "static"))
MOTIONS = tuple(m for _, m in CAMERA_PHRASES)
LABELS = (*MOTIONS, "None")  # what a clip can be predicted as
TOP_DOWN = {"left_left": "pan_right", "right_right": "pan_left", "down_down": "tilt_up", "up_up": "tilt_down",
            "up_down": "zoom_in", "down_up": "zoom_out", "static_static": "static"}  # classify_top_down (:98-106)
LEFT_RIGHT = {"left_left": "pan_right", "right_right": "pan_left", "down_down": "tilt_up", "up_up": "tilt_down",
              "left_right": "zoom_in", "right_left": "zoom_out", "static_static": "static"}  # classify_left_right (:115-123)
HEADER = 2 + len(LABELS)  # per-clip state: [score, asked motion's index, one flag per label, then the 4 edge vectors]


def expected_motion(prompt: str) -> str | None:
    """``get_type`` (camera_motion.py:152-168) on the prompt: the motion of the first phrase it contains, or None."""
    return next((motion for phrase, motion in CAMERA_PHRASES if phrase in prompt), None)


def edge_points(track: np.ndarray, grid_size: int = GRID_SIZE, number_points: int = NUMBER_POINTS) -> list[np.ndarray]:
    """``get_edge_point`` (:65-77): (top, down, left, right) points of a (grid, grid, 2) track, each (k, 2)."""
    start, end = ceil(grid_size // 2 - number_points / 2.0), ceil(grid_size // 2 + number_points / 2.0)
    rows = range(start, end)
    return [np.stack([track[0, i] for i in rows]), np.stack([track[grid_size - 1, i] for i in rows]),
            np.stack([track[i, 0] for i in rows]), np.stack([track[i, grid_size - 1] for i in rows])]


def edge_vectors(first: np.ndarray, last: np.ndarray, **grid: int) -> list[tuple[float, float]]:
    """``get_edge_direction``'s vectors (:80-88, ``transform`` :10-13): per edge, the mean (last - first) of its points."""
    return [(float(np.mean(b[:, 0] - a[:, 0])), float(np.mean(b[:, 1] - a[:, 1])))
            for a, b in zip(edge_points(first, **grid), edge_points(last, **grid))]


def direction(vector: tuple[float, float], min_reso: int, factor: float = FACTOR) -> list[str]:
    """``transform_class`` (:16-31)."""
    scale = min_reso * factor
    x, y = vector
    out = ["right"] if x > scale else ["left"] if x < -scale else []
    out += ["down"] if y > scale else ["up"] if y < -scale else []
    return out or ["static"]


def classify(vectors: list[tuple[float, float]], min_reso: int, factor: float = FACTOR) -> set[str]:
    """``camera_classify`` (:128-140, with ``classify_top_down`` and ``classify_left_right``, :94-125) on the four
    edge vectors: the predicted motions."""
    top, down, left, right = (direction(v, min_reso, factor) for v in vectors)
    top_down = [TOP_DOWN[c] for c in (f"{t}_{d}" for t in top for d in down) if c in TOP_DOWN] or ["None"]
    left_right = [LEFT_RIGHT[c] for c in (f"{a}_{b}" for a in left for b in right) if c in LEFT_RIGHT] or ["None"]
    results = set(top_down + left_right)
    for drop in ("static", "None"):
        if drop in results and len(results) > 1:
            results.remove(drop)
    return results


def clip_tracks(model: CoTracker2, frames: np.ndarray, device: torch.device, grid_size: int = GRID_SIZE) -> torch.Tensor:
    """``CameraPredict.infer`` (:48-62) before its truncation: uint8 (T, H, W, 3) -> float tracks (T, grid^2, 2) on the CPU."""
    from metrics.cotracker import track_grid

    video = torch.tensor(frames).permute(0, 3, 1, 2)[None].float().to(device)
    tracks, _ = track_grid(model, video, grid_size=grid_size)
    return tracks[0].cpu()


def camera_result(tracks: torch.Tensor, height: int, width: int, asked: str, grid_size: int = GRID_SIZE,
                  factor: float = FACTOR) -> list[float]:
    """One clip's state from its float tracks: [score, asked index, label flags..., 4 x (dx, dy)]."""
    pred = tracks.long().numpy()  # infer's .long(): truncation toward zero (:62)
    vectors = edge_vectors(pred[0].reshape(grid_size, grid_size, 2), pred[-1].reshape(grid_size, grid_size, 2),
                           grid_size=grid_size)
    predicted = classify(vectors, min(height, width), factor)
    return [float(asked in predicted), float(MOTIONS.index(asked)), *(float(label in predicted) for label in LABELS),
            *(c for v in vectors for c in v)]


def load_cotracker(weight: ResolvedWeight, device: torch.device) -> CoTracker2:
    """CoTracker2 from its state dict (``cotracker2.pth``: a plain state dict, hubconf.py:48-68; a ``{'model': ...}``
    training checkpoint as the vendored build_cotracker.py:27-32 reads it), its sizes read from the tensors: the published file's
    are 384x512, 6 + 6 blocks and 64 virtual tracks."""
    from benchkit.core.safe_load import load_state_dict_file
    from metrics.cotracker import CoTracker2

    where = f"weights '{weight.name}' at {weight.hashed_file}"
    state = load_state_dict_file(weight.hashed_file)
    if isinstance(state.get("model"), dict):
        state = state["model"]
    pos, time_emb, virtual = state.get("pos_emb"), state.get("time_emb"), state.get("updateformer.virual_tracks")
    if not all(isinstance(t, torch.Tensor) for t in (pos, time_emb, virtual)) or pos.dim() != 4 or time_emb.dim() != 3:
        raise BenchkitError(f"{where}: not a CoTracker2 state dict (pos_emb, time_emb, updateformer.virual_tracks missing); "
                            "use cotracker2.pth from huggingface.co/facebook/cotracker")
    if time_emb.shape[1] != WINDOW_LEN:
        raise BenchkitError(f"{where}: a CoTracker with {time_emb.shape[1]}-frame windows; VBench-I2V's cotracker2 has "
                            f"{WINDOW_LEN} (cotracker2v1.pth has 16): use cotracker2.pth")
    depth = {part: len({k.split(".")[2] for k in state if k.startswith(f"updateformer.{part}.")})
             for part in ("time_blocks", "space_virtual_blocks")}
    if not depth["time_blocks"] or not depth["space_virtual_blocks"]:
        raise BenchkitError(f"{where}: a CoTracker without time or space attention blocks ({depth}); use cotracker2.pth "
                            "from huggingface.co/facebook/cotracker")
    stride = 4  # the hub entry's (co-tracker build_cotracker.py:28)
    try:
        model = CoTracker2(window_len=WINDOW_LEN, stride=stride, num_virtual_tracks=virtual.shape[1],
                           model_resolution=(pos.shape[2] * stride, pos.shape[3] * stride),
                           space_depth=depth["space_virtual_blocks"], time_depth=depth["time_blocks"])
        model.load_state_dict(state, strict=True)
    except (RuntimeError, AssertionError) as exc:
        raise BenchkitError(f"{where}: does not fit CoTracker2 ({str(exc).splitlines()[0][:200]}); use cotracker2.pth "
                            "from huggingface.co/facebook/cotracker") from None
    return model.float().eval().to(device)


@register_metric()
class VBenchCameraMotion(VBenchDimension):
    name = "vbench-camera-motion"
    dimension = "camera_motion"
    protocol = I2V_PROTOCOL + ": camera_motion.py's code path, every frame, per-clip results averaged over clips"
    weights = (WEIGHT,)
    description = ("VBench-I2V camera motion: CoTracker2 tracks a 10x10 grid; the edges' displacement between the first and "
                   "the last frame classes the camera motion, which must be the one the prompt asks for")
    scale = "share of clips whose predicted camera motions include the prompt's, 0-1 (VBench-I2V's raw value)"

    prompt_need = ("checks the camera motion each prompt asks for ('camera pans left', ... 'camera static'), and none "
                   "of these prompts names one; use VBench-I2V's: -p vbench-i2v --dimension camera_motion")

    @classmethod
    def names_what_it_checks(cls, record: dict[str, Any]) -> bool:
        return expected_motion(str(record.get("prompt", ""))) is not None

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), ("prompts naming a camera motion ('camera pans left', ..., as -p vbench-i2v "
                                    "--dimension camera_motion); clips whose prompt names none are left out")]

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        weight = resolve(WEIGHT)
        self.model = cached_model(("cotracker2", str(weight.hashed_file), weight.sha256, str(ctx.device)),
                                  lambda: load_cotracker(weight, ctx.device))
        self.weights_sha256 = {weight.name: weight.sha256}

    @torch.no_grad()
    def score_item(self, record: dict[str, Any], frames: np.ndarray) -> list[float]:
        if len(frames) < MIN_FRAMES:
            raise BenchkitError(f"camera motion needs at least {MIN_FRAMES} frames (CoTracker2's 8-frame window runs on "
                                f"none of a shorter clip, and VBench would score its zero tracks); the clip has {len(frames)}")
        tracks = clip_tracks(self.model, frames, self.ctx.device)
        return camera_result(tracks, frames.shape[1], frames.shape[2], expected_motion(str(record["prompt"])))

    def reduce(self, results: list[list[float]]) -> tuple[float, dict[str, Any]]:
        """The mean score over clips (camera_motion.py:192), and per asked motion (:194-195) where it has clips."""
        value, extra = super().reduce(results)
        by_motion: dict[str, list[float]] = {}
        for r in results:
            by_motion.setdefault(MOTIONS[int(r[1])], []).append(r[0])
        extra["per_motion"] = {m: float(np.mean(by_motion[m])) for m in MOTIONS if m in by_motion}
        extra["clips_per_motion"] = {m: len(by_motion[m]) for m in MOTIONS if m in by_motion}
        extra["predicted"] = dict(Counter(label for r in results for label, flag in zip(LABELS, r[2:HEADER]) if flag))
        return value, extra

    def describe(self) -> dict[str, Any]:
        model = self.model
        return {"protocol": I2V_PROTOCOL,
                "model": f"CoTracker2 (facebookresearch/co-tracker torch.hub 'cotracker2', cotracker2.pth; window "
                         f"{model.window_len}, stride {model.stride}, model resolution {model.model_resolution[0]}x"
                         f"{model.model_resolution[1]}, {len(model.updateformer.time_blocks)} time and "
                         f"{len(model.updateformer.space_virtual_blocks)} space blocks, "
                         f"{model.updateformer.num_virtual_tracks} virtual tracks)",
                "tracks": f"{GRID_SIZE}x{GRID_SIZE} grid on the first frame (margin W/64 at the model resolution), every "
                          "frame resized bilinearly (corners aligned) to the model resolution, 6 updates per window; "
                          "scaled back to the clip's pixels and truncated to integers",
                "classes": f"the middle point of each grid edge, last - first frame; right/left, down/up beyond "
                           f"{FACTOR} x min(H, W) px; edge pairs mapped to pan/tilt/zoom/static as camera_motion.py",
                "reduction": "per clip 1 if the prompt's motion is among the predicted ones, else 0; mean over clips",
                "dtype": "float32", "libraries": library_versions("torch", "numpy", "av")}
