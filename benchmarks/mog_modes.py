"""Modes hit / energy distance of one-step DMD, DMD2 and ADM students on the 2-D 8-Gaussian toy,
over several seeds.

    python benchmarks/mog_modes.py                          # papers' set-up, 5 seeds, 1000 steps
    python benchmarks/mog_modes.py --methods adp,adm,dmd@adp  # ADP alone, DMDX, DMD from ADP's start
    python benchmarks/mog_modes.py --ttur 5                 # every method with 5 critic updates
    python benchmarks/mog_modes.py --start modes --steps 400  # the earlier one-mode start
    python benchmarks/mog_modes.py --methods adp,adm,adm-no-adp --ttur 8 --betas 0,0.99 --steps 400
                                  # ADM at the paper's ablation TTUR 8 with hinge-GAN Adam betas

Rows: ``start`` = the teacher's one-step denoiser before distillation, ``adp`` = ADP pre-training
alone, a method name = that method from its paper's start (``adm``: ADP first), ``method@start`` =
the method from another start (teacher, adp, modes).

Why: issue 6 expects plain DMD to drop modes and DMD2 / ADM to cover all of them; this prints
what each method does, seed by seed (see distillers/toy2d.py and the README's Distillation
section). Single-threaded, so the numbers match the test's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchkit.core.progress import progress_bar
from distillers.toy2d import (METHODS, PAPER_TTUR, STARTS, Toy2DConfig, coverage, distill, init_generator, mode_shares,
                              sample)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(("start", *METHODS)),
                    help=f"comma-separated rows: start, adp, {', '.join(METHODS)}, or method@start")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--steps", type=int, default=1000, help="generator updates")
    ap.add_argument("--ttur", type=int, default=None, help="critic updates per generator update "
                    f"for every method (default: the papers' {PAPER_TTUR})")
    ap.add_argument("--start", default=None, choices=STARTS,
                    help="every method's start (default: its paper's; adm: adp); teacher: the teacher's one-step "
                    "denoiser; adp: ADP pre-trained; modes: covers --init-modes")
    ap.add_argument("--adp-steps", type=int, default=Toy2DConfig.adp_steps, help="ADP generator updates")
    ap.add_argument("--init-modes", default="0", help="start=modes: modes covered at the start, e.g. 0,1,2")
    ap.add_argument("--lr", type=float, default=Toy2DConfig.lr_g, help="learning rate of generator and critics")
    ap.add_argument("--betas", default=",".join(map(str, Toy2DConfig.betas)),
                    help="Adam betas of every network (ADP and ADM: 0,0.99; see distillers/toy2d.py)")
    ap.add_argument("--adm-dt", type=float, default=Toy2DConfig.adm_dt)
    ap.add_argument("--max-t", type=float, default=Toy2DConfig.max_t, help="highest noise level of the DM / ADM terms")
    args = ap.parse_args()
    if len(args.betas.split(",")) != 2:
        ap.error(f"--betas takes two comma-separated numbers, e.g. 0,0.99 (got {args.betas!r})")
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    base = dict(steps=args.steps, adp_steps=args.adp_steps, lr_g=args.lr, ttur=args.ttur, start=args.start,
                adm_dt=args.adm_dt, max_t=args.max_t, betas=tuple(float(b) for b in args.betas.split(",")),
                init_modes=tuple(int(m) for m in args.init_modes.split(",")))
    methods = args.methods.split(",")
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
    name, _, start = method.partition("@")
    before = name in ("start", "adp")  # rows of the generator before distillation
    for seed in seeds:
        cfg = {"start": dict(method="dmd", start="teacher"), "adp": dict(method="adm", start="adp")}.get(
            name, dict(method=name, start=start or base["start"]))
        cfg = Toy2DConfig(seed=seed, **{**base, **cfg})
        x = sample(init_generator(cfg) if before else distill(cfg))
        h, d = coverage(x)
        hits.append(h)
        dists.append(d)
        mass.append(sum(mode_shares(x)))
        bar.update(task, advance=1, info=f"{method} seed {seed}: {h}/8 modes")
    ratio = "1:1 (ADP)" if name == "adp" else "-" if before else f"{ttur or PAPER_TTUR[name]}:1"
    return (f"| {method} | {ratio} | {' '.join(map(str, hits))} | {statistics.median(dists):.3f} "
            f"({min(dists):.3f}-{max(dists):.3f}) | {statistics.mean(mass):.2f} | {time.time() - t0:.0f} |")


if __name__ == "__main__":
    main()
