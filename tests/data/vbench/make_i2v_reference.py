"""Record what VBench-I2V's own ``vbench2_beta_i2v/i2v_subject.py`` computes on the clips and input images in
``i2v/`` (written here once), for tests/test_vbench_i2v.py to compare with where no VBench checkout is at hand
(the I2V code is not in the ``vbench`` package on PyPI, and CI cannot clone the repository).

    python tests/data/vbench/make_i2v_reference.py /path/to/Vchitect/VBench

Needs PyAV (the clips are mp4, as a run writes them), decord and OpenCV (VBench-I2V reads with them). The DINO
network is tests/test_vbench_dimensions.py's transcription of facebookresearch/dino's VisionTransformer with
``dino_state(10)``, returned by a replaced ``torch.hub.load`` (which would download); nothing else is replaced.
Writes i2v/reference.json; the clips and images are written only when they are not there yet.
"""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "i2v"
CLIPS = ("static", "moving", "wide", "short")


def write_inputs() -> None:
    """The clips of tests/test_vbench_dimensions.py (mp4) and an input image for each: the first frame (static,
    moving), another image (wide: its frames mirrored), the first frame with noise (short)."""
    from PIL import Image
    from test_vbench_dimensions import _clips

    from benchkit.models.video import write_video

    clips = _clips()
    rng = np.random.default_rng(1)
    (DATA / "images").mkdir(parents=True, exist_ok=True)
    for name in CLIPS:
        frames = clips[name]
        if not (DATA / "videos" / f"{name}_0.mp4").exists():
            rec = write_video(DATA, f"{name}_0", frames, 8)
            assert rec["video_format"] == "mp4", "PyAV is needed: the clips are mp4"
        first = frames[0]
        image = {"wide": first[:, ::-1], "short": np.clip(first.astype(int) + rng.integers(-30, 30, first.shape), 0, 255)}
        path = DATA / "images" / f"{name}.png"
        if not path.exists():
            Image.fromarray(image.get(name, first).astype(np.uint8)).save(path)


def run_vbench_i2v_subject(repo: Path) -> dict[str, float]:
    """VBench-I2V's compute_i2v_subject on the clips, each paired with its image by ``custom_image_path``."""
    import torch
    from test_vbench_dimensions import DinoReference
    from metric_models import dino_state

    sys.path.insert(0, str(repo))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        i2v_subject = importlib.import_module("vbench2_beta_i2v.i2v_subject")
    finally:  # its utils call logging.basicConfig at import
        root.handlers[:] = handlers
        root.setLevel(level)
    dino = DinoReference()
    dino.load_state_dict(dino_state(10), strict=True)
    info = [{"prompt_en": f"a {name} clip", "dimension": ["i2v_subject"], "custom_image_path": str(DATA / "images" / f"{name}.png"),
             "video_list": [str(DATA / "videos" / f"{name}_0.mp4")]} for name in CLIPS]
    saved = torch.hub.load
    torch.hub.load = lambda **kwargs: dino
    try:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "info.json").write_text(json.dumps(info))
            torch.set_num_threads(1)
            value, per_clip = i2v_subject.compute_i2v_subject(str(Path(tmp) / "info.json"), torch.device("cpu"), {
                "repo_or_dir": "facebookresearch/dino:main", "source": "github", "model": "dino_vitb16", "resolution": "1-1"})
    finally:
        torch.hub.load = saved
    clips = {Path(r["video_path"]).name: float(r["video_results"]) for r in per_clip}
    return {"value": float(value), "clips": clips}


def main(repo: Path) -> Path:
    sys.path.insert(0, str(HERE.parents[1]))  # tests/: the same clips and network as the test
    sys.path.insert(0, str(HERE.parents[2]))
    write_inputs()
    result = run_vbench_i2v_subject(repo)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = DATA / "reference.json"
    out.write_text(json.dumps({"vbench_commit": commit, "code": "vbench2_beta_i2v/i2v_subject.py compute_i2v_subject",
                               "dino": "tests/test_vbench_dimensions.py DinoReference with metric_models.dino_state(10)",
                               "i2v_subject": result}, indent=1) + "\n")
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
