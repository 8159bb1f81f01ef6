"""The toy world's data: scikit-learn's bundled 8x8 handwritten digits and their prompts.

scikit-learn ships the 1,797 digits inside the wheel, so nothing is downloaded. Pixel
values (0..16) go through the same uint8 path as generated PNGs, so real and generated
images meet the feature extractor in one representation.
"""

from __future__ import annotations

import re

import numpy as np
import torch

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Training captions vary the wording so the text encoder has to read the digit.
TRAIN_TEMPLATES = (
    "a handwritten digit {word}",
    "the number {word}",
    "a handwritten {word}",
    "the digit {num}",
    "a scan of a handwritten {num}",
    "the numeral {word} written by hand",
)

_WORD_RE = re.compile(r"\b(" + "|".join(DIGIT_WORDS) + r")\b", re.IGNORECASE)
_NUM_RE = re.compile(r"(?<![\w.])([0-9])(?![\w.])")


def caption(digit: int, template: str) -> str:
    return template.format(word=DIGIT_WORDS[digit], num=str(digit))


def digit_of_prompt(prompt: str) -> int | None:
    """The digit a prompt asks for ("seven" or "7"), or None if it names none or several."""
    found = {DIGIT_WORDS.index(m.lower()) for m in _WORD_RE.findall(prompt)}
    found |= {int(m) for m in _NUM_RE.findall(prompt)}
    return found.pop() if len(found) == 1 else None


def load_digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 images (N, 8, 8) in 0..255, and their labels (N,)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.rint(data.images.astype(np.float64) / 16.0 * 255.0).astype(np.uint8)
    return images, data.target.astype(np.int64)


def uint8_to_model(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [-1, 1], the diffusion model's pixel space."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    return (x / 127.5 - 1.0).unsqueeze(1)


def split_indices(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/test split (the classifier's held-out accuracy is measured on test)."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])
