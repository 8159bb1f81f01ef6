#!/usr/bin/env python
"""An outside generator for `benchkit eval`: a diffusers pipeline behind benchkit's command protocol.

A model spec runs it once per batch (relative paths are relative to the spec file's folder):

    name = "my-sd15"
    command = ["python", "diffusers_command_generator.py", "path/to/diffusers-folder"]
    timeout_s = 600
    [recipe]
    scheduler = "ddim"
    scheduler_kwargs = { timestep_spacing = "trailing" }
    steps = 4
    height = 512
    width = 512

It reads benchkit's request (JSON) from stdin, loads the folder with DiffusionPipeline.from_pretrained,
builds the recipe's scheduler from the model's scheduler config, draws each item's initial latents from
``torch.Generator("cpu").manual_seed(item["noise_seed"])`` exactly as benchkit does (so for the same folder
and recipe the images are benchkit's own, up to rounding), runs the pipeline once for the batch, decodes
with the VAE, and writes ``<prompt_id>_<seed>.png`` for every item and ``stages.json`` (text encoding,
denoising and VAE decode seconds for the batch, timed with forward hooks, plus the pipeline load) into the
request's ``output_dir``. An error ends it with a traceback on stderr, whose last line benchkit reports.

It covers pipelines whose latents are (batch, channels, height/f, width/f) and that take ``latents``:
Stable Diffusion 1.x/2.x, SDXL and SD3. It does not import benchkit: copy it and change what you need
(a paper's own sampler, an img2img pipeline reading ``item["image"]``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import warnings
from pathlib import Path


def make_scheduler(diffusers, current, recipe: dict):
    """The recipe's scheduler built from the model's config, as benchkit builds it ("model-default": the model's own)."""
    name = recipe["scheduler"]
    cls = type(current) if name.lower() == "model-default" else getattr(diffusers, name)
    config = {k: v for k, v in current.config.items() if not k.startswith("_")}
    config.update(recipe.get("scheduler_kwargs") or {})
    return cls.from_config(config)


class StageTimer:
    """Seconds spent in the text encoders, between the first and the last denoiser call, and decoding."""

    def __init__(self, sync, encoders, denoiser):
        self.sync, self.text_s, self.first, self.last, self.t0, self.timesteps = sync, 0.0, None, None, 0.0, []
        for encoder in encoders:
            encoder.register_forward_pre_hook(lambda *_: self._text_start())
            encoder.register_forward_hook(lambda *_: self._text_end())
        denoiser.register_forward_pre_hook(self._denoise_start, with_kwargs=True)
        denoiser.register_forward_hook(lambda *_: self._denoise_end())

    def now(self) -> float:
        self.sync()
        return time.perf_counter()

    def _text_start(self):
        self.t0 = self.now()

    def _text_end(self):
        self.text_s += self.now() - self.t0

    def _denoise_start(self, module, args, kwargs):
        self.first = self.now() if self.first is None else self.first
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        self.timesteps.append(float(t.reshape(-1)[0]) if hasattr(t, "reshape") else float("nan") if t is None else float(t))

    def _denoise_end(self):
        self.last = self.now()


def generate(request: dict, model: Path, device_name: str | None, dtype_name: str | None) -> None:
    import diffusers
    import torch
    import transformers
    from PIL import Image

    for library in (diffusers.utils.logging, transformers.utils.logging):
        library.disable_progress_bar()
        library.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    start = time.perf_counter()
    device = torch.device(device_name or request["device"])
    dtype = getattr(torch, dtype_name or request["dtype"])
    index = json.loads((model / "model_index.json").read_text())
    extra = {"safety_checker": None, "requires_safety_checker": False} if "safety_checker" in index else {}
    pipe = diffusers.DiffusionPipeline.from_pretrained(str(model), torch_dtype=dtype, local_files_only=True, **extra)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    vae = pipe.vae
    if dtype == torch.float16 and (device.type == "mps" or getattr(vae.config, "force_upcast", False)):
        vae.to(torch.float32)  # fp16 VAE decoding overflows there (benchkit does the same)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    load_s = time.perf_counter() - start
    recipe, items = request["recipe"], request["items"]
    height, width = items[0]["height"], items[0]["width"]
    pipe.scheduler = make_scheduler(diffusers, pipe.scheduler, recipe)
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    encoders = [m for name, m in pipe.components.items() if name.startswith("text_encoder") and m is not None]
    timer = StageTimer(sync, encoders, denoiser)

    # the initial noise, per item, as benchkit draws it: float32 on the CPU from the item's noise seed
    f = pipe.vae_scale_factor
    shape = (1, denoiser.config.in_channels, height // f, width // f)
    generators = [torch.Generator("cpu").manual_seed(item["noise_seed"]) for item in items]
    noise = torch.cat([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators])
    kwargs = {"prompt": [item["prompt"] for item in items], "height": height, "width": width,
              "guidance_scale": recipe["guidance_scale"], "latents": noise.to(device=device, dtype=dtype),
              "generator": generators, "output_type": "latent"}
    if recipe.get("timesteps"):
        kwargs["timesteps"] = recipe["timesteps"]
    elif recipe.get("sigmas"):
        kwargs["sigmas"] = recipe["sigmas"]
    else:
        kwargs["num_inference_steps"] = recipe["steps"]
    accepted = inspect.signature(pipe.__call__).parameters
    step = inspect.signature(pipe.scheduler.step).parameters
    if "eta" in step and "eta" in accepted:  # the recipe's eta, else the scheduler's own default
        eta = recipe.get("eta") if recipe.get("eta") is not None else step["eta"].default
        if isinstance(eta, (int, float)):
            kwargs["eta"] = float(eta)
    for key in ("true_cfg_scale", "negative_prompt", "max_sequence_length"):
        if recipe.get(key) is not None:
            kwargs[key] = recipe[key]

    with torch.no_grad():
        latents = pipe(**kwargs).images
        decode_start = timer.now()
        latents = latents.to(vae.dtype)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
            std = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
            latents = latents * std / vae.config.scaling_factor + mean
        else:
            latents = latents / vae.config.scaling_factor + (getattr(vae.config, "shift_factor", None) or 0.0)
        pixels = vae.decode(latents, return_dict=False)[0]
        decode_s = timer.now() - decode_start
    pixels = ((pixels.float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    out = Path(request["output_dir"])
    for item, image in zip(items, pixels):
        Image.fromarray(image).save(out / item["file"])
    denoising_s = (timer.last - timer.first) if timer.first is not None else 0.0
    stages = {"text_encoding_s": timer.text_s, "denoising_s": denoising_s, "vae_decode_s": decode_s,
              "load_s": load_s, "steps": len(timer.timesteps), "timesteps": timer.timesteps}
    (out / "stages.json").write_text(json.dumps(stages))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchkit outside generator: a diffusers pipeline (request on stdin)")
    parser.add_argument("model", type=Path, help="a diffusers-format model folder (with model_index.json)")
    parser.add_argument("--device", help="instead of the request's device (cpu, cuda, cuda:1, mps)")
    parser.add_argument("--dtype", help="instead of the request's dtype (float32, float16, bfloat16)")
    args = parser.parse_args(argv)
    generate(json.load(sys.stdin), args.model, args.device, args.dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
