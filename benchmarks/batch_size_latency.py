"""Per-image latency of the toy teacher by batch size, measured side by side in one process.

    python benchmarks/batch_size_latency.py [--steps 8] [--repeats 7] [--device cpu]

Prints the median seconds per image for each batch size and its ratio to batch size 1.
Batch sizes are interleaved within each repeat so drift on the machine hits all of them.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchkit.core.items import Item
from benchkit.models.generation import Generator
from benchkit.core.hardware import resolve_device, resolve_dtype, synchronize
from benchkit.models.loading import load_model
from benchkit.models.presets import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-sizes", default="1,8,25,100")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = resolve_device(args.device)
    spec = PRESETS["toy-digits"].with_recipe(steps=args.steps)
    gen = Generator(load_model(spec, device, resolve_dtype(None, device)), spec.recipe)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    items = [Item(f"p{i}", "a handwritten digit seven", i) for i in range(max(sizes))]
    for size in sizes:  # warm-up, untimed
        gen.generate(items[:size])
    per_image: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(args.repeats):
        for size in sizes:
            synchronize(device)
            start = time.perf_counter()
            gen.generate(items[:size])
            synchronize(device)
            per_image[size].append((time.perf_counter() - start) / size)
    base = statistics.median(per_image[sizes[0]])
    print(f"toy-digits, {args.steps} steps, CFG {spec.recipe.guidance_scale:g}, {device.type}, {args.repeats} repeats")
    print(f"{'batch':>6} {'median ms/image':>16} {'vs batch ' + str(sizes[0]):>12}")
    for size in sizes:
        median = statistics.median(per_image[size])
        print(f"{size:>6} {median * 1000:>16.3f} {median / base:>12.3f}")


if __name__ == "__main__":
    main()
