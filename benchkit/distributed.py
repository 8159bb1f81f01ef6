"""Multi-process runs under `torchrun` or `accelerate launch`: who am I, my share, gather results.

A plain `benchkit eval` is a world of one and never touches torch.distributed. Under a
launcher (WORLD_SIZE > 1), accelerate's PartialState reads the launcher's environment and
initialises the process group: gloo on CPU, nccl on CUDA. Work is split by position
(``items[rank::size]``), so every rank computes the same split without talking to the others,
and a rerun with any number of ranks splits whatever is still missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import torch

T = TypeVar("T")


def launched_world_size() -> int:
    """WORLD_SIZE as set by torchrun / accelerate launch (1 when run directly)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def launched_rank() -> int:
    """RANK as set by the launcher (0 when run directly): only rank 0 prints summaries."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


@dataclass
class World:
    """This process's rank among ``size`` and the collectives benchkit needs."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's items: every size-th one starting at rank (deterministic, balanced)."""
        return list(items[self.rank :: self.size])

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def device(self, device: torch.device) -> torch.device:
        """One GPU per rank: a bare 'cuda' becomes this rank's local GPU."""
        if self.distributed and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def describe(self) -> dict[str, Any]:
        return {"rank": self.rank, "world_size": self.size, "local_rank": self.local_rank,
                "backend": torch.distributed.get_backend() if self.distributed else None}


def current_world(device: torch.device) -> World:
    """The world this process was launched into; initialises the process group once."""
    if launched_world_size() == 1:
        return World()
    from accelerate import PartialState

    # cpu=True makes accelerate pick gloo; without it, it only initialises on accelerators.
    state = PartialState(cpu=device.type != "cuda")
    return World(rank=state.process_index, size=state.num_processes, local_rank=state.local_process_index)
