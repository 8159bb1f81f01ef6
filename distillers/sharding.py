"""FSDP2 sharding of the trained teacher copies, and the checkpoint I/O that has to go through it.

``--fsdp`` (two or more processes) shards the networks that are copies of the teacher and trained
(student, fake score, discriminator backbone) with ``fully_shard``, one unit per UNet block plus
the root, and the EMA the same way. Checkpoints hold full, unsharded state either way (so a
checkpoint is the same file with or without FSDP): :class:`Sharding` gathers networks and
optimizer state whole onto rank 0 to save, and cuts them back into this rank's shards to load.
Without ``--fsdp`` it is empty and every call is the plain ``state_dict`` / ``load_state_dict``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from benchkit.core.distributed import World


def shard_network(net: nn.Module, mesh) -> list[str]:
    """FSDP2 units: each UNet down/mid/up block (or transformer block), then the root for the rest."""
    from torch.distributed.fsdp import fully_shard

    units = []
    # FLUX: both stacks; Wan's transformer names its stack ``blocks``
    for group in ("down_blocks", "up_blocks", "transformer_blocks", "single_transformer_blocks", "blocks"):
        for i, block in enumerate(getattr(net, group, None) or []):
            fully_shard(block, mesh=mesh)
            units.append(f"{group}.{i}")
    if getattr(net, "mid_block", None) is not None:
        fully_shard(net.mid_block, mesh=mesh)
        units.append("mid_block")
    fully_shard(net, mesh=mesh)
    return units + ["(root)"]


def is_dtensor(t) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """torch's clip_grad_norm_, also for a mix of sharded (DTensor) and replicated gradients, which
    torch's refuses to combine: the total norm is that of both groups' norms."""
    grads = [p.grad for p in params if p.grad is not None]
    sharded = [g for g in grads if is_dtensor(g)]
    if not sharded:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    plain = [g for g in grads if not is_dtensor(g)]
    norms = [torch.nn.utils.get_total_norm(sharded).full_tensor()]
    if plain:
        norms.append(torch.nn.utils.get_total_norm(plain))
    total = torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))
    coef = float(torch.clamp(max_norm / (total + 1e-6), max=1.0))
    with torch.no_grad():
        for g in grads:
            g.mul_(coef)
    return total


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A sharded model's full state on rank 0 (collective: every rank calls it; the others get {})."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
    )

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


class Sharding:
    """Which networks are sharded (``units``: network key -> its FSDP units; empty without
    --fsdp) and their checkpoint state, full on rank 0, sharded in memory."""

    def __init__(self, world: World):
        self.world = world
        self.units: dict[str, list[str]] = {}

    def shard(self, nets: dict[str, nn.Module], ema: nn.Module | None, teacher_type: type, device_type: str) -> None:
        """FSDP2 on every trained network of the teacher's type, and on the EMA (after every copy was taken)."""
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(device_type, (self.world.size,))
        for key, net in nets.items():
            if isinstance(net, teacher_type) and any(p.requires_grad for p in net.parameters()):
                self.units[key] = shard_network(net, mesh)
        if ema is not None:
            self.units["ema"] = shard_network(ema, mesh)

    # ----- networks
    def net_state(self, key: str, model: nn.Module) -> dict[str, torch.Tensor]:
        """One network's full state: gathered if ``key`` is sharded (collective), else its own."""
        return full_state(model) if key in self.units else getattr(model, "module", model).state_dict()

    def load_net(self, key: str, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Full ``state`` into one network: sharded from rank 0's copy if ``key`` is sharded (collective)."""
        if key in self.units:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
            )

            set_model_state_dict(model, state if self.world.is_main else {},
                                 options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        else:
            getattr(model, "module", model).load_state_dict(state)

    def gather_plain(self, model: nn.Module, architecture: nn.Module, device: torch.device) -> nn.Module | None:
        """Collective: the sharded ``model`` whole, as a plain float32 copy of ``architecture``, on rank 0 (None elsewhere)."""
        full = full_state(model)
        if not self.world.is_main:
            return None
        plain = copy.deepcopy(architecture).to(torch.float32)  # the unsharded architecture
        plain.load_state_dict(full)
        return plain.to(device).eval().requires_grad_(False)

    # ----- optimizers
    def optimizer_state(self, opt) -> dict[str, Any]:
        """The optimizer's state_dict; under --fsdp with every sharded tensor gathered whole (collective),
        so the file has the layout a one-process run writes (torch.distributed.checkpoint's
        get_optimizer_state_dict keys by parameter name instead, which a plain optimizer cannot load)."""
        if not self.units:
            return opt.state_dict()
        from torch.distributed.tensor import DTensor

        state = opt.state_dict()
        full = {}
        for idx in sorted(state["state"]):
            full[idx] = {k: (v.full_tensor().cpu() if isinstance(v, DTensor) else v) for k, v in state["state"][idx].items()}
        return {"state": full, "param_groups": state["param_groups"]}

    def load_optimizer_state(self, opt, state: dict[str, Any]) -> None:
        """The inverse: a saved full state loaded, its tensors cut into this rank's shards under --fsdp (collective)."""
        if not self.units:
            opt.load_state_dict(state)
            return
        from torch.distributed.tensor import DTensor, distribute_tensor

        params = [p for group in opt.param_groups for p in group["params"]]
        sharded = {}
        for idx in sorted(state["state"]):
            p = params[idx]
            sharded[idx] = {k: (distribute_tensor(v.to(p.device), p.device_mesh, p.placements)
                                if isinstance(p, DTensor) and torch.is_tensor(v) and v.shape == p.shape else v)
                            for k, v in state["state"][idx].items()}
        opt.load_state_dict({"state": sharded, "param_groups": state["param_groups"]})

    def record(self) -> dict[str, Any]:
        """What distill.json records about sharding."""
        if not self.units:
            return {"fsdp": False}
        return {"fsdp": True,
                "gradient_sync": "FSDP reduce-scatter (mean) for the sharded networks, all-reduce mean for the rest",
                "sharding": {"api": "torch.distributed.fsdp.fully_shard (FSDP2)", "mesh": [self.world.size],
                             "units": self.units}}
