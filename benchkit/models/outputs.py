"""What a generation batch adds to its records and what a loaded model adds to the manifest.

Kept out of the eval loop so that the loop stays the same for images and videos: each
record gets the batch's stage split (text encoding, denoising, VAE decode) when the
generator measured one, and video models write their clip next to the first-frame image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchkit.models.generation import Generation, make_scheduler
from benchkit.models.video import mp4_encoder, write_video


def attach_outputs(run_path: Path, records: list[dict[str, Any]], generation: Generation, fps: int | None) -> None:
    for i, rec in enumerate(records):
        if generation.stages:
            rec["stages"] = dict(generation.stages)
        if generation.inputs:
            rec.update(generation.inputs[i])
        if generation.videos:
            rec.update(write_video(run_path, f"{rec['prompt_id']}_{rec['seed']}", generation.videos[i], fps or 8))


def describe_model(model: Any, generator: Any) -> dict[str, Any]:
    """Family, LoRA, replaced weights/VAE, VAE dtype, compile, and the frames of video models."""
    out: dict[str, Any] = dict(model.details) if model.details else {"family": model.family}
    if model.pipeline is not None:
        scheduler = make_scheduler(generator.recipe, model.scheduler_config)
        keep = ("timestep_spacing", "prediction_type", "shift", "use_dynamic_shifting", "steps_offset", "beta_schedule",
                "rescale_betas_zero_snr", "original_inference_steps",
                # what moves a flow model's sigmas: the dynamic shift's range, its form, a terminal shift,
                # DPM-Solver's flow shift, re-noising
                "base_shift", "max_shift", "base_image_seq_len", "max_image_seq_len", "time_shift_type", "shift_terminal",
                "flow_shift", "use_flow_sigmas", "stochastic_sampling")
        out["scheduler"] = {"class": type(scheduler).__name__,
                            "config": {k: v for k, v in scheduler.config.items() if k in keep}}
        out["resolution"] = [generator.height, generator.width]
    if getattr(generator, "num_frames", None):
        out["num_frames"] = generator.num_frames
        if getattr(generator, "frames_per_clip", generator.num_frames) != generator.num_frames:
            out["frames_per_clip"] = generator.frames_per_clip  # the pipeline trims frames (HunyuanVideo-I2V-33ch)
        out["fps"] = getattr(generator.recipe, "fps", None) or 8
        out["video_format"] = "mp4" if mp4_encoder() else "apng (no mp4 encoder installed: pip install av)"
    return out
