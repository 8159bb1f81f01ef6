"""The Generator: turns a batch of (prompt_id, prompt, seed) items into images.

The denoising loop is the standard diffusers one (scale_model_input, UNet, guidance,
scheduler.step), written out rather than calling a pipeline so that every item has its own
noise generator, the number of UNet calls is counted, and pixel-space models (the toy)
and latent models (SD, with a VAE) share one path.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from benchkit.core.items import Item, item_generator
from benchkit.models.loading import LoadedModel
from benchkit.models.spec import MODEL_DEFAULT_SCHEDULER, Recipe


def make_scheduler(recipe: Recipe, base_config: dict[str, Any]):
    """The recipe's scheduler, built from the model's config; unknown kwargs are errors, not ignored."""
    import diffusers

    name = recipe.scheduler_class
    if name.lower() == MODEL_DEFAULT_SCHEDULER:
        name = base_config.get("_class_name", "")
    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise BenchkitError(f"recipe.scheduler '{recipe.scheduler}' is not a diffusers scheduler (e.g. DDIMScheduler, EulerDiscreteScheduler, LCMScheduler)")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    bad = [k for k in recipe.scheduler_kwargs if k not in accepted]
    if bad:
        raise BenchkitError(f"recipe.scheduler_kwargs: '{bad[0]}' is not a parameter of {cls.__name__}")
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    config.update(recipe.scheduler_kwargs)
    return cls.from_config(config)


def check_explicit_timesteps(scheduler, recipe: Recipe) -> None:
    """Explicit timesteps must be ones the scheduler takes: fractions only on a flow-matching scheduler,
    which divides them into sigmas (the discrete schedulers index their tables with them)."""
    if "timesteps" not in inspect.signature(scheduler.set_timesteps).parameters:
        raise BenchkitError(f"recipe.timesteps: {type(scheduler).__name__} does not accept explicit timesteps; use LCMScheduler, TCDScheduler or EulerDiscreteScheduler")
    if any(isinstance(t, float) for t in recipe.timesteps) and "FlowMatch" not in type(scheduler).__name__:
        raise BenchkitError(f"recipe.timesteps: {type(scheduler).__name__} takes whole-number timesteps; fractions such as "
                            f"{next(t for t in recipe.timesteps if isinstance(t, float))} need a flow-matching scheduler")


def set_timesteps(scheduler, recipe: Recipe, device: torch.device) -> None:
    if recipe.timesteps is not None:
        check_explicit_timesteps(scheduler, recipe)
        scheduler.set_timesteps(timesteps=list(recipe.timesteps), device=device)
    else:
        scheduler.set_timesteps(recipe.steps, device=device)


@dataclass
class Generation:
    """What one ``generate(items)`` call made, in item order, and what it measured on the way."""

    images: list[np.ndarray]  # uint8 (H, W) or (H, W, 3); a video's first frame
    denoiser_calls: int  # denoiser forward rows per item (steps x 2 with classifier-free guidance)
    videos: list[np.ndarray] | None = None  # uint8 (F, H, W, 3) clips of a video model
    stages: dict[str, Any] | None = None  # per-stage seconds (text encoding, denoising, decode); pipelines measure them
    trace: dict[str, Any] = field(default_factory=dict)  # the scheduler and timesteps the denoiser actually saw
    inputs: list[dict[str, Any]] | None = None  # per item: what conditioned it beside the prompt (an input image, its sha256)


class Generator:
    """A loaded model plus a recipe on a device, sampled by benchkit's written-out loop."""

    def __init__(self, model: LoadedModel, recipe: Recipe):
        self.model = model
        self.recipe = recipe
        make_scheduler(recipe, model.scheduler_config)  # fail on a bad recipe before any work
        vae = model.vae
        self.vae_scale = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        sample = model.unet.config.sample_size
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        self.height = recipe.height or sample * self.vae_scale
        self.width = recipe.width or sample * self.vae_scale
        if self.height % self.vae_scale or self.width % self.vae_scale:
            raise BenchkitError(f"recipe.height/width must be multiples of {self.vae_scale} for this model")
        self._uncond: torch.Tensor | None = None

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        tok = self.model.tokenizer
        max_len = getattr(tok, "model_max_length", 77)
        max_len = max_len if max_len and max_len < 100_000 else 77
        ids = tok(list(prompts), padding="max_length", max_length=max_len, truncation=True, return_tensors="pt")
        out = self.model.text_encoder(ids.input_ids.to(self.model.device))
        return out.last_hidden_state.to(self.model.dtype)

    def initial_noise(self, items: Sequence[Item]) -> tuple[torch.Tensor, list[torch.Generator]]:
        channels = self.model.unet.config.in_channels
        shape = (1, channels, self.height // self.vae_scale, self.width // self.vae_scale)
        gens = [item_generator(it.prompt_id, it.seed) for it in items]
        noise = torch.cat([torch.randn(shape, generator=g, dtype=torch.float32) for g in gens])
        return noise, gens

    @torch.no_grad()
    def generate(self, items: Sequence[Item]) -> Generation:
        """Images as uint8 arrays (H, W) for 1 channel or (H, W, 3)."""
        m, r = self.model, self.recipe
        device, dtype = m.device, m.dtype
        scheduler = make_scheduler(r, m.scheduler_config)
        set_timesteps(scheduler, r, device)
        noise, gens = self.initial_noise(items)
        latents = noise.to(device=device, dtype=dtype) * scheduler.init_noise_sigma
        cond = self.encode([it.prompt for it in items])
        if r.uses_cfg:
            if self._uncond is None:
                self._uncond = self.encode([""])
            context = torch.cat([self._uncond.expand(len(items), -1, -1), cond])
        else:
            context = cond
        step_params = inspect.signature(scheduler.step).parameters
        step_kwargs: dict[str, Any] = {}
        if "generator" in step_params:
            step_kwargs["generator"] = gens  # per-item noise for stochastic samplers (LCM, TCD, ancestral)
        if r.eta is not None:
            if "eta" not in step_params:
                raise BenchkitError(f"recipe.eta: {type(scheduler).__name__}.step takes no eta; remove it from the recipe")
            step_kwargs["eta"] = r.eta
        calls = 0
        for t in scheduler.timesteps:
            model_in = torch.cat([latents, latents]) if r.uses_cfg else latents
            model_in = scheduler.scale_model_input(model_in, t)
            pred = m.unet(model_in, t, encoder_hidden_states=context).sample
            calls += 1
            if r.uses_cfg:
                uncond, text = pred.chunk(2)
                pred = uncond + r.guidance_scale * (text - uncond)
            latents = scheduler.step(pred, t, latents, return_dict=False, **step_kwargs)[0]
        if m.vae is not None:
            vae = m.vae
            latents = latents.to(vae.dtype) / vae.config.scaling_factor
            images = vae.decode(latents, return_dict=False)[0]
        else:
            images = latents
        images = ((images.float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        images = images.permute(0, 2, 3, 1).numpy()
        return Generation([img[..., 0] if img.shape[-1] == 1 else img for img in images],
                          denoiser_calls=calls * (2 if r.uses_cfg else 1))
