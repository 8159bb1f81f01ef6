"""Generation alone, benchkit's generator and the bare pipeline call alternating batch by batch in one process.

    python benchmarks/same_process_generation.py JOB.json

Used by benchmarks/harness_overhead.py. Whole-process timings on a shared machine move by +-10% between
identical runs; alternating the two sides batch by batch inside one process puts both under the same
load, page cache and allocator state, so this ratio isolates what benchkit's generation path (per-item
noise, stage-timing hooks, its own VAE decode and uint8 conversion) costs over ``pipe(...)`` with
diffusers' post-processing. JOB.json: the bare loop's job plus ``"spec"``, ``"prompts"`` (benchkit's
items as [prompt_id, prompt, seed]) and ``"repeats"``. Prints one JSON line: the seconds of each side.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from benchkit.core.items import Item
from benchkit.models.loading import load_model
from benchkit.models.sampling import make_generator
from benchkit.models.spec import load_spec_file


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    spec = load_spec_file(Path(job["spec"]))
    generator = make_generator(load_model(spec, torch.device("cpu"), torch.float32), spec.recipe)
    pipe = StableDiffusionPipeline.from_pretrained(job["model"], torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    items = [Item(pid, text, seed) for pid, text, seed in job["prompts"]]
    bare, size = job["items"], job["batch_size"]
    seconds = {"benchkit": 0.0, "bare": 0.0}
    for rep in range(job["repeats"]):
        for start in range(0, len(items), size):
            def ours() -> None:
                generator.generate(items[start : start + size])

            def theirs() -> None:
                batch = bare[start : start + size]
                pipe(prompt=[it["prompt"] for it in batch], height=job["height"], width=job["width"],
                     num_inference_steps=job["steps"], guidance_scale=job["guidance"],
                     generator=[torch.Generator("cpu").manual_seed(it["seed"]) for it in batch])

            sides = (("benchkit", ours), ("bare", theirs))
            for name, fn in sides if (rep + start // size) % 2 == 0 else sides[::-1]:
                t = time.perf_counter()
                fn()
                seconds[name] += time.perf_counter() - t
    print(json.dumps(seconds))


if __name__ == "__main__":
    main()
