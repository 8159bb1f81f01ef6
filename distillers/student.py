"""The student's state: the networks a distiller trains and exports.

The student is a trainable copy of the teacher, or the teacher plus a peft LoRA; an EMA of it
is what gets exported when ``ema_decay > 0``; ``nets`` names every trained network (the
methods add theirs: fake score, discriminator heads...), which is what checkpoints hold and
what the ranks must agree on. Kept apart from the loop so the methods and the sharding see one
place where networks live.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from benchkit.core.distributed import World
from benchkit.core.errors import BenchkitError
from distillers.adapter import Denoiser, trainable_copy
from distillers.config import CommonConfig

# Linear and conv layers of a diffusers UNet that DMD2's LoRA adapts (research notes, section 1).
UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                     "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]
SD3_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
# FLUX's double- and single-stream blocks: SD3's attention projections plus the single blocks' MLP and
# output projections and the feed-forwards (the targets of Hyper-SD's and Turbo-Alpha's FLUX LoRAs)
FLUX_LORA_TARGETS = SD3_LORA_TARGETS + ["proj_mlp", "proj_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
                                        "ff_context.net.2"]

# Wan's self- and cross-attention projections (add_k/v_proj: image-to-video's image branch) and feed-forward,
# as the family's lora_targets (lightx2v's step-distill LoRAs)
WAN_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_k_proj", "add_v_proj", "ffn.net.0.proj", "ffn.net.2"]

TEACHER_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class EMA:
    """An exponential moving average of a module, kept as a module so it can be called
    (Hyper-SD's consistency target runs it). diffusers' EMAModel keeps a parameter list, not
    a callable network, hence this small class."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        from torch.distributed.tensor import DTensor

        for e, p in zip(self.model.parameters(), model.parameters()):
            if isinstance(e, DTensor):  # sharded like the student: each rank averages its own shard
                e.to_local().lerp_(p.detach().to_local().to(e.dtype), 1 - self.decay)
            else:
                e.lerp_(p.detach().to(e.dtype), 1 - self.decay)


def add_lora(model: nn.Module, rank: int, alpha: int) -> nn.Module:
    """A peft LoRA on the model (base weights frozen); rank 64 / alpha 8 is DMD2's and Lightning's."""
    from peft import LoraConfig

    base = getattr(model, "module", model)
    targets = {"UNet2DConditionModel": UNET_LORA_TARGETS, "FluxTransformer2DModel": FLUX_LORA_TARGETS,
               "WanTransformer3DModel": WAN_LORA_TARGETS}.get(
        type(base).__name__, SD3_LORA_TARGETS)
    names = {n.split(".")[-1] for n, _ in base.named_modules()}
    present = [t for t in targets if t.split(".")[-1] in names or "." in t]
    base.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=present))
    return model


def merged_copy(model: nn.Module) -> nn.Module:
    """A plain model with any LoRA fused in, for export."""
    m = copy.deepcopy(getattr(model, "module", model))
    if getattr(m, "peft_config", None):
        m.fuse_lora()
        m.unload_lora()
    return m.eval().requires_grad_(False)


class StudentState:
    """The student Denoiser, its EMA and ``nets`` (every trained network by name).

    Built before the method's own networks, in float32 on ``device``; the LoRA's gaussian init
    is seeded from the config alone so that every rank draws the same one.
    """

    def __init__(self, teacher: Denoiser, config: CommonConfig, device: torch.device):
        self.teacher = teacher
        self.teacher.model.to(device)
        student = trainable_copy(teacher.model)
        if config.lora:
            student.requires_grad_(False)
            with torch.random.fork_rng(devices=[]):  # the LoRA's gaussian init: the same on every rank
                torch.manual_seed(config.seed)
                add_lora(student, config.lora_rank, config.lora_alpha)
        self.student = teacher.with_model(student.to(device))
        self.nets: dict[str, nn.Module] = {"student": self.student.model}
        self.ema: EMA | None = EMA(self.student.model, config.ema_decay) if config.ema_decay > 0 else None

    @property
    def has_lora(self) -> bool:
        return bool(getattr(getattr(self.student.model, "module", self.student.model), "peft_config", None))

    def exported_model(self) -> nn.Module:
        """What is exported: the EMA if there is one, else the student."""
        return self.ema.model if self.ema is not None else self.student.model

    def cast_teacher(self, teacher_dtype: str) -> None:
        """The frozen teacher to its training precision, once every trainable copy was taken in float32."""
        self.teacher.model.to(TEACHER_DTYPES[teacher_dtype])

    def enable_gradient_checkpointing(self) -> list[str]:
        """diffusers' activation recomputation on every trainable network that supports it."""
        done = []
        for key, net in self.nets.items():
            base = getattr(net, "module", net)
            if getattr(base, "_supports_gradient_checkpointing", False):
                base.enable_gradient_checkpointing()
                done.append(key)
        if not done:
            raise BenchkitError(f"--gradient-checkpointing: none of {', '.join(self.nets)} supports it (diffusers models do)")
        return done

    def check_ranks_agree(self, world: World, skip: tuple[str, ...] = ()) -> None:
        """Every rank must start from the same weights (the same checkpoint or the same seeded init);
        a cheap fingerprint per network, compared across ranks, says so."""
        if not world.distributed:
            return
        prints = {}
        with torch.no_grad():
            for key, net in self.nets.items():
                if key not in skip:
                    params = [p.detach().double() for p in net.parameters()]
                    prints[key] = [float(sum(p.sum() for p in params)), float(sum(p.abs().sum() for p in params))]
        gathered = world.gather(prints)
        if any(g != gathered[0] for g in gathered):
            raise BenchkitError(f"the {world.size} processes built different networks "
                                f"({', '.join(k for k in prints if any(g[k] != gathered[0][k] for g in gathered))}); "
                                "check that every rank sees the same teacher, --init and checkpoint")
