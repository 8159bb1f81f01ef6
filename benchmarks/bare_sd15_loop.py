"""The peer of `benchkit eval` in benchmarks/harness_overhead.py: the plain diffusers loop a user would write.

    python benchmarks/bare_sd15_loop.py JOB.json

JOB.json: {"model": diffusers folder, "out": folder, "steps": N, "guidance": G, "height": H, "width": W,
"batch_size": B, "items": [{"name": ..., "prompt": ..., "seed": ...}, ...]}. Each item gets its own
``torch.Generator("cpu").manual_seed(seed)`` (the pipeline draws each item's latents from its own
generator); every image is written as ``OUT/<name>.png`` with PIL. Nothing from benchkit is imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    pipe = StableDiffusionPipeline.from_pretrained(job["model"], torch_dtype=torch.float32)  # its own scheduler
    pipe.set_progress_bar_config(disable=True)
    items, size = job["items"], job["batch_size"]
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        generators = [torch.Generator("cpu").manual_seed(it["seed"]) for it in batch]
        images = pipe(prompt=[it["prompt"] for it in batch], height=job["height"], width=job["width"],
                      num_inference_steps=job["steps"], guidance_scale=job["guidance"], generator=generators).images
        for it, image in zip(batch, images):
            image.save(out / f"{it['name']}.png")


if __name__ == "__main__":
    main()
