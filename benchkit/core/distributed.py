"""Multi-process runs under `torchrun` or `accelerate launch`: who am I, my share, gather results.

A plain `benchkit eval` is a world of one and never touches torch.distributed. Under a
launcher (WORLD_SIZE > 1), accelerate's PartialState reads the launcher's environment and
initialises the process group: gloo on CPU, nccl on CUDA. Work is split by position
(``items[rank::size]``), so every rank computes the same split without talking to the others,
and a rerun with any number of ranks splits whatever is still missing.
"""

from __future__ import annotations

import os
import sys
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

    def rows(self, batch):
        """This rank's rows of a global batch, by the same rule as ``shard``: a tensor, or an object
        whose ``select(index)`` takes rows (a distiller's Conditioning); the whole batch in one process."""
        if isinstance(batch, torch.Tensor):
            return batch[self.rank :: self.size].contiguous()
        return batch.select(slice(self.rank, None, self.size))

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

    def average_(self, tensors: Sequence[torch.Tensor], bucket_numel: int = 1 << 25) -> None:
        """Replace each tensor, in place, by its mean over the ranks (data-parallel gradients).

        Tensors are flattened into buckets of one dtype (at most ``bucket_numel`` elements, as
        DDP buckets them) so a step costs a few collectives, not one per parameter. Every rank
        must pass tensors of the same shapes in the same order."""
        if not self.distributed or not tensors:
            return
        buckets: list[list[torch.Tensor]] = []
        for t in tensors:
            last = buckets[-1] if buckets else None
            if last and last[0].dtype == t.dtype and last[0].device == t.device and \
                    sum(x.numel() for x in last) + t.numel() <= bucket_numel:
                last.append(t)
            else:
                buckets.append([t])
        for bucket in buckets:
            flat = torch.cat([t.reshape(-1) for t in bucket])
            torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
            flat /= self.size
            offset = 0
            for t in bucket:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each value over the ranks (every rank must pass the same keys)."""
        if not self.distributed or not values:
            return dict(values)
        keys = sorted(values)
        box = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self._collective_device())
        torch.distributed.all_reduce(box, op=torch.distributed.ReduceOp.SUM)
        means = (box / self.size).tolist()
        return {k: means[keys.index(k)] for k in values}

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank (keeps data-dependent branches in step)."""
        if not self.distributed:
            return bool(flag)
        box = torch.tensor([1.0 if flag else 0.0], device=self._collective_device())
        torch.distributed.all_reduce(box, op=torch.distributed.ReduceOp.MAX)
        return bool(box.item() > 0)

    @staticmethod
    def _collective_device() -> torch.device:
        """Where small collective tensors live: nccl only reduces CUDA tensors, gloo CPU ones."""
        if torch.distributed.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

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


def finish() -> None:
    """End this rank's part in step with the others: a barrier, then the process group is torn down.

    Without it the ranks exit at different moments (rank 0 still writes the manifest and frees the
    lock) and gloo's connection threads can abort the early rank at exit ("terminate called without
    an active exception", SIGABRT), which fails the launch although every result was written."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    dist.barrier()
    dist.destroy_process_group()
