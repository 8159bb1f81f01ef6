"""Every benchmark in one command, benchkit and its peer measured side by side in the same run.

    python -m benchmarks [--quick] [--only NAME ...] [--json OUT]

Prints one table: benchmark, measurement, benchkit, peer, ratio (benchkit / peer), goal, and whether
the goal is met (notes under the table say how each number was taken). ``--quick`` runs smaller
versions (a smoke test of the benchmarks, not numbers to quote). Exit status 1 when a benchmark fails
to run; an unmet goal is shown in the table, not an error.

To add a benchmark, write ``benchmarks/<name>.py`` with ``run(quick: bool) -> list[dict]`` (each
dict from :func:`benchmarks.common.row`) and append its name to ``BENCHMARKS``. The standalone
scripts (batch_size_latency.py, mog_modes.py, bare_sd15_loop.py) are not benchmarks of this table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

from benchmarks.common import format_table

# name -> what it compares; run in this order. One line per benchmark module benchmarks/<name>.py.
BENCHMARKS = {
    "harness_overhead": "`benchkit eval` vs a bare diffusers loop, whole process incl. PNG writing",
    "fid_throughput": "FID features of a folder of PNGs: benchkit's scoring path vs clean-fid's get_folder_features",
    "preprocess_scaling": "decode + FID-protocol preprocessing images/s by --workers (network stubbed)",
    "scoring_memory": "resident memory early vs late while scoring many tiny images",
    "rescore_cached": "`benchkit rescore` with two more metrics on stored Inception features vs the first feature pass",
    "vbench_clips": "VBench dimensions: clips/s each, one shared-decoding pass vs a pass per dimension, decoding by workers",
}


def environment() -> dict[str, str]:
    import os

    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": str(os.cpu_count()),
            "torch_threads": str(torch.get_num_threads())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller versions of every benchmark (a smoke test)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=list(BENCHMARKS),
                        help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows and the environment as JSON")
    args = parser.parse_args(argv)

    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    rows, failed = [], []
    for name in names:
        print(f"running {name}{' (quick)' if args.quick else ''}: {BENCHMARKS[name]} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            got = module.run(args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(name)
            got = [{"benchmark": name, "measurement": f"failed: {type(exc).__name__}", "unit": "", "benchkit": None,
                    "peer": None, "ratio": None, "goal": None, "goal_op": "<=", "met": None, "error": str(exc)}]
        print(f"  {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        rows.extend(got)

    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"quick": args.quick, "environment": environment(), "rows": rows}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
