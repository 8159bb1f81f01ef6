"""Per-stage timing of a real pipeline: text encoding, denoising (per step) and VAE decoding.

Forward hooks on the pipeline's own modules time each stage from the outside, so the
diffusers pipeline runs unchanged (its recipe handling is the reference) and the same hooks
also record what the denoiser was actually called with: the timesteps and batch rows, the
evidence that a recipe reached the model exactly. On cuda/mps each boundary synchronises
the device, otherwise queued kernels would be charged to the wrong stage.
"""

from __future__ import annotations

import functools
import time
from contextlib import contextmanager
from typing import Any

import torch

from benchkit.core.hardware import synchronize


class StageTimer:
    """Attach to text encoders and the denoiser; ``decode()`` times the VAE as a block."""

    def __init__(self, device: torch.device, text_encoders: list[torch.nn.Module],
                 denoiser: torch.nn.Module | list[torch.nn.Module]):
        """``denoiser``: one module, or the experts of a model that switches denoisers by noise level (Wan 2.2)."""
        self.device = device
        self.handles: list[Any] = []
        for enc in text_encoders:
            self.handles.append(enc.register_forward_pre_hook(self._text_start))
            self.handles.append(enc.register_forward_hook(self._text_end))
        self.n_denoisers = len(denoiser) if isinstance(denoiser, list) else 1
        for index, module in enumerate(denoiser if isinstance(denoiser, list) else [denoiser]):
            self.handles.append(module.register_forward_pre_hook(functools.partial(self._denoise_start, index),
                                                                 with_kwargs=True))
            self.handles.append(module.register_forward_hook(self._denoise_end))
        self.reset()

    def reset(self) -> None:
        self.text_seconds = 0.0
        self.decode_seconds = 0.0
        self.first_denoise: float | None = None
        self.last_denoise: float | None = None
        self.timesteps: list[float] = []
        self.rows: list[int] = []
        self.experts: list[int] = []  # which denoiser took each call (0: the first; Wan 2.2's low-noise expert is 1)
        self._t0 = 0.0

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def _text_start(self, module, args):
        self._t0 = self._now()

    def _text_end(self, module, args, output):
        self.text_seconds += self._now() - self._t0

    def _denoise_start(self, index, module, args, kwargs):
        self.experts.append(index)
        now = self._now()
        if self.first_denoise is None:
            self.first_denoise = now
        sample = kwargs.get("sample", kwargs.get("hidden_states", args[0] if args else None))
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        if torch.is_tensor(t):
            t = t.reshape(-1)[0].item()
        self.timesteps.append(float(t) if t is not None else float("nan"))
        if isinstance(sample, (list, tuple)):  # Z-Image's transformer takes one latent per row
            self.rows.append(len(sample))
        else:
            self.rows.append(int(sample.shape[0]) if torch.is_tensor(sample) else 0)

    def _denoise_end(self, module, args, output):
        self.last_denoise = self._now()

    @contextmanager
    def decode(self):
        start = self._now()
        yield
        self.decode_seconds += self._now() - start

    @contextmanager
    def decoding_inside(self, vae: torch.nn.Module):
        """Time the VAE's ``decode`` when the pipeline calls it itself (see Family.pipeline_decodes)."""
        original = vae.decode

        def timed_decode(*args, **kwargs):
            with self.decode():
                return original(*args, **kwargs)

        vae.decode = timed_decode
        try:
            yield
        finally:
            del vae.decode  # the instance attribute goes; the class's method is back

    def summary(self, n_items: int) -> dict[str, Any]:
        """Seconds per stage for the batch (not per image) and the measured denoiser calls."""
        denoise = (self.last_denoise - self.first_denoise) if self.first_denoise is not None else 0.0
        # sampling steps: a second call at the same time (the negative prompt of FLUX's and Qwen-Image's
        # true CFG) is part of its step, so step seconds stay comparable across guidance kinds
        ts = self.timesteps
        steps = sum(1 for i, t in enumerate(ts) if i == 0 or t != ts[i - 1])
        return {
            "text_encoding_s": self.text_seconds,
            "denoising_s": denoise,
            "denoise_step_s": denoise / steps if steps else 0.0,
            "steps": steps,
            "vae_decode_s": self.decode_seconds,
            "denoiser_rows_per_item": sum(self.rows) / n_items if n_items else 0.0,
            "timesteps": [round(t, 4) for t in self.timesteps],  # what the denoiser was called with
        }
