"""Generation through the diffusers pipeline of any family that has one (SD1.5 to Wan).

The pipelines are the reference for everything family-specific (SDXL's two encoders, pooled
embeddings and add_time_ids; SD3's and FLUX's flow matching and text encoders; CogVideoX's and
Wan's 3D latents), so benchkit calls them rather than re-writing them. What differs in the
latents benchkit draws and decodes (packed, patched, frames- or channels-first, per-channel
statistics) the family declares (benchkit.models.families.base.Family). It keeps the
parts that make a benchmark: per-item noise from (prompt_id, seed) passed as ``latents``
(and per-item generators for stochastic samplers), so an image does not depend on the batch
it was in; the recipe's scheduler built and checked before the call; its own VAE decoding
(fp32 where fp16 overflows, an optional tiny VAE) timed as a stage; and a trace of what the
denoiser was called with. Where a family's pipeline must draw its own noise (from the same
per-item generators) or decode itself (its ``vae.decode`` timed), the family says so.
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from benchkit.core.hardware import dtype_name
from benchkit.core.items import Item, input_image, input_image_record, item_generator
from benchkit.models.generation import Generation, check_explicit_timesteps, make_scheduler
from benchkit.models.loading import LoadedModel
from benchkit.models.spec import PIPELINE_RECIPE_FIELDS, Recipe
from benchkit.models.stages import StageTimer


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] floats, channels first at dim 1, to uint8 channels last (the rest of benchkit's convention)."""
    out = ((images.float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return out.movedim(1, -1).numpy()


def _with_item_generators(scheduler, gens: list[torch.Generator]):
    """Give the scheduler's ``step`` the per-item generators when the pipeline passes none.

    SD3's pipeline calls ``scheduler.step(noise_pred, t, latents)`` without a generator, so a
    stochastic flow sampler (FlowMatchEulerDiscreteScheduler with ``stochastic_sampling``, DMD2's
    re-noising) would draw from the global RNG: images would depend on the batch and on whatever
    ran before. Pipelines that pass their ``generator`` (SD1.5, SDXL) are left as they are.
    """
    step = scheduler.step
    if "generator" not in inspect.signature(step).parameters:
        return scheduler

    def step_with_generators(*args, **kwargs):
        if kwargs.get("generator") is None:
            kwargs["generator"] = gens
        return step(*args, **kwargs)

    scheduler.step = step_with_generators
    return scheduler


def _with_sigmas(scheduler, sigmas: Sequence[float]):
    """Give the scheduler the recipe's sigmas when the pipeline has no ``sigmas`` argument.

    WanPipeline calls ``scheduler.set_timesteps(num_inference_steps)`` only, so a distilled recipe's exact
    sigmas (Wan 2.2 Lightning: Euler on 1, 0.75, 0.5, 0.25 with shift 5) reach the scheduler here instead.
    """
    set_timesteps = scheduler.set_timesteps

    def set_recipe_sigmas(num_inference_steps=None, device=None, **kwargs):
        set_timesteps(sigmas=list(sigmas), device=device)

    scheduler.set_timesteps = set_recipe_sigmas
    return scheduler


def _merge(parts: list[Generation]) -> Generation:
    """One batch's Generation from its items' own calls: outputs in order, stage seconds added up."""
    stages = dict(parts[0].stages or {})
    for part in parts[1:]:  # every stage's seconds (text encoding, denoising, decode, a two-pass upsample) add up
        for key, value in (part.stages or {}).items():
            if key.endswith("_s") and key != "denoise_step_s" and isinstance(value, (int, float)):
                stages[key] = stages.get(key, 0.0) + value
    if stages.get("steps"):
        stages["denoise_step_s"] = stages["denoising_s"] / stages["steps"]
    return Generation([im for g in parts for im in g.images], parts[0].denoiser_calls,
                      videos=[v for g in parts for v in g.videos] if parts[0].videos is not None else None,
                      stages=stages, trace=parts[0].trace,
                      inputs=[i for g in parts for i in g.inputs] if parts[0].inputs is not None else None)


class PipelineGenerator:
    """A loaded diffusers-family model plus a recipe; ``generate(items)`` returns uint8 images.

    For video models each item's image is its first frame and ``Generation.videos`` holds the clips.
    """

    runs_second_pass = False  # recipe.second_pass is TwoPassGenerator's (benchkit.models.two_pass_generation)

    def __init__(self, model: LoadedModel, recipe: Recipe):
        self.model = model
        self.recipe = recipe
        self.pipe = model.pipeline
        self.family = model.family
        self.is_video = model.family_info.is_video
        self.call_params = set(inspect.signature(self.pipe.__call__).parameters)
        scheduler = make_scheduler(recipe, model.scheduler_config)  # fail on a bad recipe before any work
        self._check_recipe(scheduler)
        denoiser = model.unet
        cfg = denoiser.config
        family = model.family_info
        if self.is_video:
            # the pipelines name it differently (LTX-Video: vae_spatial_compression_ratio)
            self.vae_scale = getattr(self.pipe, "vae_scale_factor_spatial", None) or self.pipe.vae_spatial_compression_ratio
            # the transformer's sample size (CogVideoX), else the family's default (Wan's pipeline: 480 x 832 x 81)
            if getattr(cfg, "sample_height", None):
                size = (cfg.sample_height * self.vae_scale, cfg.sample_width * self.vae_scale)
            else:
                size = family.default_size or (None, None)
            self.height = recipe.height or size[0]
            self.width = recipe.width or size[1]
            self.num_frames = recipe.num_frames or getattr(cfg, "sample_frames", None) or family.default_frames
            if not (self.height and self.width and self.num_frames):
                raise BenchkitError(f"recipe.height/width/num_frames: {model.family} models have no default; set them in the recipe")
            temporal = getattr(self.pipe, "vae_scale_factor_temporal", None) or self.pipe.vae_temporal_compression_ratio
            if (self.num_frames - 1) % temporal:
                raise BenchkitError(f"recipe.num_frames must be 1 + a multiple of {temporal} for this model, got {self.num_frames}")
            self.latent_frames = (self.num_frames - 1) // temporal + 1
            trimmed = family.trimmed_frames(self.pipe) if family.trimmed_frames is not None else 0
            self.frames_per_clip = self.num_frames - trimmed  # what each written clip holds
        else:
            self.vae_scale = self.pipe.vae_scale_factor
            # the denoiser's sample size, else the pipeline's default (FLUX's transformer has none), else the family's
            sample = _first(getattr(cfg, "sample_size", None) or getattr(self.pipe, "default_sample_size", None))
            default = (sample * self.vae_scale,) * 2 if sample else family.default_size
            if default is None and not (recipe.height and recipe.width):
                raise BenchkitError(f"recipe.height/width: {model.family} models have no default size; set both in the recipe")
            self.height = recipe.height or default[0]
            self.width = recipe.width or default[1]
            self.num_frames = self.frames_per_clip = None
        self.packing = family.packing
        # what guidance_scale does: cfg, an input of a guidance-distilled transformer, or nothing where the family's
        # transformer has no guidance embedding (FLUX.1-schnell, HunyuanVideo-I2V-33ch)
        self.guidance_kind = family.guidance
        if family.guidance == "embedded" and getattr(cfg, "guidance_embeds", True) is False:
            self.guidance_kind = "none"
        self.channels_first = family.video_latents == "cfhw"
        patch = getattr(cfg, "patch_size", None) or 1
        patch = patch[-1] if isinstance(patch, (list, tuple)) else patch  # Wan's (frames, height, width)
        multiple = self.vae_scale * patch * family.latent_patch
        if self.height % multiple or self.width % multiple:
            raise BenchkitError(f"recipe.height/width must be multiples of {multiple} for this model, got {self.height}x{self.width}")
        encoders = [m for k, m in model.components.items() if k.startswith("text_encoder") and m is not None]
        previous = getattr(model, "stage_timer", None)
        if previous is not None:  # one timer per model: a new generator replaces the old one's hooks
            previous.close()
        # Wan 2.2's low-noise expert (transformer_2) takes the steps below its boundary: both are timed and traced
        second = getattr(self.pipe, "transformer_2", None)
        self.timer = StageTimer(model.device, encoders, [denoiser] + ([second] if second is not None else []))
        model.stage_timer = self.timer

    def _check_recipe(self, scheduler) -> None:
        r = self.recipe
        if r.timesteps is not None:
            if "timesteps" not in self.call_params:
                alternative = "recipe.sigmas (flow models)" if "sigmas" in self.call_params else "recipe.steps"
                raise BenchkitError(f"recipe.timesteps: {type(self.pipe).__name__} takes no explicit timesteps; give {alternative}")
            check_explicit_timesteps(scheduler, r)
        if r.sigmas is not None:
            if "sigmas" not in inspect.signature(scheduler.set_timesteps).parameters:
                raise BenchkitError(f"recipe.sigmas: {type(scheduler).__name__} does not accept explicit sigmas; use FlowMatchEulerDiscreteScheduler for flow models")
            if "FlowMatch" in type(scheduler).__name__ and max(r.sigmas) > 1.0:
                raise BenchkitError(f"recipe.sigmas: flow-matching sigmas lie in (0, 1], got {list(r.sigmas)}")
        step_params = inspect.signature(scheduler.step).parameters
        if r.eta is not None and ("eta" not in step_params or "eta" not in self.call_params):
            raise BenchkitError(f"recipe.eta: {type(scheduler).__name__} with {type(self.pipe).__name__} takes no eta; remove it from the recipe")
        for field in PIPELINE_RECIPE_FIELDS:
            if getattr(r, field) is not None and field not in self.call_params:
                raise BenchkitError(f"recipe.{field}: {type(self.pipe).__name__} takes no {field}; remove it from the recipe")
        if r.second_pass is not None and not self.runs_second_pass:
            raise BenchkitError(f"recipe.second_pass: {self.family} models run one pass; the two-pass recipe is LTX-Video's "
                                "(family ltx-condition); remove second_pass")
        if r.num_frames and not self.is_video:
            raise BenchkitError(f"recipe.num_frames: {self.family} is an image model; remove num_frames")

    def _eta(self, scheduler) -> float | None:
        """The recipe's eta, else the scheduler's own default: pipelines otherwise pass eta=0.0."""
        params = inspect.signature(scheduler.step).parameters
        if "eta" not in params or "eta" not in self.call_params:
            return None
        if self.recipe.eta is not None:
            return self.recipe.eta
        default = params["eta"].default
        return float(default) if isinstance(default, (int, float)) else None

    def _noise_channels(self) -> int:
        """The channels of the noise: the VAE's latent channels (the denoiser may take more: packed 2x2
        patches, or an image-to-video model's image latents beside the noise), else the denoiser's inputs."""
        vae_cfg = self.model.vae.config if self.model.vae is not None else {}
        channels = vae_cfg.get("latent_channels") or vae_cfg.get("z_dim")
        if channels:
            return int(channels)
        if self.packing is not None:
            raise BenchkitError(f"{self.model.spec.name}: cannot tell the latent channels of packed latents without its VAE")
        return self.model.unet.config.in_channels

    def check_items(self, items: Sequence[Item]) -> None:
        """Before any work: an image-to-video model needs every item's input image to be a file."""
        if self.model.family_info.image_input:
            missing = [it.prompt_id for it in items if input_image(it) is None]
            if missing:
                raise BenchkitError(f"prompt '{missing[0]}': {self.family} is an image-to-video model and its prompt has "
                                    "no image column; give the prompt set an 'image' column naming each prompt's image")

    def _input_images(self, items: Sequence[Item]) -> tuple[list[Any], list[dict[str, Any]]]:
        """The items' input images (PIL, RGB) and what the records say of them (path, sha256)."""
        from PIL import Image

        self.check_items(items)
        images, records = [], []
        for it in items:
            path = input_image(it)
            try:
                with Image.open(path) as im:
                    images.append(im.convert("RGB"))
            except OSError as exc:
                raise BenchkitError(f"prompt '{it.prompt_id}': its image {path} is not a readable image ({exc})") from None
            records.append(input_image_record(it))
        return images, records

    def initial_noise(self, items: Sequence[Item]) -> tuple[torch.Tensor, list[torch.Generator]]:
        channels = self._noise_channels()
        lat_h, lat_w = self.height // self.vae_scale, self.width // self.vae_scale
        gens = [item_generator(it.prompt_id, it.seed) for it in items]
        if self.is_video:
            if self.channels_first or self.packing is not None:
                shape = (1, channels, self.latent_frames, lat_h, lat_w)
            else:
                shape = (1, self.latent_frames, channels, lat_h, lat_w)
        else:
            shape = (1, channels, lat_h, lat_w)
        noise = torch.cat([torch.randn(shape, generator=g, dtype=torch.float32) for g in gens])
        if self.packing is not None:  # drawn unpacked, as the pipeline draws it, then packed with its helper
            return self.packing.pack(self.pipe, noise), gens
        return noise, gens

    def one_item_per_call(self) -> bool:
        """Whether a batch must run item by item (its Generations merged): the pipeline takes one image per call."""
        return self.model.family_info.one_image_per_call

    @torch.no_grad()
    def generate(self, items: Sequence[Item]) -> Generation:
        if self.one_item_per_call() and len(items) > 1:
            return _merge([self.generate_batch([it]) for it in items])
        return self.generate_batch(items)

    @torch.no_grad()
    def generate_batch(self, items: Sequence[Item]) -> Generation:
        """One pipeline call on ``items``."""
        m, pipe = self.model, self.pipe
        kwargs, scheduler, gens, eta, inputs = self._call_kwargs(items)
        self.timer.reset()
        if self.model.family_info.pipeline_decodes:
            with self.timer.decoding_inside(pipe.vae):
                out = pipe(**kwargs)
            latents = out.frames if self.is_video else out.images
        else:
            out = pipe(**kwargs)
            latents = out.frames if self.is_video else out.images
        if not torch.isfinite(latents).all():  # would silently become black images
            raise BenchkitError(f"{m.spec.name}: the denoising loop produced NaN/inf latents ({type(scheduler).__name__}, "
                                f"prediction_type {scheduler.config.get('prediction_type')}, {dtype_name(m.dtype)}); "
                                f"check the recipe's prediction_type or use --dtype float32/bfloat16")
        if self.model.family_info.pipeline_decodes:  # [0, 1], channels at dim 2 of a clip: to [-1, 1], channels at dim 1
            pixels = (latents * 2.0 - 1.0).movedim(2, 1) if self.is_video else latents * 2.0 - 1.0
        else:
            with self.timer.decode():
                pixels = self._decode(latents, gens)
        outputs = _to_uint8(pixels)  # (B, H, W, C), or (B, F, H, W, C): channels were at dim 1 of (B, C, F, H, W)
        return self._generation(items, outputs, eta, inputs)

    def _call_kwargs(self, items: Sequence[Item]) -> tuple[dict[str, Any], Any, list[torch.Generator], float | None, Any]:
        """The pipeline call for a batch, with the recipe's scheduler set on the pipeline: (keyword arguments,
        scheduler, the per-item generators, eta, the records of the input images)."""
        m, r, pipe = self.model, self.recipe, self.pipe
        scheduler = make_scheduler(r, m.scheduler_config)
        noise, gens = self.initial_noise(items)
        if self.model.family_info.draws_own_noise:  # fresh generators: the pipeline draws this same noise from them
            gens = [item_generator(it.prompt_id, it.seed) for it in items]
        pipe.scheduler = _with_item_generators(scheduler, gens)
        if r.sigmas is not None and "sigmas" not in self.call_params:
            pipe.scheduler = _with_sigmas(pipe.scheduler, r.sigmas)
        kwargs: dict[str, Any] = {
            "prompt": [it.prompt for it in items],
            "height": self.height,
            "width": self.width,
            "guidance_scale": r.guidance_scale,
            "generator": gens,  # per-item noise for stochastic samplers (LCM, TCD, ancestral)
            # latents, decoded below; a family whose pipeline must decode gives frames in [0, 1]
            "output_type": "pt" if self.model.family_info.pipeline_decodes else "latent",
        }
        if not self.model.family_info.draws_own_noise:
            kwargs["latents"] = noise.to(device=m.device, dtype=m.dtype)
        if r.timesteps is not None:
            kwargs["timesteps"] = list(r.timesteps)
        elif r.sigmas is not None and "sigmas" in self.call_params:
            kwargs["sigmas"] = list(r.sigmas)
            # the step count still matters to some pipelines: FLUX.2's shift is a function of it
            kwargs["num_inference_steps"] = len(r.sigmas)
        else:
            kwargs["num_inference_steps"] = r.steps
        eta = self._eta(scheduler)
        if eta is not None:
            kwargs["eta"] = eta
        if self.is_video:
            kwargs["num_frames"] = self.num_frames
        for field in PIPELINE_RECIPE_FIELDS:
            if getattr(r, field) is not None:
                kwargs[field] = getattr(r, field)
        kwargs.update(self.model.family_info.pipeline_kwargs)
        inputs = None
        if self.model.family_info.image_input:
            images, inputs = self._input_images(items)
            kwargs["image"] = images[0] if self.model.family_info.one_image_per_call else images
        return kwargs, scheduler, gens, eta, inputs

    def _generation(self, items: Sequence[Item], outputs: np.ndarray, eta: float | None, inputs: Any,
                    extra_stages: dict[str, Any] | None = None) -> Generation:
        """A batch's Generation from its uint8 outputs, with the timer's stages and the trace of what ran."""
        pipe, r = self.pipe, self.recipe
        stages = {**self.timer.summary(len(items)), **(extra_stages or {})}
        trace = {
            "scheduler": type(pipe.scheduler).__name__,
            "scheduler_config": dict(pipe.scheduler.config),
            "scheduler_timesteps": [float(t) for t in pipe.scheduler.timesteps],
            "scheduler_sigmas": [float(s) for s in pipe.scheduler.sigmas] if hasattr(pipe.scheduler, "sigmas") else None,
            "denoiser_timesteps": list(self.timer.timesteps),
            # a two-expert model (Wan 2.2): which expert took each call, 0 the high-noise one, 1 the low-noise one
            "denoiser_experts": list(self.timer.experts) if self.timer.n_denoisers > 1 else None,
            "guidance_scale": float(pipe.guidance_scale),
            # measured: the denoiser saw a conditional and an unconditional row per item
            # (in one batched call, or as a second call per step: the true CFG of FLUX's pipeline)
            "classifier_free_guidance": bool(self.timer.rows) and sum(self.timer.rows) == 2 * len(items) * stages["steps"],
            "eta": eta,
            "guidance": self.guidance_kind,
            "true_cfg_scale": r.true_cfg_scale,
            "decode_timestep": self._decode_timestep(),
            "pipeline_kwargs": dict(self.model.family_info.pipeline_kwargs),
        }
        calls = round(stages["denoiser_rows_per_item"])
        if self.is_video:
            return Generation([v[0] for v in outputs], calls, videos=list(outputs), stages=stages, trace=trace, inputs=inputs)
        return Generation(list(outputs), calls, stages=stages, trace=trace, inputs=inputs)

    def _decode_timestep(self) -> float | None:
        """The timestep a timestep-conditioned VAE decoder is told (LTX-Video 0.9.1+), else None."""
        if not self.model.vae.config.get("timestep_conditioning"):
            return None
        return float(self.recipe.decode_timestep or 0.0)  # the pipeline's default

    def _decode(self, latents: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        vae = self.model.vae
        if self.packing is not None:
            shape = (latents.shape[0], self._noise_channels()) + ((self.latent_frames,) if self.is_video else ()) + \
                (self.height // self.vae_scale, self.width // self.vae_scale)
            latents = self.packing.unpack(self.pipe, latents, shape)
        latents = latents.to(vae.dtype)
        if self.is_video and hasattr(self.pipe, "decode_latents"):  # CogVideoX's own (frames-first latents)
            return self.pipe.decode_latents(latents)
        cfg = vae.config
        # per-channel statistics: LTX-Video's VAE keeps them as buffers, the others in their config
        buffers = dict(vae.named_buffers(recurse=False))
        mean = buffers.get("latents_mean", getattr(cfg, "latents_mean", None))
        std = buffers.get("latents_std", getattr(cfg, "latents_std", None))
        if mean is not None and std is not None:  # VAEs with per-channel statistics (as SDXL's pipeline does)
            shape = (1, -1) + (1,) * (latents.dim() - 2)  # (B, C, H, W), or (B, C, 1, H, W) for a video VAE
            mean = torch.as_tensor(mean).to(device=latents.device, dtype=latents.dtype).view(shape)
            std = torch.as_tensor(std).to(device=latents.device, dtype=latents.dtype).view(shape)
            # a video VAE (Qwen-Image's) has no scaling factor: its statistics alone normalise the latents
            latents = latents * std / (getattr(cfg, "scaling_factor", None) or 1.0) + mean
        else:
            latents = latents / cfg.scaling_factor + (getattr(cfg, "shift_factor", None) or 0.0)
        decode_timestep = self._decode_timestep()
        extra = ()
        if decode_timestep is not None:
            # as LTXPipeline decodes: each item's own generator draws the noise mixed in before the decoder
            scale = self.recipe.decode_noise_scale if self.recipe.decode_noise_scale is not None else decode_timestep
            noise = torch.cat([torch.randn((1,) + tuple(latents.shape[1:]), generator=g, dtype=self.model.dtype) for g in gens])
            latents = ((1 - scale) * latents.to(self.model.dtype) + scale * noise.to(latents.device)).to(vae.dtype)
            extra = (torch.full((latents.shape[0],), decode_timestep, device=latents.device, dtype=latents.dtype),)
        pixels = vae.decode(latents, *extra, return_dict=False)[0]
        if self.is_video:
            return pixels  # (B, C, F, H, W)
        return pixels[:, :, 0] if pixels.dim() == 5 else pixels  # an image through a video VAE: its one frame
