"""Rescoring on stored features: a second metric on the same extractor costs a fraction of the first pass.

    python -m benchmarks --only rescore_cached [--quick]

A folder of 2,000 PNGs (256 px) is scored with ``fid`` against a 200-image folder reference (whose
features are cached first, untimed, with ``benchkit reference folder``): that first pass decodes every
image, runs clean-fid's resize and the Inception network, and stores the features in the run's
``features/`` folder. Then ``benchkit rescore`` adds ``prdc`` and ``vendi`` (the same Inception view):
it hashes the image files, reads the stored features back and does the metrics' arithmetic. The row
is rescore seconds / first-pass seconds (goal: under 0.10), both in this process with the same
Inception file (random weights, as the tests build it; no download is possible here), one DataLoader
worker per spare core. The rescore must have computed no feature at all, or the row is an error.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import row
from benchmarks.fid_throughput import inception_environment, make_pngs

NAME = "rescore_cached"
GOAL = 0.10
SIZES = {False: {"images": 2000, "reference": 200, "px": 256}, True: {"images": 60, "reference": 20, "px": 256}}


def run(quick: bool) -> list[dict]:
    import torch

    from benchkit.folder_scoring import score_folder
    from benchkit.scoring import rescore_run
    from metrics import MetricContext, build_metrics
    from metrics.reference_sets import folder_reference
    from prompts import load_prompt_set

    size = SIZES[quick]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="bk-rescore-") as tmp:
        root = Path(tmp)
        with inception_environment(root):
            # two seeds per prompt (Vendi's per-prompt value compares them), named as `benchkit eval` names images
            paths = [p.rename(p.with_name(f"p{i // 2:05d}_{i % 2}.png"))
                     for i, p in enumerate(make_pngs(root / "images", size["images"], size["px"]))]
            make_pngs(root / "reference", size["reference"], size["px"], seed=1)
            prompts = root / "prompts.csv"
            prompts.write_text("prompt_id,prompt\n" + "".join(f"p{i:05d},image {i}\n" for i in range(len(paths) // 2)))
            cache = root / "cache"
            ref = folder_reference(root / "reference", cache)
            (fid,) = build_metrics(["fid"], MetricContext(cache_dir=cache, device=device, reference=ref))
            fid.reference()  # the reference's features, cached before either timed pass
            prompt_set = load_prompt_set(str(prompts))
            out = root / "scored"
            start = time.perf_counter()
            first = score_folder(root / "images", prompt_set, ["fid"], out, cache, device, show_progress=False,
                                 reference=root / "reference")
            first_seconds = time.perf_counter() - start
            start = time.perf_counter()
            again = rescore_run(out, ["prdc", "vendi"], cache, device, reference=root / "reference", show_progress=False)
            rescore_seconds = time.perf_counter() - start
    scoring = again["run"]["scoring"]
    n = size["images"]
    if first["run"]["scoring"]["features_computed"] != n or scoring["features_computed"] != 0:
        raise RuntimeError(f"the first pass computed {first['run']['scoring']['features_computed']} features and the "
                           f"rescore {scoring['features_computed']}: not the work this benchmark measures")
    names = {m["name"] for m in again["metrics"]}
    if not {"fid", "precision", "coverage", "vendi"} <= names:
        raise RuntimeError(f"the rescored results lack values: {sorted(names)}")
    return [row(NAME, f"rescore {n} PNGs {size['px']}px with prdc + vendi on stored Inception features vs the first "
                      f"fid pass ({device.type})", rescore_seconds, first_seconds, GOAL, unit="s",
                note=(f"first pass {first_seconds:.1f} s ({n / first_seconds:.1f} img/s: decode, clean resize, Inception, "
                      f"store); rescore {rescore_seconds:.2f} s ({scoring['features_stored_before']} stored features "
                      f"read, 0 computed: hashing {n} files, PRDC's k-NN against {size['reference']} reference images, "
                      f"Vendi's eigenvalues); workers {first['run']['scoring']['workers']}, os.cpu_count()="
                      f"{os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"))]


if __name__ == "__main__":
    from benchmarks.common import format_table

    print(format_table(run("--quick" in sys.argv)))
