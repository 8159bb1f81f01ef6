"""SDXL-Lightning (Lin et al., 2024): progressive adversarial distillation.

No training code was released; this follows the paper (research notes, section 3):
- stages of decreasing step count (default 8 -> 4 -> 2 -> 1, cut at the student's steps),
  each continuing from the previous student;
- in a stage with N steps (stride s = T/N), x_t is a real sample noised to a grid point t
  (pure noise at T-1); the target x_{t-s} comes from the teacher with CFG taking
  ``teacher_substeps`` DDIM steps, the student's from one move;
- the discriminator is a copy of the teacher's encoder + mid block (trainable, re-initialised
  at every stage and objective) with a conv head; each stage first trains with the
  conditional objective D(x_t, x_{t-s}) (the head sees both), then the unconditional one
  D(x_{t-s}); non-saturating loss, no R1;
- when the target is the clean image or the stage has 1-2 steps, both sides are re-noised to
  t* in {10, 250, 500, 750} before D (the paper's stabiliser);
- the one-step stage first converts the student to x0 prediction with an MSE against a
  frozen eps copy, then trains adversarially; it is sampled with Euler, prediction_type sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchkit.core.errors import BenchkitError
from distillers.adapter import trainable_copy
from distillers.config import CommonConfig
from distillers.flow_recipe import flow_recipe, is_flow
from distillers.heads import FeatureDiscriminator, feature_modules
from distillers.methods import register_method
from distillers.training import Distiller, finite_logs, nonsat_d, trailing_timesteps


@dataclass
class LightningConfig(CommonConfig):
    lr: float = 1e-6
    adam_betas: tuple[float, float] = (0.0, 0.99)
    weight_decay: float = 0.0
    student_steps: int = 1
    stages: tuple[int, ...] = (8, 4, 2, 1)
    guidance: float = 6.0  # teacher CFG for the targets
    teacher_substeps: int = 4  # teacher DDIM steps per student step
    conditional_fraction: float = 0.5  # share of each stage with the conditional discriminator
    x0_conversion_fraction: float = 0.3  # share of the one-step stage spent on the x0 conversion MSE
    x0_conversion_lr: float | None = None  # lr of the conversion MSE (None: lr)
    renoise_timesteps: tuple[int, ...] = (10, 250, 500, 750)
    mse_weight: float = 0.0  # optional MSE to the teacher target next to the adversarial loss (paper: 0)


# Not FSDP: it copies the student (the x0 conversion's eps copy) and the teacher (each stage's
# discriminator) after construction, when they are already sharded.
@register_method("lightning", released={1: "sdxl-lightning-1step", 2: "sdxl-lightning-2step", 4: "sdxl-lightning-4step",
                                       8: "sdxl-lightning-8step"})
class Lightning(Distiller):
    Config = LightningConfig
    sampler_mode = "ddim"  # Euler on eps (and on x0 for the 1-step model) is this deterministic move

    def setup(self) -> None:
        cfg: LightningConfig = self.cfg
        self.stages = [k for k in cfg.stages if k >= cfg.student_steps] or [cfg.student_steps]
        self.add_optimizer("student", [self.student.model], cfg.lr)
        self.disc = None
        self.frozen_eps = None
        self.phase = None
        self.enter_phase(self.phase_at(0))

    # ----- stages and phases
    def phase_at(self, step: int) -> tuple[int, str]:
        cfg: LightningConfig = self.cfg
        total = self.method_steps()
        per = max(1, total // len(self.stages))
        i = min(step // per, len(self.stages) - 1)
        k = self.stages[i]
        within = (step - i * per) / per if i < len(self.stages) - 1 else (step - i * per) / max(1, total - i * per)
        if k == 1 and within < cfg.x0_conversion_fraction:
            return k, "x0-convert"
        start = cfg.x0_conversion_fraction if k == 1 else 0.0
        return k, "conditional" if within < start + (1 - start) * cfg.conditional_fraction else "unconditional"

    def enter_phase(self, phase: tuple[int, str]) -> None:
        """Fresh discriminator for each stage/objective; the x0 conversion freezes an eps copy."""
        k, kind = phase
        self.phase = phase
        self.stage_state = {"phase": list(phase)}
        if k == 1 and self.frozen_eps is None and self.cfg.x0_conversion_fraction > 0:
            self.frozen_eps = self.student.with_model(trainable_copy(self.student.model).eval().requires_grad_(False))
            self.nets["frozen_eps"] = self.frozen_eps.model
            self.student = self.student.with_model(self.student.model, prediction_type="sample")
        if kind == "x0-convert":
            self.disc = None
            for table in (self.nets, self.opts, self.lr_scheds):
                for key in ("disc_backbone", "disc_head", "disc"):
                    table.pop(key, None)
            return
        backbone = self.teacher.with_model(trainable_copy(self.teacher.model).to(self.device))
        names = feature_modules(backbone.model, "mid")
        with torch.random.fork_rng(devices=[]):  # head init depends on (seed, phase) only, so resumes match
            torch.manual_seed(self.cfg.seed * 7919 + k * 2 + (kind == "conditional"))
            self.disc = FeatureDiscriminator(backbone, names, self.data.shape, self.data.cond,
                                             pairs=kind == "conditional").to(self.device)
        self.nets["disc_backbone"] = backbone.model
        self.nets["disc_head"] = self.disc.heads
        self.add_optimizer("disc", [backbone.model, self.disc.heads], self.cfg.lr_critic or self.cfg.lr)

    def on_init_student(self, state_dict) -> None:
        if self.frozen_eps is not None:  # the eps copy to convert from is the initial student
            self.frozen_eps.model.load_state_dict(state_dict)

    def on_restore(self) -> None:
        phase = tuple(self.stage_state.get("phase", self.phase))
        if phase[0] == 1 and self.frozen_eps is None and self.cfg.x0_conversion_fraction > 0:
            self.enter_phase((1, "x0-convert"))
        self.enter_phase((int(phase[0]), str(phase[1])))

    def sampler_timesteps(self) -> list[int]:
        return trailing_timesteps(self.current_steps(), self.T)

    def current_steps(self) -> int:
        return self.phase[0] if self.phase else self.cfg.student_steps

    def recipe(self) -> dict[str, Any]:
        if is_flow(self.teacher.schedule):
            if self.cfg.student_steps == 1 and self.cfg.x0_conversion_fraction > 0:
                raise BenchkitError("lightning: a 1-step student of a flow teacher converted to x0 prediction cannot be "
                                    "sampled by FlowMatchEulerDiscreteScheduler (it reads velocity); pass "
                                    "--set x0_conversion_fraction=0 (x0 = x - sigma * v needs no conversion)")
            return flow_recipe(self.teacher.schedule, trailing_timesteps(self.cfg.student_steps, self.T), stochastic=False)
        kwargs: dict[str, Any] = {"timestep_spacing": "trailing"}
        if self.student.prediction_type == "sample":  # the converted one-step model
            kwargs["prediction_type"] = "sample"
        return {"scheduler": "EulerDiscreteScheduler", "scheduler_kwargs": kwargs, "steps": self.cfg.student_steps,
                "guidance_scale": 1.0}

    # ----- one step
    def real_batch(self, n: int, gen: torch.Generator):
        if self.data.has_real:
            x0, cond = self.data.sample_real(n, gen)
        else:
            _, x0, cond = self.data.sample_pairs(n, gen)
        return x0.to(self.device), cond

    @torch.no_grad()
    def teacher_target(self, x_t: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cond) -> torch.Tensor:
        """The teacher's ``teacher_substeps`` DDIM steps from t to t_next (t_next < 0: the clean sample)."""
        cfg: LightningConfig = self.cfg
        n = len(x_t)
        x = x_t
        for j in range(cfg.teacher_substeps):
            t_j = t + (t_next.clamp(min=0) - t) * j / cfg.teacher_substeps
            t_j1 = t + (t_next.clamp(min=0) - t) * (j + 1) / cfg.teacher_substeps
            pred = self.teacher(x, t_j, cond, guidance=cfg.guidance, uncond=self.data.uncond(n))
            last = j == cfg.teacher_substeps - 1
            moved = self.teacher.conv.move(pred.x0, pred.eps, t_j1)
            x = torch.where((t_next < 0).view(-1, 1, 1, 1), pred.x0, moved) if last else moved
        return x

    def train_step(self, step: int, gen: torch.Generator) -> dict[str, float]:
        cfg: LightningConfig = self.cfg
        phase = self.phase_at(step)
        if phase != self.phase:
            self.enter_phase(phase)
        k, kind = phase
        n = cfg.batch_size
        grid = trailing_timesteps(k, self.T)
        logs: dict[str, float] = {"stage": float(k)}

        if kind == "x0-convert":
            def convert_loss(_micro):
                x0, cond = self.real_batch(n, gen)
                t = torch.tensor([250.0, 500.0, 750.0, float(self.T - 1)], dtype=torch.float64)[
                    self.randint(0, 4, n, gen).cpu()].to(self.device)
                x_t = self.student.conv.noised(x0, self.randn(x0.shape, gen), t)
                with torch.no_grad():
                    target = self.frozen_eps(x_t, t, cond).x0
                out = self.student(x_t, t, cond).x0
                loss = nn.functional.mse_loss(out.float(), target.float())
                return loss, finite_logs(loss_x0_convert=loss)

            if cfg.x0_conversion_lr:
                for group in self.opts["student"].param_groups:  # the LR scheduler restores lr after the step
                    group["lr"] = cfg.x0_conversion_lr
            logs.update(self.optimize("student", convert_loss))
            return logs

        stash: dict[str, Any] = {}

        def generator_loss(_micro):
            x0, cond = self.real_batch(n, gen)
            i = self.randint(0, k, n, gen).cpu()
            t = torch.tensor(grid, dtype=torch.float64)[i].to(self.device)
            t_next = torch.tensor(grid[1:] + [-1], dtype=torch.float64)[i].to(self.device)
            x_t = self.student.conv.noised(x0, self.randn(x0.shape, gen), t)
            target = self.teacher_target(x_t, t, t_next, cond)
            pred = self.student(x_t, t, cond)
            moved = self.student.conv.move(pred.x0, pred.eps, t_next.clamp(min=0))
            fake = torch.where((t_next < 0).view(-1, 1, 1, 1), pred.x0, moved)
            t_d = t_next.clamp(min=0)
            renoise = (t_next < 0) | torch.tensor(k <= 2, device=self.device)
            if self.any_rank(bool(renoise.any())):  # both sides to t* with the same noise before the discriminator
                star = torch.tensor(cfg.renoise_timesteps, dtype=torch.float64)[
                    self.randint(0, len(cfg.renoise_timesteps), n, gen).cpu()].to(self.device)
                noise = self.randn(fake.shape, gen)
                t_star = torch.maximum(star, t_d)
                fake = torch.where(renoise.view(-1, 1, 1, 1), self.student.conv.add_noise(fake, noise, t_star), fake)
                target = torch.where(renoise.view(-1, 1, 1, 1), self.student.conv.add_noise(target, noise, t_star), target)
                t_d = torch.where(renoise, t_star, t_d)
            stash.update(real=target, fake=fake.detach(), t_d=t_d, x_t=x_t, t=t, cond=cond)
            loss_g = nn.functional.softplus(-self.disc(fake, t_d, cond, x_start=x_t, t_start=t)).mean()
            loss = loss_g
            parts = {"loss_g_adv": loss_g}
            if cfg.mse_weight:
                loss_mse = nn.functional.mse_loss(fake.float(), target.float())
                loss = loss + cfg.mse_weight * loss_mse
                parts["loss_mse"] = loss_mse
            return loss, finite_logs(**parts)

        with self.frozen(self.disc.backbone.model, self.disc.heads):
            logs.update(self.optimize("student", generator_loss))

        def disc_loss(_micro):
            s = stash
            real = self.disc(s["real"], s["t_d"], s["cond"], x_start=s["x_t"], t_start=s["t"])
            fake = self.disc(s["fake"], s["t_d"], s["cond"], x_start=s["x_t"], t_start=s["t"])
            loss = nonsat_d(real, fake)
            return loss, finite_logs(loss_d=loss)

        logs.update(self.optimize("disc", disc_loss))
        return logs
