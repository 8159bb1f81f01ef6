"""Items and their seeds: an output depends on (model, recipe, prompt_id, seed) and nothing else.

Each item gets its own CPU ``torch.Generator`` seeded from a hash of (prompt_id, seed), so
batch size, order, resumption and sharding cannot change the noise. DMD2's evaluator seeds
per batch index instead, which is why its images change with the batch size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchkit.core.errors import BenchkitError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Item:
    """One output to generate: a prompt and a seed. ``meta`` carries prompt-set columns."""

    prompt_id: str
    prompt: str
    seed: int
    meta: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.prompt_id}_{self.seed}"


def item_seed(prompt_id: str, seed: int) -> int:
    digest = hashlib.sha256(f"{prompt_id}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def item_generator(prompt_id: str, seed: int) -> torch.Generator:
    """A CPU generator: noise is drawn on the CPU so cuda, mps and cpu runs share it."""
    import torch  # here, not at the top: prompt sets use this module's Item and need no torch

    return torch.Generator(device="cpu").manual_seed(item_seed(prompt_id, seed))


def meta_values(meta: dict[str, Any] | None, name: str) -> list[str]:
    """The values a meta field holds, as strings; a list field (VBench ``dimension``) holds several."""
    value = (meta or {}).get(name)
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


IMAGE_COLUMN = "image"  # the prompt-set column naming an item's input image (image-to-video)


def input_image(item: Item) -> Path | None:
    """The input image an item's ``image`` column names, resolved against the folder benchkit runs in;
    None without one. A path that is not a file is one line naming the prompt."""
    value = dict(item.meta).get(IMAGE_COLUMN)
    if value is None or value == "":
        return None
    path = Path(str(value)).expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    if not path.is_file():
        raise BenchkitError(f"prompt '{item.prompt_id}': its {IMAGE_COLUMN} {value} is not a file (relative paths "
                            f"are relative to the folder benchkit runs in, or to --image-dir)")
    return path


def input_image_record(item: Item) -> dict[str, str]:
    """What a sample record says of the item's input image: its path and sha256 (empty without one)."""
    from benchkit.core.filehash import sha256_file

    path = input_image(item)
    return {} if path is None else {"input_image": str(path), "input_image_sha256": sha256_file(path)}
