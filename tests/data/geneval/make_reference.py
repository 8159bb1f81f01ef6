"""Record GenEval's own decisions on hand-made detections: the reference tests/test_geneval.py checks
benchkit's rule engine (metrics/geneval_rules.py) against.

GenEval's evaluation/evaluate_images.py imports mmdet, open_clip, clip_benchmark and torch at the top
and asserts a CUDA device, but its rules (thresholds, ordering, overlap filter, evaluate,
relative_position, compute_iou) are plain numpy. This script imports that file from a GenEval
checkout with those four libraries replaced by stubs, replaces the detector call
(``inference_detector``) with one returning each case's hand-made per-class arrays in mmdet's
format (80 float32 ``(N, 5)`` arrays ``[x1, y1, x2, y2, score]``, and with masks a second list of
80 lists of HxW bool masks), replaces ``color_classification`` with a lookup of each case's
assigned colours (recording every call), sets the module's option globals as its ``__main__`` block
would, and runs its own ``evaluate_image`` on a blank PNG of the case's size. The summary part
writes decisions to a results.jsonl the way evaluate_images.py does (pandas, l.280) and runs
evaluation/summary_scores.py on it, recording what it prints.

Run with GenEval's pinned libraries where possible (environment.yml: numpy 1.23.1, pandas 1.5.3,
Pillow 9.4.0); the recorded file was made with numpy 1.23.5 (the nearest with Python 3.11 wheels):

    python -m venv /tmp/ge && /tmp/ge/bin/pip install numpy==1.23.5 pandas==1.5.3 Pillow==9.4.0
    mkdir -p /tmp/geneval && git -C <geneval clone> archive af4902f evaluation prompts | tar -x -C /tmp/geneval
    /tmp/ge/bin/python tests/data/geneval/make_reference.py /tmp/geneval --commit af4902f24d3ca90ebbb446dd9891a59e0f82725f

It writes tests/data/geneval/reference_decisions.json (inputs, GenEval's outputs, the commit, the
sha256 of the GenEval files used and the library versions). It imports nothing from benchkit.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

HERE = Path(__file__).resolve().parent
F32 = np.float32


def f32(x: float) -> float:
    """The float32 value nearest x, as a Python float (what mmdet's float32 arrays hold)."""
    return float(F32(x))


def above(x: float) -> float:
    return float(np.nextafter(F32(x), F32(2)))


def below(x: float) -> float:
    return float(np.nextafter(F32(x), F32(-1)))


# --- importing GenEval's evaluate_images.py without its detector libraries ---


def _stub_modules() -> dict[str, types.ModuleType]:
    def module(name: str, **attrs) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    def unavailable(*args, **kwargs):
        raise RuntimeError("stubbed out: the reference never runs the detector or CLIP")

    class _NoGrad:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    zsc = module("clip_benchmark.metrics.zeroshot_classification", zero_shot_classifier=unavailable,
                 run_classification=unavailable)
    data = module("torch.utils.data", Dataset=object, DataLoader=unavailable)
    torch = module("torch", cuda=module("torch.cuda", is_available=lambda: True),  # EI l.45-46 asserts CUDA
                   utils=module("torch.utils", data=data), no_grad=_NoGrad)
    return {
        "mmdet": module("mmdet", __file__="/nonexistent/mmdet/__init__.py"),
        "mmdet.apis": module("mmdet.apis", inference_detector=unavailable, init_detector=unavailable),
        "mmcv": module("mmcv"),
        "open_clip": module("open_clip", create_model_and_transforms=unavailable, get_tokenizer=unavailable),
        "clip_benchmark": module("clip_benchmark"),
        "clip_benchmark.metrics": module("clip_benchmark.metrics", zeroshot_classification=zsc),
        "clip_benchmark.metrics.zeroshot_classification": zsc,
        "torch": torch, "torch.cuda": torch.cuda, "torch.utils": torch.utils, "torch.utils.data": data,
    }


def load_evaluate_images(checkout: Path) -> types.ModuleType:
    stubs = _stub_modules()
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location("geneval_evaluate_images", checkout / "evaluation" / "evaluate_images.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    with open(checkout / "evaluation" / "object_names.txt") as fh:  # as EI's load_models reads them (l.70-71)
        mod.classnames = [line.strip() for line in fh]
    mod.object_detector = None
    return mod


# --- the hand-made cases ---

DEFAULT_OPTIONS = {"threshold": 0.3, "counting_threshold": 0.9, "max_objects": 16, "max_overlap": 1.0,
                   "position_threshold": 0.1}
SIZE = [512, 512]  # image height, width


def det(cls: str, score: float, box, color: str | None = None, mask=None) -> dict:
    """A detection; ``mask`` is a rectangle [x1, y1, x2, y2] (pixels x1 <= x < x2 set) or None."""
    return {"class": cls, "score": float(score), "box": [float(v) for v in box], "color": color, "mask": mask}


def square(cx: float, cy: float, side: float = 100.0) -> list[float]:
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def real_metadata(checkout: Path) -> dict[str, dict]:
    """Metadata lines of prompts/evaluation_metadata.jsonl, by prompt."""
    lines = (checkout / "prompts" / "evaluation_metadata.jsonl").read_text().splitlines()
    return {m["prompt"]: m for m in map(json.loads, lines)}


def build_cases(meta: dict[str, dict]) -> list[dict]:
    cases: list[dict] = []

    def case(name: str, metadata: dict, detections: list[dict], options: dict | None = None, size=None):
        cases.append({"name": name, "metadata": metadata, "options": {**DEFAULT_OPTIONS, **(options or {})},
                      "image_size": size or SIZE, "detections": detections})

    bench = meta["a photo of a bench"]
    case("single: present", bench, [det("bench", 0.95, [10, 20, 200, 220])])
    case("single: nothing detected", bench, [])
    case("single: only another class", bench, [det("dog", 0.99, [10, 20, 200, 220])])
    case("single: score is float32(0.3), not above the threshold", bench, [det("bench", f32(0.3), [10, 20, 200, 220])])
    case("single: score 0.3 given as float64", bench, [det("bench", 0.3, [10, 20, 200, 220])])
    case("single: next float32 above 0.3", bench, [det("bench", above(0.3), [10, 20, 200, 220])])
    case("single: next float32 below 0.3", bench, [det("bench", below(0.3), [10, 20, 200, 220])])
    case("single: 0.31", bench, [det("bench", 0.31, [10, 20, 200, 220])])
    case("single: threshold option 0.5, score 0.45", bench, [det("bench", 0.45, [10, 20, 200, 220])], {"threshold": 0.5})
    case("single: threshold option 0.5, score 0.55", bench, [det("bench", 0.55, [10, 20, 200, 220])], {"threshold": 0.5})
    case("single: below the threshold with an unrelated high score", bench,
         [det("bench", 0.2, [10, 20, 200, 220]), det("cat", 0.97, [300, 300, 400, 400])])
    case("single: with a mask", bench, [det("bench", 0.8, [10, 20, 200, 220], mask=[10, 20, 200, 220])])
    bench_no_cat = {"tag": "single_object", "include": [{"class": "bench", "count": 1}],
                    "exclude": [{"class": "cat", "count": 1}], "prompt": "a photo of a bench (hand-made: no cat)"}
    case("exclude: excluded class above the threshold", bench_no_cat,
         [det("bench", 0.9, [10, 20, 200, 220]), det("cat", 0.5, [300, 300, 400, 400])])
    case("exclude: excluded class below the threshold", bench_no_cat,
         [det("bench", 0.9, [10, 20, 200, 220]), det("cat", 0.2, [300, 300, 400, 400])])
    bench_few_cats = {"tag": "two_object", "include": [{"class": "bench", "count": 1}, {"class": "cat", "count": 1}],
                      "exclude": [{"class": "cat", "count": 3}], "prompt": "a bench and fewer than three cats (hand-made)"}
    case("exclude: two of at most two", bench_few_cats,
         [det("bench", 0.9, [10, 20, 200, 220]), det("cat", 0.5, [300, 300, 400, 400]), det("cat", 0.6, [0, 300, 100, 400])])
    case("exclude: three, one of them low-scored", bench_few_cats,
         [det("bench", 0.9, [10, 20, 200, 220]), det("cat", 0.5, [300, 300, 400, 400]), det("cat", 0.6, [0, 300, 100, 400]),
          det("cat", 0.29, [200, 300, 300, 400])])
    case("exclude: three cats", bench_few_cats,
         [det("bench", 0.9, [10, 20, 200, 220]), det("cat", 0.5, [300, 300, 400, 400]), det("cat", 0.6, [0, 300, 100, 400]),
          det("cat", 0.31, [200, 300, 300, 400])])

    two = meta["a photo of a bench and a sports ball"]
    case("two: both", two, [det("sports ball", 0.7, [300, 300, 340, 340]), det("bench", 0.5, [10, 20, 200, 220])])
    case("two: second missing", two, [det("bench", 0.9, [10, 20, 200, 220])])
    case("two: first missing", two, [det("sports ball", 0.9, [300, 300, 340, 340])])
    case("two: second below the threshold", two, [det("bench", 0.9, [10, 20, 200, 220]), det("sports ball", 0.25, [300, 300, 340, 340])])
    case("two: both and extra classes", two,
         [det("bench", 0.9, [10, 20, 200, 220]), det("sports ball", 0.9, [300, 300, 340, 340]), det("person", 0.99, [0, 0, 500, 500]),
          det("dog", 0.4, [100, 100, 150, 150])])

    clocks = meta["a photo of two clocks"]
    case("count: exactly two", clocks, [det("clock", 0.95, [0, 0, 100, 100]), det("clock", 0.96, [200, 0, 300, 100])])
    case("count: one, the other below the counting threshold", clocks,
         [det("clock", 0.95, [0, 0, 100, 100]), det("clock", 0.85, [200, 0, 300, 100])])
    case("count: three", clocks,
         [det("clock", 0.95, [0, 0, 100, 100]), det("clock", 0.96, [200, 0, 300, 100]), det("clock", 0.97, [400, 0, 500, 100])])
    case("count: third at float32(0.9)", clocks,
         [det("clock", 0.95, [0, 0, 100, 100]), det("clock", 0.96, [200, 0, 300, 100]), det("clock", f32(0.9), [400, 0, 500, 100])])
    case("count: third just above 0.9", clocks,
         [det("clock", 0.95, [0, 0, 100, 100]), det("clock", 0.96, [200, 0, 300, 100]), det("clock", above(0.9), [400, 0, 500, 100])])
    case("count: second just above 0.9", clocks,
         [det("clock", 0.95, [0, 0, 100, 100]), det("clock", above(0.9), [200, 0, 300, 100])])
    case("count: 0.5 counts only outside counting prompts (here it does not)", clocks,
         [det("clock", 0.95, [0, 0, 100, 100]), det("clock", 0.5, [200, 0, 300, 100])])
    case("count: counting threshold option 0.4", clocks,
         [det("clock", 0.95, [0, 0, 100, 100]), det("clock", 0.5, [200, 0, 300, 100])], {"counting_threshold": 0.4})
    overlapping = [det("clock", 0.95, [0, 0, 99, 99]), det("clock", 0.94, [0, 0, 99, 49]), det("clock", 0.96, [300, 0, 400, 100])]
    case("count: a duplicate box counts at the default max_overlap 1.0", clocks, overlapping)
    case("count: max_overlap 0.5 drops the duplicate (IoU exactly 0.5)", clocks, overlapping, {"max_overlap": 0.5})
    case("count: max_overlap 0.6 keeps it (IoU 0.5)", clocks, overlapping, {"max_overlap": 0.6})
    case("count: IoU just under max_overlap 0.5", clocks,
         [det("clock", 0.95, [0, 0, 99, 99]), det("clock", 0.94, [0, 0, 99, 48]), det("clock", 0.96, [300, 0, 400, 100])],
         {"max_overlap": 0.5})
    case("count: fractional boxes, IoU near max_overlap 0.3", clocks,
         [det("clock", 0.97, [10.25, 10.5, 110.75, 90.125]), det("clock", 0.93, [60.5, 20.25, 160.125, 95.5]),
          det("clock", 0.92, [300.3, 0.7, 399.1, 100.9])], {"max_overlap": 0.3})
    # The IoU here is 0.90044145621... in numpy 1.x (float64 after EI's "+ 1") but exactly this threshold in
    # float32 (numpy 2 keeps float32 scalars): GenEval's pinned numpy keeps the second clock, numpy 2 would drop it.
    case("count: IoU a float64 hair under max_overlap", clocks,
         [det("clock", 0.95, [33.0, 53.875, 85.375, 88.875]),
          det("clock", 0.94, [30.344728469848633, 53.974998474121094, 82.7197265625, 88.9749984741211])],
         {"max_overlap": 0.9004414677619934})
    case("count: overlap filter keeps non-overlapping ones", clocks,
         [det("clock", 0.95, [0, 0, 100, 100]), det("clock", 0.96, [200, 0, 300, 100]), det("clock", 0.97, [400, 0, 500, 100])],
         {"max_overlap": 0.5})
    case("count: max_objects 2 hides the third", clocks,
         [det("clock", 0.95, [0, 0, 100, 100]), det("clock", 0.96, [200, 0, 300, 100]), det("clock", 0.97, [400, 0, 500, 100])],
         {"max_objects": 2})
    four = meta["a photo of four handbags"]
    bags = [det("handbag", 0.91 + 0.01 * i, [100 * i, 200, 100 * i + 90, 290]) for i in range(5)]
    case("count: four of four", four, bags[:4])
    case("count: three of four", four, bags[:3])
    case("count: five of four", four, bags)
    case("count: five, one below 0.9", four, bags[:4] + [det("handbag", 0.89, [0, 400, 90, 490])])
    many = {"tag": "counting", "include": [{"class": "person", "count": 16}], "exclude": [{"class": "person", "count": 17}],
            "prompt": "sixteen people (hand-made: max_objects)"}
    people = [det("person", 0.91 + 0.004 * i, [30 * i, 0, 30 * i + 25, 50]) for i in range(17)]
    case("count: 17 found, 16 kept by max_objects", many, people)
    case("count: 15 found", many, people[:15])
    case("count: 17 with max_objects 20", many, people, {"max_objects": 20})

    pink_car = meta["a photo of a pink car"]
    case("colour: hit", pink_car, [det("car", 0.9, [50, 50, 300, 200], "pink")])
    case("colour: miss", pink_car, [det("car", 0.9, [50, 50, 300, 200], "red")])
    case("colour: no car, no colour call", pink_car, [det("truck", 0.9, [50, 50, 300, 200], "pink")])
    case("colour: only the best car is checked (best is pink)", pink_car,
         [det("car", 0.6, [300, 300, 500, 400], "blue"), det("car", 0.9, [50, 50, 300, 200], "pink")])
    case("colour: only the best car is checked (best is blue)", pink_car,
         [det("car", 0.9, [300, 300, 500, 400], "blue"), det("car", 0.6, [50, 50, 300, 200], "pink")])
    case("colour: tied scores, the later detection is checked", pink_car,
         [det("car", 0.8, [300, 300, 500, 400], "pink"), det("car", 0.8, [50, 50, 300, 200], "blue")])
    case("colour: tied scores the other way round", pink_car,
         [det("car", 0.8, [300, 300, 500, 400], "blue"), det("car", 0.8, [50, 50, 300, 200], "pink")])
    case("colour: with masks", pink_car,
         [det("car", 0.9, [50, 50, 300, 200], "pink", mask=[60, 60, 290, 190]), det("person", 0.9, [0, 0, 30, 30], mask=[0, 0, 30, 30])])
    case("colour: pink car below the threshold", pink_car, [det("car", 0.29, [50, 50, 300, 200], "pink")])
    case("colour: fractional box (PIL rounds half to even)", pink_car, [det("car", 0.9, [50.5, 49.5, 300.49, 200.51], "pink")])
    case("colour: fractional box with a mask", pink_car,
         [det("car", 0.9, [10.7, 20.2, 99.5, 140.5], "red", mask=[15, 25, 90, 120])])
    case("colour: box beyond the image", pink_car, [det("car", 0.9, [-5.0, 400.0, 530.0, 520.0], "pink", mask=[0, 410, 512, 512])])
    two_red = {"tag": "colors", "include": [{"class": "apple", "count": 2, "color": "red"}],
               "prompt": "two red apples (hand-made: colour with count 2)"}
    case("colour: two of two red", two_red, [det("apple", 0.9, [0, 0, 50, 50], "red"), det("apple", 0.8, [100, 0, 150, 50], "red")])
    case("colour: one of two red", two_red, [det("apple", 0.9, [0, 0, 50, 50], "red"), det("apple", 0.8, [100, 0, 150, 50], "green")])
    case("colour: third (unchecked) apple is green", two_red,
         [det("apple", 0.9, [0, 0, 50, 50], "red"), det("apple", 0.8, [100, 0, 150, 50], "red"),
          det("apple", 0.7, [200, 0, 250, 50], "green")])

    attr = meta["a photo of a purple wine glass and a black apple"]
    case("attr: both colours", attr,
         [det("wine glass", 0.8, [10, 10, 100, 200], "purple"), det("apple", 0.7, [200, 200, 260, 260], "black")])
    case("attr: first colour wrong", attr,
         [det("wine glass", 0.8, [10, 10, 100, 200], "red"), det("apple", 0.7, [200, 200, 260, 260], "black")])
    case("attr: second colour wrong", attr,
         [det("wine glass", 0.8, [10, 10, 100, 200], "purple"), det("apple", 0.7, [200, 200, 260, 260], "white")])
    case("attr: colours swapped", attr,
         [det("wine glass", 0.8, [10, 10, 100, 200], "black"), det("apple", 0.7, [200, 200, 260, 260], "purple")])
    case("attr: apple missing", attr, [det("wine glass", 0.8, [10, 10, 100, 200], "purple")])
    case("attr: both missing", attr, [det("cup", 0.8, [10, 10, 100, 200], "purple")])

    right = meta["a photo of a dog right of a teddy bear"]
    bear = det("teddy bear", 0.9, square(200, 250))

    def dog(dx: float, dy: float = 0.0, side: float = 100.0, score: float = 0.8) -> dict:
        return det("dog", score, square(200 + dx, 250 + dy, side))

    case("position: right of", right, [bear, dog(150)])
    case("position: left of, not right of", right, [bear, dog(-150)])
    case("position: same place", right, [bear, dog(0)])
    case("position: offset 20 is all margin (0.1 x 200)", right, [bear, dog(20)])
    case("position: offset 20.5 leaves 0.5 of 20.5", right, [bear, dog(20.5)])
    case("position: offset 40, ratio exactly 0.5", right, [bear, dog(40)])
    case("position: offset 41, ratio 21/41", right, [bear, dog(41)])
    case("position: diagonal, right of and below", right, [bear, dog(100, 100)])
    case("position: mostly below", right, [bear, dog(60, 100)])
    case("position: above-right diagonal", right, [bear, dog(100, -100)])
    case("position: small dog far right", right, [bear, dog(160, 0, side=20)])
    case("position: margin shrinks with small boxes", right, [det("teddy bear", 0.9, square(200, 250, 10)), dog(12, 0, side=10)])
    case("position: no teddy bear, no target", right, [dog(150)])
    case("position: no dog", right, [bear])
    case("position: teddy bear below the threshold", right, [det("teddy bear", 0.3, square(200, 250)), dog(150)])
    case("position: only the best teddy bear is the target", right,
         [det("teddy bear", 0.95, square(200, 250)), det("teddy bear", 0.6, square(450, 250)), dog(150)])
    case("position: the best teddy bear is on the right", right,
         [det("teddy bear", 0.6, square(200, 250)), det("teddy bear", 0.95, square(450, 250)), dog(150)])
    case("position: only the best dog is checked", right, [bear, dog(150, score=0.9), dog(-150, score=0.7)])
    case("position: position_threshold 0.3", right, [bear, dog(70)], {"position_threshold": 0.3})
    case("position: position_threshold 0.3, further", right, [bear, dog(130)], {"position_threshold": 0.3})
    case("position: position_threshold 0", right, [bear, dog(5)], {"position_threshold": 0.0})
    case("position: fractional boxes", right,
         [det("teddy bear", 0.9, [100.3, 200.7, 180.2, 300.1]), det("dog", 0.8, [150.9, 150.2, 260.6, 280.4])])
    case("position: revised offset under 1e-3", right, [bear, dog(20.0004)])
    above_ = meta["a photo of a wine glass above a kite"]
    kite = det("kite", 0.9, square(250, 300))
    case("position: above", above_, [kite, det("wine glass", 0.7, square(250, 120))])
    case("position: below, not above", above_, [kite, det("wine glass", 0.7, square(250, 450))])
    case("position: beside, not above", above_, [kite, det("wine glass", 0.7, square(400, 300))])
    below_ = meta["a photo of a couch below a cup"]
    cup = det("cup", 0.9, square(250, 150, 60))
    case("position: below", below_, [cup, det("couch", 0.9, [50, 300, 450, 500])])
    case("position: above, not below", below_, [det("cup", 0.9, square(250, 450, 60)), det("couch", 0.9, [50, 20, 450, 220])])
    left = meta["a photo of a laptop left of a cow"]
    cow = det("cow", 0.9, [250, 100, 400, 400])
    case("position: left of", left, [cow, det("laptop", 0.9, [0, 200, 150, 300])])
    case("position: right of, not left of", left, [cow, det("laptop", 0.9, [420, 200, 511, 300])])
    case("position: overlapping, no relation", left, [cow, det("laptop", 0.9, [240, 200, 400, 300])])
    case("position: laptop over the cow's right edge", left, [cow, det("laptop", 0.9, [380, 200, 511, 300])])
    pair = {"tag": "position", "include": [{"class": "cow", "count": 1}, {"class": "laptop", "count": 2, "position": ["left of", 0]}],
            "prompt": "two laptops left of a cow (hand-made: every pair must hold)"}
    case("position: both laptops left of the cow", pair,
         [cow, det("laptop", 0.9, [0, 200, 100, 300]), det("laptop", 0.8, [0, 350, 100, 450])])
    case("position: one of two laptops on the right", pair,
         [cow, det("laptop", 0.9, [0, 200, 100, 300]), det("laptop", 0.8, [400, 350, 500, 450])])
    colour_pos = {"tag": "position", "include": [{"class": "cow", "count": 1, "color": "brown"},
                                                  {"class": "laptop", "count": 1, "color": "black", "position": ["left of", 0]}],
                  "prompt": "a black laptop left of a brown cow (hand-made: colour and position)"}
    case("colour+position: both hold", colour_pos, [dict(cow, color="brown"), det("laptop", 0.9, [0, 200, 100, 300], "black")])
    case("colour+position: target colour wrong, no target", colour_pos,
         [dict(cow, color="white"), det("laptop", 0.9, [0, 200, 100, 300], "black")])
    case("colour+position: colour wrong, position not checked", colour_pos,
         [dict(cow, color="brown"), det("laptop", 0.9, [400, 200, 500, 300], "white")])
    case("colour+position: colour right, position wrong", colour_pos,
         [dict(cow, color="brown"), det("laptop", 0.9, [400, 200, 500, 300], "black")])
    case("non-square image: position in pixels", right,
         [det("teddy bear", 0.9, [10, 10, 300, 200]), det("dog", 0.9, [600, 50, 760, 200])], size=[256, 768])
    return cases


# --- running GenEval on a case ---


def _mask(rect, size) -> np.ndarray:
    m = np.zeros(size, dtype=bool)
    x1, y1, x2, y2 = rect
    m[y1:y2, x1:x2] = True
    return m


def pattern_image(height: int, width: int) -> np.ndarray:
    """The cases' image: a deterministic colour pattern (so crops differ with every pixel of the box)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 7 + y * 3) % 256, (x * 5 + y * 11) % 256, (x * 13 + y) % 256], axis=-1).astype(np.uint8)


def crop_digest(image: Image.Image) -> dict:
    return {"size": list(image.size), "mode": image.mode, "sha256": hashlib.sha256(image.tobytes()).hexdigest()}


class _Logits:
    """What zsc.run_classification returns, enough for EI l.126-127 (``pred.argmax(1)``, ``index.item()``)."""

    def __init__(self, values: np.ndarray):
        self.values = values

    def argmax(self, dim: int):
        return self.values.argmax(axis=dim)


def run_case(ei: types.ModuleType, c: dict, folder: Path) -> dict:
    """GenEval's evaluate_image on the case, with only the networks replaced.

    The detector returns the case's arrays; the colour step is GenEval's own ``color_classification``
    and ``ImageCrops`` (mask compositing on #999, box crop), with clip_benchmark's two functions
    replaced: ``zero_shot_classifier`` records the colour names and templates it is given, and
    ``run_classification`` reads every crop from GenEval's dataset (``transform`` is the identity,
    so each item is the PIL crop CLIP would see), records its digest, and answers the colour the
    case assigns to that object."""
    n_classes = len(ei.classnames)
    rows: list[list] = [[] for _ in range(n_classes)]
    masks: list[list] = [[] for _ in range(n_classes)]
    colours: dict[tuple, str | None] = {}
    with_masks = any(d["mask"] is not None for d in c["detections"])
    h, w = c["image_size"]
    for d in c["detections"]:
        k = ei.classnames.index(d["class"])
        row = np.array([*d["box"], d["score"]], dtype=np.float32)
        key = (d["class"], row.tobytes())
        assert key not in colours, f"{c['name']}: two identical detections"
        colours[key] = d["color"]
        rows[k].append(row)
        masks[k].append(None if d["mask"] is None else _mask(d["mask"], (h, w)))
    bbox = [np.array(r, dtype=np.float32).reshape(-1, 5) for r in rows]
    result = (bbox, masks) if with_masks else bbox

    calls: list[dict] = []
    running: list[str] = []  # the class GenEval's color_classification is working on

    def zero_shot_classifier(model, tokenizer, classnames, templates, device, amp=True):
        return {"colors": list(classnames), "templates": list(templates)}

    def run_classification(model, clf, dataset, device, amp=True):
        classname = running[-1]
        call = {"class": classname, "colors": clf["colors"], "templates": clf["templates"], "boxes": [], "masks": [],
                "crops": []}
        logits = np.zeros((len(dataset), len(clf["colors"])), dtype=np.float32)
        for i in range(len(dataset)):
            crop, _ = dataset[i]
            row, mask = dataset._objects[i]
            call["boxes"].append(np.asarray(row).tolist())
            call["masks"].append(mask is not None)
            call["crops"].append(crop_digest(crop))
            logits[i, clf["colors"].index(colours[(classname, np.asarray(row, dtype=np.float32).tobytes())])] = 1
        calls.append(call)
        return _Logits(logits), None

    original = ei.color_classification

    def color_classification(image, objects, classname):  # GenEval's own; the stub above needs the class
        running.append(classname)
        return original(image, objects, classname)

    ei.zsc.zero_shot_classifier = zero_shot_classifier
    ei.zsc.run_classification = run_classification
    ei.torch.utils.data.DataLoader = lambda dataset, **kwargs: dataset
    ei.transform = lambda image: image
    ei.clip_model = ei.tokenizer = None
    ei.args = argparse.Namespace(options={})  # EI's defaults: bgcolor "#999", crop "1" (l.84, l.101)
    ei.COLOR_CLASSIFIERS.clear()
    ei.inference_detector = lambda model, filepath: result
    ei.color_classification = color_classification
    opts = c["options"]
    ei.THRESHOLD, ei.COUNTING_THRESHOLD = float(opts["threshold"]), float(opts["counting_threshold"])
    ei.MAX_OBJECTS, ei.NMS_THRESHOLD = int(opts["max_objects"]), float(opts["max_overlap"])
    ei.POSITION_THRESHOLD = float(opts["position_threshold"])
    path = folder / "0000.png"
    Image.fromarray(pattern_image(h, w)).save(path)
    try:
        out = ei.evaluate_image(str(path), {**c["metadata"]})
    finally:
        ei.color_classification = original
    return {"correct": bool(out["correct"]), "reason": out["reason"], "details": json.loads(out["details"]),
            "color_calls": calls}


# --- summary_scores.py on recorded decisions ---


def run_summary(checkout: Path, results: list[dict], folder: Path) -> str:
    import pandas as pd  # here only: tests/test_geneval.py imports this file for pattern_image

    path = folder / "results.jsonl"
    with open(path, "w") as fp:  # as EI l.279-280
        pd.DataFrame(results).to_json(fp, orient="records", lines=True)
    proc = subprocess.run([sys.executable, str(checkout / "evaluation" / "summary_scores.py"), str(path)],
                          capture_output=True, text=True, check=True)
    return proc.stdout


def synthetic_results(meta: dict[str, dict]) -> list[dict]:
    """Four images for each of 22 prompts over the six tags (first appearances not in TAGS order),
    with decisions drawn by numpy default_rng(0) at a different rate per tag."""
    rng = np.random.default_rng(0)
    by_tag: dict[str, list[dict]] = {}
    for m in meta.values():
        by_tag.setdefault(m["tag"], []).append(m)
    plan = [("position", 5, 0.2), ("counting", 3, 0.5), ("single_object", 2, 0.95), ("color_attr", 4, 0.1),
            ("colors", 6, 0.7), ("two_object", 2, 0.6)]
    out = []
    for tag, n_prompts, rate in plan:
        for m in by_tag[tag][:n_prompts]:
            for k in range(4):
                out.append({"filename": f"{len(out):05d}/samples/{k:04d}.png", "tag": tag, "prompt": m["prompt"],
                            "correct": bool(rng.random() < rate), "metadata": json.dumps(m)})
    return out


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path, help="a GenEval checkout (evaluation/ and prompts/ are read)")
    ap.add_argument("--commit", required=True, help="the GenEval commit the checkout holds (recorded)")
    ap.add_argument("--out", type=Path, default=HERE / "reference_decisions.json")
    args = ap.parse_args()
    checkout = args.checkout.resolve()
    ei = load_evaluate_images(checkout)
    meta = real_metadata(checkout)
    cases = build_cases(meta)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for c in cases:
            c["geneval"] = run_case(ei, c, folder)
        from_cases = [{"filename": f"{i:05d}/samples/0000.png", "tag": c["metadata"]["tag"], "prompt": c["metadata"]["prompt"],
                       "correct": c["geneval"]["correct"], "metadata": json.dumps(c["metadata"])} for i, c in enumerate(cases)]
        synthetic = synthetic_results(meta)
        summaries = [{"name": "the cases' decisions", "results": from_cases, "stdout": run_summary(checkout, from_cases, folder)},
                     {"name": "synthetic decisions", "results": synthetic, "stdout": run_summary(checkout, synthetic, folder)}]
    used = ["evaluation/evaluate_images.py", "evaluation/summary_scores.py", "evaluation/object_names.txt",
            "prompts/evaluation_metadata.jsonl"]
    doc = {
        "about": "GenEval's own decisions on hand-made detections, recorded by tests/data/geneval/make_reference.py "
                 "(see its docstring); tests/test_geneval.py checks metrics/geneval_rules.py against them.",
        "geneval": {"repo": "djghosh13/geneval", "commit": args.commit, "license": "MIT",
                    "files_sha256": {f: file_sha256(checkout / f) for f in used}},
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "pandas": _version("pandas"),
                        "pillow": PIL.__version__},
        "cases": cases,
        "summaries": summaries,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    n_ok = sum(c["geneval"]["correct"] for c in cases)
    print(f"{len(cases)} cases ({n_ok} correct, {len(cases) - n_ok} incorrect), {len(summaries)} summaries -> {args.out}")


if __name__ == "__main__":
    main()
