"""VBench-I2V: its image-prompt suite as a prompt set (`-p vbench-i2v --image-dir`), and its i2v subject dimension
equal to VBench-I2V's own ``i2v_subject.py`` on the same clips and input images with the same random DINO weights.

VBench-I2V's code is not in the ``vbench`` package on PyPI: its numbers on the clips and images in
tests/data/vbench/i2v/ were recorded by tests/data/vbench/make_i2v_reference.py from a VBench checkout; with
VBENCH_REPO set to one, the test runs that code itself as well.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from metric_models import save_tiny_dino

from benchkit.core.errors import BenchkitError
from metrics import build_metrics
from metrics import vbench_i2v as I2V
from metrics.base import MetricContext
from prompts import load_prompt_set
from run_files import score_in_two_chunks

DATA = Path(__file__).parent / "data" / "vbench" / "i2v"
REFERENCE = json.loads((DATA / "reference.json").read_text())
CLIPS = ("static", "moving", "wide", "short")
TOL = 2e-6  # float32 DINO on both sides, batched here and one frame at a time there


def _records():
    return [{"prompt_id": name, "prompt": f"a {name} clip", "seed": 0, "meta": {"dimension": ["i2v_subject"]},
             "video": f"videos/{name}_0.mp4", "video_format": "mp4", "frames": "8", "fps": "8",
             "input_image": str(DATA / "images" / f"{name}.png")} for name in CLIPS]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    pytest.importorskip("av")  # the clips are mp4
    return str(save_tiny_dino(tmp_path_factory.mktemp("i2v") / "dino", seed=10))


def _score(weights, tmp_path, monkeypatch, records=None):
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({"dino-vitb16": weights}))
    ctx = MetricContext(cache_dir=tmp_path / "cache")
    ctx.run_dir = DATA
    metric = build_metrics(["vbench-i2v-subject"], ctx)[0]
    records = _records() if records is None else records
    score_in_two_chunks(metric, records, 1)  # merged as the scorer merges chunks
    return metric


def _compare(metric, want):
    got = {f"{k.split(chr(31))[0]}_0.mp4": v[0] for k, v in metric.videos.items()}
    assert set(got) == set(want["clips"])
    worst = max(abs(got[k] - want["clips"][k]) for k in got)
    value = metric.compute()[0]
    print(f"i2v subject: benchkit {value.value:.8f} vbench {want['value']:.8f}, per clip max |diff| {worst:.2e}")
    return value, worst


def test_i2v_subject_equals_vbench_i2v(weights, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    want = REFERENCE["i2v_subject"]
    metric = _score(weights, tmp_path, monkeypatch)
    value, worst = _compare(metric, want)
    assert worst < TOL and abs(value.value - want["value"]) < TOL and value.n == 4
    assert value.variant["protocol"].startswith("VBench-I2V") and value.variant["dimension"] == "i2v_subject"
    clips = {k.split("\x1f")[0]: v[0] for k, v in metric.videos.items()}
    assert clips["static"] > clips["moving"] and clips["static"] > clips["wide"]  # a still clip of its own image scores highest
    if os.environ.get("VBENCH_REPO"):  # VBench-I2V's code itself on the same files
        sys.path.insert(0, str(DATA.parent))
        from make_i2v_reference import run_vbench_i2v_subject

        live = run_vbench_i2v_subject(Path(os.environ["VBENCH_REPO"]))
        value, worst = _compare(metric, live)
        assert worst < TOL and abs(value.value - live["value"]) < TOL


def test_the_parity_test_sees_the_resize_and_the_weights(weights, tmp_path, monkeypatch):
    """What the tolerance catches: the frames resized without antialiasing (as VBench's other dimensions do), and
    the per-clip weights of max, mean and min swapped."""
    torch.set_num_threads(1)
    want = REFERENCE["i2v_subject"]

    def unantialiased(video):
        from torchvision.transforms import functional as TF

        x = TF.center_crop(TF.resize(video, 256, interpolation=TF.InterpolationMode.BICUBIC, antialias=False), 224)
        return TF.normalize(x.float().div(255.0), I2V.IMAGENET_MEAN, I2V.IMAGENET_STD)

    for attr, wrong in (("internet_frames_transform", unantialiased), ("MAX_WEIGHT", 0.3)):
        with monkeypatch.context() as m:
            m.setattr(I2V, attr, wrong)
            if attr == "MAX_WEIGHT":
                m.setattr(I2V, "MIN_WEIGHT", 0.4)
            _, worst = _compare(_score(weights, tmp_path, m), want)
        assert worst > 20 * TOL, attr


def test_a_clip_without_an_input_image_is_one_line(weights, tmp_path, monkeypatch):
    records = _records()[:1]
    del records[0]["input_image"]
    with pytest.raises(BenchkitError) as err:
        _score(weights, tmp_path, monkeypatch, records)
    assert "image-to-video run" in str(err.value) and "\n" not in str(err.value)


def test_the_vbench_i2v_suite_reads_its_images_from_image_dir(tmp_path):
    suite = load_prompt_set("vbench-i2v")
    assert len(suite) == 1118 and suite.default_seeds == "0-4" and set(suite.group_fields) == {"dimension", "image_type"}
    first = suite.records[0]
    assert first.meta["image"] == first.meta["image_name"] == "a close up of a blue and orange liquid.jpg"
    subject = suite.filter("dimension", "i2v_subject")
    assert len(subject) == 246  # vbench2_i2v_full_info.json's i2v_subject prompts
    names = sorted({r.meta["image_name"] for r in subject.records})
    with pytest.raises(BenchkitError) as err:  # an empty folder: one line, before any model is loaded
        subject.with_image_dir(tmp_path)
    assert "246 of the set's 246" in str(err.value) and "\n" not in str(err.value)
    for name in names:
        (tmp_path / name).write_bytes(b"jpeg")
    placed = subject.with_image_dir(tmp_path)
    assert all(Path(r.meta["image"]) == tmp_path.resolve() / r.meta["image_name"] for r in placed.records)
    assert placed.subset.endswith(f"images under {tmp_path.resolve()}")  # another folder, another run
    with pytest.raises(BenchkitError, match="not a folder"):
        subject.with_image_dir(tmp_path / "nope")
    with pytest.raises(BenchkitError, match="names no input images"):
        load_prompt_set("vbench").with_image_dir(tmp_path)
    # np.unique: the 246 prompts use fewer images, each with several prompts (camera motions are another dimension)
    assert len(names) == len(np.unique(names)) <= 246
