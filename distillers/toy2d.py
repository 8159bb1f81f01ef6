"""2-D mixture-of-Gaussians check of one-step score distillation: which methods drop modes.

Why a separate 2-D loop: the distiller classes are image-shaped (UNet features, conditioning,
checkpoints); here the teacher is the closed-form posterior mean of 8 Gaussians on a circle, so
the only error left is the method's own. The loss code is shared with the image distillers:
``dm_loss`` (DMD's normalised distribution-matching gradient), ``hinge_d`` (ADM's and ADP's
discriminators) and the softplus (non-saturating) GAN of DMD2 via ``nonsat_d``.

Set-up as the papers describe it (research notes, distillers.md): the generator and the fake
score both start as the teacher (``start="teacher"``: the generator is the teacher's one-step
denoiser fed pure noise at the highest noise level, which in 2-D is a small blob at the data
mean; the fake score is the teacher plus a zero-initialised residual), DM noise levels
t ~ U[0.02, 0.98], equal learning rates for generator and critics (DMD2: lr_g = lr_d) and Adam
betas (0.9, 0.999) as in DMD2's AdamW. Per method: ``dmd`` = DM loss only, fake score updated once
per generator step (DMD without its regression loss, no TTUR); ``dmd2`` = DM + diffusion-GAN on
real samples, 5 critic updates per generator update (TTUR 5:1); ``adm`` = DMDX: ADP pre-training
(``start="adp"``, below), then hinge discriminator on one PF-ODE step t -> t - dt of teacher vs
fake score from the same x_t, TTUR 1 (the ADM paper: TTUR 1 suffices); ``adm-no-adp`` = the same
ADM loop started from the teacher (the configuration the ADM paper calls much worse at one step).
All follow DMD2's loop order (generator, then critics). Not modelled: DMD's regression loss and
the image-scale learning rates (a 64-wide MLP is trained at 1e-3). ``start="modes"`` keeps the
earlier set-up, a generator that already covers ``init_modes`` only.

What ADM needs here (benchmarks/mog_modes.py, seeds 0-4). At the paper's TTUR 1 neither ``adm``
nor ``adm-no-adp`` reaches the modes, and ADM even leaves a generator that already covers all 8.
Its only "real" signal is teacher-minus-fake-score on the generator's own noised samples: while
the fake score still equals the teacher, x_real == x_fake exactly, yet the generator follows the
untrained discriminator's smooth, consistent gradient at Adam's full step and is off the modes
in a few steps; a fake score and discriminator updated once per generator step do not catch up
(the lag that also keeps DMD 1:1 off the mixture). With the paper's ablation TTUR 8 and Adam
betas (0, 0.99) for every network (StyleGAN2's, a common hinge-GAN setting; the ADM paper gives
none; with DMD2's (0.9, 0.999) ADP's GAN oscillates and hits 0-1 modes), ``adm`` (ADP, then ADM)
covers 8/8 on every seed in 400 generator steps and ``adm-no-adp`` does not (the paper's ADP
ablation). The defaults
stay the papers' (TTUR 1, DMD2's betas); tests/test_mog.py pins
``Toy2DConfig(method="adm", ttur=8, betas=(0.0, 0.99))``.

ADP (``adp_pretrain``), as distillers/adm.py does it for images: offline teacher ODE pairs
(x_T ~ N(0, I) -> the teacher's PF-ODE sample x_0; exact score, DDIM on ``adp_ode_steps``
uniform steps of t), a time-conditioned generator G(x_t, t) = teacher x0 + zero-initialised
residual fed x_t = alpha_t x_0 + sigma_t x_T at t = 1 - u^3 (the cubic schedule, biased to high
noise), its output and the pair's x_0 re-noised at one t' ~ U[0, 1) with the same noise, and a
hinge discriminator on them (one discriminator: the images' 0.85 latent / 0.15 pixel split has
no 2-D pixel space, and a single weight is a loss scale that Adam removes); no regression loss.
The one-step student is then G(z, 1), z = x_T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from benchkit.core.errors import BenchkitError
from distillers.training import dm_loss, hinge_d, nonsat_d

N_MODES = 8
RADIUS = 2.0
STD = 0.1
MODES = torch.tensor([[math.cos(2 * math.pi * k / N_MODES), math.sin(2 * math.pi * k / N_MODES)]
                      for k in range(N_MODES)], dtype=torch.float64) * RADIUS
METHODS = ("dmd", "dmd2", "adm", "adm-no-adp")
PAPER_TTUR = {"dmd": 1, "dmd2": 5, "adm": 1, "adm-no-adp": 1}  # critic updates per generator update
PAPER_START = {"dmd": "teacher", "dmd2": "teacher", "adm": "adp", "adm-no-adp": "teacher"}  # DMDX = ADP -> ADM
STARTS = ("teacher", "adp", "modes")
ADP_T = 1.0  # ADP's one-step student reads the pair's noise end x_T at t = 1 (alpha = 0: pure noise)


def data_samples(n: int, gen: torch.Generator, modes: list[int] | None = None) -> torch.Tensor:
    """Samples of the mixture (or of the listed modes only)."""
    pick = torch.tensor(modes if modes is not None else list(range(N_MODES)))
    idx = pick[torch.randint(0, len(pick), (n,), generator=gen)]
    return (MODES[idx] + STD * torch.randn(n, 2, generator=gen, dtype=torch.float64)).float()


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous VP cosine schedule on t in [0, 1] (x_t = alpha x0 + sigma eps)."""
    t = t.reshape(-1, 1)
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def teacher_x0(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact E[x0 | x_t] of the noised mixture (closed form, float64)."""
    a, s = (v.double() for v in alpha_sigma(t.double()))
    x = x_t.double()
    var = a ** 2 * STD ** 2 + s ** 2
    diff = x[:, None, :] - a[:, :, None] * MODES[None]
    w = torch.softmax(-(diff ** 2).sum(-1) / (2 * var), 1)
    x0_k = MODES[None] + (a * STD ** 2 / var)[:, :, None] * diff
    return (w[:, :, None] * x0_k).sum(1).to(x_t.dtype)


def ddim_move(x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """One deterministic PF-ODE (DDIM) step t -> s given the x0 prediction."""
    a_t, s_t = alpha_sigma(t)
    a_s, s_s = alpha_sigma(s)
    eps = (x_t - a_t * x0) / s_t
    return a_s * x0 + s_s * eps


def mlp(inp: int, out: int, width: int, depth: int = 3, zero_last: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(inp if i == 0 else width, width), nn.SiLU()]
    last = nn.Linear(width, out)
    if zero_last:  # the residual starts at exactly zero: the module starts as its base (the teacher)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def time_features(t: torch.Tensor) -> torch.Tensor:
    f = torch.arange(1, 5, dtype=t.dtype) * math.pi
    t = t.reshape(-1, 1)
    return torch.cat([t, torch.sin(f * t), torch.cos(f * t)], 1)


class ScoreNet(nn.Module):
    """x0-predictor of the generator's noised samples (the 'fake score'). ``from_teacher``: the
    teacher's x0 plus a zero-initialised residual, i.e. a copy of the teacher as DMD/DMD2/ADM
    initialise it (the 2-D teacher is closed-form, so a residual stands in for copied weights);
    otherwise alpha*x_t skip + a randomly initialised MLP."""

    def __init__(self, width: int = 128, from_teacher: bool = True):
        super().__init__()
        self.from_teacher = from_teacher
        self.net = mlp(2 + 9, 2, width, zero_last=from_teacher)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = alpha_sigma(t)
        base = teacher_x0(x_t, t) if self.from_teacher else a * x_t
        return base + s * self.net(torch.cat([x_t, time_features(t)], 1))


class Generator(nn.Module):
    """One-step generator z -> x. ``t_gen``: starts as the teacher's one-step denoiser fed pure
    noise at noise level t_gen (plus a zero-initialised residual), as DMD/DMD2 start the generator
    from the teacher; None: a plain MLP (fitted to ``init_modes`` by ``init_generator``)."""

    def __init__(self, width: int, t_gen: float | None):
        super().__init__()
        self.t_gen = t_gen
        self.net = mlp(2, 2, width, zero_last=t_gen is not None)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.t_gen is None:
            return self.net(z)
        return teacher_x0(z, torch.full((len(z),), self.t_gen, dtype=z.dtype)) + self.net(z)


class TimeGenerator(nn.Module):
    """ADP's generator G(x_t, t): the teacher's x0 prediction plus a zero-initialised residual
    (starts as the teacher, as DMDX initialises the student); called with z alone it is the
    one-step student G(z, ADP_T)."""

    def __init__(self, width: int):
        super().__init__()
        self.net = mlp(2 + 9, 2, width, zero_last=True)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        if t is None:
            t = torch.full((len(x),), ADP_T, dtype=x.dtype)
        return teacher_x0(x, t) + self.net(torch.cat([x, time_features(t)], 1))


class Discriminator(nn.Module):
    """Time-conditioned MLP classifier on noised 2-D points (DMD2's GAN head / ADM's discriminator)."""

    def __init__(self, width: int = 128):
        super().__init__()
        self.net = mlp(2 + 9, 1, width)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, time_features(t)], 1)).squeeze(1)


@dataclass
class Toy2DConfig:
    method: str = "dmd"  # dmd (DM loss only), dmd2 (DM + GAN on real data), adm (ADP, then adversarial
    # DM), adm-no-adp (adversarial DM from the teacher)
    steps: int = 400  # generator updates
    batch: int = 256
    lr_g: float = 1e-3
    lr_critic: float | None = None  # fake score / discriminator; None: = lr_g (DMD2 uses lr_g = lr_d)
    betas: tuple[float, float] = (0.9, 0.999)  # DMD2's AdamW betas (ADP / ADM need the hinge-GAN (0, 0.99):
    # module docstring)
    ttur: int | None = None  # critic updates per generator update; None: PAPER_TTUR[method]
    min_t: float = 0.02
    max_t: float = 0.98
    gan_weight: float = 0.3  # DMD2: weight of the generator's GAN loss next to the DM loss (not the
    # images' 5e-3, which sits next to a DM loss averaged over a whole latent; kept from the earlier set-up)
    adm_dt: float = 0.25  # ADM: PF-ODE step of the discriminated samples, in t units (the paper's
    # T/64 = 0.016 was also tried: at TTUR 1 it fails the same way, seed 0, 4,000 steps)
    start: str | None = None  # None: PAPER_START[method]; teacher: generator = teacher's one-step
    # denoiser; adp: ADP pre-trained from the teacher (adp_pretrain); modes: covers init_modes
    t_gen: float = 0.98  # start="teacher": the noise level of the generator's one-step denoiser
    fake_from_teacher: bool = True  # fake score starts as the teacher (False: random MLP)
    init_modes: tuple[int, ...] = (0,)  # start="modes": modes the generator covers before distillation
    init_steps: int = 400
    adp_steps: int = 1000  # ADP generator updates (one discriminator update each: TTUR 1, as ADM)
    adp_pairs: int = 8192  # offline teacher ODE pairs (drawn once per seed)
    adp_ode_steps: int = 256  # DDIM steps of the exact teacher for each pair
    seed: int = 0
    width: int = 64


def start_of(cfg: Toy2DConfig) -> str:
    if cfg.method not in METHODS:
        raise BenchkitError(f"toy2d: unknown method {cfg.method!r}; use one of {', '.join(METHODS)}")
    start = PAPER_START[cfg.method] if cfg.start is None else cfg.start
    if start not in STARTS:
        raise BenchkitError(f"toy2d: unknown start {start!r}; use one of {', '.join(STARTS)}")
    return start


@torch.no_grad()
def teacher_ode_pairs(n: int, gen: torch.Generator, steps: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_T, x_0): pure noise and where the teacher's probability-flow ODE takes it (DDIM, i.e. the
    first-order exponential integrator, on the exact x0 prediction; float64)."""
    x_T = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    x = x_T
    for t, s in zip(grid[:-1], grid[1:]):
        tt, ss = t.expand(n), s.expand(n)
        x = ddim_move(x, teacher_x0(x, tt), tt, ss)
    return x_T.float(), x.float()


def cubic_t(n: int, gen: torch.Generator) -> torch.Tensor:
    """ADP's cubic schedule on t in (0, 1]: t = 1 - u^3, u ~ U[0, 1) (distillers/adm.py's
    cubic_timesteps without the integer grid): P(t > 0.9) = 0.46."""
    return 1 - torch.rand(n, generator=gen) ** 3


def adp_pretrain(cfg: Toy2DConfig, monitor=None) -> TimeGenerator:
    """DMDX's adversarial distillation pre-training on teacher ODE pairs (module docstring).
    ``monitor(step, generator)`` is called after every generator update."""
    torch.manual_seed(cfg.seed)
    g = TimeGenerator(cfg.width)
    torch.manual_seed(cfg.seed + 4)
    disc = Discriminator(cfg.width)
    gen = torch.Generator().manual_seed(cfg.seed + 5)
    x_T, x_0 = teacher_ode_pairs(cfg.adp_pairs, gen, cfg.adp_ode_steps)
    lr_c = cfg.lr_g if cfg.lr_critic is None else cfg.lr_critic
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr_c, betas=cfg.betas)
    for step in range(cfg.adp_steps):
        idx = torch.randint(0, cfg.adp_pairs, (cfg.batch,), generator=gen)
        noise, x0 = x_T[idx], x_0[idx]
        t = cubic_t(cfg.batch, gen)
        a, s = alpha_sigma(t)
        x0_tilde = g(a * x0 + s * noise, t)
        t2 = torch.rand(cfg.batch, generator=gen)
        a2, s2 = alpha_sigma(t2)
        n2 = torch.randn(x0.shape, generator=gen)  # one re-noising for both, as distillers/adm.py's ADP
        loss_g = -disc(a2 * x0_tilde + s2 * n2, t2).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()  # the discriminator's grads from loss_g are cleared before its step
        loss_d = hinge_d(disc(a2 * x0 + s2 * n2, t2), disc(a2 * x0_tilde.detach() + s2 * n2, t2))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        if monitor is not None:
            monitor(step + 1, g)
    return g


_ADP_CACHE: dict[tuple, dict] = {}


def adp_generator(cfg: Toy2DConfig) -> TimeGenerator:
    """``adp_pretrain`` once per set-up and process (deterministic), so the benchmark and the test
    can start several methods from the same pre-trained generator without re-running it."""
    key = (cfg.seed, cfg.width, cfg.batch, cfg.lr_g, cfg.lr_critic, cfg.betas, cfg.adp_steps, cfg.adp_pairs,
           cfg.adp_ode_steps)
    if key not in _ADP_CACHE:
        _ADP_CACHE[key] = {k: v.clone() for k, v in adp_pretrain(cfg).state_dict().items()}
    g = TimeGenerator(cfg.width)
    g.load_state_dict(_ADP_CACHE[key])
    return g


def init_generator(cfg: Toy2DConfig) -> nn.Module:
    """The generator before distillation. start="teacher": the teacher's one-step denoiser (exact,
    a blob at the data mean). start="adp": the ADP pre-trained G(., 1). start="modes": a one-step
    generator that already maps onto ``init_modes`` only (regression on a fixed transport: z1's
    quantile picks the mode, z2 and z1 within the bin set the offset)."""
    start = start_of(cfg)
    torch.manual_seed(cfg.seed)
    if start == "teacher":
        return Generator(cfg.width, cfg.t_gen)
    if start == "adp":
        return adp_generator(cfg)
    g = Generator(cfg.width, None)
    opt = torch.optim.Adam(g.parameters(), lr=2e-3)
    modes = MODES[list(cfg.init_modes)].float()
    k = len(cfg.init_modes)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    for _ in range(cfg.init_steps):
        z = torch.randn(cfg.batch, 2, generator=gen)
        u = torch.special.ndtr(z[:, 0]) * k
        idx = u.floor().clamp(max=k - 1).long()
        within = torch.special.ndtri(((u - idx) * 0.98 + 0.01).clamp(1e-4, 1 - 1e-4))
        target = modes[idx] + STD * torch.stack([within, z[:, 1]], 1)
        loss = nn.functional.mse_loss(g(z), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return g


def distill(cfg: Toy2DConfig, monitor=None) -> nn.Module:
    """Train the one-step generator with the chosen method; returns the generator.
    ``monitor(step, generator)``, if given, is called after every generator update."""
    g = init_generator(cfg)
    torch.manual_seed(cfg.seed + 2)
    fake = ScoreNet(cfg.width, cfg.fake_from_teacher)
    disc = Discriminator(cfg.width)
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    lr_c = cfg.lr_g if cfg.lr_critic is None else cfg.lr_critic
    ttur = PAPER_TTUR[cfg.method] if cfg.ttur is None else cfg.ttur
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_f = torch.optim.Adam(fake.parameters(), lr=lr_c, betas=cfg.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr_c, betas=cfg.betas)
    B = cfg.batch

    def t_range(n, lo=cfg.min_t, hi=cfg.max_t):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    def noised(x0, t):
        a, s = alpha_sigma(t)
        return a * x0 + s * torch.randn(x0.shape, generator=gen)

    def adm_pair(x0_hat, grad_fake: bool):
        t = t_range(len(x0_hat), cfg.min_t + cfg.adm_dt)
        x_t = noised(x0_hat, t)
        with torch.no_grad():
            x_real = ddim_move(x_t, teacher_x0(x_t, t), t, t - cfg.adm_dt)
        with torch.set_grad_enabled(grad_fake):
            x_fake = ddim_move(x_t, fake(x_t, t), t, t - cfg.adm_dt)
        return x_real, x_fake, t - cfg.adm_dt

    def generator_step():
        x0_hat = g(torch.randn(B, 2, generator=gen))
        if cfg.method in ("dmd", "dmd2"):
            t = t_range(B)
            x_t = noised(x0_hat.detach(), t)
            with torch.no_grad():
                p_fake = fake(x_t, t)
            loss = dm_loss(x0_hat, teacher_x0(x_t, t), p_fake)
            if cfg.method == "dmd2":
                t_g = torch.rand(B, generator=gen)
                loss = loss + cfg.gan_weight * nn.functional.softplus(-disc(noised(x0_hat, t_g), t_g)).mean()
        else:  # ADM: the generator's gradient reaches x0_hat through the fake score's ODE step
            _, x_fake, t_d = adm_pair(x0_hat, grad_fake=True)
            loss = -disc(x_fake, t_d).mean()
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()  # only the generator steps; critic grads from this loss are cleared before use

    def critic_step():
        with torch.no_grad():
            x0 = g(torch.randn(B, 2, generator=gen))
        t = torch.rand(B, generator=gen) * 0.999 + 0.0005
        loss_f = nn.functional.mse_loss(fake(noised(x0, t), t), x0)
        opt_f.zero_grad()
        loss_f.backward()
        opt_f.step()
        if cfg.method == "dmd2":  # diffusion-GAN classifier, real vs generated, both noised
            real = data_samples(B, gen)
            t_g = torch.rand(B, generator=gen)
            loss_d = nonsat_d(disc(noised(real, t_g), t_g), disc(noised(x0, t_g), t_g))
        elif cfg.method in ("adm", "adm-no-adp"):  # hinge D on teacher vs fake-score ODE steps from the same x_t
            x_real, x_fake, t_d = adm_pair(x0, grad_fake=False)
            loss_d = hinge_d(disc(x_real, t_d), disc(x_fake, t_d))
        else:
            return
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

    for step in range(cfg.steps * ttur):
        # DMD2's loop: the generator steps on every ttur-th iteration, before the critics,
        # which step on every iteration
        if step % ttur == 0:
            generator_step()
            if monitor is not None:
                monitor(step // ttur + 1, g)
        critic_step()
    return g


@torch.no_grad()
def coverage(samples: torch.Tensor, seed: int = 9) -> tuple[int, float]:
    """(modes hit, energy distance to the data). A mode is hit when >= 2% of the samples lie
    within 4 std of its centre (an even share is 12.5%)."""
    d = torch.cdist(samples.double(), MODES)
    near, close = d.argmin(1), d.min(1).values < 4 * STD
    hits = sum(int(((near == k) & close).double().mean() >= 0.02) for k in range(N_MODES))
    data = data_samples(len(samples), torch.Generator().manual_seed(seed)).double()
    x = samples.double()
    energy = 2 * torch.cdist(x, data).mean() - torch.cdist(x, x).mean() - torch.cdist(data, data).mean()
    return hits, float(energy)


@torch.no_grad()
def sample(g: nn.Module, n: int = 4000, seed: int = 3) -> torch.Tensor:
    return g(torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)))


@torch.no_grad()
def mode_shares(samples: torch.Tensor) -> list[float]:
    d = torch.cdist(samples.double(), MODES)
    near, close = d.argmin(1), d.min(1).values < 4 * STD
    return [round(float(((near == k) & close).double().mean()), 3) for k in range(N_MODES)]
