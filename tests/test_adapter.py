"""The teacher adapter against closed forms and diffusers' own schedulers."""

from __future__ import annotations

import pytest
import torch

from distillers.adapter import (
    Conditioning,
    Conversions,
    NoiseSchedule,
    teacher_from_parts,
)

SD_SCHED = {"_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "prediction_type": "epsilon"}


def _x0_eps(shape=(6, 4, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


def test_vp_schedule_matches_diffusers_add_noise_and_velocity():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    sched = NoiseSchedule.from_scheduler_config(SD_SCHED)
    assert torch.allclose(sched.alphas ** 2, ref.alphas_cumprod.double(), rtol=1e-6)
    x0, eps = _x0_eps()
    t = torch.tensor([0, 10, 250, 500, 749, 999])
    conv = Conversions(sched)
    ours = conv.add_noise(x0.float(), eps.float(), t)
    assert torch.allclose(ours, ref.add_noise(x0.float(), eps.float(), t), atol=1e-5)
    v_ref = ref.get_velocity(x0.float(), eps.float(), t)
    assert torch.allclose(conv.from_x0_eps(x0, eps, t, "v").float(), v_ref, atol=1e-5)


@pytest.mark.parametrize("kind", ["eps", "v", "x0", "flow"])
def test_round_trip_every_prediction_type(kind):
    sched = NoiseSchedule.flow(shift=3.0) if kind == "flow" else NoiseSchedule.from_scheduler_config(SD_SCHED)
    conv = Conversions(sched, torch.float64)
    x0, eps = _x0_eps()
    t = torch.tensor([0.0, 10, 250, 500, 749, 999])
    a = sched.alpha(t).view(-1, 1, 1, 1)
    s = sched.sigma(t).view(-1, 1, 1, 1)
    x_t = a * x0 + s * eps
    closed = {"eps": eps, "x0": x0, "v": a * eps - s * x0, "flow": eps - x0}[kind]  # hand-written definitions
    x0_back, eps_back = conv.to_x0_eps(closed, x_t, t, kind)
    assert torch.allclose(x0_back, x0, atol=1e-9) and torch.allclose(eps_back, eps, atol=1e-9)
    for other in ("eps", "x0", "v", "flow") if kind != "flow" else ("eps", "x0", "flow"):
        expected = {"eps": eps, "x0": x0, "v": a * eps - s * x0, "flow": eps - x0}[other]
        assert torch.allclose(conv.convert(closed, x_t, t, kind, other), expected, atol=1e-9), other


def test_float64_conversion_beats_float32_at_t999():
    """x0 from eps at t=999 divides by sqrt(alpha_bar)=0.068: float64 keeps it exact."""
    sched = NoiseSchedule.from_scheduler_config(SD_SCHED)
    x0, eps = _x0_eps()
    t = torch.full((6,), 999.0)
    x_t = Conversions(sched).add_noise(x0, eps, t)
    x0_64, _ = Conversions(sched, torch.float64).to_x0_eps(eps.float(), x_t.float(), t, "eps")
    x0_32, _ = Conversions(sched, torch.float32).to_x0_eps(eps.float(), x_t.float(), t, "eps")
    err64 = (x0_64.double() - x0).abs().max()
    err32 = (x0_32.double() - x0).abs().max()
    assert err64 < 5e-6 and err64 <= err32


def test_flow_schedule_matches_flowmatch_scheduler_and_euler_step():
    from diffusers import FlowMatchEulerDiscreteScheduler

    ref = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched = NoiseSchedule.from_scheduler_config({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0})
    assert torch.allclose(sched.sigmas.flip(0).float(), ref.sigmas[:1000], atol=1e-6)
    x0, eps = _x0_eps((2, 4, 8, 8))
    conv = Conversions(sched)
    ref.set_timesteps(4)
    # the internal timesteps whose sigmas are the scheduler's first two 4-step sigmas
    t0, t1 = (float(torch.argmin((sched.sigmas - ref.sigmas[i].double()).abs())) for i in (0, 1))
    assert abs(sched.sigma(torch.tensor(t1)).item() - ref.sigmas[1].item()) < 1e-3
    x_t = conv.add_noise(x0, eps, torch.tensor(t0))
    u = eps - x0
    x0_hat, eps_hat = conv.to_x0_eps(u, x_t, torch.tensor(t0), "flow")
    ours = conv.move(x0_hat, eps_hat, torch.tensor(t1))
    ref_step = ref.step(u.float(), ref.timesteps[0], x_t.float()).prev_sample  # diffusers' Euler step
    s0, s1 = sched.sigma(torch.tensor(t0)), sched.sigma(torch.tensor(t1))
    assert torch.allclose(ours, x_t + (s1 - s0) * u, atol=1e-9)
    assert torch.allclose(ours.float(), ref_step, atol=2e-3)  # t1 is the nearest integer grid point
    assert abs(sched.model_timestep(torch.tensor(t0)).item() - ref.timesteps[0].item()) < 1.0


def _tiny_sd_unet(sdxl=False):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    kw = dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
              down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
              cross_attention_dim=32, norm_num_groups=16, attention_head_dim=4)
    if sdxl:
        kw.update(addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32,
                  use_linear_projection=True)
    return UNet2DConditionModel(**kw).eval()


def test_ddim_move_matches_diffusers_ddim_step_and_cfg_is_linear():
    from diffusers import DDIMScheduler

    unet = _tiny_sd_unet()
    teacher = teacher_from_parts(unet, SD_SCHED)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=g)
    cond = Conditioning(torch.randn(2, 5, 32, generator=g))
    uncond = Conditioning(torch.zeros(2, 5, 32))
    with torch.no_grad():
        pred = teacher(x, 749.0, cond, guidance=3.0, uncond=uncond)
        e_c = unet(x, 749, cond.hidden).sample
        e_u = unet(x, 749, uncond.hidden).sample
    assert torch.allclose(pred.raw, e_u + 3.0 * (e_c - e_u), atol=1e-5)
    ddim = DDIMScheduler(**{k: v for k, v in SD_SCHED.items() if not k.startswith("_")}, timestep_spacing="trailing",
                         clip_sample=False)
    ddim.set_timesteps(4)
    assert ddim.timesteps.tolist() == [999, 749, 499, 249]
    ref = ddim.step(pred.raw, 749, x, eta=0.0).prev_sample
    ours = teacher.conv.move(pred.x0, pred.eps, 499.0)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_sdxl_added_conditions_and_sd3_transformer_run_through_the_adapter():
    from diffusers import SD3Transformer2DModel

    from distillers.adapter import sdxl_time_ids

    unet = _tiny_sd_unet(sdxl=True)
    teacher = teacher_from_parts(unet, {**SD_SCHED, "_class_name": "EulerDiscreteScheduler"})
    cond = Conditioning(torch.randn(2, 5, 32), torch.randn(2, 32), sdxl_time_ids(64, 64, 2))
    with torch.no_grad():
        out = teacher(torch.randn(2, 4, 8, 8), torch.tensor([999.0, 10.0]), cond, guidance=2.0,
                      uncond=Conditioning(torch.zeros(2, 5, 32), torch.zeros(2, 32), sdxl_time_ids(64, 64, 2)))
    assert out.x0.shape == (2, 4, 8, 8) and torch.isfinite(out.x0).all()

    torch.manual_seed(0)
    dit = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                                num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                                pooled_projection_dim=16, out_channels=4, pos_embed_max_size=16).eval()
    flow = teacher_from_parts(dit, {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0})
    assert flow.prediction_type == "flow"
    x = torch.randn(2, 4, 8, 8)
    c = Conditioning(torch.randn(2, 3, 16), torch.randn(2, 16))
    with torch.no_grad():
        pred = flow(x, torch.tensor([500.0, 900.0]), c)
        raw = dit(hidden_states=x, timestep=flow.schedule.model_timestep(torch.tensor([500.0, 900.0])).float(),
                  encoder_hidden_states=c.hidden, pooled_projections=c.pooled).sample
    sigma = flow.schedule.sigma(torch.tensor([500.0, 900.0])).view(-1, 1, 1, 1).float()
    assert torch.allclose(pred.x0, x - sigma * raw, atol=1e-5)
