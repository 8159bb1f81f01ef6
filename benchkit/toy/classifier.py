"""The toy digits classifier: the toy world's stand-in for Inception and CLIP.

Its penultimate activations (64 numbers) are the feature space of toy FID and toy
diversity, and its probability of the prompted digit is toy prompt alignment. It is
trained by benchkit on the train split of scikit-learn's digits, with light noise and
shift augmentation so it also reads imperfect generated digits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchkit.toy.data import load_digits_uint8, split_indices

FEATURE_DIM = 64


class DigitClassifier(nn.Module):
    """A small CNN on 8x8 grayscale digits in [0, 1]; ``features`` is the penultimate layer."""

    def __init__(self, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass(frozen=True)
class ClassifierTrainConfig:
    seed: int = 0
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    noise_std: float = 0.08
    max_shift: int = 1
    threads: int = 2


def _augment(x: torch.Tensor, cfg: ClassifierTrainConfig, gen: torch.Generator) -> torch.Tensor:
    shifts = torch.randint(-cfg.max_shift, cfg.max_shift + 1, (2,), generator=gen).tolist()
    x = torch.roll(x, shifts=shifts, dims=(2, 3))
    x = x + cfg.noise_std * torch.randn(x.shape, generator=gen)
    return x.clamp(0, 1)


def train_classifier(out_dir: Path, config: ClassifierTrainConfig = ClassifierTrainConfig(), progress=None) -> dict:
    """Train the classifier and save ``model.safetensors`` + ``config.json``; returns a summary."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    images, labels = load_digits_uint8()
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0
    y = torch.as_tensor(labels)
    train_idx, test_idx = split_indices(len(x))
    x_train, y_train = x[train_idx], y[train_idx]

    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    steps_per_epoch = (len(x_train) + config.batch_size - 1) // config.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps_per_epoch)
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            logits = model(_augment(x_train[batch], config, gen))
            loss = nn.functional.cross_entropy(logits, y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if progress is not None:
            progress(epoch + 1, config.epochs, loss.item())

    model.eval()
    with torch.no_grad():
        test_acc = (model(x[test_idx]).argmax(1) == y[test_idx]).float().mean().item()
    return save_classifier(out_dir, model, config, test_acc)


def save_classifier(out_dir: Path, model: DigitClassifier, config: ClassifierTrainConfig, test_accuracy: float) -> dict:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    summary = {
        "architecture": "DigitClassifier",
        "feature_dim": FEATURE_DIM,
        "train_config": asdict(config),
        "test_accuracy": test_accuracy,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "torch": torch.__version__,
    }
    (out_dir / "config.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_classifier(path: Path) -> DigitClassifier:
    from safetensors.torch import load_file

    model = DigitClassifier()
    model.load_state_dict(load_file(str(Path(path) / "model.safetensors")))
    return model.eval()


def images_to_input(images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, 1, H, W) -> float (N, 1, 8, 8) in [0, 1] for the classifier."""
    x = torch.as_tensor(np.asarray(images_uint8)).float() / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.shape[-2:] != (8, 8):
        x = torch.nn.functional.interpolate(x, size=(8, 8), mode="area")
    return x
