"""Parallel scoring: decoding and the metrics' preprocessing in DataLoader workers give exactly the
numbers of the serial pass (every image read, then each metric preparing it in its own update), for
any worker count and chunk size, on the toy metrics and on every real image metric (tiny random
weights); errors read the same; each image is decoded once for all metrics.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from metric_models import save_clip_processor, save_every_metric_weight
from PIL import Image

from benchkit.core.errors import BenchkitError
from benchkit.core.rundir import RunDir, encode_png, read_image
from benchkit.folder_scoring import score_folder
from benchkit.scoring import score_records, score_run
from benchkit.toy.data import load_digits_uint8
from metrics import REGISTRY, MetricContext, SampleBatch, build_metrics
from metrics.base import FeatureMoments
from metrics.breakdown import SEED_FIELD, Breakdown
from metrics.loading import check_workers, default_workers, load_chunks
from metrics.uncertainty import Strata
from prompts import load_prompt_set

TOY = ["toy-fid", "toy-alignment", "toy-diversity"]


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "hash-cache"))


def _same(a, b) -> bool:
    """Exactly equal, down to the bit, through dicts, lists, arrays, tensors and feature moments."""
    if isinstance(a, FeatureMoments):
        return isinstance(b, FeatureMoments) and _same(vars(a), vars(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a, b, equal_nan=True))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return type(a) is type(b) and a == b


def _serial(root: Path, records: list[dict], names: list[str], ctx: MetricContext, batch_size: int, fields: list[str]):
    """The scoring loop as it was before workers: read every image of a chunk, then each metric
    updates (and prepares) on the raw images; chunk states from empty, merged in order."""
    metric_objs = build_metrics(names, ctx)
    empty = [m.state_dict() for m in metric_objs]
    breakdown = Breakdown(fields, names, ctx)
    for start in range(0, len(records), batch_size):
        recs = records[start : start + batch_size]
        batch = SampleBatch([read_image(root / r["file"]) for r in recs], recs)
        fresh = [m.with_state(e) for m, e in zip(metric_objs, empty)]
        for metric in fresh:
            metric.update(batch)
        part = Breakdown(fields, names, ctx)
        part.update(batch)
        for metric, done in zip(metric_objs, fresh):
            metric.merge(metric.with_state(done.state_dict()))
        breakdown.merge_state(part.state_dict())
    return metric_objs, breakdown


def _parallel(root, records, names, ctx, batch_size, fields, workers):
    metric_objs = build_metrics(names, ctx)
    breakdown = Breakdown(fields, names, ctx)
    score_records(root, records, metric_objs, breakdown, batch_size=batch_size, workers=workers)
    return metric_objs, breakdown


def _assert_same_states(serial, parallel, what: str) -> None:
    (metrics_a, breakdown_a), (metrics_b, breakdown_b) = serial, parallel
    for a, b in zip(metrics_a, metrics_b, strict=True):
        assert _same(a.state_dict(), b.state_dict()), f"{a.name} differs ({what})"
    assert _same(breakdown_a.state_dict(), breakdown_b.state_dict()), f"breakdown differs ({what})"


# --- the toy world ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """60 toy digits (20 prompts x 3 seeds) scored once into a run folder (which score_run rescores)."""
    root = tmp_path_factory.mktemp("toyparallel")
    prompts = load_prompt_set("toy-digits")
    images, labels = load_digits_uint8()
    folder = root / "images"
    folder.mkdir()
    for i, rec in enumerate(prompts.records):
        picks = np.flatnonzero(labels == int(rec.meta["digit"]))[(i // 10) * 3 : (i // 10) * 3 + 3]
        for seed, index in enumerate(picks):
            (folder / f"{rec.prompt_id}_{seed}.png").write_bytes(encode_png(images[index]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHKIT_CACHE", str(root / "hash-cache"))
        score_folder(folder, prompts, TOY, root / "run", root / "cache", torch.device("cpu"), show_progress=False,
                     workers=0)
    return root


@pytest.mark.parametrize("batch_size", [7, 60, 256])
def test_toy_scores_do_not_depend_on_workers(toy_run, batch_size):
    run = RunDir(toy_run / "run")
    records = run.records()
    ctx = MetricContext(cache_dir=toy_run / "cache", manifest=run.manifest(),
                        strata=Strata.of_records(records, ["digit"]))  # as score_run makes it: intervals resample within digits
    fields = ["digit", SEED_FIELD]
    serial = _serial(run.path, records, TOY, ctx, batch_size, fields)
    expected = [v.to_dict() for m in serial[0] for v in m.compute()]
    for workers in (0, 1, 2):
        _assert_same_states(serial, _parallel(run.path, records, TOY, ctx, batch_size, fields, workers),
                            f"{workers} workers, chunks of {batch_size}")
        results = score_run(run, TOY, toy_run / "cache", torch.device("cpu"), show_progress=False,
                            batch_size=batch_size, workers=workers)
        assert results["metrics"] == expected  # the very floats, not approximately
        assert results["breakdowns"] == serial[1].compute()
        scoring = results["run"]["scoring"]
        assert (scoring["workers"], scoring["chunk"]) == (workers, batch_size)
        # the fixture's eval stored every image's features; these passes read them back, to the very same floats
        assert (scoring["features_stored_before"], scoring["features_computed"]) == (len(records), 0)


def test_each_image_is_decoded_once_for_all_metrics(tmp_path):
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(encode_png(np.full((8, 8), i, np.uint8)))
    decoded, prepared = Counter(), Counter()

    def decode(path):
        decoded[path.name] += 1
        return read_image(path)

    def prep(tag):
        def fn(image):
            prepared[(tag, int(image[0, 0]))] += 1
            return image.astype(np.float32) + 0.5
        return fn

    chunks = [paths[:4], paths[4:8], paths[8:]]
    got = list(load_chunks(chunks, {"a": prep("a"), "b": prep("b")}, keep_images=True, workers=0, decode=decode))
    assert decoded == Counter({p.name: 1 for p in paths})
    assert prepared == Counter({(t, i): 1 for t in "ab" for i in range(10)})
    assert [len(images) for images, _ in got] == [4, 4, 2]
    assert [float(x[0, 0]) for _, prep_ in got for x in prep_["a"]] == [i + 0.5 for i in range(10)]
    # without a metric that reads the decoded images, only the prepared inputs come back
    assert all(images == [] for images, _ in load_chunks(chunks, {"a": prep("a")}, keep_images=False, workers=2))


@pytest.mark.parametrize("workers", [0, 2])
def test_errors_read_as_in_a_serial_pass(tmp_path, workers):
    run_dir = tmp_path / "run"
    (run_dir / "images").mkdir(parents=True)
    records = []
    for i in range(5):
        name = f"images/d{i}_0.png"
        image = np.zeros((8, 8), np.uint8) if i != 3 else np.zeros((9, 8), np.uint8)  # one image is not a toy digit
        (run_dir / name).write_bytes(encode_png(image))
        records.append({"prompt_id": f"d{i}", "prompt": "a photo of the digit 1", "seed": 0, "meta": {}, "file": name})
    ctx = MetricContext(cache_dir=tmp_path / "cache")
    metric_objs = build_metrics(["toy-alignment"], ctx)
    with pytest.raises(BenchkitError, match=r"^the toy digits classifier reads only 8x8 digits, got an image of 9x8; toy"):
        score_records(run_dir, records, metric_objs, None, batch_size=2, workers=workers)
    (run_dir / records[1]["file"]).write_bytes(b"not a png")
    with pytest.raises(BenchkitError, match=r"^cannot read image .*d1_0\.png"):
        score_records(run_dir, records, build_metrics(["toy-alignment"], ctx), None, batch_size=2, workers=workers)


def test_worker_count_option(cli, tmp_path, monkeypatch):
    import os

    for cores, expected in ((1, 0), (2, 1), (4, 3), (16, 8), (64, 8)):
        with monkeypatch.context() as mp:
            mp.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)), raising=False)
            mp.setattr(os, "cpu_count", lambda n=cores: n)
            assert default_workers() == expected, cores
    assert check_workers(None) == default_workers() and check_workers(3) == 3
    with pytest.raises(BenchkitError, match="--workers must be 0"):
        check_workers(-1)
    out = tmp_path / "run"
    code, _, err = cli("eval", "--limit", "2", "--seeds", "0-1", "--steps", "1", "--metrics", "toy-fid,toy-alignment",
                       "--quiet", "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--workers", "2")
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["run"]["scoring"]["workers"] == 2
    code, _, err = cli("eval", "--limit", "2", "--seeds", "0-1", "--steps", "1", "--metrics", "toy-fid",
                       "--quiet", "--out", str(tmp_path / "bad"), "--workers", "-2")
    assert code != 0 and "--workers" in err


# --- the real image metrics, tiny random weights ----------------------------------------------

@pytest.fixture(scope="module")
def image_world(tmp_path_factory):
    """Tiny weights for every real image metric and 4 prompts x 2 seeds of images of two sizes."""
    root = tmp_path_factory.mktemp("parallelreal")
    w = root / "weights"
    weights = save_every_metric_weight(w)
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    records = []
    for p in range(4):
        shape = (64, 64, 3) if p % 2 == 0 else (72, 96, 3)  # square and not: the crops and pads differ
        for seed in (0, 1):
            file = f"images/p{p}_{seed}.png"
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / file)
            records.append({"prompt_id": f"p{p}", "prompt": f"a photo of thing number {p}", "seed": seed,
                            "meta": {"half": str(p // 2)}, "file": file})
    return {"root": root, "weights": {k: str(v) for k, v in weights.items()}, "records": records}


# (GenEval needs its own prompts and detector, and prepares nothing in workers: tests/test_geneval.py)
# (and the VBench dimensions read clips: tests/test_vbench_dimensions.py)
REAL = [n for n, cls in REGISTRY.items() if cls.needs_images and not n.startswith("toy-") and n != "geneval"
        and not cls.reads_clips]
INCEPTION = [n for n in REAL if "fid-inception" in REGISTRY[n].weights]  # FID's views and Vendi share the network


@pytest.mark.parametrize("names", [INCEPTION, [n for n in REAL if n not in INCEPTION]], ids=["fid", "scores-and-diversity"])
def test_real_metrics_do_not_depend_on_workers(image_world, monkeypatch, names):
    # One torch thread for the networks (conftest restores the count): on a machine whose cores are
    # shared, two-thread CPU forwards can be many times slower. The preprocessing itself is checked
    # against multi-threaded torch in the next test.
    torch.set_num_threads(1)
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps(image_world["weights"]))
    root, records = image_world["root"], image_world["records"]
    inception = names == INCEPTION
    if inception:  # the full-size Inception is the slow part: 2 images (a square one and another), in 2 chunks
        records = [records[0], records[2]]
    ctx = MetricContext(cache_dir=root / "cache", manifest={"seeds": [0, 1]})
    fields = [] if inception else ["half"]  # breakdown groups slice the prepared inputs
    # (the toy tests above vary chunk sizes and worker counts widely, one worker and one chunk among them; here
    # the in-process and two-worker loaders over several chunks)
    for batch_size, worker_counts in (((1 if inception else 3), (0, 2)),):
        serial = _serial(root, records, names, ctx, batch_size, fields)
        for workers in worker_counts:
            _assert_same_states(serial, _parallel(root, records, names, ctx, batch_size, fields, workers),
                                f"{workers} workers, chunks of {batch_size}")
        if not inception:  # (FID's compute needs reference statistics, FD-DINOv2's and CMMD's a --reference: states compared)
            assert all(np.isfinite(v.value) for m in serial[0] if not m.requires_reference for v in m.compute())


def test_worker_preprocessing_equals_the_main_process(image_world, monkeypatch):
    """Workers run torch with one thread; every real metric's preprocessing (torch resizes and
    normalisations among them) gives the same bits there as in a main process with two threads."""
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps(image_world["weights"]))
    torch.set_num_threads(2)
    root, records = image_world["root"], image_world["records"]
    preprocessors = {}
    for metric in build_metrics(REAL, MetricContext(cache_dir=root / "cache", manifest={"seeds": [0, 1]})):
        preprocessors.update(metric.preprocessors())
    # 4 FID views (PRDC and Vendi share the clean one), 1 DINOv2 (FD, KD and PRDC share it), 1 CMMD, 8 scorers
    # (LPIPS reads the decoded images)
    assert len(preprocessors) == 14
    paths = [root / r["file"] for r in records]
    (images, prepared), = load_chunks([paths], preprocessors, keep_images=True, workers=2)
    for key, fn in preprocessors.items():
        for path, image, got in zip(paths, images, prepared[key]):
            assert np.array_equal(image, read_image(path))
            assert _same(fn(read_image(path)), got), (key, path.name)


def test_per_image_processor_calls_equal_the_batched_call(tmp_path):
    """CLIP-L/14, PickScore and MPS now run their processor on one image at a time (in workers); the
    batched call they made before gives the very same pixel values."""
    from transformers import CLIPProcessor

    from metrics import preprocess as pp
    from metrics.clip_score import hf_processor_pixels
    from metrics.mps import mps_pixels

    processor = CLIPProcessor.from_pretrained(str(save_clip_processor(tmp_path / "processor")))
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in ((64, 64, 3), (48, 80, 3), (300, 257, 3), (40, 40))]
    chw = [torch.from_numpy(pp.to_rgb_uint8(im)).permute(2, 0, 1) for im in images]
    pil = [Image.fromarray(pp.to_rgb_uint8(im)) for im in images]
    assert torch.equal(processor(images=chw, return_tensors="pt")["pixel_values"],
                       torch.stack([hf_processor_pixels(im, processor) for im in images]))
    assert torch.equal(processor(images=pil, return_tensors="pt")["pixel_values"],
                       torch.stack([hf_processor_pixels(im, processor, as_pil=True) for im in images]))
    assert torch.equal(processor.image_processor(images=pil, return_tensors="pt")["pixel_values"],
                       torch.stack([mps_pixels(im, processor.image_processor) for im in images]))
