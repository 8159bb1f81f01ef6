"""Teacher ODE pairs (noise, x0): the teacher's deterministic DDIM sample from each noise.

ADP (DMDX) and DMD2's one-step ODE pre-training regress or discriminate against them, and
Lightning/Hyper-SD can use them as real data where no dataset is at hand. Prompts are drawn
round-robin from the training prompts; the noise of pair i comes from a generator seeded
with (seed, i), so a pairs file is reproducible and can be extended.
"""

from __future__ import annotations

import torch

from distillers.adapter import Conditioning, Denoiser
from distillers.data import DistillData, Pairs
from distillers.training import trailing_timesteps


@torch.no_grad()
def ode_sample(teacher: Denoiser, noise: torch.Tensor, cond: Conditioning, steps: int, guidance: float,
               uncond: Conditioning | None) -> torch.Tensor:
    """DDIM (trailing spacing, first step from pure noise at T-1) with classifier-free guidance; on a
    rectified-flow schedule the same (x0, eps) step is the Euler step of SD3's and FLUX's FlowMatch
    sampler (FLUX's embedded guidance rides on ``cond``; ``guidance`` is CFG on top of it)."""
    grid = trailing_timesteps(steps, teacher.schedule.T)
    x = noise
    for i, t in enumerate(grid):
        pred = teacher(x, float(t), cond, guidance=guidance, uncond=uncond)
        if i == len(grid) - 1:
            return pred.x0
        x = teacher.conv.move(pred.x0, pred.eps, float(grid[i + 1]))
    return x


def make_pairs(teacher: Denoiser, data: DistillData, count: int, steps: int = 8, guidance: float = 2.0,
               seed: int = 0, batch_size: int = 100, progress=None) -> Pairs:
    device = next(teacher.model.parameters()).device
    noises, x0s, idxs = [], [], []
    for start in range(0, count, batch_size):
        ids = list(range(start, min(count, start + batch_size)))
        pidx = torch.tensor([i % len(data.prompts) for i in ids])
        noise = torch.cat([torch.randn((1, *data.shape), generator=torch.Generator().manual_seed(seed * 1_000_003 + i)) for i in ids])
        cond = data.cond.select(pidx)
        x0 = ode_sample(teacher, noise.to(device), cond, steps, guidance, data.uncond(len(ids)))
        noises.append(noise)
        x0s.append(x0.float().cpu())
        idxs.append(pidx)
        if progress is not None:
            progress(len(ids))
    sampler = "flow Euler trailing" if teacher.schedule.kind == "flow" else "DDIM trailing"
    meta = {"steps": steps, "guidance": guidance, "seed": seed, "sampler": sampler, "count": count}
    if teacher.schedule.kind == "flow":  # the sigmas stepped on (a dynamic-shift teacher's depend on the resolution)
        meta["sigmas"] = [float(teacher.schedule.sigma(float(t))) for t in trailing_timesteps(steps, teacher.schedule.T)]
    return Pairs(torch.cat(noises), torch.cat(x0s), torch.cat(idxs), list(data.prompts), meta)
