"""Modes hit / energy distance of one-step DMD, DMD2 and ADM students on the 2-D 8-Gaussian toy,
over several seeds.

    python benchmarks/mog_modes.py                          # papers' set-up, 5 seeds, 1000 steps
    python benchmarks/mog_modes.py --ttur 5                 # every method with 5 critic updates
    python benchmarks/mog_modes.py --start modes --steps 400  # the earlier one-mode start

Why: issue 6 expects plain DMD to drop modes and DMD2 / ADM to cover all of them; this prints
what each method does, seed by seed (see distillers/toy2d.py and the README's Distillation
section). Single-threaded, so the numbers match the test's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchkit.progress import progress_bar
from distillers.toy2d import METHODS, PAPER_TTUR, Toy2DConfig, coverage, distill, init_generator, mode_shares, sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated: dmd,dmd2,adm")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--steps", type=int, default=1000, help="generator updates")
    ap.add_argument("--ttur", type=int, default=None, help="critic updates per generator update "
                    f"for every method (default: the papers' {PAPER_TTUR})")
    ap.add_argument("--start", default="teacher", choices=("teacher", "modes"),
                    help="teacher: generator = the teacher's one-step denoiser; modes: covers --init-modes")
    ap.add_argument("--init-modes", default="0", help="start=modes: modes covered at the start, e.g. 0,1,2")
    ap.add_argument("--lr", type=float, default=Toy2DConfig.lr_g, help="learning rate of generator and critics")
    ap.add_argument("--adm-dt", type=float, default=Toy2DConfig.adm_dt)
    ap.add_argument("--max-t", type=float, default=Toy2DConfig.max_t, help="highest noise level of the DM / ADM terms")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    base = dict(steps=args.steps, lr_g=args.lr, ttur=args.ttur, start=args.start, adm_dt=args.adm_dt, max_t=args.max_t,
                init_modes=tuple(int(m) for m in args.init_modes.split(",")))
    methods = ("start", *args.methods.split(","))
    with progress_bar() as bar:
        task = bar.add_task("students", total=len(methods) * len(seeds), info="")
        rows = [run(method, seeds, base, args.ttur, bar, task) for method in methods]
    print(f"set-up: {base}, seeds {seeds}")
    print("| student | critic:generator | modes hit (of 8), per seed | energy distance, median (min-max) "
          "| mass within 4 std of a mode, mean | seconds |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row)


def run(method: str, seeds: list[int], base: dict, ttur: int | None, bar, task) -> str:
    t0, hits, dists, mass = time.time(), [], [], []
    for seed in seeds:
        cfg = Toy2DConfig(method="dmd" if method == "start" else method, seed=seed, **base)
        x = sample(init_generator(cfg) if method == "start" else distill(cfg))
        h, d = coverage(x)
        hits.append(h)
        dists.append(d)
        mass.append(sum(mode_shares(x)))
        bar.update(task, advance=1, info=f"{method} seed {seed}: {h}/8 modes")
    ratio = "-" if method == "start" else f"{ttur or PAPER_TTUR[method]}:1"
    return (f"| {method} | {ratio} | {' '.join(map(str, hits))} | {statistics.median(dists):.3f} "
            f"({min(dists):.3f}-{max(dists):.3f}) | {statistics.mean(mass):.2f} | {time.time() - t0:.0f} |")


if __name__ == "__main__":
    main()
