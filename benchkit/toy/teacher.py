"""The toy teacher: a text-to-image diffusion model for 8x8 digits, trained by benchkit.

It is built from the same parts as Stable Diffusion so that every recipe applies to it
unchanged: a diffusers ``UNet2DConditionModel`` with cross-attention, a CLIP text encoder
(``transformers.CLIPTextModel``, tiny), a tokenizer saved in the Hugging Face format and
SD's noise schedule (``scaled_linear`` betas 0.00085..0.012, 1000 steps, epsilon
prediction). It works in pixel space, so there is no VAE. The folder it is saved to has
the diffusers layout (``model_index.json``, ``unet/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``) and loads through the same loader as any other model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchkit.toy.data import (
    DIGIT_WORDS,
    TRAIN_TEMPLATES,
    caption,
    load_digits_uint8,
    uint8_to_model,
)

MAX_TOKENS = 16
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")

# SD1.5's schedule, verbatim, so timesteps such as 999/749/499/249 mean the same thing here.
SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


@dataclass(frozen=True)
class TeacherTrainConfig:
    seed: int = 0
    steps: int = 2500
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    uncond_prob: float = 0.1  # caption dropout, so classifier-free guidance works
    threads: int = 2  # fixed so a retrain reproduces the shipped weights bit for bit


def vocabulary() -> list[str]:
    words = set(DIGIT_WORDS) | {str(d) for d in range(10)}
    for template in TRAIN_TEMPLATES:
        words |= {w for w in template.replace("{word}", "").replace("{num}", "").split()}
    return list(SPECIAL_TOKENS) + sorted(words)


def build_tokenizer():
    """A word-level tokenizer in the Hugging Face format (saved as tokenizer.json)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="[BOS]",
        eos_token="[EOS]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        model_max_length=MAX_TOKENS,
    )


def build_text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    ids = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        pad_token_id=ids["[PAD]"],
        bos_token_id=ids["[BOS]"],
        eos_token_id=ids["[EOS]"],
    )
    return CLIPTextModel(config)


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def encode(tokenizer, text_encoder, prompts: list[str]) -> torch.Tensor:
    ids = tokenizer(prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
    return text_encoder(ids.input_ids.to(text_encoder.device)).last_hidden_state


def train_teacher(out_dir: Path, config: TeacherTrainConfig = TeacherTrainConfig(), progress=None) -> dict:
    """Train the toy teacher from scratch and save it as a diffusers-layout folder.

    Deterministic for a fixed seed, thread count and torch version. Returns a summary
    with the final loss and the sha256 of the saved UNet weights.
    """
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    images, labels = load_digits_uint8()
    x_all = uint8_to_model(images)
    tokenizer = build_tokenizer()
    text_encoder = build_text_encoder(len(tokenizer))
    unet = build_unet()
    scheduler = DDPMScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items() if k != "set_alpha_to_one"})

    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
    ema = EMAModel(params, decay=config.ema_decay)
    gen = torch.Generator().manual_seed(config.seed)

    unet.train()
    text_encoder.train()
    losses = []
    for step in range(config.steps):
        idx = torch.as_tensor(rng.integers(0, len(x_all), config.batch_size))
        x0 = x_all[idx]
        prompts = [
            "" if rng.random() < config.uncond_prob else caption(int(labels[i]), TRAIN_TEMPLATES[rng.integers(len(TRAIN_TEMPLATES))])
            for i in idx.tolist()
        ]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        pred = unet(xt, t, encode(tokenizer, text_encoder, prompts)).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        lr_schedule.step()
        ema.step(params)
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, config.steps, float(np.mean(losses[-50:])))

    ema.copy_to(params)
    return save_teacher(out_dir, unet, text_encoder, tokenizer, config, final_loss=float(np.mean(losses[-100:])))


def save_teacher(out_dir: Path, unet, text_encoder, tokenizer, config: TeacherTrainConfig, final_loss: float) -> dict:
    import diffusers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unet.eval().save_pretrained(out_dir / "unet", safe_serialization=True)
    text_encoder.eval().save_pretrained(out_dir / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(out_dir / "tokenizer")
    (out_dir / "scheduler").mkdir(exist_ok=True)
    sched = {"_class_name": "DDPMScheduler", "_diffusers_version": diffusers.__version__, **SCHEDULER_CONFIG}
    (out_dir / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched, indent=2) + "\n")
    index = {
        "_class_name": "BenchkitToyDigitsPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "scheduler": ["diffusers", "DDPMScheduler"],
    }
    (out_dir / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    weights = out_dir / "unet" / "diffusion_pytorch_model.safetensors"
    summary = {
        "train_config": asdict(config),
        "final_loss": final_loss,
        "unet_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "torch": torch.__version__,
    }
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
