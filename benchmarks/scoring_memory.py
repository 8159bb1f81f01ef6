"""Memory while scoring many images stays flat: resident memory early in a long scoring pass vs at its end.

    python -m benchmarks --only scoring_memory [--quick]

``benchkit score`` (:func:`benchkit.folder_scoring.score_folder`, the real path: matching, run
folder, chunks, DataLoader workers, breakdown by seed) over a folder of 8x8 toy digits (quick:
1,000; full: 10,000; 4 seeds per prompt) with ``toy-fid`` and ``toy-alignment``, whose states are
constant-size (running moments and sums), so any growth is the harness holding what it should
not. A thread samples this process's resident set size (``/proc/self/statm``) every 20 ms; the row
compares the peak over the last 10 % of the scoring pass with the peak over 10-20 % (after
matching the files and loading the classifier). Goal: at most 5 % more. Workers' memory is their
own (separate processes). Torch runs one thread here: a memory benchmark, and the toy network's
one-image forwards are 80x slower when its two threads share a busy machine's cores.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

NAME = "scoring_memory"
SIZES = {False: 10_000, True: 1_000}
SEEDS = 4
GOAL = 1.05


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(quick: bool) -> list[dict]:
    import numpy as np
    import torch

    from benchkit.core.rundir import encode_png
    from benchkit.folder_scoring import score_folder
    from benchkit.toy.data import load_digits_uint8
    from benchmarks.common import row
    from metrics.loading import default_workers
    from prompts import load_prompt_set

    n = SIZES[quick]
    images, labels = load_digits_uint8()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bk-mem-") as tmp:
        root = Path(tmp)
        folder = root / "images"
        folder.mkdir()
        lines = ["prompt_id,prompt,digit"]
        for p in range(n // SEEDS):
            digit = p % 10
            lines.append(f"q{p:05d},a handwritten digit {digit},{digit}")
            picks = np.flatnonzero(labels == digit)
            for seed in range(SEEDS):
                (folder / f"q{p:05d}_{seed}.png").write_bytes(encode_png(images[picks[(p + seed) % len(picks)]]))
        (root / "prompts.csv").write_text("\n".join(lines) + "\n")
        prompts = load_prompt_set(str(root / "prompts.csv"))
        old_cache = os.environ.get("BENCHKIT_CACHE")
        os.environ["BENCHKIT_CACHE"] = str(root / "hash-cache")
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((time.perf_counter(), _rss_bytes()))
                time.sleep(0.02)

        workers = default_workers()
        sampler = threading.Thread(target=sample, daemon=True)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            start_rss = _rss_bytes()
            start = time.perf_counter()
            sampler.start()
            score_folder(folder, prompts, ["toy-fid", "toy-alignment"], root / "scored", root / "cache",
                         torch.device("cpu"), show_progress=False, workers=workers)
        finally:
            stop.set()
            sampler.join()
            torch.set_num_threads(threads)
            if old_cache is None:
                os.environ.pop("BENCHKIT_CACHE", None)
            else:
                os.environ["BENCHKIT_CACHE"] = old_cache
        end = time.perf_counter()
    span = end - start
    # the first 10 % includes matching the files and loading the classifier; the scoring proper is after it
    early = max((r for t, r in samples if start + 0.1 * span <= t <= start + 0.2 * span), default=None)
    late = max((r for t, r in samples if t >= start + 0.9 * span), default=None)
    if early is None or late is None:
        raise RuntimeError("too few memory samples: the scoring pass was shorter than the sampling period")
    mib = 1024 * 1024
    rows.append(row(NAME, f"peak RSS, last 10% vs 10-20% of scoring {n:,} images ({workers} workers)",
                    late / mib, early / mib, GOAL, unit="MiB",
                    note=(f"RSS before {start_rss / mib:.0f} MiB, peak {max(r for _, r in samples) / mib:.0f} MiB; "
                          f"{span:.1f} s for {n:,} 8x8 PNGs ({n / span:.0f} img/s incl. matching), toy-fid + "
                          f"toy-alignment, breakdown by seed")))
    return rows


if __name__ == "__main__":
    from benchmarks.common import format_table

    print(format_table(run("--quick" in sys.argv)))
