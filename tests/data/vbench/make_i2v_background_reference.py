"""Record what VBench-I2V's own ``vbench2_beta_i2v/i2v_background.py`` computes on the clips and input images in
``i2v/`` (the ones make_i2v_reference.py wrote), for tests/test_vbench_i2v_background.py to compare with where no
VBench checkout is at hand (the I2V code is not in the ``vbench`` package on PyPI, and CI cannot clone the repository).

    pip install --no-deps dreamsim==0.2.1
    python tests/data/vbench/make_i2v_background_reference.py /path/to/Vchitect/VBench

Needs decord and OpenCV (VBench-I2V reads with them), peft and open_clip_torch (dreamsim imports them). The DreamSim
weights are the test's random ones (test_vbench_i2v_background.save_tiny_dreamsim, in the checkpoint zip's files),
and the dreamsim package runs offline on the CPU as the test runs it (``dreamsim_package``: ``torch.hub.load`` for
DINO, ``vit_base``'s width, the device); VBench-I2V's ``dreamsim(pretrained=True)`` is given the checkpoint folder
and the CPU, and nothing else is replaced. Writes i2v/background_reference.json.
"""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "i2v"
CLIPS = ("static", "moving", "wide", "short")


def run_vbench_i2v_background(repo: Path, dino_file: Path, folder: Path) -> dict:
    """VBench-I2V's compute_i2v_background on the clips, each paired with its image by ``custom_image_path``."""
    import torch
    from test_vbench_i2v_background import dreamsim_package

    sys.path.insert(0, str(repo))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        i2v_background = importlib.import_module("vbench2_beta_i2v.i2v_background")
    finally:  # its utils call logging.basicConfig at import
        root.handlers[:] = handlers
        root.setLevel(level)
    info = [{"prompt_en": f"a {name} clip", "dimension": ["i2v_background"],
             "custom_image_path": str(DATA / "images" / f"{name}.png"),
             "video_list": [str(DATA / "videos" / f"{name}_0.mp4")]} for name in CLIPS]
    saved = i2v_background.dreamsim
    with dreamsim_package(dino_file) as make, tempfile.TemporaryDirectory() as tmp:
        i2v_background.dreamsim = partial(make, cache_dir=str(folder))  # its default: ./models on CUDA
        try:
            (Path(tmp) / "info.json").write_text(json.dumps(info))
            torch.set_num_threads(1)
            value, per_clip = i2v_background.compute_i2v_background(str(Path(tmp) / "info.json"), torch.device("cpu"),
                                                                    {"resolution": "1-1"})
        finally:
            i2v_background.dreamsim = saved
    clips = {Path(r["video_path"]).name: float(r["video_results"]) for r in per_clip}
    return {"value": float(value), "clips": clips}


def main(repo: Path) -> Path:
    sys.path.insert(0, str(HERE.parents[1]))  # tests/: the same weights as the test
    sys.path.insert(0, str(HERE.parents[2]))
    from test_vbench_i2v_background import SEED, save_tiny_dreamsim

    missing = [n for n in CLIPS if not (DATA / "videos" / f"{n}_0.mp4").is_file() or not (DATA / "images" / f"{n}.png").is_file()]
    if missing:
        raise SystemExit(f"{DATA} lacks the clips or images of {missing}: run make_i2v_reference.py first")
    with tempfile.TemporaryDirectory() as tmp:
        dino_file, folder = save_tiny_dreamsim(Path(tmp), SEED)
        result = run_vbench_i2v_background(repo, dino_file, folder)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    out = DATA / "background_reference.json"
    out.write_text(json.dumps({"vbench_commit": commit, "code": "vbench2_beta_i2v/i2v_background.py compute_i2v_background",
                               "dreamsim": f"dreamsim 0.2.1 dreamsim(pretrained=True) on tests/test_vbench_i2v_background.py "
                                           f"save_tiny_dreamsim(seed={SEED})",
                               "i2v_background": result}, indent=1) + "\n")
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
