"""Two-pass (multi-scale) generation: LTX-Video's distilled recipe, with a latent upsampler between passes.

As diffusers' LTX docs run the 0.9.7/0.9.8 distilled models: the first pass generates at
``downscale_factor`` of the target size (each side rounded down to the VAE's 32 px), returning latents;
the latent upsampler doubles them spatially (optionally AdaIN-matched to the first pass and
tone-mapped); the second pass re-noises them to its first explicit timestep (``denoise_strength``)
and denoises the rest at twice the first size; its frames are resized to the target size with
Pillow's bicubic filter, as the docs resize their PIL frames. Each pass seeds its noise from fresh
per-item generators, as the docs seed each call with the same seed, so a clip never depends on
its batch. The upsampler's weights are read here, from the spec's ``upsampler`` (a folder holding
``LTXLatentUpsamplerModel``, or the upsampler pipeline's folder with it in ``latent_upsampler/``),
and hashed into the model's weights like every file a run depends on.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from benchkit.core.hardware import synchronize
from benchkit.core.items import Item, item_generator
from benchkit.models.generation import Generation, make_scheduler
from benchkit.models.loading import LoadedModel, hash_file, weight_files
from benchkit.models.locations import parse_location, require
from benchkit.models.pipeline_generation import PipelineGenerator, _with_item_generators
from benchkit.models.spec import Recipe


PIPELINE_MULTIPLE = 32  # LTXConditionPipeline.check_inputs: height and width divisible by 32


def load_upsampler(model: LoadedModel) -> Any:
    """The spec's latent upsampler as an ``LTXLatentUpsamplePipeline`` sharing the model's VAE; its files
    join the model's weights (and so the run's identity)."""
    from diffusers import LTXLatentUpsamplePipeline
    from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel

    spec = model.spec
    if not spec.upsampler:
        raise BenchkitError(f"model '{spec.name}': recipe.second_pass needs the latent upsampler; set upsampler = "
                            "\"FOLDER or owner/name\" in the spec (e.g. Lightricks/ltxv-spatial-upscaler-0.9.7)")
    folder = require(parse_location("upsampler", spec.upsampler), spec.name)
    folder = folder / "latent_upsampler" if (folder / "latent_upsampler").is_dir() else folder
    try:
        net = LTXLatentUpsamplerModel.from_pretrained(str(folder), torch_dtype=model.dtype)
    except (OSError, ValueError) as exc:
        raise BenchkitError(f"upsampler {folder}: not an LTXLatentUpsamplerModel folder ({str(exc).splitlines()[0]})") from None
    for f in weight_files(folder):
        model.weight_files[f"upsampler:{f.relative_to(folder)}"] = hash_file(f)
    model.details["upsampler"] = {"path": str(folder), "class": type(net).__name__}
    pipe = LTXLatentUpsamplePipeline(vae=model.vae, latent_upsampler=net.to(model.device).eval().requires_grad_(False))
    pipe.set_progress_bar_config(disable=True)
    return pipe


class TwoPassGenerator(PipelineGenerator):
    """LTX-Video's condition pipeline run twice around a latent upsampler (``recipe.second_pass``)."""

    runs_second_pass = True

    def __init__(self, model: LoadedModel, recipe: Recipe):
        super().__init__(model, recipe)  # the target size and every first-pass field are checked here
        second = recipe.second_pass
        scale = self.vae_scale
        h = int(self.height * second["downscale_factor"]) // scale * scale
        w = int(self.width * second["downscale_factor"]) // scale * scale
        if h % PIPELINE_MULTIPLE or w % PIPELINE_MULTIPLE or not (h and w):
            raise BenchkitError(f"recipe.second_pass.downscale_factor: {second['downscale_factor']:g} of {self.height}x"
                                f"{self.width} gives a first pass of {h}x{w} (rounded down to the VAE's {scale} px), but "
                                f"the condition pipeline takes multiples of {PIPELINE_MULTIPLE}; change the size or factor")
        self.first_size = (h, w)
        self.second_size = (2 * h, 2 * w)  # the upsampler doubles the latents' height and width
        self.upsampler = load_upsampler(model)

    def one_item_per_call(self) -> bool:
        # item by item: diffusers 0.42's condition pipeline re-noises given latents with a (B,) sigma that
        # broadcasts against the last axis (pipeline_ltx_condition.py prepare_latents), so a second pass
        # from denoise_strength < 1 only works on one clip at a time (the docs run one)
        return True

    @torch.no_grad()
    def generate_batch(self, items: Sequence[Item]) -> Generation:
        pipe, second = self.pipe, self.recipe.second_pass
        kwargs, _, _, eta, inputs = self._call_kwargs(items)
        self.timer.reset()
        first = {**kwargs, "height": self.first_size[0], "width": self.first_size[1], "output_type": "latent"}
        latents = pipe(**first).frames
        synchronize(self.model.device)
        start = time.perf_counter()
        upscaled = self.upsampler(latents=latents, adain_factor=second.get("adain_factor", 0.0),
                                  tone_map_compression_ratio=second.get("tone_map_compression_ratio", 0.0),
                                  output_type="latent").frames
        synchronize(self.model.device)
        upsample_s = time.perf_counter() - start
        gens = [item_generator(it.prompt_id, it.seed) for it in items]  # fresh, as the first pass's
        pipe.scheduler = _with_item_generators(make_scheduler(self.recipe, self.model.scheduler_config), gens)
        call = {k: v for k, v in kwargs.items() if k not in ("num_inference_steps", "sigmas")}
        call.update(height=self.second_size[0], width=self.second_size[1], latents=upscaled, generator=gens,
                    timesteps=list(second["timesteps"]), denoise_strength=second["denoise_strength"], output_type="pt")
        with self.timer.decoding_inside(pipe.vae):
            frames = pipe(**call).frames  # (B, F, C, H, W) in [0, 1]
        if not torch.isfinite(frames).all():
            raise BenchkitError(f"{self.model.spec.name}: the second pass produced NaN/inf frames")
        clips = _resized(frames, self.height, self.width)
        stages = {"upsample_s": upsample_s}
        generation = self._generation(items, clips, eta, inputs, extra_stages=stages)
        # the denoiser's span covers the upsampler between the passes: its own seconds are reported apart
        generation.stages["denoising_s"] = max(generation.stages["denoising_s"] - upsample_s, 0.0)
        if generation.stages.get("steps"):
            generation.stages["denoise_step_s"] = generation.stages["denoising_s"] / generation.stages["steps"]
        generation.trace["passes"] = {"first_size": list(self.first_size), "second_size": list(self.second_size),
                                      "second_pass": dict(second)}
        return generation


def _resized(frames: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(B, F, C, H, W) in [0, 1] to uint8 (B, F, height, width, 3), through PIL as the docs resize their frames:
    the pipeline's own PIL conversion (x * 255, rounded), then Pillow's bicubic resize."""
    from PIL import Image

    u8 = (frames.float().cpu().permute(0, 1, 3, 4, 2).numpy() * 255).round().astype(np.uint8)
    if u8.shape[2:4] == (height, width):
        return u8
    return np.stack([np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC))
                               for f in clip]) for clip in u8])


def condition_generator(model: LoadedModel, recipe: Recipe) -> PipelineGenerator:
    """LTX-Video's condition pipeline: one pass, or two around the upsampler with ``recipe.second_pass``."""
    return TwoPassGenerator(model, recipe) if recipe.second_pass is not None else PipelineGenerator(model, recipe)
