"""Record what VBench's own ``static_filter.py`` (a script of the Vchitect/VBench repository, not in the ``vbench``
package on PyPI) decides on the clips in ``static/``, and VBench's temporal flickering over what it keeps, for
tests/test_vbench_static_filter.py to compare with where no VBench checkout is at hand (CI cannot clone it).

    python tests/data/vbench/make_static_reference.py /path/to/Vchitect/VBench

Needs the vbench package (0.1.5), OpenCV and PyAV. RAFT holds ``raft_state(SEED, HEAD)`` (tests/metric_models.py:
random tensors from a seeded generator under princeton-vl's names) in a raft-things.pth written here; nothing of the
script is replaced. It runs ``static_filter(args)`` as its command line would (``--filter_scope temporal_flickering``,
the default) over a folder of VBench-named copies of the three clips (LAYOUT: two of VBench's temporal-flickering
prompts, one with 12 clips so that the file order puts -10 and -11 before -2), records each clip's pair scores and
thresholds (a spy on ``check_static``), the files it keeps, and ``compute_temporal_flickering`` over the copies it
made of them. Writes static/reference.json; the clips are written only when they are not there yet.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "static"
SEED, HEAD = 3, 0.11  # RAFT's random weights, the flow head scaled so that pair scores straddle 3 * 128 / 256 px
# VBench temporal-flickering prompts and the clip each of their samples is (index i: file {prompt}-{i}.mp4)
LAYOUT = {
    "In a still frame, a stop sign": ["still", "still", "busy", "still", "short", "still", "busy", "still", "busy",
                                      "short", "still", "still"],
    "a toilet, frozen in time": ["busy", "short", "still"],
}


def clips() -> dict[str, np.ndarray]:
    """128x128 frames (RAFT's flow is finite from 128 px). With these weights a pair's score depends on what the two
    (H.264-coded) frames are, around the 1.5 px threshold: over it from grey to grey, white to white or white to grey,
    under it between texture and black.

    still: texture, black, texture, black, grey, grey: one consecutive pair over, where round(2 * 6 / 16) = 1 may be
    (a ``>=`` for ``>`` would call it moving), and the wrap pairs over the threshold but under twice it times the
    count: static. busy: white x3, grey x2: four pairs over: moving. short: black, texture, black, texture: no pair
    over, but round(2 * 4 / 16) = 0, so any flow in a wrap pair makes it moving (without them it would be static)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (17, 17, 3)).astype(np.float64)
    texture = np.clip(np.kron(small, np.ones((8, 8, 1)))[:128, :128] + rng.normal(0, 6, (128, 128, 3)), 0, 255)
    texture = texture.astype(np.uint8)
    grey, black, white = (np.full((128, 128, 3), v, np.uint8) for v in (128, 0, 255))
    return {"still": np.stack([texture, black, texture, black, grey, grey]), "busy": np.stack([white] * 3 + [grey] * 2),
            "short": np.stack([black, texture, black, texture])}


def write_clips() -> None:
    from benchkit.models.video import write_video

    DATA.mkdir(exist_ok=True)
    for name, frames in clips().items():
        if not (DATA / "videos" / f"{name}_0.mp4").exists():
            rec = write_video(DATA, f"{name}_0", frames, 8)
            assert rec["video_format"] == "mp4", "PyAV is needed: the clips are mp4"


def run_static_filter(repo: Path) -> dict:
    import torch
    from metric_models import raft_state

    sys.path.insert(0, str(repo))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        sf = importlib.import_module("static_filter")
        from vbench import temporal_flickering
    finally:  # both call logging.basicConfig at import
        root.handlers[:] = handlers
        root.setLevel(level)
    sf.DEVICE = "cpu"  # the script's module constant ('cuda')
    seen: dict[str, dict] = {}
    current: dict[str, str] = {}
    infer, check_static = sf.StaticFilter.infer, sf.StaticFilter.check_static

    def spy_infer(self, path):
        current["path"] = path
        return infer(self, path)

    def spy_check_static(self, score_list):
        static = check_static(self, score_list)
        seen[Path(current["path"]).name] = {"scores": [float(s) for s in score_list], "thres": self.params["thres"],
                                            "count_num": self.params["count_num"], "static": bool(static)}
        return static

    sf.StaticFilter.infer, sf.StaticFilter.check_static = spy_infer, spy_check_static
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = tmp / "raft-things.pth"
        torch.save({f"module.{k}": v for k, v in raft_state(SEED, HEAD).items()}, weights)
        videos = tmp / "videos"
        videos.mkdir()
        for prompt, names in LAYOUT.items():
            for i, name in enumerate(names):
                shutil.copyfile(DATA / "videos" / f"{name}_0.mp4", videos / f"{prompt}-{i}.mp4")
        args = argparse.Namespace(model=str(weights), videos_path=str(videos), result_path=str(tmp / "results"),
                                     store_name="filtered_static_video.json", small=False, mixed_precision=False,
                                     alternate_corr=False, filter_scope="temporal_flickering")
        sf.static_filter(args)
        kept = json.loads((tmp / "results" / "filtered_static_video.json").read_text())
        kept = {p: {"static_count": v["static_count"], "static_path": [Path(x).name for x in v["static_path"]]}
                for p, v in kept.items() if p in LAYOUT}
        filtered = sorted((tmp / "results" / "filtered_videos").glob("*.mp4"))
        info = [{"prompt_en": prompt, "dimension": ["temporal_flickering"],
                 "video_list": [str(p) for p in filtered if p.name.rsplit("-", 1)[0] == prompt]} for prompt in LAYOUT]
        (tmp / "info.json").write_text(json.dumps(info))
        value, per_clip = temporal_flickering.compute_temporal_flickering(str(tmp / "info.json"), torch.device("cpu"), [])
    return {"per_file": seen, "kept": kept, "temporal_flickering": float(value),
            "temporal_flickering_clips": len(per_clip)}


def main() -> None:
    repo = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(HERE.parent.parent))  # tests/: metric_models
    write_clips()
    result = run_static_filter(repo)
    by_clip = {}
    for prompt, names in LAYOUT.items():
        for i, name in enumerate(names):
            entry = result["per_file"].get(f"{prompt}-{i}.mp4")
            if entry is not None:
                assert by_clip.setdefault(name, entry) == entry, f"{name}: copies of one clip decided differently"
    commit = "unknown"
    try:
        import subprocess

        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    out = {"vbench_commit": commit, "raft": {"seed": SEED, "head": HEAD}, "layout": LAYOUT, "clips": by_clip,
           "files_inferred": sorted(result["per_file"]), "kept": result["kept"],
           "temporal_flickering": result["temporal_flickering"], "temporal_flickering_clips": result["temporal_flickering_clips"]}
    (DATA / "reference.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("kept", "temporal_flickering")}, indent=1))


if __name__ == "__main__":
    main()
