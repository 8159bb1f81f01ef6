"""Every distiller runs on tiny SD1.5-like and SDXL-like UNets: finite losses, moving weights,
and a run resumed from a checkpoint takes exactly the step the uninterrupted run takes."""

from __future__ import annotations

import hashlib

import pytest
import torch

from distillers.adapter import Conditioning, Denoiser, NoiseSchedule, sdxl_time_ids
from distillers.data import DistillData, Pairs
from distillers.run import method_class
from distillers.training import Trainer

PROMPTS = ["a red cube", "a blue ball", "two cats", ""]
SHAPE = (4, 8, 8)


def tiny_unet(sdxl: bool):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    kw = dict(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
              down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
              cross_attention_dim=16, norm_num_groups=4, attention_head_dim=4)
    if sdxl:
        kw.update(addition_embed_type="text_time", addition_time_embed_dim=4, projection_class_embeddings_input_dim=6 * 4 + 16,
                  use_linear_projection=True, transformer_layers_per_block=(1, 2))
    return UNet2DConditionModel(**kw)


def encoder(sdxl: bool):
    def encode(prompts):
        rows, pooled = [], []
        for p in prompts:
            g = torch.Generator().manual_seed(int(hashlib.sha256(p.encode()).hexdigest()[:8], 16))
            rows.append(torch.zeros(3, 16) if p == "" else torch.randn(3, 16, generator=g))
            pooled.append(torch.zeros(16) if p == "" else torch.randn(16, generator=g))
        if not sdxl:
            return Conditioning(torch.stack(rows))
        return Conditioning(torch.stack(rows), torch.stack(pooled), sdxl_time_ids(64, 64, len(prompts)))
    return encode


def make_data(sdxl: bool) -> DistillData:
    g = torch.Generator().manual_seed(5)
    real = torch.randn(12, *SHAPE, generator=g) * 0.5
    pairs = Pairs(torch.randn(12, *SHAPE, generator=g), torch.randn(12, *SHAPE, generator=g) * 0.5,
                  torch.arange(12) % 3, PROMPTS[:3], {})
    return DistillData(PROMPTS[:3], encoder(sdxl), SHAPE, real=(real, torch.arange(12) % 3), real_prompts=PROMPTS[:3],
                       pairs=pairs)


def teacher(sdxl: bool) -> Denoiser:
    sched = NoiseSchedule.from_scheduler_config({"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                                                 "beta_schedule": "scaled_linear"})
    return Denoiser(tiny_unet(sdxl).eval().requires_grad_(False), sched, "epsilon")


# (method, config overrides, total steps): small enough to cross every phase of each method
ONE_STEP = [
    ("dmd2", {"student_steps": 1, "ttur": 1, "ode_pretrain_steps": 1}, 3),
    ("hyper-sd", {"student_steps": 1, "stages": (2, 1), "grid_points": 10, "score_distill_fraction": 0.5}, 4),
    ("adm", {"student_steps": 1, "adp_steps": 1}, 3),
    ("lightning", {"student_steps": 1, "stages": (2, 1), "teacher_substeps": 2}, 5),
]
MULTI_STEP = [  # backward simulation, adversarial/MSE options: on the SD1.5-like UNet only
    ("dmd2", {"student_steps": 4, "ttur": 2}, 3),
    ("hyper-sd", {"student_steps": 2, "stages": (4, 2), "grid_points": 10, "adv_weight": 0.1}, 3),
    ("adm", {"student_steps": 4, "dm_weight": 1.0}, 2),
    ("lightning", {"student_steps": 2, "stages": (4, 2), "teacher_substeps": 2, "mse_weight": 1.0}, 3),
]
CASES = [(*c, sdxl) for c in ONE_STEP for sdxl in (False, True)] + [(*c, False) for c in MULTI_STEP]


def build(method, overrides, steps, sdxl):
    cls = method_class(method)
    cfg = cls.Config(**{"steps": steps, "batch_size": 2, "lr": 1e-3, "seed": 3, **overrides})
    return cls(teacher(sdxl), make_data(sdxl), cfg)


@pytest.mark.parametrize("method,overrides,steps,sdxl", CASES,
                         ids=[f"{c[0]}-{c[1]['student_steps']}step-{'sdxl' if c[3] else 'sd15'}" for c in CASES])
def test_loop_runs_moves_and_resumes_exactly(tmp_path, method, overrides, steps, sdxl):
    torch.set_num_threads(1)
    full = build(method, overrides, steps, sdxl)
    before = {k: v.clone() for k, v in full.student.model.state_dict().items()}
    result = Trainer(full, tmp_path / "full", checkpoint_every=0, show_progress=False).run()
    logs = result["logs"]
    assert logs and all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
    after = full.student.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "student weights did not move"

    first = build(method, overrides, steps, sdxl)
    Trainer(first, tmp_path / "split", checkpoint_every=1, show_progress=False).run(stop_after=steps - 1)
    del first  # a new process would start from nothing but the checkpoint
    resumed = build(method, overrides, steps, sdxl)
    tail = Trainer(resumed, tmp_path / "split", checkpoint_every=1, show_progress=False).run()
    assert tail["logs"] == logs
    for k, v in resumed.student.model.state_dict().items():
        assert torch.equal(v, after[k]), k


def test_lora_student_trains_only_adapters_and_exports_merged(tmp_path):
    from distillers.training import merged_copy

    d = build("dmd2", {"student_steps": 1, "ttur": 1, "lora": True, "lora_rank": 4, "lora_alpha": 4}, 2, False)
    trainable = [n for n, p in d.student.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    Trainer(d, tmp_path, checkpoint_every=0, show_progress=False).run()
    merged = merged_copy(d.student.model)
    assert not any("lora" in k for k in merged.state_dict())
    x, cond = torch.randn(2, *SHAPE), d.data.cond.select(torch.tensor([0, 1]))
    with torch.no_grad():
        a = d.student(x, 999.0, cond).x0
        b = d.student.with_model(merged)(x, 999.0, cond).x0
    assert torch.allclose(a, b, atol=1e-4)


def test_sd3_flow_transformer_runs_dmd2_with_a_head_on_its_blocks(tmp_path):
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    dit = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                                num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                                pooled_projection_dim=16, out_channels=4, pos_embed_max_size=16)
    flow = Denoiser(dit.eval().requires_grad_(False), NoiseSchedule.flow(shift=3.0), "flow")
    cls = method_class("dmd2")
    d = cls(flow, make_data(sdxl=True), cls.Config(steps=2, batch_size=2, lr=1e-3, ttur=1, student_steps=1))
    before = {k: v.clone() for k, v in d.student.model.state_dict().items()}
    logs = Trainer(d, tmp_path, checkpoint_every=0, show_progress=False).run()["logs"]
    assert {"loss_dm", "loss_g_gan", "loss_fake", "loss_d_cls"} <= set(logs)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert any(not torch.equal(before[k], v) for k, v in d.student.model.state_dict().items())


def test_hyper_sd_reward_feedback_with_the_toy_classifier(tmp_path):
    from benchkit.models.loading import load_model
    from benchkit.models.presets import resolve_spec
    from distillers.adapter import teacher_from_parts
    from distillers.data import toy_data

    model = load_model(resolve_spec("toy-digits"), torch.device("cpu"), torch.float32)
    cls = method_class("hyper-sd")
    cfg = cls.Config(steps=1, batch_size=2, lr=1e-4, student_steps=4, stages=(4,), reward="toy-alignment",
                     reward_weight=1.0, reward_margin=10.0)
    d = cls(teacher_from_parts(model.unet, model.scheduler_config), toy_data(model.tokenizer, model.text_encoder,
                                                                             torch.device("cpu")), cfg)
    logs = Trainer(d, tmp_path, checkpoint_every=0, show_progress=False).run()["logs"]
    assert logs["loss_feedback"] > 0 and torch.isfinite(torch.tensor(logs["loss_feedback"]))
