"""Hyper-SD (Ren et al., 2024): trajectory-segmented consistency distillation (TSCD), then one-step DMD.

No training code was released; this follows the paper's Algorithm 1 (research notes, section 2):
- stages k = 8, 4, 2, 1 (down to the student's step count), each continuing from the last;
  in stage k the time axis is cut into k segments whose ends are the k-step trailing grid;
- x_{t_n} is a real sample noised to t_n on an N-point grid; the teacher (with CFG, baked in)
  takes one DDIM step to t_{n-1}; the EMA target carries that to t_end, drawn uniformly in
  [segment start, t_{n-1}]; the student goes from t_n to t_end in one move; MSE between the
  two (CTM-style soft consistency that never leaves the segment);
- optional adversarial term (frozen teacher backbone + heads, hinge) and optional reward
  feedback ReLU(margin - r(x0, prompt)) with any differentiable scorer (``REWARDS``);
- for one-step students, a final score-distillation stage: the DMD loss with a trainable
  fake score, plus the k=1 consistency loss as the MSE regulariser.
A k-step stage is sampled with k DDIM trailing steps, which the exported recipe says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from distillers.flow_recipe import flow_recipe, is_flow
from distillers.heads import FeatureDiscriminator, feature_modules
from distillers.methods import register_method
from distillers.training import (
    EMA,
    CommonConfig,
    Distiller,
    dm_loss,
    finite_logs,
    hinge_d,
    trailing_timesteps,
    trainable_copy,
)
from metrics.rewards import REWARDS, RewardFn


@dataclass
class HyperSDConfig(CommonConfig):
    lr: float = 1e-5
    student_steps: int = 4
    stages: tuple[int, ...] = (8, 4, 2, 1)  # cut at student_steps
    grid_points: int = 50  # N: the teacher's DDIM grid (step T/N)
    guidance: float = 2.0  # teacher CFG baked into the student (CFG-free student)
    target_ema: float = 0.95  # EMA of the student used as the consistency target
    adv_weight: float = 0.0  # optional adversarial term (0: MSE only)
    reward: str = ""  # a name in REWARDS for the feedback loss ("" = none)
    reward_weight: float = 0.0
    reward_margin: float = 0.0  # alpha_d in ReLU(alpha_d - r)
    score_distill_fraction: float = 0.5  # one-step students: share of steps in the DMD stage
    mse_reg_weight: float = 1.0  # weight of the k=1 consistency loss in the DMD stage
    one_step_timestep: int | None = None  # None: T-1 (the SDXL 1-step UNet uses 800)
    dm_ttur: int = 1


# Not FSDP: untested under sharding (its EMA consistency target and optional fake score).
@register_method("hyper-sd", released={1: "hyper-sdxl-1step-unet", 2: "hyper-sdxl-2step-lora", 4: "hyper-sdxl-4step-lora",
                                      8: "hyper-sdxl-8step-lora"})
class HyperSD(Distiller):
    Config = HyperSDConfig
    sampler_mode = "ddim"
    reward_fn: RewardFn | None = None

    def setup(self) -> None:
        cfg: HyperSDConfig = self.cfg
        self.target = EMA(self.student.model, cfg.target_ema)
        self.nets["target"] = self.target.model
        self.add_optimizer("student", [self.student.model], cfg.lr)
        self.stages = [k for k in cfg.stages if k >= cfg.student_steps] or [cfg.student_steps]
        self.disc = None
        if cfg.adv_weight:
            self.disc = FeatureDiscriminator(self.teacher, feature_modules(self.teacher.model, "multi"), self.data.shape,
                                             self.data.cond).to(self.device)
            self.nets["disc"] = self.disc.heads
            self.add_optimizer("disc", [self.disc.heads], cfg.lr_critic or cfg.lr)
        self.fake = None
        if cfg.student_steps == 1 and cfg.score_distill_fraction > 0:
            self.fake = self.teacher.with_model(trainable_copy(self.teacher.model).to(self.device))
            self.nets["fake"] = self.fake.model
            self.add_optimizer("fake", [self.fake.model], cfg.lr_critic or cfg.lr)
        if cfg.reward and self.reward_fn is None:
            self.reward_fn = REWARDS.get_or_fail(cfg.reward)(self.device)

    def tscd_steps(self) -> int:
        cfg: HyperSDConfig = self.cfg
        steps = self.method_steps()
        return steps if self.fake is None else int(round(steps * (1 - cfg.score_distill_fraction)))

    def stage_at(self, step: int) -> int:
        per = max(1, self.tscd_steps() // len(self.stages))
        return self.stages[min(step // per, len(self.stages) - 1)]

    def sampler_timesteps(self) -> list[int]:
        first = self.cfg.one_step_timestep if self.cfg.student_steps == 1 else None
        return trailing_timesteps(self.cfg.student_steps, self.T, first=first)

    def recipe(self) -> dict[str, Any]:
        if is_flow(self.teacher.schedule):  # TSCD's deterministic segments: flow Euler on the student's sigmas
            return flow_recipe(self.teacher.schedule, self.sampler_timesteps(), stochastic=False)
        if self.cfg.student_steps == 1:
            return {"scheduler": "LCMScheduler", "timesteps": self.sampler_timesteps(), "guidance_scale": 1.0}
        return {"scheduler": "DDIMScheduler", "scheduler_kwargs": {"timestep_spacing": "trailing"},
                "steps": self.cfg.student_steps, "guidance_scale": 1.0}

    def real_batch(self, gen: torch.Generator):
        if self.data.has_real:
            x0, cond = self.data.sample_real(self.cfg.batch_size, gen)
            return x0.to(self.device), cond
        _, x0, cond = self.data.sample_pairs(self.cfg.batch_size, gen)
        return x0.to(self.device), cond

    def tscd_loss(self, k: int, gen: torch.Generator, with_extras: bool = True):
        """The stage-k soft consistency loss on one batch (plus the optional terms)."""
        cfg: HyperSDConfig = self.cfg
        x0, cond = self.real_batch(gen)
        n = len(x0)
        step = self.T // cfg.grid_points
        idx = self.randint(1, cfg.grid_points, n, gen)
        t_n = ((idx + 1) * step - 1).double()
        t_prev = t_n - step
        # segment ends: the k-step trailing grid (T-1, T-1-seg, ...) and 0; t_b is the nearest one below t_n
        ends = torch.tensor(trailing_timesteps(k, self.T) + [0], dtype=torch.float64, device=self.device)
        t_b = torch.where(ends[None] < t_n[:, None], ends[None], torch.full_like(ends[None], -1.0)).amax(1).clamp(min=0)
        u = self.rand(n, gen)
        t_end = torch.where(t_prev >= t_b, (t_b + u * (t_prev - t_b + 1)).floor().clamp(max=t_prev), t_b)
        x_tn = self.student.conv.noised(x0, self.randn(x0.shape, gen), t_n)
        with torch.no_grad():
            tp = torch.maximum(t_prev, t_b)
            teach = self.teacher(x_tn, t_n, cond, guidance=cfg.guidance, uncond=self.data.uncond(n))
            x_prev = self.teacher.conv.move(teach.x0, teach.eps, tp)
            ema = self.student.with_model(self.target.model)(x_prev, tp, cond)
            target = torch.where((t_end < tp).view(-1, 1, 1, 1), self.student.conv.move(ema.x0, ema.eps, t_end), x_prev)
        pred = self.student(x_tn, t_n, cond)
        moved = self.student.conv.move(pred.x0, pred.eps, t_end)
        loss_mse = nn.functional.mse_loss(moved.float(), target.float())
        loss = loss_mse
        parts = {"loss_tscd": loss_mse}
        if with_extras and self.disc is not None:
            loss_adv = -self.disc(moved, t_end, cond).mean()
            loss = loss + cfg.adv_weight * loss_adv
            parts["loss_g_adv"] = loss_adv
            self._adv = (target, moved.detach(), t_end, cond)
        if with_extras and self.reward_fn is not None and cfg.reward_weight:
            prompts = list(cond.texts)
            loss_fb = torch.relu(cfg.reward_margin - self.reward_fn(pred.x0, prompts)).mean()
            loss = loss + cfg.reward_weight * loss_fb
            parts["loss_feedback"] = loss_fb
        return loss, parts

    def train_step(self, step: int, gen: torch.Generator) -> dict[str, float]:
        logs: dict[str, float] = {}
        if step < self.tscd_steps():
            k = self.stage_at(step)
            frozen = [self.disc.heads] if self.disc is not None else []
            with self.frozen(*frozen):
                logs.update(self.optimize("student", lambda _m: (lambda l, p: (l, finite_logs(**p)))(*self.tscd_loss(k, gen))))
            logs["stage"] = float(k)
            if self.disc is not None:
                def disc_loss(_micro):
                    target, moved, t_end, cond = self._adv
                    loss = hinge_d(self.disc(target, t_end, cond), self.disc(moved, t_end, cond))
                    return loss, finite_logs(loss_d=loss)

                logs.update(self.optimize("disc", disc_loss))
        else:
            logs.update(self.score_distill_step(step, gen))
        self.target.update(self.student.model)
        return logs

    def score_distill_step(self, step: int, gen: torch.Generator) -> dict[str, float]:
        """One-step enhancement: DMD with the teacher as real score + the k=1 consistency loss."""
        cfg: HyperSDConfig = self.cfg
        logs: dict[str, float] = {}
        t0 = float(self.sampler_timesteps()[0])
        fakes = []

        def generator_loss(_micro):
            cond = self.data.sample_cond(cfg.batch_size, gen)
            noise = self.randn((cfg.batch_size, *self.data.shape), gen)
            x0_hat = self.student(noise, t0, cond).x0
            fakes.append((x0_hat.detach(), cond))
            t = self.randint(int(0.02 * self.T), int(0.98 * self.T) + 1, len(x0_hat), gen).double()
            x_t = self.fake.conv.add_noise(x0_hat, self.randn(x0_hat.shape, gen), t)
            with torch.no_grad():
                p_fake = self.fake(x_t, t, cond).x0
                p_real = self.teacher(x_t, t, cond, guidance=cfg.guidance, uncond=self.data.uncond(len(x0_hat))).x0
            loss_dm = dm_loss(x0_hat, p_real, p_fake)
            loss_reg, _ = self.tscd_loss(1, gen, with_extras=False)
            return loss_dm + cfg.mse_reg_weight * loss_reg, finite_logs(loss_dm=loss_dm, loss_tscd=loss_reg)

        if step % cfg.dm_ttur == 0:
            with self.frozen(self.fake.model):
                logs.update(self.optimize("student", generator_loss))
        else:
            with torch.no_grad():
                cond = self.data.sample_cond(cfg.batch_size, gen)
                fakes.append((self.student(self.randn((cfg.batch_size, *self.data.shape), gen), t0, cond).x0, cond))

        def fake_loss(micro):
            x0, cond = fakes[min(micro, len(fakes) - 1)]
            t = self.randint(0, self.T, len(x0), gen).double()
            noise = self.randn(x0.shape, gen)
            raw = self.fake.raw(self.fake.conv.add_noise(x0, noise, t), t, cond)
            loss = nn.functional.mse_loss(raw.float(), self.fake.conv.from_x0_eps(x0, noise, t, self.fake.prediction_type).float())
            return loss, finite_logs(loss_fake=loss)

        logs.update(self.optimize("fake", fake_loss))
        return logs
