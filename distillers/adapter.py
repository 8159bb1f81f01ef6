"""The teacher adapter: one interface over eps / v / x0 / flow models and their noise schedules.

Every distiller speaks in (x0, eps) pairs and "move x from t to t'" steps; the adapter turns
a model's raw output into those, whatever the model predicts (epsilon for SD1.5/SDXL and the
toy teacher, v for SD2-v, sample for Lightning's one-step x0 model, flow velocity for SD3, FLUX
and Wan) and whatever its schedule is (DDPM ``alphas_cumprod`` or rectified-flow sigmas). Conversions run
in float64 by default because at t=999 sqrt(alpha_bar) is 0.068 and x0 = (x - s*eps)/a
amplifies float32 rounding 15x (DMD2 does the same). Scheduler ``.step()`` is not used in
training loops: the distillers need differentiable, batched, per-sample-t conversions that
the schedulers do not offer.

Internal time is a float "training timestep" t in [0, T) (T = 1000), the convention both
families share: DDPM models take t itself, flow transformers take sigma(t) * T (FLUX's takes
sigma(t) itself, as its pipeline divides by 1000). Latents are a (B, C, H, W) grid here, or a
channels-first video (B, C, F, H, W) for Wan (the conversions broadcast over any number of
dimensions); FLUX's transformer takes them as 2x2-patch tokens, packed and unpacked around each call.

Wan's scheduler is not a FlowMatch class: WanPipeline samples with UniPCMultistepScheduler on flow
sigmas (``use_flow_sigmas``, ``flow_shift``), which is the same shifted rectified-flow schedule
``NoiseSchedule.flow(T, flow_shift)``. Its sampling grid differs from the trailing training grid:
UniPC's N steps start from the unshifted s_k = 1 - k (1 - 1/T) / N (linspace(1, 1/T, N + 1)), its
first sigma nudged to 1 - 1e-6 and its transformer timesteps truncated to integers, while the
distillers' t = T - 1 - k T / N is s_k = 1 - k / N (FLUX's pipeline grid). Both are shift(s).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from benchkit.core.errors import BenchkitError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample", "flow")
_ALIASES = {"eps": "epsilon", "v": "v_prediction", "x0": "sample", "flow_prediction": "flow", "velocity": "flow"}


def canonical_prediction(kind: str) -> str:
    kind = _ALIASES.get(kind, kind)
    if kind not in PREDICTION_TYPES:
        raise BenchkitError(f"unknown prediction type '{kind}'; use one of {', '.join(PREDICTION_TYPES)} (or eps, v, x0)")
    return kind


class NoiseSchedule:
    """x_t = alpha(t) * x0 + sigma(t) * eps, for a VP (DDPM) or a rectified-flow schedule.

    ``alpha``/``sigma`` interpolate linearly between integer timesteps (only used for
    fractional t, e.g. ADM's t - dt with dt = T/64 is integral anyway).
    """

    def __init__(self, alphas: torch.Tensor, sigmas: torch.Tensor, kind: str, num_train_timesteps: int):
        self.alphas = alphas.to(torch.float64)
        self.sigmas = sigmas.to(torch.float64)
        self.kind = kind  # "vp" or "flow"
        self.T = num_train_timesteps

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: torch.Tensor) -> "NoiseSchedule":
        ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        return cls(ac.sqrt(), (1 - ac).sqrt(), "vp", len(ac))

    @classmethod
    def from_scheduler_config(cls, config: dict[str, Any], image_tokens: int | None = None) -> "NoiseSchedule":
        """DDPM-family configs (beta_schedule), FlowMatch configs (shift; ``image_tokens``: the
        training resolution's token count, which a dynamic-shift config needs, see ``flow_shift``), or a
        multistep solver on flow sigmas (Wan's UniPC: ``use_flow_sigmas``, static ``flow_shift``)."""
        name = config.get("_class_name", "")
        if "FlowMatch" in name:
            return cls.flow(config.get("num_train_timesteps", 1000), flow_shift(config, image_tokens))
        if config.get("use_flow_sigmas"):
            return cls.flow(config.get("num_train_timesteps", 1000), solver_flow_shift(config))
        from diffusers import DDPMScheduler

        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "rescale_betas_zero_snr")
        sched = DDPMScheduler(**{k: config[k] for k in keys if k in config})
        return cls.from_alphas_cumprod(sched.alphas_cumprod)

    @classmethod
    def flow(cls, num_train_timesteps: int = 1000, shift: float = 1.0) -> "NoiseSchedule":
        """SD3's schedule: sigma = shift*s / (1 + (shift-1)*s), s = (t+1)/T; alpha = 1 - sigma."""
        s = torch.arange(1, num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
        sig = shift * s / (1 + (shift - 1) * s)
        return cls(1 - sig, sig, "flow", num_train_timesteps)

    def _interp(self, table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0, self.T - 1)
        lo = t.floor().long()
        hi = (lo + 1).clamp(max=self.T - 1)
        w = t - lo.to(torch.float64)
        return table[lo] * (1 - w) + table[hi] * w

    def alpha(self, t) -> torch.Tensor:
        return self._interp(self.alphas, t)

    def sigma(self, t) -> torch.Tensor:
        return self._interp(self.sigmas, t)

    def model_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """What the network is conditioned on: t for DDPM models, sigma*T for flow transformers."""
        if self.kind == "flow":
            return self.sigma(t) * self.T
        return torch.as_tensor(t)


def dynamic_mu(config: dict[str, Any], image_tokens: int) -> float:
    """diffusers' ``calculate_shift`` (pipeline_flux.py): mu linear in the image's token count,
    from (base_image_seq_len, base_shift) to (max_image_seq_len, max_shift), with the pipeline's defaults."""
    base_len, max_len = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    base, top = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    m = (top - base) / (max_len - base_len)
    return image_tokens * m + base - m * base_len


def flow_shift(config: dict[str, Any], image_tokens: int | None = None) -> float:
    """The static shift a FlowMatch scheduler config applies at one resolution.

    With ``use_dynamic_shifting`` (FLUX.1-dev) the pipeline computes mu from the image's token count
    and the scheduler's exponential time shift exp(mu) / (exp(mu) + 1/s - 1) is exactly the static
    shift s' = shift*s / (1 + (shift-1)*s) with shift = exp(mu) (the linear one, mu / (mu + 1/s - 1),
    with shift = mu); ``shift`` in the config is then ignored, as the scheduler ignores it. So a teacher
    trained at one resolution has one static schedule, ``NoiseSchedule.flow(T, exp(mu))``.
    """
    if not config.get("use_dynamic_shifting"):
        return float(config.get("shift", 1.0))
    if image_tokens is None:
        raise BenchkitError("this flow scheduler shifts by resolution (use_dynamic_shifting); the distillers need the "
                            "training resolution's image token count to build its schedule")
    mu = dynamic_mu(config, image_tokens)
    return mu if config.get("time_shift_type", "exponential") == "linear" else math.exp(mu)


# options of a solver on flow sigmas (UniPC, DPM-Solver) that make its sigmas something other than shift(s)
_OTHER_FLOW_SIGMAS = ("use_dynamic_shifting", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "shift_terminal")


def solver_flow_shift(config: dict[str, Any]) -> float:
    """The static shift of a multistep solver on flow sigmas (UniPCMultistepScheduler with ``use_flow_sigmas``,
    as WanPipeline ships it): its sigmas are flow_shift*s / (1 + (flow_shift-1)*s), the schedule of
    ``NoiseSchedule.flow(T, flow_shift)``. Options that change that form are refused in one line."""
    other = next((k for k in _OTHER_FLOW_SIGMAS if config.get(k)), None)
    if other is not None:
        raise BenchkitError(f"{config.get('_class_name', 'the scheduler')} with use_flow_sigmas and {other}: the distillers read "
                            "flow sigmas with a static flow_shift only")
    return float(config.get("flow_shift", 1.0))


def _bcast(v: torch.Tensor, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    v = v.to(device=like.device, dtype=dtype)
    if v.ndim == 0:
        v = v.expand(like.shape[0])
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def _times(t, batch: int) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.float64)
    return t.expand(batch) if t.ndim == 0 else t


class Conversions:
    """Closed-form conversions between predictions, on a schedule, in a chosen float dtype."""

    def __init__(self, schedule: NoiseSchedule, dtype: torch.dtype = torch.float64):
        self.schedule = schedule
        self.dtype = dtype

    def coeffs(self, t, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = _times(t, like.shape[0])
        return _bcast(self.schedule.alpha(t), like, self.dtype), _bcast(self.schedule.sigma(t), like, self.dtype)

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        a, s = self.coeffs(t, x0)
        return (a * x0.to(self.dtype) + s * eps.to(self.dtype)).to(x0.dtype)

    def noised(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """add_noise, except that t = T-1 gives pure noise: SD's schedule does not reach zero SNR,
        and every method here trains the first step on plain N(0, I), as samplers start from it."""
        t = _times(t, x0.shape[0])
        x = self.add_noise(x0, eps, t)
        last = _bcast(t >= self.schedule.T - 1, x, torch.bool)
        return torch.where(last, eps.to(x.dtype), x)

    def to_x0_eps(self, pred: torch.Tensor, x_t: torch.Tensor, t, prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) implied by a model output; returned in the input's dtype."""
        kind = canonical_prediction(prediction_type)
        a, s = self.coeffs(t, x_t)
        p, x = pred.to(self.dtype), x_t.to(self.dtype)
        if kind == "epsilon":
            eps = p
            x0 = (x - s * eps) / a
        elif kind == "sample":
            x0 = p
            eps = (x - a * x0) / s
        elif kind == "v_prediction":  # v = a*eps - s*x0 with a^2 + s^2 = 1
            x0 = a * x - s * p
            eps = s * x + a * p
        else:  # flow velocity u = eps - x0 with a + s = 1
            x0 = x - s * p
            eps = x + a * p
        return x0.to(x_t.dtype), eps.to(x_t.dtype)

    def from_x0_eps(self, x0: torch.Tensor, eps: torch.Tensor, t, prediction_type: str) -> torch.Tensor:
        kind = canonical_prediction(prediction_type)
        if kind == "epsilon":
            return eps
        if kind == "sample":
            return x0
        if kind == "flow":
            return eps - x0
        a, s = self.coeffs(t, x0)
        return (a * eps.to(self.dtype) - s * x0.to(self.dtype)).to(x0.dtype)

    def convert(self, pred: torch.Tensor, x_t: torch.Tensor, t, src: str, dst: str) -> torch.Tensor:
        x0, eps = self.to_x0_eps(pred, x_t, t, src)
        return self.from_x0_eps(x0, eps, t, dst)

    def move(self, x0: torch.Tensor, eps: torch.Tensor, t_next) -> torch.Tensor:
        """The DDIM / Euler step: the same (x0, eps) placed at t_next (a PF-ODE step)."""
        return self.add_noise(x0, eps, t_next)


@dataclass
class Conditioning:
    """Everything a denoiser is conditioned on besides x_t and t.

    ``pooled`` is SDXL's ``text_embeds`` or SD3's and FLUX's ``pooled_projections``; ``time_ids`` is
    SDXL's size/crop conditioning; ``guidance`` is the per-row input of a guidance-distilled
    transformer (FLUX.1-dev's embedded guidance scale, e.g. 3.5; not classifier-free guidance).
    All tensors are batch-first.
    """

    hidden: torch.Tensor
    pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None
    guidance: torch.Tensor | None = None
    texts: tuple[str, ...] | None = None  # the prompts, for reward models that read text

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def _tensors(self):
        return (self.hidden, self.pooled, self.time_ids, self.guidance)

    def select(self, idx) -> "Conditioning":
        texts = None
        if self.texts is not None:
            picks = range(len(self.texts))[idx] if isinstance(idx, slice) else torch.as_tensor(idx).tolist()
            texts = tuple(self.texts[i] for i in picks)
        return Conditioning(*(None if v is None else v[idx] for v in self._tensors()), texts=texts)

    def cat(self, other: "Conditioning") -> "Conditioning":
        texts = self.texts + other.texts if self.texts is not None and other.texts is not None else None
        return Conditioning(*(None if a is None else torch.cat([a, b]) for a, b in zip(self._tensors(), other._tensors())),
                            texts=texts)

    def to(self, device, dtype=None) -> "Conditioning":
        def mv(v):
            if v is None:
                return None
            return v.to(device=device, dtype=dtype if (dtype is not None and v.is_floating_point()) else v.dtype)
        return Conditioning(*(mv(v) for v in self._tensors()), texts=self.texts)

    def repeat(self, n: int) -> "Conditioning":
        texts = self.texts * n if self.texts is not None and len(self.texts) == 1 else self.texts
        return Conditioning(*(None if v is None else v.expand(n, *v.shape[1:]) for v in self._tensors()), texts=texts)


@dataclass
class Prediction:
    x0: torch.Tensor
    eps: torch.Tensor
    raw: torch.Tensor


def denoiser_kind(model) -> str:
    """How a denoiser network is called (its forward's keywords): unet, sd3 (MMDiT), flux (MMDiT over
    packed latents), wan (video DiT over channels-first video latents) or generic."""
    name = type(model).__name__
    if name.startswith("FSDP"):  # FSDP2's fully_shard subclasses the module's class as FSDP<name>
        name = next((c.__name__ for c in type(model).__mro__ if c.__name__ == name[4:]), name)
    if name == "UNet2DConditionModel":
        return "unet"
    if name in ("SD3Transformer2DModel",):
        return "sd3"
    if name == "FluxTransformer2DModel":
        return "flux"
    if name == "WanTransformer3DModel":
        return "wan"
    if getattr(model, "generic_denoiser", False):  # any module called as model(x, t, cond), e.g. the 2-D MLPs in tests
        return "generic"
    raise BenchkitError(f"the distillers support UNet2DConditionModel, SD3Transformer2DModel, FluxTransformer2DModel and "
                        f"WanTransformer3DModel, not {name}")


def flux_call(model, x: torch.Tensor, model_t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    """FluxTransformer2DModel on a (B, C, H, W) latent grid, called as FluxPipeline calls it: the grid packed
    into 2x2-patch tokens and their position ids with the pipeline's own static helpers, text ids all zero,
    timestep = sigma (the pipeline passes t / 1000), the embedded guidance where the transformer has a
    guidance embedding; the output is unpacked back to the grid."""
    from diffusers import FluxPipeline

    b, c, h, w = x.shape
    config = getattr(model, "module", model).config
    guidance = None
    if config.guidance_embeds:
        if cond.guidance is None:
            raise BenchkitError("this FLUX transformer has a guidance embedding; its conditioning carries no guidance value")
        guidance = cond.guidance
    out = model(hidden_states=FluxPipeline._pack_latents(x.contiguous(), b, c, h, w), timestep=model_t / 1000, guidance=guidance,
                pooled_projections=cond.pooled, encoder_hidden_states=cond.hidden,
                txt_ids=torch.zeros(cond.hidden.shape[1], 3, device=x.device, dtype=x.dtype),
                img_ids=FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, x.device, x.dtype), return_dict=False)[0]
    return FluxPipeline._unpack_latents(out, h, w, 1)  # sizes in latent units: a scale factor of 1


def wan_call(model, x: torch.Tensor, model_t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    """WanTransformer3DModel on channels-first video latents (B, C, F, H, W), called as WanPipeline (Wan 2.1
    text-to-video) calls it: timestep = the scheduler's timestep, one per row (sigma * 1000 on flow sigmas),
    the UMT5 rows as encoder_hidden_states; no image embedding. The pipeline runs its CFG rows as two calls;
    the rows are independent, so one call on both gives the same outputs."""
    return model(hidden_states=x, timestep=model_t, encoder_hidden_states=cond.hidden, return_dict=False)[0]


def call_model(model, x: torch.Tensor, model_t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    """One raw forward of a diffusers denoiser, with its kind's conditioning keywords."""
    kind = denoiser_kind(getattr(model, "module", model))  # DDP wraps the model in .module
    if kind == "generic":
        return model(x, model_t, cond)
    if kind == "flux":
        return flux_call(model, x, model_t, cond)
    if kind == "wan":
        return wan_call(model, x, model_t, cond)
    if kind == "unet":
        added = None
        if cond.pooled is not None or cond.time_ids is not None:
            added = {"text_embeds": cond.pooled, "time_ids": cond.time_ids}
        return model(x, model_t, encoder_hidden_states=cond.hidden, added_cond_kwargs=added, return_dict=False)[0]
    return model(hidden_states=x, timestep=model_t, encoder_hidden_states=cond.hidden,
                 pooled_projections=cond.pooled, return_dict=False)[0]


@dataclass
class Denoiser:
    """A network plus how to read it: prediction type and schedule. Teacher, student and fake
    score are all Denoisers that share the schedule and differ in weights (or prediction type:
    Lightning's one-step student predicts x0)."""

    model: torch.nn.Module
    schedule: NoiseSchedule
    prediction_type: str = "epsilon"
    conv_dtype: torch.dtype = torch.float64
    conv: Conversions = field(init=False)

    def __post_init__(self):
        self.prediction_type = canonical_prediction(self.prediction_type)
        self.conv = Conversions(self.schedule, self.conv_dtype)

    def with_model(self, model, prediction_type: str | None = None) -> "Denoiser":
        return replace(self, model=model, prediction_type=prediction_type or self.prediction_type)

    def model_input_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def raw(self, x_t: torch.Tensor, t, cond: Conditioning) -> torch.Tensor:
        t = _times(t, x_t.shape[0]).to(x_t.device)
        model_t = self.schedule.model_timestep(t.cpu()).to(device=x_t.device, dtype=torch.float32)
        dtype = self.model_input_dtype()
        out = call_model(self.model, x_t.to(dtype), model_t, cond.to(x_t.device, dtype))
        return out.to(x_t.dtype)

    def __call__(self, x_t: torch.Tensor, t, cond: Conditioning, guidance: float = 1.0,
                 uncond: Conditioning | None = None) -> Prediction:
        """Prediction at (x_t, t); with guidance > 1, classifier-free guidance on the raw output
        (linear in eps, v, x0 and flow alike, so guiding the raw output equals guiding eps)."""
        if guidance != 1.0:
            if uncond is None:
                raise BenchkitError("classifier-free guidance needs the unconditional conditioning")
            both = self.raw(torch.cat([x_t, x_t]), torch.cat([_times(t, len(x_t))] * 2), uncond.cat(cond))
            u, c = both.chunk(2)
            out = u + guidance * (c - u)
        else:
            out = self.raw(x_t, t, cond)
        x0, eps = self.conv.to_x0_eps(out, x_t, _times(t, len(x_t)), self.prediction_type)
        return Prediction(x0, eps, out)


def prediction_type_of(scheduler_config: dict[str, Any]) -> str:
    """What the denoiser predicts: flow velocity under a FlowMatch scheduler, else the config's prediction_type
    (Wan's UniPC on flow sigmas says "flow_prediction", which is flow)."""
    if "FlowMatch" in scheduler_config.get("_class_name", ""):
        return "flow"
    kind = canonical_prediction(scheduler_config.get("prediction_type", "epsilon"))
    if scheduler_config.get("use_flow_sigmas") and kind != "flow":
        raise BenchkitError(f"{scheduler_config.get('_class_name', 'the scheduler')} steps on flow sigmas but predicts {kind}; "
                            "the distillers read a flow-sigma scheduler with prediction_type flow_prediction only")
    return kind


def teacher_from_parts(model, scheduler_config: dict[str, Any], image_tokens: int | None = None) -> Denoiser:
    """The frozen teacher Denoiser for a loaded model and its scheduler config; ``image_tokens``: the
    training resolution's token count, for a scheduler that shifts by resolution (FLUX.1-dev)."""
    denoiser_kind(model)  # refuses a network the distillers cannot call
    return Denoiser(model.eval().requires_grad_(False), NoiseSchedule.from_scheduler_config(scheduler_config, image_tokens),
                    prediction_type_of(scheduler_config))


def trainable_copy(model) -> torch.nn.Module:
    """A float32, trainable deep copy (student, fake score, discriminator backbone)."""
    return copy.deepcopy(model).to(torch.float32).train().requires_grad_(True)


def sdxl_time_ids(height: int, width: int, batch: int) -> torch.Tensor:
    """SDXL's added time ids (original size, crop top-left, target size) as DMD2 uses them."""
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32).expand(batch, 6)
