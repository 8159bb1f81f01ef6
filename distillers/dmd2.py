"""DMD2 (Yin et al., NeurIPS 2024): distribution matching with a trainable fake score and a GAN head.

Follows tianweiy/DMD2's ``sd_guidance.py`` / ``train_sd.py`` (see research notes, section 1):
- the generator G (student) outputs eps at its conditioning timestep; x0_hat = x0(x_in, G, t);
- the distribution-matching gradient is (p_fake - p_real) / mean|x0_hat - p_real| at a
  random t in [0.02T, 0.98T], with the real score = frozen teacher + CFG and the fake score F
  = a trainable teacher copy without CFG;
- the GAN classifier head sits on F's bottleneck (a forward hook, ``distillers.heads``); real
  and fake are both noised to t_g ~ U[0, T) first ("diffusion GAN");
- two time-scale update rule: G is updated every ``ttur``-th step, F and the head every step,
  G before the critic;
- multi-step students use backward simulation with fresh noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from distillers.config import CommonConfig
from distillers.flow_recipe import renoising_recipe
from distillers.heads import FeatureDiscriminator, feature_modules
from distillers.methods import register_method
from distillers.training import (
    Distiller,
    dm_loss,
    finite_logs,
    trailing_timesteps,
    trainable_copy,
)


@dataclass
class DMD2Config(CommonConfig):
    lr: float = 1e-5
    student_steps: int = 1
    conditioning_timestep: int | None = None  # 1-step generator's t: None = T-1 (SD1.5: 999; SDXL uses 399)
    guidance: float = 1.75  # real score CFG (SD1.5 1.75, SDXL 8)
    ttur: int = 5  # critic updates per generator update (SD1.5 used 10)
    gan: bool = True
    gan_gen_weight: float = 1e-3  # gen_cls_loss_weight (SDXL 5e-3)
    gan_critic_weight: float = 1e-2  # guidance_cls_loss_weight
    dm_min_t: float = 0.02
    dm_max_t: float = 0.98


@register_method("dmd2", supports_fsdp=True, released={1: "dmd2-sdxl-1step", 4: "dmd2-sdxl-4step"})
class DMD2(Distiller):
    Config = DMD2Config
    sampler_mode = "lcm"

    def setup(self) -> None:
        cfg: DMD2Config = self.cfg
        self.fake = self.teacher.with_model(trainable_copy(self.teacher.model).to(self.device))
        self.nets["fake"] = self.fake.model
        self.disc = None
        modules = [self.fake.model]
        if cfg.gan and self.data.has_real:
            self.disc = FeatureDiscriminator(self.fake, feature_modules(self.fake.model, "mid"), self.data.shape,
                                             self.data.cond).to(self.device)
            self.nets["head"] = self.disc.heads
            modules.append(self.disc.heads)
        self.add_optimizer("student", [self.student.model], cfg.lr)
        self.add_optimizer("critic", modules, cfg.lr_critic or cfg.lr)

    def sampler_timesteps(self) -> list[int]:
        return trailing_timesteps(self.cfg.student_steps, self.T, first=self.cfg.conditioning_timestep)

    def recipe(self) -> dict[str, Any]:
        return renoising_recipe(self.teacher.schedule, self.sampler_timesteps())

    def generator_input(self, n: int, gen: torch.Generator):
        cond = self.data.sample_cond(n, gen)
        if self.cfg.student_steps == 1:
            t = torch.full((n,), float(self.sampler_timesteps()[0]), device=self.device)
            return self.randn((n, *self.data.shape), gen), t, cond
        x_in, t = self.backward_simulation(cond, gen)
        return x_in, t, cond

    def dm_terms(self, x0_hat: torch.Tensor, cond, gen: torch.Generator) -> torch.Tensor:
        cfg: DMD2Config = self.cfg
        n = len(x0_hat)
        t = self.randint(int(cfg.dm_min_t * self.T), int(cfg.dm_max_t * self.T) + 1, n, gen).double()
        x_t = self.fake.conv.add_noise(x0_hat, self.randn(x0_hat.shape, gen), t)
        with torch.no_grad():
            p_fake = self.fake(x_t, t, cond).x0
            p_real = self.teacher(x_t, t, cond, guidance=cfg.guidance, uncond=self.data.uncond(n)).x0
        return dm_loss(x0_hat, p_real, p_fake)

    def gan_logits(self, x0: torch.Tensor, cond, gen: torch.Generator) -> torch.Tensor:
        t_g = self.randint(0, self.T, len(x0), gen).double()
        x_g = self.fake.conv.add_noise(x0, self.randn(x0.shape, gen), t_g)
        return self.disc(x_g, t_g, cond)

    def train_step(self, step: int, gen: torch.Generator) -> dict[str, float]:
        cfg: DMD2Config = self.cfg
        gen_turn = step % cfg.ttur == 0
        fakes: list[tuple[torch.Tensor, Any]] = []
        logs: dict[str, float] = {}

        def generator_loss(_micro):
            x_in, t_in, cond = self.generator_input(cfg.batch_size, gen)
            x0_hat = self.student(x_in, t_in, cond).x0
            fakes.append((x0_hat.detach(), cond))
            loss_dm = self.dm_terms(x0_hat, cond, gen)
            loss = loss_dm
            parts = {"loss_dm": loss_dm}
            if self.disc is not None:
                loss_gan = nn.functional.softplus(-self.gan_logits(x0_hat, cond, gen)).mean()
                loss = loss + cfg.gan_gen_weight * loss_gan
                parts["loss_g_gan"] = loss_gan
            return loss, finite_logs(**parts)

        if gen_turn:
            with self.frozen(*[m for k, m in self.nets.items() if k != "student"]):
                logs.update(self.optimize("student", generator_loss))

        def critic_loss(micro):
            if micro < len(fakes):
                x0_fake, cond = fakes[micro]
            else:
                with torch.no_grad():
                    x_in, t_in, cond = self.generator_input(cfg.batch_size, gen)
                    x0_fake = self.student(x_in, t_in, cond).x0
            n = len(x0_fake)
            t = self.randint(0, self.T, n, gen).double()
            noise = self.randn(x0_fake.shape, gen)
            x_t = self.fake.conv.add_noise(x0_fake, noise, t)
            raw = self.fake.raw(x_t, t, cond)
            target = self.fake.conv.from_x0_eps(x0_fake, noise, t, self.fake.prediction_type)
            loss_fake = nn.functional.mse_loss(raw.float(), target.float())
            loss = loss_fake
            parts = {"loss_fake": loss_fake}
            if self.disc is not None:
                real, real_cond = self.data.sample_real(n, gen)
                real = real.to(self.device)
                loss_cls = nn.functional.softplus(self.gan_logits(x0_fake, cond, gen)).mean() + \
                    nn.functional.softplus(-self.gan_logits(real, real_cond, gen)).mean()
                loss = loss + cfg.gan_critic_weight * loss_cls
                parts["loss_d_cls"] = loss_cls
            return loss, finite_logs(**parts)

        logs.update(self.optimize("critic", critic_loss))
        return logs
