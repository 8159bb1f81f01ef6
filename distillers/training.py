"""The training machinery every distiller shares.

- ``CommonConfig``: the fields all methods have (steps, batch, lr, LoRA, EMA, precision...).
- ``Distiller``: base class of the four methods. It owns the student (a trainable copy of the
  teacher, or the teacher plus a peft LoRA), the optimizers, gradient accumulation and
  clipping through ``accelerate``, the student's sampler and DMD2-style backward simulation.
- ``Trainer``: the loop. Every random draw of step ``k`` comes from a generator seeded with
  (seed, k), so a run resumed from a checkpoint takes exactly the step it would have taken;
  checkpoints are safetensors files with a JSON header (never pickles), written atomically; a
  mini-evaluation (toy FID/alignment through benchkit's metrics) runs every ``eval_every`` steps;
  progress is a rich bar and a log file.

Data parallel (``torchrun`` / ``accelerate launch``): ``cfg.batch_size`` is the *global* batch.
Every rank makes each of step k's draws for the whole global batch from the same seeded
generator, exactly as one process would, and keeps the rows ``[rank::size]`` (``Distiller.randn``
/ ``randint`` / ``rand`` and ``RankData``); gradients are averaged over the ranks before every
optimizer step, so an update equals the one-process update on the same global batch up to
float summation order. Only rank 0 writes checkpoints, logs and outputs.

``fsdp=True`` (``--fsdp``, two or more processes) also shards the networks that are copies of the
teacher and trained (student, fake score, discriminator backbone) with FSDP2 ``fully_shard``, one
unit per UNet block plus the root; every copy (EMA, fake score init) is taken before sharding, the
EMA is sharded the same way and updated shard by shard, FSDP reduce-scatters the sharded gradients
(the small heads stay replicated and are all-reduced as before), and checkpoints hold full,
unsharded state, so a checkpoint is the same file with or without FSDP.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from benchkit.atomic import write_text_atomic
from benchkit.distributed import World
from benchkit.errors import BenchkitError
from distillers.adapter import Conditioning, Denoiser, trainable_copy
from distillers.data import DistillData

# Linear and conv layers of a diffusers UNet that DMD2's LoRA adapts (research notes, section 1).
UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                     "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]
SD3_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]


@dataclass
class CommonConfig:
    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-4
    lr_critic: float | None = None  # None: same as lr
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 0
    max_grad_norm: float = 10.0
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate)
    lora: bool = False
    lora_rank: int = 64
    lora_alpha: int = 8
    ema_decay: float = 0.0  # 0: export the raw student; else an EMA of it is exported
    seed: int = 0
    student_steps: int = 1  # how many steps the exported student is sampled with
    guidance: float = 1.75  # the teacher's classifier-free guidance scale (the real score's, for DMD)
    # Regression of the one-step student on teacher ODE pairs before the method's own objective:
    # DMD2's SDXL one-step recipe (train_sd_ode.py, LPIPS there; MSE here). 0 disables it.
    ode_pretrain_steps: int = 0
    ode_lr: float = 1e-4
    # Memory options, neither changes what is trained: recompute activations of the trainable
    # diffusers networks in the backward pass; keep the frozen teacher in bf16/fp16.
    gradient_checkpointing: bool = False
    teacher_dtype: str = "fp32"  # fp32 | bf16 | fp16
    # Shard the trained teacher copies over the processes (FSDP2) instead of replicating them.
    fsdp: bool = False

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any], source: str = "--set"):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, raw in overrides.items():
            key = key.replace("-", "_")
            if key not in fields:
                raise BenchkitError(f"{source}: {cls.__name__} has no field '{key}'; fields: {', '.join(sorted(fields))}")
            default = getattr(cls(), key)
            kwargs[key] = _coerce(raw, default, f"{source} {key}")
        return cls(**kwargs)


def _coerce(raw: Any, default: Any, where: str) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if default is None:  # optional numbers: int if it reads as one, else float, else the string
            for kind in (int, float):
                try:
                    return kind(raw)
                except ValueError:
                    pass
            return raw
        if isinstance(default, tuple):
            return tuple(type(default[0])(v) for v in raw.split(","))
    except ValueError:
        raise BenchkitError(f"{where}: cannot read {raw!r} as {type(default).__name__}") from None
    return raw


# Config fields that say how to run, not what is trained: a resume may change them.
RUN_ONLY_FIELDS = ("steps", "gradient_checkpointing", "teacher_dtype", "fsdp")
# Methods whose networks are all built at construction (so every copy is taken before sharding).
# Lightning copies the student at a phase change, after sharding; Hyper-SD is untested under FSDP.
FSDP_METHODS = ("dmd2", "adm")
TEACHER_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def trailing_timesteps(n: int, T: int = 1000, first: int | None = None) -> list[int]:
    """The trailing grid few-step recipes use: 4 -> [999, 749, 499, 249]; ``first`` overrides t0 for 1 step."""
    grid = [T - 1 - i * (T // n) for i in range(n)]
    if first is not None and n == 1:
        grid = [first]
    return grid


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
    targets = UNET_LORA_TARGETS if type(base).__name__ == "UNet2DConditionModel" else SD3_LORA_TARGETS
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


class Distiller:
    """Base class: builds the student and provides the shared update/sampling helpers.

    Subclasses set ``name`` and ``Config``, build their extra networks in ``setup()``, and
    implement ``train_step(step, gen) -> dict of floats`` and ``recipe() -> dict``.
    """

    name = ""
    Config = CommonConfig

    def __init__(self, teacher: Denoiser, data: DistillData, config: CommonConfig, accelerator=None,
                 world: World | None = None):
        from accelerate import Accelerator

        self.world = world or World()
        if config.teacher_dtype not in TEACHER_DTYPES:
            raise BenchkitError(f"--teacher-dtype {config.teacher_dtype}: choose one of {', '.join(TEACHER_DTYPES)}")
        if config.batch_size % self.world.size:
            raise BenchkitError(f"--batch-size {config.batch_size} is the global batch and must split evenly over "
                                f"{self.world.size} processes; pass a multiple of {self.world.size}")
        self.teacher = teacher
        # ``global_cfg`` is what was asked for (checkpoints, provenance); inside the methods
        # ``cfg.batch_size`` is this rank's share, and every draw is made for the global batch.
        self.global_cfg = config
        self.cfg = dataclasses.replace(config, batch_size=config.batch_size // self.world.size)
        self.data = RankData(data, self.world) if self.world.distributed else data
        self.acc = accelerator or Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available())
        self.device = self.acc.device
        self.T = teacher.schedule.T
        self.teacher.model.to(self.device)
        student = trainable_copy(teacher.model)
        if config.lora:
            student.requires_grad_(False)
            with torch.random.fork_rng(devices=[]):  # the LoRA's gaussian init: the same on every rank
                torch.manual_seed(config.seed)
                add_lora(student, config.lora_rank, config.lora_alpha)
        self.student = teacher.with_model(student.to(self.device))
        self.nets: dict[str, nn.Module] = {"student": self.student.model}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.lr_scheds: dict[str, Any] = {}
        self.ema: EMA | None = EMA(self.student.model, config.ema_decay) if config.ema_decay > 0 else None
        self.stage_state: dict[str, Any] = {}
        with torch.random.fork_rng(devices=[]):  # new heads are initialised from the seed alone
            torch.manual_seed(config.seed)
            self.setup()
        # After setup(): the trainable copies (student, fake score) were taken in float32 first.
        self.teacher.model.to(TEACHER_DTYPES[config.teacher_dtype])
        if config.gradient_checkpointing:
            self.enable_gradient_checkpointing()
        self.sharding: dict[str, list[str]] = {}  # network -> its FSDP units; empty without --fsdp
        self._export_model: nn.Module | None = None
        if config.fsdp:
            self.shard_networks()

    # ----- FSDP
    def shard_networks(self) -> None:
        """FSDP2 on every trained copy of the teacher (and the EMA), after all copies were taken;
        the optimizers are rebuilt on the sharded parameters (same order, so the same state layout)."""
        from torch.distributed.device_mesh import init_device_mesh

        if not self.world.distributed:
            raise BenchkitError("--fsdp shards networks over processes: launch with torchrun --nproc-per-node N (N >= 2), or drop --fsdp")
        if self.global_cfg.lora:
            raise BenchkitError("--fsdp with --lora is not supported (the LoRA is small: train it data-parallel without --fsdp)")
        if self.name not in FSDP_METHODS:
            raise BenchkitError(f"--fsdp is supported for {', '.join(FSDP_METHODS)}, not {self.name} (it copies networks after "
                                "sharding); run it data-parallel without --fsdp")
        self.check_networks_agree()  # sharding keeps each rank's slice of its own copy: they must be equal first
        mesh = init_device_mesh(self.device.type, (self.world.size,))
        teacher_type = type(self.teacher.model)
        for key, net in self.nets.items():
            if isinstance(net, teacher_type) and any(p.requires_grad for p in net.parameters()):
                self.sharding[key] = shard_network(net, mesh)
        if self.ema is not None:
            self.sharding["ema"] = shard_network(self.ema.model, mesh)
        for name, (modules, lr, betas, weight_decay) in list(self._opt_args.items()):
            self.add_optimizer(name, modules, lr, betas, weight_decay)

    def check_networks_agree(self, skip: tuple[str, ...] = ()) -> None:
        """Every rank must start from the same weights (the same checkpoint or the same seeded init);
        a cheap fingerprint per network, compared across ranks, says so."""
        if not self.world.distributed:
            return
        prints = {}
        with torch.no_grad():
            for key, net in self.nets.items():
                if key not in skip:
                    params = [p.detach().double() for p in net.parameters()]
                    prints[key] = [float(sum(p.sum() for p in params)), float(sum(p.abs().sum() for p in params))]
        gathered = self.world.gather(prints)
        if any(g != gathered[0] for g in gathered):
            raise BenchkitError(f"the {self.world.size} processes built different networks "
                                f"({', '.join(k for k in prints if any(g[k] != gathered[0][k] for g in gathered))}); "
                                "check that every rank sees the same teacher, --init and checkpoint")

    def fsdp_record(self) -> dict[str, Any]:
        """What distill.json records about sharding."""
        if not self.sharding:
            return {"fsdp": False}
        return {"fsdp": True,
                "gradient_sync": "FSDP reduce-scatter (mean) for the sharded networks, all-reduce mean for the rest",
                "sharding": {"api": "torch.distributed.fsdp.fully_shard (FSDP2)", "mesh": [self.world.size],
                             "units": self.sharding}}

    def _full_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """A sharded model's full state on rank 0 (collective: every rank calls it; the others get {})."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def _load_full_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Rank 0's full state, broadcast and sharded into ``model`` (collective)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state if self.world.is_main else {},
                             options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))

    def _optimizer_state(self, opt) -> dict[str, Any]:
        """The optimizer's state_dict with every sharded tensor gathered whole (collective), so the
        file has the layout a one-process run writes; torch.distributed.checkpoint's
        get_optimizer_state_dict keys by parameter name instead, which a plain optimizer cannot load."""
        from torch.distributed.tensor import DTensor

        state = opt.state_dict()
        full = {}
        for idx in sorted(state["state"]):
            full[idx] = {k: (v.full_tensor().cpu() if isinstance(v, DTensor) else v) for k, v in state["state"][idx].items()}
        return {"state": full, "param_groups": state["param_groups"]}

    def _shard_optimizer_state(self, opt, state: dict[str, Any]) -> dict[str, Any]:
        """The inverse: full tensors of a saved optimizer state cut into this rank's shards (collective)."""
        from torch.distributed.tensor import DTensor, distribute_tensor

        params = [p for group in opt.param_groups for p in group["params"]]
        sharded = {}
        for idx in sorted(state["state"]):
            p = params[idx]
            sharded[idx] = {k: (distribute_tensor(v.to(p.device), p.device_mesh, p.placements)
                                if isinstance(p, DTensor) and torch.is_tensor(v) and v.shape == p.shape else v)
                            for k, v in state["state"][idx].items()}
        return {"state": sharded, "param_groups": state["param_groups"]}

    def gather_export(self) -> None:
        """Collective: the exported network (EMA or student) gathered whole into a plain module on rank 0."""
        if not self.sharding:
            return
        full = self._full_state(self.ema.model if self.ema is not None else self.student.model)
        if self.world.is_main:
            plain = copy.deepcopy(self.teacher.model).to(torch.float32)  # the unsharded architecture
            plain.load_state_dict(full)
            self._export_model = plain.to(self.device).eval().requires_grad_(False)

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

    def init_student(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Start from another student's weights (e.g. an ODE-regression student, as DMD2's one-step
        SDXL model does); EMA copies and consistency targets start from them too."""
        base = getattr(self.student.model, "module", self.student.model)
        if getattr(base, "peft_config", None):
            raise BenchkitError("--init cannot be combined with --lora; merge first or train the full student")
        self._load_net("student", base, state_dict)
        for key, copy_ in (("ema", self.ema), ("target", getattr(self, "target", None))):
            if copy_ is not None:
                self._load_net(key, copy_.model, state_dict)
        self.on_init_student(state_dict)

    def on_init_student(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Refresh copies a method took of the student at construction."""

    # ----- subclass API
    def step(self, step: int, gen: torch.Generator) -> dict[str, float]:
        """What the Trainer calls: ODE pre-training steps first, then the method's steps."""
        if step < self.cfg.ode_pretrain_steps:
            return self.ode_regression_step(gen)
        return self.train_step(step - self.cfg.ode_pretrain_steps, gen)

    def method_steps(self) -> int:
        return max(1, self.cfg.steps - self.cfg.ode_pretrain_steps)

    def ode_regression_step(self, gen: torch.Generator) -> dict[str, float]:
        t0 = float(self.sampler_timesteps()[0])

        def loss_fn(_micro):
            noise, x0, cond = self.data.sample_pairs(self.cfg.batch_size, gen)
            x0_hat = self.student(noise.to(self.device), t0, cond).x0
            loss = nn.functional.mse_loss(x0_hat.float(), x0.to(self.device).float())
            return loss, finite_logs(loss_ode=loss)

        for group in self.opts["student"].param_groups:  # the LR scheduler restores the method's lr after the step
            group["lr"] = self.cfg.ode_lr
        return self.optimize("student", loss_fn)

    def setup(self) -> None:
        self.add_optimizer("student", [self.student.model], self.cfg.lr)

    def train_step(self, step: int, gen: torch.Generator) -> dict[str, float]:
        raise NotImplementedError

    def recipe(self) -> dict[str, Any]:
        raise NotImplementedError

    def sampler_timesteps(self) -> list[int]:
        return trailing_timesteps(self.cfg.student_steps, self.T)

    sampler_mode = "lcm"  # lcm: re-noise x0 with fresh noise (DMD2, ADM); ddim: deterministic (Hyper, Lightning)

    def export_denoiser(self) -> Denoiser:
        model = self.ema.model if self.ema is not None else self.student.model
        if self.sharding:
            if self._export_model is None:
                raise BenchkitError("--fsdp: the student is sharded; Trainer.run gathers it on rank 0 for export")
            model = self._export_model
        return self.student.with_model(model)

    # ----- shared helpers
    def add_optimizer(self, name: str, modules: list[nn.Module], lr: float, betas=None, weight_decay=None) -> None:
        from diffusers.optimization import get_constant_schedule_with_warmup

        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, betas=betas or self.cfg.adam_betas,
                                weight_decay=self.cfg.weight_decay if weight_decay is None else weight_decay)
        opt = self.acc.prepare_optimizer(opt, device_placement=False) if self.acc.num_processes > 1 else opt
        self.opts[name] = opt
        self.lr_scheds[name] = get_constant_schedule_with_warmup(opt, self.cfg.warmup_steps)
        self._params = getattr(self, "_params", {})
        self._params[name] = params
        self._opt_args = getattr(self, "_opt_args", {})
        self._opt_args[name] = (modules, lr, betas, weight_decay)  # rebuilt on sharded parameters under --fsdp

    # Every per-sample draw goes through these three: ``shape[0]`` / ``n`` is this rank's share;
    # the draw is made for the global batch and this rank's rows kept (all of them in one process).
    def randn(self, shape, gen: torch.Generator) -> torch.Tensor:
        return self.world.rows(torch.randn((shape[0] * self.world.size, *shape[1:]), generator=gen)).to(self.device)

    def randint(self, low: int, high: int, n: int, gen: torch.Generator) -> torch.Tensor:
        """Integers in [low, high)."""
        return self.world.rows(torch.randint(low, high, (n * self.world.size,), generator=gen)).to(self.device)

    def rand(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """Uniform float64 in [0, 1)."""
        return self.world.rows(torch.rand(n * self.world.size, generator=gen, dtype=torch.float64)).to(self.device)

    def any_rank(self, flag: bool) -> bool:
        """A data-dependent branch taken when any rank's rows need it, as the one process would
        (its draws must then happen on every rank, or the ranks' generators drift apart)."""
        return self.world.any(flag)

    def optimize(self, name: str, loss_fn: Callable[[int], tuple[torch.Tensor, dict[str, float]]]) -> dict[str, float]:
        """Gradient accumulation over ``grad_accum`` micro-batches, clip, step, zero every optimizer
        (a generator loss also reaches critic parameters, as in DMD2's loop).

        Several processes: the gradients of the stepped optimizer are averaged over the ranks
        here, by hand, rather than by wrapping networks in DDP (``Accelerator.prepare``): one
        network is run several times per backward (DMD2's fake score gives the DM term, the GAN
        features and its own loss), which DDP's reducer does not allow without ``static_graph``;
        which parameters get gradients changes turn by turn (``frozen()`` toggles
        ``requires_grad``, which DDP fixes when it wraps); the feature heads stop the forward
        early with an exception (heads.py), leaving parameters DDP would wait for; and the
        Denoiser wrappers and hooks hold the bare modules. The average of every rank's local
        mean gradient is DDP's result, with one bucketed all-reduce per optimizer step."""
        logs: dict[str, float] = {}
        bad: float | None = None
        for micro in range(self.cfg.grad_accum):
            with self.acc.autocast():
                loss, parts = loss_fn(micro)
            if not torch.isfinite(loss):
                if not self.world.distributed:
                    raise BenchkitError(f"{self.name}: {name} loss became {loss.item()} at this step; lower --lr or use --mixed-precision no")
                bad = loss.item()  # raised after the all-reduce below, on every rank, so none waits forever
            self.acc.backward(loss / self.cfg.grad_accum)
            for k, v in parts.items():
                logs[k] = logs.get(k, 0.0) + float(v) / self.cfg.grad_accum
        if self.world.distributed:
            # sharded gradients (DTensors) were already reduce-scattered (mean) by FSDP in backward
            grads = [p.grad for p in self._params[name] if p.grad is not None and not _is_dtensor(p.grad)]
            flag = torch.tensor([0.0 if bad is None else 1.0], device=grads[0].device if grads else self.device)
            self.world.average_(grads + [flag])
            if flag.item() > 0:
                raise BenchkitError(f"{self.name}: {name} loss became {bad if bad is not None else 'non-finite on another rank'} "
                                    "at this step; lower --lr or use --mixed-precision no")
        if self.cfg.max_grad_norm:
            clip_grad_norm(self._params[name], self.cfg.max_grad_norm)
        self.opts[name].step()
        self.lr_scheds[name].step()
        for opt in self.opts.values():
            opt.zero_grad(set_to_none=True)
        if name == "student" and self.ema is not None:
            self.ema.update(self.student.model)
        return logs

    def frozen(self, *modules: nn.Module):
        return _Frozen(modules)

    def generate(self, denoiser: Denoiser, noise: torch.Tensor, cond: Conditioning, timesteps: list[int],
                 mode: str, gen: torch.Generator | None) -> torch.Tensor:
        """Sample with a few-step denoiser from pure noise labelled ``timesteps[0]``."""
        x = noise
        for i, t in enumerate(timesteps):
            pred = denoiser(x, float(t), cond)
            if i == len(timesteps) - 1:
                return pred.x0
            eps = pred.eps if mode == "ddim" else self.randn(x.shape, gen)
            x = denoiser.conv.noised(pred.x0, eps, float(timesteps[i + 1]))
        return x

    def backward_simulation(self, cond: Conditioning, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """DMD2's generator input for a multi-step student: run the student k ~ U{0..n-1} steps
        (no grad), re-noise its x0 with fresh noise uncorrelated with the start (DMD2 issue #9)."""
        grid = self.sampler_timesteps()
        n = len(cond)
        noise = self.randn((n, *self.data.shape), gen)
        k = int(torch.randint(0, len(grid), (1,), generator=gen))
        if k == 0:
            return noise, torch.full((n,), float(grid[0]), device=self.device)
        with torch.no_grad():
            x = noise
            for j in range(k):
                x0 = self.student(x, float(grid[j]), cond).x0
                if j < k - 1:
                    x = self.student.conv.noised(x0, self.randn(x.shape, gen), float(grid[j + 1]))
        t = torch.full((n,), float(grid[k]), device=self.device)
        return self.student.conv.noised(x0, self.randn(x0.shape, gen), t), t

    # ----- checkpoint state
    def state_dict(self) -> dict[str, Any]:
        """Full, unsharded state; under --fsdp a collective (every rank calls it, rank 0 gets it all)."""
        return {
            "nets": {k: self._net_state(k, m) for k, m in self.nets.items()},
            "opts": {k: self._optimizer_state(o) if self.sharding else o.state_dict() for k, o in self.opts.items()},
            "lr_scheds": {k: s.state_dict() for k, s in self.lr_scheds.items()},
            "ema": None if self.ema is None else self._net_state("ema", self.ema.model),
            "stage_state": self.stage_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage_state = state.get("stage_state", {})
        self.on_restore()
        for k, m in self.nets.items():
            self._load_net(k, m, state["nets"][k])
        for k, o in self.opts.items():
            o.load_state_dict(self._shard_optimizer_state(o, state["opts"][k]) if self.sharding else state["opts"][k])
        for k, s in self.lr_scheds.items():
            s.load_state_dict(state["lr_scheds"][k])
        if self.ema is not None and state.get("ema") is not None:
            self._load_net("ema", self.ema.model, state["ema"])

    def _net_state(self, key: str, model: nn.Module) -> dict[str, torch.Tensor]:
        """One network's full state: gathered if ``key`` is sharded (collective), else its own."""
        return self._full_state(model) if key in self.sharding else getattr(model, "module", model).state_dict()

    def _load_net(self, key: str, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Full ``state`` into one network: sharded from rank 0's copy if ``key`` is sharded (collective)."""
        if key in self.sharding:
            self._load_full_state(model, state)
        else:
            getattr(model, "module", model).load_state_dict(state)

    def on_restore(self) -> None:
        """Rebuild stage-dependent networks/optimizers from ``stage_state`` before loading weights."""


def shard_network(net: nn.Module, mesh) -> list[str]:
    """FSDP2 units: each UNet down/mid/up block (or transformer block), then the root for the rest."""
    from torch.distributed.fsdp import fully_shard

    units = []
    for group in ("down_blocks", "up_blocks", "transformer_blocks"):
        for i, block in enumerate(getattr(net, group, None) or []):
            fully_shard(block, mesh=mesh)
            units.append(f"{group}.{i}")
    if getattr(net, "mid_block", None) is not None:
        fully_shard(net.mid_block, mesh=mesh)
        units.append("mid_block")
    fully_shard(net, mesh=mesh)
    return units + ["(root)"]


def _is_dtensor(t) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """torch's clip_grad_norm_, also for a mix of sharded (DTensor) and replicated gradients, which
    torch's refuses to combine: the total norm is that of both groups' norms."""
    grads = [p.grad for p in params if p.grad is not None]
    sharded = [g for g in grads if _is_dtensor(g)]
    if not sharded:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    plain = [g for g in grads if not _is_dtensor(g)]
    norms = [torch.nn.utils.get_total_norm(sharded).full_tensor()]
    if plain:
        norms.append(torch.nn.utils.get_total_norm(plain))
    total = torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))
    coef = float(torch.clamp(max_norm / (total + 1e-6), max=1.0))
    with torch.no_grad():
        for g in grads:
            g.mul_(coef)
    return total


class RankData:
    """A DistillData seen by one rank: each ``sample_*`` draws the global batch (``n`` times the
    world size) from the step's generator, exactly as one process does, and keeps this rank's
    rows ``[rank::size]``; everything else is the wrapped data's."""

    def __init__(self, data: DistillData, world: World):
        self.inner = data
        self.world = world

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (copy/unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def sample_cond(self, n: int, gen: torch.Generator) -> Conditioning:
        return self.world.rows(self.inner.sample_cond(n * self.world.size, gen))

    def sample_real(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, Conditioning]:
        return tuple(self.world.rows(v) for v in self.inner.sample_real(n * self.world.size, gen))

    def sample_pairs(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, Conditioning]:
        return tuple(self.world.rows(v) for v in self.inner.sample_pairs(n * self.world.size, gen))


class _Frozen:
    """Temporarily stop gradients into some modules (the critic during the generator's turn)."""

    def __init__(self, modules):
        self.modules = modules

    def __enter__(self):
        self.saved = [[p.requires_grad for p in m.parameters()] for m in self.modules]
        for m in self.modules:
            m.requires_grad_(False)

    def __exit__(self, *exc):
        for m, flags in zip(self.modules, self.saved):
            for p, f in zip(m.parameters(), flags):
                p.requires_grad_(f)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))


class Trainer:
    """Runs a Distiller for ``config.steps`` steps with checkpoints, resume, mini-eval and a log."""

    def __init__(self, distiller: Distiller, out_dir: Path, checkpoint_every: int = 200, eval_every: int = 0,
                 evaluator: Callable[[Distiller], dict[str, float]] | None = None, show_progress: bool = True):
        self.d = distiller
        self.world = distiller.world
        if distiller.sharding and evaluator is not None and eval_every:
            raise BenchkitError("--eval-every with --fsdp: the mini-evaluation runs the student on rank 0 alone, which a "
                                "sharded student cannot do; drop --eval-every (evaluate the exported student with benchkit eval)")
        self.out = Path(out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.checkpoint_every = checkpoint_every
        self.eval_every = eval_every
        self.evaluator = evaluator if self.world.is_main else None  # rank 0 evaluates; the others go on
        self.show_progress = show_progress and self.world.is_main
        self.log_path = self.out / "train.log"
        self.losses_path = self.out / "losses.jsonl"  # every step's losses (the ranks' mean): the loss curve
        self.history: list[dict[str, Any]] = []

    def latest_checkpoint(self) -> Path | None:
        path = self.ckpt_dir / CHECKPOINT
        if path.exists():
            return path
        legacy = self.ckpt_dir / LEGACY_CHECKPOINT
        if legacy.exists():  # never unpickled: a pickle can run code when loaded
            raise BenchkitError(f"{legacy} is a checkpoint in the old pickle format, which is not safe to load and is not "
                                f"read any more; start again with a new --out (or delete {self.ckpt_dir} to restart this run)")
        return None

    def save_checkpoint(self, step: int) -> Path:
        """Rank 0 writes; every rank holds the same state (same updates), so one file serves all.
        Under --fsdp every rank takes part in gathering the full state first."""
        distiller_state = self.d.state_dict() if self.d.sharding else None
        path = self.ckpt_dir / CHECKPOINT
        if not self.world.is_main:
            return path
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        state = {"step": step, "method": self.d.name, "config": dataclasses.asdict(self.d.global_cfg),
                 "distiller": distiller_state or self.d.state_dict(), "history": self.history, "world_size": self.world.size}
        write_checkpoint(path, state)
        return path

    def resume(self) -> int:
        path = self.latest_checkpoint()
        if path is None:
            return 0
        # accelerate names a CPU rank's device "cpu:<rank>"; tensors are read on the CPU and moved
        where = "cpu" if self.d.device.type == "cpu" else self.d.device
        state = read_checkpoint(path, where)
        config = state.get("config")
        if (state.get("method") != self.d.name or not isinstance(config, dict)
                or _comparable(config) != _comparable(dataclasses.asdict(self.d.global_cfg))):
            raise BenchkitError(f"{path} was written by a different method or config; use a new --out or delete {self.ckpt_dir}")
        try:
            self.d.load_state_dict(state["distiller"])
            step = int(state["step"])
        except torch.cuda.OutOfMemoryError:  # a RuntimeError, but not a mismatch
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a state of other shapes or layout
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise BenchkitError(f"{path} does not fit this run's networks ({first}); use a new --out or delete {self.ckpt_dir}") from None
        self.history = state.get("history", [])
        return step

    def log(self, line: str) -> None:
        if not self.world.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + line + "\n")

    def _start_losses(self, start: int) -> None:
        """Keep the curve up to the checkpoint resumed from: steps a killed run took after it are redone."""
        if not self.world.is_main:
            return
        rows = self.losses_path.read_text().splitlines() if self.losses_path.exists() else []
        kept = [r for r in rows if r.strip() and json.loads(r)["step"] <= start]
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.losses_path, "".join(r + "\n" for r in kept))

    def _record_losses(self, step: int, logs: dict[str, float]) -> None:
        if self.world.is_main:
            with open(self.losses_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, **logs}) + "\n")

    def check_ranks_agree(self) -> None:
        """Every rank must start from the same weights, checked before any step (sharded networks
        were checked before sharding, and a resume broadcasts rank 0's)."""
        self.d.check_networks_agree(skip=tuple(self.d.sharding))

    def run(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train to ``config.steps`` (or only ``stop_after`` more steps, for tests); returns the last logs."""
        from benchkit.progress import progress_bar

        start = self.resume()
        self.check_ranks_agree()
        self._start_losses(start)
        total = self.d.cfg.steps
        end = total if stop_after is None else min(total, start + stop_after)
        world = (f" on {self.world.size} processes, {self.d.cfg.batch_size} of the global batch "
                 f"{self.d.global_cfg.batch_size} each" if self.world.distributed else "")
        self.log(f"{'resume at' if start else 'start'} step {start} of {total}{world}: {self.d.name} "
                 f"{json.dumps(dataclasses.asdict(self.d.global_cfg))}")
        logs: dict[str, float] = {}
        smooth: dict[str, float] = {}
        with progress_bar(self.show_progress) as bar:
            task = bar.add_task(f"distill {self.d.name}", total=total, completed=start, info="")
            for step in range(start, end):
                logs = self.world.mean(self.d.step(step, step_generator(self.d.cfg.seed, step)))
                self._record_losses(step + 1, logs)
                for k, v in logs.items():
                    smooth[k] = v if k not in smooth else 0.95 * smooth[k] + 0.05 * v
                bar.update(task, completed=step + 1, info=" ".join(f"{k} {v:.3g}" for k, v in list(smooth.items())[:3]))
                if (step + 1) % 50 == 0 or step + 1 == end:
                    self.log(f"step {step + 1} " + " ".join(f"{k}={v:.5g}" for k, v in logs.items()))
                if self.evaluator and self.eval_every and ((step + 1) % self.eval_every == 0 or step + 1 == total):
                    scores = self.evaluator(self.d)
                    self.history.append({"step": step + 1, **scores})
                    self.log(f"eval step {step + 1} " + " ".join(f"{k}={v:.4g}" for k, v in scores.items()))
                if self.checkpoint_every and ((step + 1) % self.checkpoint_every == 0 or step + 1 == end):
                    self.save_checkpoint(step + 1)
        if end == total:
            self.d.gather_export()  # under --fsdp: every rank helps rank 0 assemble the student it exports
        return {"step": end, "logs": logs, "history": self.history}


# ----- checkpoint files
# One safetensors file: the tensors, plus the rest of the state (step, config, optimizer
# hyper-parameters, history...) as JSON in its metadata header. Loading it reads data only;
# a pickle (torch.save) would run whatever code the file names. One file is also its own commit
# point: it is written under a temporary name and renamed into place.
CHECKPOINT = "latest.safetensors"
LEGACY_CHECKPOINT = "latest.pt"  # the old pickled format: refused, never loaded
CHECKPOINT_FORMAT = "benchkit-distill-checkpoint/1"
# JSON has no tensors, tuples (Adam's betas), int dict keys (optimizer state) or NaN: such values are tagged.
_TAGS = ("__tensor__", "__tuple__", "__items__", "__float__")


def _pack(obj: Any, where: str, tensors: dict[str, torch.Tensor], stored: dict[tuple, str], storages: set[int]) -> Any:
    """``obj`` as JSON, with each tensor put in ``tensors`` under its path and replaced by a reference."""
    if torch.is_tensor(obj):
        t = obj.detach()
        view = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype, str(t.device))
        if view in stored:  # the same tensor twice (tied weights): stored once, shared again on load
            return {"__tensor__": stored[view]}
        if view[0] and view[0] in storages:  # another view of a stored tensor's memory: safetensors wants a copy
            t = t.clone()
        storages.add(view[0])
        name = where if where not in tensors else f"{where}#{len(tensors)}"
        tensors[name] = t.cpu().contiguous()
        stored[view] = name
        return {"__tensor__": name}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, (list, tuple)):
        items = [_pack(v, f"{where}/{i}", tensors, stored, storages) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: _pack(v, f"{where}/{k}", tensors, stored, storages) for k, v in obj.items()}
        return {"__items__": [[_pack(k, f"{where}/key", tensors, stored, storages),
                               _pack(v, f"{where}/{k}", tensors, stored, storages)] for k, v in obj.items()]}
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # a numpy scalar in the history
        return _pack(obj.item(), where, tensors, stored, storages)
    raise TypeError(f"checkpoint state {where}: a {type(obj).__name__} is neither a tensor nor a JSON value")


def _unpack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1 and next(iter(obj)) in _TAGS:
            tag, value = next(iter(obj.items()))
            if tag == "__tensor__":
                return tensors[value]
            if tag == "__tuple__":
                return tuple(_unpack(v, tensors) for v in value)
            if tag == "__items__":
                return {_unpack(k, tensors): _unpack(v, tensors) for k, v in value}
            return float(value)
        return {k: _unpack(v, tensors) for k, v in obj.items()}
    return obj


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``state`` (tensors and JSON values) as one safetensors file, atomically: a kill leaves the old file or the new one."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from benchkit.atomic import atomic_target

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    header = _pack(state, "state", tensors, {}, set())
    metadata = {"format": CHECKPOINT_FORMAT, "state": json.dumps(header, allow_nan=False, separators=(",", ":"))}
    try:
        with atomic_target(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as exc:  # e.g. a full disk, as safetensors reports it
        raise BenchkitError(f"writing {path} failed ({str(exc).splitlines()[0][:200]}); check the free space of --out") from None


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """What ``write_checkpoint`` wrote, its tensors on ``device``; a damaged or foreign file is one line."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format {metadata.get('format')!r}, not {CHECKPOINT_FORMAT!r}")
            tensors = {k: f.get_tensor(k).to(device) for k in f.keys()}
        state = _unpack(json.loads(metadata["state"]), tensors)
        if not isinstance(state, dict):
            raise ValueError("the state is not a mapping")
        return state
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # a bad file, its JSON or its layout
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BenchkitError(f"{path} is damaged or not a benchkit distill checkpoint ({first}); use a new --out or "
                            f"delete {path.parent} to start over") from None


def _comparable(config: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k not in RUN_ONLY_FIELDS}


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()


def nonsat_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean()


def dm_loss(x0_hat: torch.Tensor, p_real: torch.Tensor, p_fake: torch.Tensor) -> torch.Tensor:
    """DMD's distribution-matching loss: its gradient w.r.t. x0_hat is (p_fake - p_real) normalised
    by mean |x0_hat - p_real| (DMD2 issue #68: an MSE to a detached target)."""
    with torch.no_grad():
        diff = (x0_hat - p_real).double()
        norm = diff.abs().mean(dim=tuple(range(1, diff.ndim)), keepdim=True).clamp_min(1e-8)
        grad = torch.nan_to_num(((p_fake - p_real).double() / norm)).to(x0_hat.dtype)
    return 0.5 * nn.functional.mse_loss(x0_hat.float(), (x0_hat - grad).detach().float())


def finite_logs(**losses: torch.Tensor | float) -> dict[str, float]:
    return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()}


def isfinite_all(values: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in values.values())
