"""Every registered metric runs alone (and all image metrics together), with tiny local weights: no
metric depends on another being asked for, and a lone diversity metric is not dropped by the
per-seed breakdown."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from metric_models import save_every_metric_weight
from PIL import Image

from benchkit.reference import coco_file_name
from metrics import REGISTRY


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny weights for every metric, a fake val2014 with every FID protocol's statistics cached,
    and a folder of 64x64 images (3 prompts x 2 seeds) named as `benchkit eval` names them."""
    from benchkit.cli import main

    root = tmp_path_factory.mktemp("each")
    w = root / "weights"
    weights = save_every_metric_weight(w)
    args = [a for name, path in weights.items() for a in ("--weights", f"{name}={path}")]

    rng = np.random.default_rng(0)
    coco = [r.prompt_id for r in __import__("prompts").load_prompt_set("coco2014-10k").records[:3]]
    val = root / "val2014"
    val.mkdir()
    for image_id in [*map(int, coco), 42, 73, 74, 133]:  # more than PRDC's k = 5 reference images
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(val / coco_file_name(image_id), quality=90)
    images = root / "images"  # two seeds per prompt (diversity metrics compare them)
    one_seed = root / "one-seed"  # FID alone: without a per-seed breakdown, one 2048-d Frechet distance per view
    images.mkdir()
    one_seed.mkdir()
    for pid in coco:
        for seed in (0, 1):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / f"{pid}_{seed}.png")
        (one_seed / f"{pid}_0.png").write_bytes((images / f"{pid}_0.png").read_bytes())
    prompts = root / "coco3.csv"  # three COCO-10k captions: the matched reference pairs their images
    records = {r.prompt_id: r.prompt for r in __import__("prompts").load_prompt_set("coco2014-10k").records[:3]}
    prompts.write_text("prompt_id,prompt\n" + "".join(f'{k},"{v}"\n' for k, v in records.items()))
    cache = root / "cache"
    for protocol, pairing, extra in (("clean-fid", "all", []), ("dmd2-sd15-coco30k", "all", []),
                                     ("dmd2-sdxl-coco10k", "matched", ["-p", str(prompts)])):
        with pytest.MonkeyPatch.context() as mp:  # --weights lands in the environment; keep it to this call
            mp.setenv("BENCHKIT_WEIGHT_PATHS", "{}")
            main(["reference", "coco", "--coco-dir", str(val), "--pairing", pairing, "--allow-partial", "--protocol",
                  protocol, "--cache-dir", str(cache), "--device", "cpu", "-o", str(root / "refs" / protocol),
                  "--weights", f"fid-inception={weights['fid-inception']}", *extra])
    return {"root": root, "weights": args, "images": images, "one_seed": one_seed, "cache": cache, "prompts": prompts}


# GenEval reads GenEval's prompt metadata and a detector these images and weights do not have: tests/test_geneval.py
# runs it through the same `benchkit score`, with its prompts and a cut-down Mask R-CNN
# and the VBench dimensions score clips, not still images: tests/test_vbench_dimensions.py and tests/test_video.py
ELSEWHERE = {"geneval", *(n for n, cls in REGISTRY.items() if cls.reads_clips)}
IMAGE_METRICS = [n for n, cls in REGISTRY.items() if cls.needs_images and not n.startswith("toy-") and n not in ELSEWHERE]
FID = [n for n in IMAGE_METRICS if n.startswith("fid")]
TOGETHER = [n for n in IMAGE_METRICS if n not in FID]  # FIDs alone only: each costs 2048-d eigendecompositions


@pytest.mark.parametrize("names", [[n] for n in IMAGE_METRICS] + [TOGETHER])
def test_image_metric_alone_and_together(cli, world, tmp_path, monkeypatch, names):
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", "{}")  # set, not deleted: teardown then removes what --weights adds
    out = tmp_path / "scored"
    folder = world["one_seed"] if names[0] in FID else world["images"]
    # metrics with no default reference (FD-DINOv2, CMMD) compare with the fake val2014 folder (7 images, more than k = 5)
    reference = ["--reference", str(world["root"] / "val2014")] if any(REGISTRY[n].requires_reference for n in names) else []
    code, _, err = cli("score", str(folder), "-p", str(world["prompts"]), "--metrics", ",".join(names), "--device", "cpu",
                       "--cache-dir", str(world["cache"]), "-q", "-o", str(out), *world["weights"], *reference)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    got = {m["name"]: m for m in results["metrics"]}
    for name in names:
        own = [v for v in got if v in REGISTRY[name].value_names()]
        assert own, f"{name} wrote no value: {sorted(got)}"
    assert all(math.isfinite(m["value"]) for m in results["metrics"])
    assert all(m["n"] == len(list(folder.iterdir())) for m in results["metrics"])


@pytest.mark.parametrize("name", [n for n in REGISTRY if n.startswith("toy-") or n == "latency"])
def test_toy_and_timing_metric_alone(cli, tmp_path, name):
    out = tmp_path / "run"
    # 3 prompts x 2 seeds: more than toy PRDC's k = 5 images
    code, stdout, err = cli("eval", "--limit", "3", "--seeds", "0-1", "--steps", "1", "--metrics", name, "--quiet",
                            "--out", str(out), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    values = json.loads((out / "results.json").read_text())["metrics"]
    assert values and all(math.isfinite(v["value"]) for v in values)
    own = (lambda v: v.startswith("latency_")) if name == "latency" else (lambda v: v in REGISTRY[name].value_names())
    assert any(own(v["name"]) for v in values)


def test_every_metric_is_covered():
    assert set(IMAGE_METRICS) | ELSEWHERE | {n for n in REGISTRY if n.startswith("toy-") or n == "latency"} == set(REGISTRY)
