"""2-D mixture of Gaussians (8 modes on a circle, closed-form teacher): mode coverage of
one-step DMD (DM loss only), DMD2 (DM + GAN on real data, TTUR) and ADM students.

Issue 6 asks for "DMD without regulariser drops modes; DMD2 and ADM cover all modes". That
was NOT reproduced: in 2-D, with the exact teacher, a tracking fake score and DM noise levels
spread over [0.02, 0.98], plain DMD also spreads from one mode to all 8 (the high-noise DM
gradient sees every mode). This test pins what we measured: all three students leave the
one-mode start and cover the mixture, so a sign or scaling error in the shared loss code
(dm_loss, hinge_d, nonsat_d) or the ODE step fails it.
"""

from __future__ import annotations

import torch

from distillers.toy2d import Toy2DConfig, coverage, distill, init_generator, sample, teacher_x0, alpha_sigma, MODES, STD


def test_teacher_posterior_mean_matches_tweedie_on_autograd_log_density():
    """Independent reference: E[x0|x_t] = (x_t + sigma^2 grad log p_t(x_t)) / alpha (Tweedie),
    with log p_t written as a logsumexp of the noised Gaussians and differentiated by autograd."""
    gen = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(64, 2, generator=gen, dtype=torch.float64)).requires_grad_(True)
    t = torch.rand(64, generator=gen, dtype=torch.float64) * 0.96 + 0.02
    a, s = alpha_sigma(t)
    var = a ** 2 * STD ** 2 + s ** 2
    logp = torch.logsumexp(-((x[:, None] - a[:, :, None] * MODES[None]) ** 2).sum(-1) / (2 * var) - torch.log(var), 1)
    (score,) = torch.autograd.grad(logp.sum(), x)
    tweedie = (x + s ** 2 * score) / a
    torch.testing.assert_close(teacher_x0(x.detach(), t), tweedie.detach(), rtol=1e-8, atol=1e-8)


def test_one_step_students_leave_a_one_mode_start_and_cover_all_modes():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = coverage(sample(init_generator(Toy2DConfig())))
        results = {m: coverage(sample(distill(Toy2DConfig(method=m)))) for m in ("dmd", "dmd2", "adm")}
        again = coverage(sample(distill(Toy2DConfig(method="dmd", steps=50))))
        assert again == coverage(sample(distill(Toy2DConfig(method="dmd", steps=50))))  # deterministic
    finally:
        torch.set_num_threads(threads)
    print(f"\nstart: {start[0]}/8 modes, energy distance {start[1]:.4f}")
    for name, (hits, dist) in results.items():
        print(f"{name}: {hits}/8 modes, energy distance {dist:.4f}")
    assert start[0] == 1 and start[1] > 0.5  # the coverage metric sees a collapsed generator
    for name, (hits, dist) in results.items():
        assert hits == 8, name
        assert dist < 0.1 * start[1], name
