"""ADM and DMDX (Lu et al., ICCV 2025): adversarial distribution matching, and its pre-training.

No code was released; this follows the paper as summarised in the research notes (section 4):
- ADM: from x_t = noise(x0_hat, t), one PF-ODE step t -> t - dt is taken with the real score
  (frozen teacher + CFG) and with the fake score F (trainable, init teacher); a discriminator
  made of the frozen teacher backbone and trainable heads on several levels tells the two
  apart (hinge loss). G's gradient flows through x_t and F's step. F learns the student's
  distribution with the plain diffusion loss. Update order per step: F, G, D (TTUR 1).
- ADP (the "X" of DMDX, one-step only): before ADM, G is trained on teacher ODE pairs at
  timesteps from a cubic schedule biased to high noise, against a latent discriminator
  (frozen teacher + heads, on re-noised samples) and a pixel discriminator (on decoded
  images), weighted 0.85 / 0.15, hinge loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from distillers.config import CommonConfig
from distillers.flow_recipe import renoising_recipe
from distillers.heads import FeatureDiscriminator, PixelDiscriminator, feature_modules
from distillers.methods import register_method
from distillers.training import (
    Distiller,
    dm_loss,
    finite_logs,
    hinge_d,
    trailing_timesteps,
    trainable_copy,
)


@dataclass
class ADMConfig(CommonConfig):
    lr: float = 1e-5
    student_steps: int = 1
    conditioning_timestep: int | None = None  # None: T-1
    guidance: float = 1.75  # real score CFG
    dt: int = 16  # PF-ODE step of the discriminated samples, T/64
    ttur: int = 1  # fake-score/discriminator updates per generator update (paper: 1 suffices)
    min_t: float = 0.02
    max_t: float = 0.98
    head_levels: str = "multi"  # heads on every encoder level + mid ("mid": bottleneck only)
    adp_steps: int = 0  # DMDX adversarial pre-training steps on teacher ODE pairs (one-step students)
    adp_latent_weight: float = 0.85
    adp_pixel_weight: float = 0.15
    dm_weight: float = 0.0  # optional DMD loss next to the adversarial one (the paper uses none)


def cubic_timesteps(n: int, T: int, gen: torch.Generator, rand=None) -> torch.Tensor:
    """t = T * (1 - u^3), u ~ U[0, 1): most mass near t = T (ADP's high-noise bias).
    ``rand``: the distiller's draw (``Distiller.rand``), which shards the draw over ranks."""
    u = rand(n, gen) if rand is not None else torch.rand(n, generator=gen, dtype=torch.float64)
    return (T * (1 - u ** 3)).floor().clamp(0, T - 1)


@register_method("adm", supports_fsdp=True, unreleased_reason="ADM/DMDX published neither code nor weights")
class ADM(Distiller):
    Config = ADMConfig
    sampler_mode = "lcm"
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None  # latents -> pixels for ADP's pixel D

    def setup(self) -> None:
        cfg: ADMConfig = self.cfg
        self.fake = self.teacher.with_model(trainable_copy(self.teacher.model).to(self.device))
        self.nets["fake"] = self.fake.model
        names = feature_modules(self.teacher.model, cfg.head_levels)
        self.disc = FeatureDiscriminator(self.teacher, names, self.data.shape, self.data.cond).to(self.device)
        self.nets["disc"] = self.disc.heads
        self.add_optimizer("student", [self.student.model], cfg.lr)
        self.add_optimizer("fake", [self.fake.model], cfg.lr_critic or cfg.lr)
        self.add_optimizer("disc", [self.disc.heads], cfg.lr_critic or cfg.lr)
        if cfg.adp_steps:
            self.adp_latent = FeatureDiscriminator(self.teacher, names, self.data.shape, self.data.cond).to(self.device)
            # (height, width): latents and frames need not be square (Wan's default 60 x 104)
            c, size = self.data.shape[0], tuple(self.data.shape[-2:])
            if self.decode is not None:
                with torch.no_grad():
                    probe = self.decode(torch.zeros(1, *self.data.shape, device=self.device))
                c, size = probe.shape[1], tuple(probe.shape[-2:])
            self.adp_pixel = PixelDiscriminator(c, size).to(self.device)
            self.nets["adp_latent"] = self.adp_latent.heads
            self.nets["adp_pixel"] = self.adp_pixel
            self.add_optimizer("adp_disc", [self.adp_latent.heads, self.adp_pixel], cfg.lr_critic or cfg.lr)

    def sampler_timesteps(self) -> list[int]:
        return trailing_timesteps(self.cfg.student_steps, self.T, first=self.cfg.conditioning_timestep)

    def recipe(self) -> dict[str, Any]:
        # multi-step students are backward-simulated with fresh noise, as DMD2's (research notes, section 4)
        return renoising_recipe(self.teacher.schedule, self.sampler_timesteps())

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(x) if self.decode is not None else x

    # ----- ADP
    def adp_step(self, gen: torch.Generator) -> dict[str, float]:
        cfg: ADMConfig = self.cfg
        stash: dict[str, Any] = {}

        def generator_loss(_micro):
            noise, x0, cond = self.data.sample_pairs(cfg.batch_size, gen)
            noise, x0 = noise.to(self.device), x0.to(self.device)
            t = cubic_timesteps(len(x0), self.T, gen, rand=self.rand)
            x_t = self.student.conv.noised(x0, noise, t)
            x0_hat = self.student(x_t, t, cond).x0
            t2 = self.randint(0, self.T, len(x0), gen).double()
            n2 = self.randn(x0.shape, gen)
            fake_t = self.student.conv.add_noise(x0_hat, n2, t2)
            stash.update(real_t=self.student.conv.add_noise(x0, n2, t2), fake_t=fake_t.detach(), t2=t2, cond=cond,
                         real=x0, fake=x0_hat.detach())
            loss = -(cfg.adp_latent_weight * self.adp_latent(fake_t, t2, cond).mean()
                     + cfg.adp_pixel_weight * self.adp_pixel(self.pixels(x0_hat)).mean())
            return loss, finite_logs(loss_adp_g=loss)

        with self.frozen(self.adp_latent.heads, self.adp_pixel):
            logs = self.optimize("student", generator_loss)

        def disc_loss(_micro):
            s = stash
            latent = hinge_d(self.adp_latent(s["real_t"], s["t2"], s["cond"]), self.adp_latent(s["fake_t"], s["t2"], s["cond"]))
            pixel = hinge_d(self.adp_pixel(self.pixels(s["real"])), self.adp_pixel(self.pixels(s["fake"])))
            loss = cfg.adp_latent_weight * latent + cfg.adp_pixel_weight * pixel
            return loss, finite_logs(loss_adp_d_latent=latent, loss_adp_d_pixel=pixel)

        logs.update(self.optimize("adp_disc", disc_loss))
        return logs

    # ----- ADM
    def generator_input(self, n: int, gen: torch.Generator):
        cond = self.data.sample_cond(n, gen)
        if self.cfg.student_steps == 1:
            t = torch.full((n,), float(self.sampler_timesteps()[0]), device=self.device)
            return self.randn((n, *self.data.shape), gen), t, cond
        x_in, t = self.backward_simulation(cond, gen)
        return x_in, t, cond

    def ode_steps(self, x0_hat: torch.Tensor, cond, gen: torch.Generator, fake_grad: bool):
        """x_fake and x_real: one PF-ODE (DDIM) step t -> t - dt from the same noised student sample."""
        cfg: ADMConfig = self.cfg
        n = len(x0_hat)
        t = self.randint(int(cfg.min_t * self.T) + cfg.dt, int(cfg.max_t * self.T) + 1, n, gen).double()
        x_t = self.fake.conv.add_noise(x0_hat, self.randn(x0_hat.shape, gen), t)
        with torch.no_grad():
            real = self.teacher(x_t, t, cond, guidance=cfg.guidance, uncond=self.data.uncond(n))
            x_real = self.teacher.conv.move(real.x0, real.eps, t - cfg.dt)
        with torch.set_grad_enabled(fake_grad):
            fake = self.fake(x_t, t, cond)
            x_fake = self.fake.conv.move(fake.x0, fake.eps, t - cfg.dt)
        return x_real, x_fake, t - cfg.dt, real.x0, fake.x0

    def train_step(self, step: int, gen: torch.Generator) -> dict[str, float]:
        cfg: ADMConfig = self.cfg
        if step < cfg.adp_steps:
            return self.adp_step(gen)
        logs: dict[str, float] = {}
        batch: dict[str, Any] = {}

        def fake_loss(_micro):
            with torch.no_grad():
                x_in, t_in, cond = self.generator_input(cfg.batch_size, gen)
                x0 = self.student(x_in, t_in, cond).x0
            batch.update(cond=cond, x_in=x_in, t_in=t_in)
            t = self.randint(0, self.T, len(x0), gen).double()
            noise = self.randn(x0.shape, gen)
            raw = self.fake.raw(self.fake.conv.add_noise(x0, noise, t), t, cond)
            target = self.fake.conv.from_x0_eps(x0, noise, t, self.fake.prediction_type)
            loss = nn.functional.mse_loss(raw.float(), target.float())
            return loss, finite_logs(loss_fake=loss)

        logs.update(self.optimize("fake", fake_loss))

        if step % cfg.ttur == 0:
            def generator_loss(_micro):
                x0_hat = self.student(batch["x_in"], batch["t_in"], batch["cond"]).x0
                x_real, x_fake, t_d, p_real, p_fake = self.ode_steps(x0_hat, batch["cond"], gen, fake_grad=True)
                batch.update(x_real=x_real, x_fake=x_fake.detach(), t_d=t_d)
                loss_adv = -self.disc(x_fake, t_d, batch["cond"]).mean()
                loss = loss_adv
                parts = {"loss_g_adv": loss_adv}
                if cfg.dm_weight:
                    loss_dm = dm_loss(x0_hat, p_real, p_fake.detach())
                    loss = loss + cfg.dm_weight * loss_dm
                    parts["loss_dm"] = loss_dm
                return loss, finite_logs(**parts)

            with self.frozen(self.fake.model, self.disc.heads):
                logs.update(self.optimize("student", generator_loss))
        else:
            with torch.no_grad():
                x0_hat = self.student(batch["x_in"], batch["t_in"], batch["cond"]).x0
                x_real, x_fake, t_d, _, _ = self.ode_steps(x0_hat, batch["cond"], gen, fake_grad=False)
            batch.update(x_real=x_real, x_fake=x_fake, t_d=t_d)

        def disc_loss(_micro):
            loss = hinge_d(self.disc(batch["x_real"], batch["t_d"], batch["cond"]),
                           self.disc(batch["x_fake"], batch["t_d"], batch["cond"]))
            return loss, finite_logs(loss_d=loss)

        logs.update(self.optimize("disc", disc_loss))
        return logs
