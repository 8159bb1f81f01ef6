"""Decode + FID-protocol preprocessing throughput by worker count, the network stubbed out.

    python -m benchmarks --only preprocess_scaling [--quick]

What ``--workers`` buys on the CPU side of scoring: the images/s at which
:func:`metrics.loading.load_chunks` (the loader :func:`benchkit.scoring.score_records` uses) decodes
512 px PNGs and runs each FID protocol's per-image path (``clean-fid``: the clean resize to 299;
``dmd2-sd15-coco30k``: crop, LANCZOS 256, clean resize; ``dmd2-sdxl-coco10k``: its two views), in
chunks of 256 as scoring does, with nothing consuming the result but the loop. The row compares
``w`` workers against the same loop in the main process (``peer``: 0 workers), ratio = speedup; the
goal is 75 % of the ideal speedup min(w, CPU cores). On a machine whose cores are busy with other
work the speedup is capped by what is free: the CPU count and load average are in the note.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import median, row
from benchmarks.fid_throughput import make_pngs

NAME = "preprocess_scaling"
SIZES = {False: {"images": 256, "px": 512, "repeats": 3, "workers": (0, 1, 2, 4)},
         True: {"images": 48, "px": 512, "repeats": 1, "workers": (0, 1, 2)}}
CHUNK = 256
EFFICIENCY = 0.75


def images_per_second(paths: list[Path], preprocessors: dict, workers: int) -> float:
    from metrics.loading import load_chunks

    chunks = [paths[s : s + CHUNK] for s in range(0, len(paths), CHUNK)]
    start = time.perf_counter()
    n = 0
    for _, prepared in load_chunks(chunks, preprocessors, keep_images=False, workers=workers):
        n += len(next(iter(prepared.values())))
    return n / (time.perf_counter() - start)


def run(quick: bool) -> list[dict]:
    from metrics.fid import PROTOCOLS, view_preprocessor

    size = SIZES[quick]
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="bk-prep-") as tmp:
        paths = make_pngs(Path(tmp) / "images", size["images"], size["px"])
        for protocol in PROTOCOLS.values():
            preprocessors = {f"fid:{protocol.name}:{v.key}": view_preprocessor(v) for v in protocol.views}
            images_per_second(paths[:4], preprocessors, 0)  # warm: page cache, the resizer's first build
            rates = {w: median([images_per_second(paths, preprocessors, w) for _ in range(size["repeats"])])
                     for w in size["workers"]}
            for w, rate in rates.items():
                if w == 0:
                    rows.append(row(NAME, f"{protocol.name}: decode + preprocess, 0 workers", rate, None, None,
                                    unit="img/s", note=""))
                    continue
                goal = EFFICIENCY * min(w, cores)
                rows.append(row(NAME, f"{protocol.name}: decode + preprocess, {w} workers (speedup vs 0)", rate,
                                rates[0], goal, goal_op=">=", unit="img/s",
                                note=(f"{size['images']} PNGs {size['px']}px, chunks of {CHUNK}, median of "
                                      f"{size['repeats']}; os.cpu_count()={cores}, load average "
                                      f"{os.getloadavg()[0]:.1f} at the end") if w == max(size["workers"]) else ""))
    return rows


if __name__ == "__main__":
    from benchmarks.common import format_table

    print(format_table(run("--quick" in sys.argv)))
