"""What a distiller trains on: prompts (as conditioning), optional real samples, optional teacher pairs.

DMD2's GAN and Hyper-SD's TSCD need real samples x0 with captions; ADP and Lightning need
teacher ODE pairs (noise, x0); DMD-style losses need only prompts. One ``DistillData``
carries whatever is available, and draws from a caller's ``torch.Generator`` so that a
training step's batch depends only on (seed, step) and a resumed run draws the same batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from benchkit.core.errors import BenchkitError
from benchkit.core.registry import Registry
from distillers.adapter import Conditioning

ENCODE_CHUNK = 64  # prompts per text-encoder batch when caching encodings


@dataclass
class Pairs:
    """Teacher ODE pairs: the starting noise, the teacher's sample and the prompt index of each."""

    noise: torch.Tensor
    x0: torch.Tensor
    prompt_index: torch.Tensor
    prompts: list[str]
    meta: dict

    def save(self, path: Path) -> None:
        from safetensors.torch import save

        from benchkit.core.atomic import write_bytes_atomic

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = save({"noise": self.noise.contiguous(), "x0": self.x0.contiguous(), "prompt_index": self.prompt_index.contiguous()},
                    metadata={"prompts": json.dumps(self.prompts), "meta": json.dumps(self.meta)})
        write_bytes_atomic(path, data)

    @classmethod
    def load(cls, path: Path) -> "Pairs":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise BenchkitError(f"pairs file {path} not found; make one with `benchkit pairs --teacher SPEC --out {path}`")
        try:  # safetensors and JSON only: the file is read as data, never unpickled
            with safe_open(str(path), "pt") as f:
                tensors = {k: f.get_tensor(k) for k in ("noise", "x0", "prompt_index")}
                md = f.metadata() or {}
            prompts, meta = json.loads(md.get("prompts", "[]")), json.loads(md.get("meta", "{}"))
            if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts) or not isinstance(meta, dict):
                raise ValueError("its prompts or meta header is malformed")
        except Exception as exc:  # safetensors raises several types for a bad file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise BenchkitError(f"{path} is not a benchkit pairs file ({first}); regenerate it with `benchkit pairs`") from None
        return cls(tensors["noise"], tensors["x0"], tensors["prompt_index"], prompts, meta)


class DistillData:
    """Prompts, their encodings (cached), and optional real samples and teacher pairs.

    ``encode`` maps a list of prompts to a Conditioning; it is called once per distinct prompt.
    ``real`` is (x0, prompt_index) in the model's space (pixels for the toy, latents for SD).
    ``negative`` is the one-row unconditional for CFG where it is not encode("") (SDXL's zeros).
    """

    def __init__(self, prompts: Sequence[str], encode: Callable[[list[str]], Conditioning], shape: Sequence[int],
                 real: tuple[torch.Tensor, torch.Tensor] | None = None, real_prompts: Sequence[str] | None = None,
                 pairs: Pairs | None = None, negative: Conditioning | None = None):
        if not prompts:
            raise BenchkitError("distillation needs at least one training prompt")
        self.prompts = list(prompts)
        self.shape = tuple(shape)
        self._encode = encode
        self.cond = self.encode(self.prompts)
        self.uncond_one = negative if negative is not None else self.encode([""])
        self.real = real
        self.real_cond = self.encode(list(real_prompts)) if real is not None else None
        self.pairs = pairs
        self.pair_cond = self.encode(pairs.prompts) if pairs is not None else None

    def encode(self, prompts: list[str]) -> Conditioning:
        """Encodings of ``prompts``, in chunks so a large prompt set does not run as one text-encoder batch."""
        prompts = list(prompts)
        with torch.no_grad():
            chunks = [self._encode(prompts[i:i + ENCODE_CHUNK]) for i in range(0, len(prompts), ENCODE_CHUNK)]
        fields = zip(*(c._tensors() for c in chunks))
        cond = Conditioning(*(None if f[0] is None else torch.cat(f) for f in fields))
        cond.texts = tuple(prompts)
        return cond

    def uncond(self, n: int) -> Conditioning:
        return self.uncond_one.repeat(n)

    def sample_cond(self, n: int, gen: torch.Generator) -> Conditioning:
        idx = torch.randint(0, len(self.prompts), (n,), generator=gen)
        return self.cond.select(idx)

    def sample_real(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, Conditioning]:
        if self.real is None:
            raise BenchkitError("this method needs real samples or teacher pairs; pass --pairs FILE (make it with `benchkit pairs`)")
        x0, pidx = self.real
        idx = torch.randint(0, len(x0), (n,), generator=gen)
        return x0[idx], self.real_cond.select(pidx[idx])

    def sample_pairs(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, Conditioning]:
        if self.pairs is None:
            raise BenchkitError("this method needs teacher ODE pairs; make them with `benchkit pairs --teacher SPEC --out pairs.safetensors` and pass --pairs")
        idx = torch.randint(0, len(self.pairs.x0), (n,), generator=gen)
        return self.pairs.noise[idx], self.pairs.x0[idx], self.pair_cond.select(self.pairs.prompt_index[idx])

    @property
    def has_real(self) -> bool:
        return self.real is not None


def text_encoder_fn(tokenizer, text_encoder, device: torch.device) -> Callable[[list[str]], Conditioning]:
    """SD1.5-style conditioning from a tokenizer + CLIP text encoder (last hidden state)."""
    max_len = getattr(tokenizer, "model_max_length", 77)
    max_len = max_len if max_len and max_len < 100_000 else 77

    def encode(prompts: list[str]) -> Conditioning:
        ids = tokenizer(prompts, padding="max_length", max_length=max_len, truncation=True, return_tensors="pt")
        hidden = text_encoder(ids.input_ids.to(device)).last_hidden_state
        return Conditioning(hidden.float().cpu())

    return encode


# Families that ship their own training data (captions and real samples), by family name:
# ``(tokenizer, text_encoder, device, pairs) -> DistillData``. Other families train on --pairs.
BUILTIN_DATA: Registry[Callable[..., DistillData]] = Registry("family's distillation data")


@BUILTIN_DATA.register("toy")
def toy_data(tokenizer, text_encoder, device: torch.device, pairs: Pairs | None = None) -> DistillData:
    """The toy world: training captions for the 10 digits, and the 1,797 digits as real samples."""
    from benchkit.toy.data import (
        TRAIN_TEMPLATES,
        caption,
        load_digits_uint8,
        uint8_to_model,
    )

    images, labels = load_digits_uint8()
    prompts = [caption(d, tpl) for d in range(10) for tpl in TRAIN_TEMPLATES]
    real_prompts = [caption(d, TRAIN_TEMPLATES[0]) for d in range(10)]
    return DistillData(prompts, text_encoder_fn(tokenizer, text_encoder, device), (1, 8, 8),
                       real=(uint8_to_model(images), torch.as_tensor(labels)), real_prompts=real_prompts, pairs=pairs)


def pairs_as_real(pairs: Pairs) -> tuple[tuple[torch.Tensor, torch.Tensor], list[str]]:
    """Teacher samples stand in for real data where a dataset is not at hand (e.g. SD latents)."""
    return (pairs.x0, pairs.prompt_index), pairs.prompts
