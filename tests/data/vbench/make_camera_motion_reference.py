"""Record what VBench-I2V's own ``vbench2_beta_i2v/camera_motion.py`` computes on the clips in ``camera/`` (written
here once), with its vendored CoTracker2 holding random weights, for tests/test_vbench_camera_motion.py to compare
with where no VBench checkout is at hand (the I2V code is not in the ``vbench`` package on PyPI, and CI cannot clone
the repository).

    python tests/data/vbench/make_camera_motion_reference.py /path/to/Vchitect/VBench

Needs PyAV (the clips are mp4, as a run writes them), decord (VBench-I2V reads with it), imageio and matplotlib
(camera_motion.py imports CoTracker's visualizer). VBench's code runs unmodified but for two replacements:
``torch.hub.load`` (which would download co-tracker's code and cotracker2.pth) returns the vendored
``CoTrackerPredictor`` (vbench2_beta_i2v/third_party/cotracker/predictor.py, what the hub entry builds), whose
``build_cotracker`` is replaced so that the vendored ``CoTracker2`` is built at the test's size and loads the test's
random state dict strictly, as the hub entry loads cotracker2.pth. A forward hook on the predictor keeps its float
tracks, and a wrapper around ``CameraPredict.infer`` what that returns (the tracks truncated to integers). The
videos are handed to VBench under the names its standard mode gives them, ``{prompt}-0.mp4`` (links to the clips),
because it reads the asked camera motion from the file name.
Writes camera/reference.json (about a minute on one core: the published size runs once, on one clip).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import math
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "camera"


def write_clips() -> None:
    from test_vbench_camera_motion import clip_frames

    from benchkit.models.video import write_video

    DATA.mkdir(exist_ok=True)
    for name, frames in clip_frames().items():
        if not (DATA / "videos" / f"{name}_0.mp4").exists():
            rec = write_video(DATA, f"{name}_0", frames, 8)
            assert rec["video_format"] == "mp4", "PyAV is needed: the clips are mp4"


def _vendored(repo: Path):
    """The vendored co-tracker package (imported as ``cotracker``, as its own modules import each other) and
    vbench2_beta_i2v.camera_motion, without its utils' logging.basicConfig surviving."""
    for path in (str(repo), str(repo / "vbench2_beta_i2v" / "third_party")):
        if path not in sys.path:
            sys.path.insert(0, path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        camera_motion = importlib.import_module("vbench2_beta_i2v.camera_motion")
        predictor = importlib.import_module("cotracker.predictor")
        network = importlib.import_module("cotracker.models.core.cotracker.cotracker")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return camera_motion, predictor, network


def vendored_cotracker(network, config: dict):
    """The vendored CoTracker2 as build_cotracker.py:24-25 builds it (stride 4, window 8, space attention), at
    ``config``'s size: model_resolution and num_virtual_tracks are its constructor's arguments; the update former's
    depths (6 and 6, hard-coded at cotracker.py:48-57) are passed on to EfficientUpdateFormer."""
    depths = {k: config[k] for k in ("space_depth", "time_depth") if k in config}
    kwargs = {k: config[k] for k in ("model_resolution", "num_virtual_tracks") if k in config}
    original = network.EfficientUpdateFormer
    network.EfficientUpdateFormer = lambda **kw: original(**{**kw, **depths})
    try:
        return network.CoTracker2(stride=4, window_len=8, add_space_attn=True, **kwargs)
    finally:
        network.EfficientUpdateFormer = original


def run_vbench_camera_motion(repo: Path, config: dict, names: tuple[str, ...]) -> dict:
    """VBench-I2V's compute_camera_motion on the named clips, CoTracker2 at ``config``'s size with the test's weights."""
    import torch
    from test_vbench_camera_motion import CLIPS, FLOW_GAIN, SEED, cotracker_state

    camera_motion, predictor_module, network = _vendored(Path(repo))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "cotracker2.pth"
        torch.save(cotracker_state(SEED, FLOW_GAIN, **config), ckpt)

        def build_cotracker(checkpoint):  # hubconf.py's cotracker2: the network, then load_state_dict(torch.load(url))
            model = vendored_cotracker(network, config)
            model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True), strict=True)
            return model

        saved_build, saved_hub = predictor_module.build_cotracker, torch.hub.load
        predictor_module.build_cotracker = build_cotracker
        try:
            predictor = predictor_module.CoTrackerPredictor(checkpoint=str(ckpt))
        finally:
            predictor_module.build_cotracker = saved_build
        tracks = []
        predictor.register_forward_hook(lambda module, args, out: tracks.append(out[0][0].clone()))
        info, paths = [], {}
        for name in names:
            link = Path(tmp) / f"{CLIPS[name]}-0.mp4"  # VBench's standard-mode name: the prompt, then -index
            link.symlink_to(DATA / "videos" / f"{name}_0.mp4")
            info.append({"prompt_en": CLIPS[name], "dimension": ["camera_motion"], "video_list": [str(link)]})
            paths[str(link)] = name
        (Path(tmp) / "info.json").write_text(json.dumps(info))
        infer, truncated = camera_motion.CameraPredict.infer, []

        def recording_infer(self, *args, **kwargs):  # what infer returns: the tracks truncated to integers
            out = infer(self, *args, **kwargs)
            truncated.append(out)
            return out

        torch.hub.load = lambda repo_or_dir, model, *args, **kwargs: predictor
        camera_motion.CameraPredict.infer = recording_infer
        torch.set_num_threads(1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # numpy's mean of the motions no clip asks for: nan
                value, per_type, per_clip = camera_motion.compute_camera_motion(
                    str(Path(tmp) / "info.json"), torch.device("cpu"),
                    {"repo": "facebookresearch/co-tracker", "model": "cotracker2"})
        finally:
            torch.hub.load = saved_hub
            camera_motion.CameraPredict.infer = infer
    clips = {}
    for result, track, ints in zip(per_clip, tracks, truncated):  # one predictor call per clip, in the info's order
        clips[paths[result["video_path"]]] = {
            "prompt_type": result["prompt_type"], "predict_type": sorted(result["predict_type"]),
            "video_results": float(result["video_results"]),
            "tracks_first": track[0].tolist(), "tracks_last": track[-1].tolist(),
            "infer_first": ints[0].tolist(), "infer_last": ints[-1].tolist()}
    assert len(tracks) == len(truncated) == len(names) == len(clips)
    return {"value": float(value), "clips": clips,
            "per_motion": {k: (None if math.isnan(v) else float(v)) for k, v in per_type.items()}}


def full_size_state(repo: Path) -> dict:
    """The vendored full-size CoTracker2's state-dict names and shapes, and its sin/cos buffers' sha256."""
    _, _, network = _vendored(Path(repo))
    state = vendored_cotracker(network, {}).state_dict()
    return {"keys": [[k, list(v.shape)] for k, v in state.items()],
            "buffers_sha256": {k: hashlib.sha256(state[k].numpy().tobytes()).hexdigest() for k in ("time_emb", "pos_emb")}}


def _commit(repo: Path) -> str:
    """The checkout's commit, read from .git (HEAD, then its branch ref, loose or packed)."""
    git = repo / ".git"
    head = (git / "HEAD").read_text().strip()
    if not head.startswith("ref: "):
        return head
    ref = head[5:]
    if (git / ref).is_file():
        return (git / ref).read_text().strip()
    packed = (git / "packed-refs").read_text().splitlines() if (git / "packed-refs").is_file() else []
    return next((line.split()[0] for line in packed if line.endswith(" " + ref)), "unknown")


def main(repo: Path) -> Path:
    sys.path.insert(0, str(HERE.parents[1]))  # tests/: the same clips, prompts and weights as the test
    sys.path.insert(0, str(HERE.parents[2]))
    from test_vbench_camera_motion import CLIPS, FLOW_GAIN, FULL_CLIP, SEED, TINY

    write_clips()
    tiny = run_vbench_camera_motion(repo, TINY, tuple(CLIPS))
    full = run_vbench_camera_motion(repo, {}, (FULL_CLIP,))
    out = DATA / "reference.json"
    out.write_text(json.dumps({
        "vbench_commit": _commit(repo), "code": "vbench2_beta_i2v/camera_motion.py compute_camera_motion, vendored "
        "third_party/cotracker CoTrackerPredictor and CoTracker2",
        "weights": f"tests/test_vbench_camera_motion.py cotracker_state({SEED}, {FLOW_GAIN}, **config)",
        "tiny_config": {k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()}, "tiny": tiny,
        "full_size": full["clips"][FULL_CLIP], "full_size_state": full_size_state(repo)}) + "\n")
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
