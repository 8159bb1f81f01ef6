"""FID feature throughput: benchkit's scoring path against clean-fid's ``get_folder_features``.

    python -m benchmarks --only fid_throughput [--quick]

Both sides turn the same folder of 512 px PNGs into clean-fid Inception pool features with the same
TorchScript Inception file (random weights, built as the tests build it: no download is possible
here) and the same number of DataLoader workers: benchkit through :func:`benchkit.scoring.score_records`
with the ``fid`` metric (decode and clean resize in workers, the network in the main process, the
running moments and per-item KID features kept as in a real run), clean-fid through
``cleanfid.fid.get_folder_features`` (mode ``clean``) with ``cleanfid.inception_torchscript.InceptionV3W``.
The features must be identical, bit for bit: that is checked before any time is reported.

On CPU benchkit runs one image per forward (convolution kernels round differently by batch size,
and one-image forwards keep features independent of how a run is chunked or sharded), so clean-fid
runs with ``batch_size=1`` on CPU too, the only setting whose features can be identical; on a GPU
both use 32. Each side gets an untimed warm-up (TorchScript's profiling runs, page cache), then the
two are timed alternately; the row is the ratio of median seconds, benchkit / clean-fid, at 1 worker
and at N = max(2, the default ``--workers``). Both main processes run torch with the same thread
count, max(1, cores - workers), so the network does not compete with the workers for cores (on a
busy 2-core machine a two-thread forward measured many times slower than a one-thread one).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmarks.common import REPO, median, row

NAME = "fid_throughput"
GOAL = 1.0
SIZES = {False: {"images": 200, "px": 512, "repeats": 2}, True: {"images": 16, "px": 512, "repeats": 1}}


def make_pngs(folder: Path, n: int, px: int, seed: int = 0) -> list[Path]:
    """``n`` RGB PNGs of ``px``: smooth gradients plus noise (PNG decodes them at a photo-like cost)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:px, 0:px] / px
    paths = []
    for i in range(n):
        base = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), np.sin(4 * (xx + yy) + 0.3 * i)], axis=-1)
        image = ((base + 1) * 100 + rng.normal(0, 12, (px, px, 3))).clip(0, 255).astype(np.uint8)
        path = folder / f"p{i:05d}_0.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


@contextmanager
def inception_environment(root: Path) -> Iterator[Path]:
    """The tests' random Inception under ``root``, given to benchkit as fid-inception with ``root/cache`` as its
    cache, for the ``with`` block (the process's environment is put back after)."""
    weights = random_inception(root / "inception")
    old_env = {k: os.environ.get(k) for k in ("BENCHKIT_WEIGHT_PATHS", "BENCHKIT_CACHE")}
    os.environ["BENCHKIT_WEIGHT_PATHS"] = json.dumps({"fid-inception": str(weights)})
    os.environ["BENCHKIT_CACHE"] = str(root / "cache")
    try:
        yield weights
    finally:
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def random_inception(folder: Path) -> Path:
    """The tests' random-weight TorchScript Inception (tests/metric_models.py), saved under ``folder``."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from metric_models import save_random_inception
    finally:
        sys.path.remove(str(REPO / "tests"))
    return save_random_inception(folder)


def benchkit_features(folder: Path, paths: list[Path], workers: int, device) -> tuple[float, np.ndarray]:
    """(seconds, float32 features in file order) of benchkit's FID path over ``paths``."""
    from benchkit.scoring import score_records
    from metrics import MetricContext, build_metrics

    records = [{"prompt_id": p.stem[:-2], "prompt": "", "seed": 0, "meta": {}, "file": p.name} for p in paths]
    (metric,) = build_metrics(["fid"], MetricContext(cache_dir=folder.parent / "cache", device=device))
    start = time.perf_counter()  # (clean-fid's side gets its model ready-made too)
    score_records(folder, records, [metric], None, workers=workers)
    seconds = time.perf_counter() - start
    feats = metric.kid_feats["fid"]
    return seconds, np.stack([feats[f"{r['prompt_id']}\x1f0"] for r in records])


def cleanfid_features(folder: Path, model, workers: int, device) -> tuple[float, np.ndarray]:
    from cleanfid.fid import get_folder_features

    start = time.perf_counter()
    feats = get_folder_features(str(folder), model, num_workers=workers, batch_size=1 if device.type == "cpu" else 32,
                                device=device, mode="clean", verbose=False)
    return time.perf_counter() - start, feats


def run(quick: bool) -> list[dict]:
    import torch
    from cleanfid.inception_torchscript import InceptionV3W

    from metrics.loading import default_workers

    size = SIZES[quick]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bk-fidtp-") as tmp:
        root = Path(tmp)
        with inception_environment(root) as weights:
            paths = make_pngs(root / "images", size["images"], size["px"])
            warm = root / "warm"
            make_pngs(warm, 3, size["px"], seed=1)
            model = InceptionV3W(str(weights.parent), download=False).to(device)
            benchkit_features(warm, sorted(warm.iterdir()), 0, device)
            cleanfid_features(warm, model, 0, device)
            threads = torch.get_num_threads()
            for workers in sorted({1, max(2, default_workers())}):
                torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))
                ours, theirs = [], []
                for rep in range(size["repeats"]):
                    order = ("benchkit", "clean-fid") if rep % 2 == 0 else ("clean-fid", "benchkit")
                    for side in order:
                        if side == "benchkit":
                            seconds, feats_b = benchkit_features(root / "images", paths, workers, device)
                            ours.append(seconds)
                        else:
                            seconds, feats_c = cleanfid_features(root / "images", model, workers, device)
                            theirs.append(seconds)
                    if not np.array_equal(feats_b, feats_c):
                        raise RuntimeError(f"benchkit's and clean-fid's features differ at {workers} workers "
                                           f"(max |diff| {np.abs(feats_b - feats_c).max():.3g}): not the same work")
                n = size["images"]
                rows.append(row(NAME, f"{n} PNGs {size['px']}px -> Inception features, {workers} workers ({device.type})",
                                median(ours), median(theirs), GOAL, unit="s",
                                note=(f"median of {size['repeats']} alternated runs; features identical (checked); "
                                      f"benchkit {n / median(ours):.1f} img/s, clean-fid {n / median(theirs):.1f} img/s; "
                                      f"clean-fid batch_size={'1' if device.type == 'cpu' else '32'}, os.cpu_count()="
                                      f"{os.cpu_count()}, torch threads {torch.get_num_threads()}, load average "
                                      f"{os.getloadavg()[0]:.1f}")))
            torch.set_num_threads(threads)
    return rows


if __name__ == "__main__":
    from benchmarks.common import format_table

    print(format_table(run("--quick" in sys.argv)))
