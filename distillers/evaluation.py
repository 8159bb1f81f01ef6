"""The periodic mini-evaluation during distillation: toy FID and alignment of the student.

It samples the student with its own few-step sampler on the toy-digits prompts x seeds
0..9 (the same items and per-item initial noise as ``benchkit eval``) and scores the images
with benchkit's toy metrics, so the numbers in the training log are on the scale of the
README's. The final numbers to report come from ``benchkit eval`` on the exported spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from benchkit.core.registry import Registry
from distillers.training import Distiller

# The periodic evaluation of a family's students during training, by family name:
# ``cache_dir -> (Distiller -> {name: value})``. Families without one train without it.
MINI_EVALS: Registry[Callable[[Path], Callable[[Distiller], dict[str, float]]]] = Registry("family's mini-eval")


@MINI_EVALS.register("toy")
def toy_mini_eval(cache_dir: Path, seeds: int = 10):
    from benchkit.core.items import item_generator
    from benchkit.toy.metrics import ToyAlignment, ToyFID
    from metrics.base import MetricContext, SampleBatch
    from prompts import load_prompt_set

    prompt_set = load_prompt_set("toy-digits")
    items = [(r.prompt_id, r.prompt, r.meta, s) for r in prompt_set.records for s in range(seeds)]

    def evaluate(d: Distiller) -> dict[str, float]:
        den = d.export_denoiser()
        cond = d.data.encode([it[1] for it in items])
        noise = torch.cat([torch.randn((1, *d.data.shape), generator=item_generator(pid, s)) for pid, _, _, s in items])
        gen = torch.Generator().manual_seed(1234)
        was_training = den.model.training
        den.model.eval()
        with torch.no_grad():
            x0 = d.generate(den, noise.to(d.device), cond, d.sampler_timesteps(), d.sampler_mode, gen)
        den.model.train(was_training)
        images = ((x0.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()
        ctx = MetricContext(cache_dir=Path(cache_dir))
        records = [{"prompt_id": pid, "prompt": p, "seed": s, "meta": dict(meta)} for pid, p, meta, s in items]
        batch = SampleBatch(images=list(np.asarray(images)), records=records)
        fid, align = ToyFID(ctx), ToyAlignment(ctx)
        fid.update(batch)
        align.update(batch)
        return {"toy_fid": fid.compute()[0].value, "toy_alignment": align.compute()[0].value}

    return evaluate
