"""Per-item seeds: an image depends on (model, recipe, prompt_id, seed) and nothing else.

Each item gets its own CPU ``torch.Generator`` seeded from a hash of (prompt_id, seed), so
batch size, order, resumption and sharding cannot change the noise. DMD2's evaluator seeds
per batch index instead, which is why its images change with the batch size.
"""

from __future__ import annotations

import hashlib

import torch


def item_seed(prompt_id: str, seed: int) -> int:
    digest = hashlib.sha256(f"{prompt_id}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def item_generator(prompt_id: str, seed: int) -> torch.Generator:
    """A CPU generator: noise is drawn on the CPU so cuda, mps and cpu runs share it."""
    return torch.Generator(device="cpu").manual_seed(item_seed(prompt_id, seed))
