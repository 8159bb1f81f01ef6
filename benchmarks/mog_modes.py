"""Modes hit / energy distance of one-step DMD, DMD2 and ADM students on the 2-D 8-Gaussian toy.

    python benchmarks/mog_modes.py                       # the tests/test_mog.py setting
    python benchmarks/mog_modes.py --init-modes 0,1,2 --max-t 0.4

Why: issue 6 expects plain DMD to drop modes; this prints what each method actually does
(see distillers/toy2d.py and the README's Distillation section).
"""

from __future__ import annotations

import argparse
import time

import torch

from distillers.toy2d import Toy2DConfig, coverage, distill, init_generator, mode_shares, sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init-modes", default="0", help="modes the generator covers at the start, e.g. 0,1,2")
    ap.add_argument("--max-t", type=float, default=0.98, help="highest noise level of the DM / ADM terms")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = dict(init_modes=tuple(int(m) for m in args.init_modes.split(",")), max_t=args.max_t,
                steps=args.steps, seed=args.seed)
    print("| student | modes hit (of 8) | energy distance to data | mass within 4 std of a mode | seconds |")
    print("|---|---|---|---|---|")
    for method in ("start", "dmd", "dmd2", "adm"):
        t0 = time.time()
        cfg = Toy2DConfig(method="dmd" if method == "start" else method, **base)
        g = init_generator(cfg) if method == "start" else distill(cfg)
        x = sample(g)
        hits, dist = coverage(x)
        print(f"| {method} | {hits} | {dist:.4f} | {sum(mode_shares(x)):.2f} | {time.time() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
