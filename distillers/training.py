"""The training loop every distiller shares.

- ``Distiller``: base class of the methods (each registers itself, ``distillers.methods``). It
  composes the student's networks (``distillers.student``) and their sharding
  (``distillers.sharding``), and owns what happens in a step: the optimizers, gradient
  accumulation and clipping through ``accelerate``, the seeded per-sample draws, the student's
  sampler and DMD2-style backward simulation; the methods fill in the hooks (``setup``,
  ``train_step``, ``recipe``, ``on_restore``, ``on_init_student``).
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
float summation order. Only rank 0 writes checkpoints, logs and outputs. ``fsdp=True`` shards
the trained teacher copies instead of replicating them (``distillers.sharding``); every copy
(EMA, fake score init) is taken before sharding, so only methods that build all their networks
at construction declare ``supports_fsdp``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from benchkit.core.atomic import write_text_atomic
from benchkit.core.distributed import World
from benchkit.core.errors import BenchkitError
from distillers.adapter import Conditioning, Denoiser, trainable_copy  # noqa: F401 (trainable_copy: the methods' import)
from distillers.checkpoints import (  # noqa: F401 (re-exported)
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    LEGACY_CHECKPOINT,
    read_checkpoint,
    write_checkpoint,
)
from distillers.config import RUN_ONLY_FIELDS, CommonConfig
from distillers.data import DistillData
from distillers.methods import method_names
from distillers.sharding import Sharding, clip_grad_norm, is_dtensor, shard_network  # noqa: F401 (re-exported)
from distillers.student import (  # noqa: F401
    EMA,
    SD3_LORA_TARGETS,
    TEACHER_DTYPES,
    UNET_LORA_TARGETS,
    StudentState,
    add_lora,
    merged_copy,
)


def trailing_timesteps(n: int, T: int = 1000, first: int | None = None) -> list[int]:
    """The trailing grid few-step recipes use: 4 -> [999, 749, 499, 249]; ``first`` overrides t0 for 1 step."""
    grid = [T - 1 - i * (T // n) for i in range(n)]
    if first is not None and n == 1:
        grid = [first]
    return grid


class Distiller:
    """Base class: the student, the update and sampling helpers, checkpoint state; the methods fill the hooks.

    Subclasses are registered with ``@register_method(name, ...)`` (which sets ``name`` and
    ``supports_fsdp``), set ``Config``, build their extra networks in ``setup()``, and implement
    ``train_step(step, gen) -> dict of floats`` and ``recipe() -> dict``.
    """

    name = ""
    Config = CommonConfig
    supports_fsdp = False  # declared at registration (distillers.methods)
    sampler_mode = "lcm"  # lcm: re-noise x0 with fresh noise (DMD2, ADM); ddim: deterministic (Hyper, Lightning)

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
        self.students = StudentState(teacher, config, self.device)
        self.shards = Sharding(self.world)  # empty without --fsdp
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.lr_scheds: dict[str, Any] = {}
        self._params: dict[str, list[nn.Parameter]] = {}
        self._opt_args: dict[str, tuple] = {}  # rebuilt on sharded parameters under --fsdp
        self.stage_state: dict[str, Any] = {}
        with torch.random.fork_rng(devices=[]):  # new heads are initialised from the seed alone
            torch.manual_seed(config.seed)
            self.setup()
        # After setup(): the trainable copies (student, fake score) were taken in float32 first.
        self.students.cast_teacher(config.teacher_dtype)
        if config.gradient_checkpointing:
            self.enable_gradient_checkpointing()
        self._export_model: nn.Module | None = None
        if config.fsdp:
            self.shard_networks()

    # ----- the student's state (distillers.student): the methods use these names
    @property
    def student(self) -> Denoiser:
        return self.students.student

    @student.setter
    def student(self, denoiser: Denoiser) -> None:  # e.g. Lightning's switch to x0 prediction
        self.students.student = denoiser

    @property
    def nets(self) -> dict[str, nn.Module]:
        """Every trained network by name (the methods add theirs in ``setup``)."""
        return self.students.nets

    @property
    def ema(self) -> EMA | None:
        return self.students.ema

    @property
    def sharding(self) -> dict[str, list[str]]:
        """Network -> its FSDP units; empty without --fsdp."""
        return self.shards.units

    def enable_gradient_checkpointing(self) -> list[str]:
        return self.students.enable_gradient_checkpointing()

    def check_networks_agree(self, skip: tuple[str, ...] = ()) -> None:
        self.students.check_ranks_agree(self.world, skip)

    # ----- FSDP (distillers.sharding)
    def shard_networks(self) -> None:
        """FSDP2 on every trained copy of the teacher (and the EMA), after all copies were taken;
        the optimizers are rebuilt on the sharded parameters (same order, so the same state layout)."""
        if not self.world.distributed:
            raise BenchkitError("--fsdp shards networks over processes: launch with torchrun --nproc-per-node N (N >= 2), or drop --fsdp")
        if self.global_cfg.lora:
            raise BenchkitError("--fsdp with --lora is not supported (the LoRA is small: train it data-parallel without --fsdp)")
        if not self.supports_fsdp:
            raise BenchkitError(f"--fsdp is supported for {', '.join(method_names(supports_fsdp=True))}, not {self.name} "
                                "(it copies networks after sharding); run it data-parallel without --fsdp")
        self.check_networks_agree()  # sharding keeps each rank's slice of its own copy: they must be equal first
        ema = self.ema.model if self.ema is not None else None
        self.shards.shard(self.nets, ema, type(self.teacher.model), self.device.type)
        for name, (modules, lr, betas, weight_decay) in list(self._opt_args.items()):
            self.add_optimizer(name, modules, lr, betas, weight_decay)

    def fsdp_record(self) -> dict[str, Any]:
        """What distill.json records about sharding."""
        return self.shards.record()

    def gather_export(self) -> None:
        """Collective: the exported network (EMA or student) gathered whole into a plain module on rank 0."""
        if self.sharding:
            self._export_model = self.shards.gather_plain(self.students.exported_model(), self.teacher.model, self.device)

    def init_student(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Start from another student's weights (e.g. an ODE-regression student, as DMD2's one-step
        SDXL model does); EMA copies and consistency targets start from them too."""
        if self.students.has_lora:
            raise BenchkitError("--init cannot be combined with --lora; merge first or train the full student")
        self.shards.load_net("student", getattr(self.student.model, "module", self.student.model), state_dict)
        for key, copy_ in (("ema", self.ema), ("target", getattr(self, "target", None))):
            if copy_ is not None:
                self.shards.load_net(key, copy_.model, state_dict)
        self.on_init_student(state_dict)

    # ----- method hooks
    def setup(self) -> None:
        """Build the method's networks and optimizers (seeded from the config alone)."""
        self.add_optimizer("student", [self.student.model], self.cfg.lr)

    def train_step(self, step: int, gen: torch.Generator) -> dict[str, float]:
        raise NotImplementedError

    def recipe(self) -> dict[str, Any]:
        raise NotImplementedError

    def sampler_timesteps(self) -> list[int]:
        return trailing_timesteps(self.cfg.student_steps, self.T)

    def on_init_student(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Refresh copies a method took of the student at construction."""

    def on_restore(self) -> None:
        """Rebuild stage-dependent networks/optimizers from ``stage_state`` before loading weights."""

    # ----- one step
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

    def export_denoiser(self) -> Denoiser:
        model = self.students.exported_model()
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
        self._params[name] = params
        self._opt_args[name] = (modules, lr, betas, weight_decay)

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
            grads = [p.grad for p in self._params[name] if p.grad is not None and not is_dtensor(p.grad)]
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
            "nets": {k: self.shards.net_state(k, m) for k, m in self.nets.items()},
            "opts": {k: self.shards.optimizer_state(o) for k, o in self.opts.items()},
            "lr_scheds": {k: s.state_dict() for k, s in self.lr_scheds.items()},
            "ema": None if self.ema is None else self.shards.net_state("ema", self.ema.model),
            "stage_state": self.stage_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage_state = state.get("stage_state", {})
        self.on_restore()
        for k, m in self.nets.items():
            self.shards.load_net(k, m, state["nets"][k])
        for k, o in self.opts.items():
            self.shards.load_optimizer_state(o, state["opts"][k])
        for k, s in self.lr_scheds.items():
            s.load_state_dict(state["lr_scheds"][k])
        if self.ema is not None and state.get("ema") is not None:
            self.shards.load_net("ema", self.ema.model, state["ema"])


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
        from benchkit.core.progress import progress_bar

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
