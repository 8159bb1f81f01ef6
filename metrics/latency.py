"""Latency from what generation recorded: per-image and per-batch percentiles, throughput,
cold start, warm-up, peak memory, size on disk and the measured number of UNet calls; for real
pipelines also the per-stage split (text encoding, denoising per step, VAE decode) and the
first (cold) batch beside the warm ones. torch.compile, a replacement (tiny) VAE, unfused
LoRAs and TF32 are part of the variant, so such runs are never compared as equals.

Video runs also get the numbers video papers quote: seconds per clip, seconds of compute per
second of video, frames generated per second, and time to first frame. benchkit's video
pipelines are not streaming (the VAE decodes a clip's frames together), so the first frame of a
clip exists when its batch ends: time to first frame is the batch's seconds, not a clip's share.

Timings are taken by the engine around each batch with device synchronisation (cuda/mps)
after an untimed warm-up batch; this metric only summarises them, so a resumed run keeps
the timings of every session that contributed images.
"""

from __future__ import annotations

import numpy as np

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import Metric, MetricContext, MetricValue, SampleBatch, item_key

# value name -> the stage seconds it summarises (per image, p50 over batches)
_STAGE_VALUES = {"latency_text_encoding": "text_encoding_s", "latency_denoise_step": "denoise_step_s",
                 "latency_denoising": "denoising_s", "latency_vae_decode": "vae_decode_s"}
_CLIP_VALUES = ("latency_clip_p50", "latency_clip_p90", "compute_per_video_second", "generated_fps", "time_to_first_frame")


@register_metric()
class Latency(Metric):
    name = "latency"
    protocol = "wall clock of each batch between device synchronisations, after --warmup untimed batches"
    description = "p50/p90 seconds per image and per batch, throughput, cold start, peak memory, size, NFE"
    needs_images = False
    scale = "seconds, images/s, bytes and denoiser calls per image"

    @classmethod
    def value_names(cls) -> tuple[str, ...]:
        """Every value ``compute`` may report (the stage and cold-image ones only for real pipelines)."""
        return ("latency_image_p50", "latency_image_p90", "latency_batch_p50", "latency_batch_p90", "throughput",
                "cold_start", "warmup", "peak_memory", "model_size", "nfe", *_STAGE_VALUES, "latency_cold_image",
                *_CLIP_VALUES)

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        if not ctx.manifest or "sessions" not in ctx.manifest:
            raise BenchkitError("latency needs a run made by `benchkit eval` (it reads the timings recorded there)")
        self.add_state("batches", {}, merge="update")  # batch id -> (seconds, size)
        self.add_state("image_seconds", [], merge="extend")
        self.add_state("stages", {}, merge="update")  # batch id -> stage split (real pipelines measure one)
        self.add_state("clips", {}, merge="update")  # item key -> (seconds, frames, fps, batch seconds) of a video run

    def update(self, batch: SampleBatch) -> None:
        for rec in batch.records:
            self.image_seconds.append(float(rec["seconds"]))
            self.batches[rec["batch_id"]] = (float(rec["batch_seconds"]), int(rec["batch_size"]))
            if rec.get("stages"):
                self.stages[rec["batch_id"]] = {**rec["stages"], "batch_size": int(rec["batch_size"])}
            if rec.get("video") and rec.get("frames") and rec.get("fps"):
                self.clips[item_key(rec)] = (float(rec["seconds"]), int(rec["frames"]), float(rec["fps"]), float(rec["batch_seconds"]))

    def compute(self) -> list[MetricValue]:
        m = self.ctx.manifest
        sessions = m["sessions"]
        first = sessions[0] if sessions else {}
        img = np.array(self.image_seconds)
        bat = np.array([s for s, _ in self.batches.values()])
        total_images = sum(n for _, n in self.batches.values())
        variant = {
            "device": m.get("device"),
            "dtype": m.get("dtype"),
            "batch_size": m.get("batch_size"),
            "hardware": (m.get("hardware") or {}).get("cpu") if m.get("device") == "cpu" else _gpu(m),
            "torch": (m.get("hardware") or {}).get("versions", {}).get("torch"),
            "sync": "device synchronize" if m.get("device") in ("cuda", "mps") else "none needed",
            "warmup_batches": m.get("warmup_batches"),
        }
        variant.update(_model_variant(m))
        n = len(img)
        peak = max(sessions, key=lambda s: s.get("peak_memory_bytes", 0)) if sessions else {}
        model = m.get("model", {})
        vals = [
            MetricValue("latency_image_p50", float(np.percentile(img, 50)), "s", False, n, variant),
            MetricValue("latency_image_p90", float(np.percentile(img, 90)), "s", False, n, variant),
            MetricValue("latency_batch_p50", float(np.percentile(bat, 50)), "s", False, len(bat), variant),
            MetricValue("latency_batch_p90", float(np.percentile(bat, 90)), "s", False, len(bat), variant),
            MetricValue("throughput", total_images / float(bat.sum()), "images/s", True, total_images, variant),
            MetricValue("cold_start", float(first.get("load_seconds", float("nan"))), "s", False, 1,
                        {**variant, "load": "first in process" if first.get("first_load_in_process", True)
                         else "process had loaded models before (imports and file cache warm)"}),
            MetricValue("warmup", float(first.get("warmup_seconds") or 0.0), "s", False, 1, variant),
            MetricValue("peak_memory", float(peak.get("peak_memory_bytes", 0)), "bytes", False, len(sessions),
                        {**variant, "measure": peak.get("peak_memory_kind")}),
            MetricValue("model_size", float(model.get("size_bytes", 0)), "bytes", False, 1, variant),
            MetricValue("nfe", float(model.get("unet_calls_per_image", 0)), "unet calls/image", False, n, variant,
                        {"steps": m.get("spec", {}).get("recipe", {}).get("steps")}),
        ]
        vals += self._stage_values(variant, first)
        vals += self._clip_values(variant)
        return vals

    def _clip_values(self, variant: dict) -> list[MetricValue]:
        """Seconds per clip, compute seconds per second of video, frames per second of compute and time to first
        frame (p50 over clips; the batch's seconds for the first frame: the pipelines are not streaming)."""
        if not self.clips:
            return []
        rows = np.array(list(self.clips.values()), dtype=np.float64)  # seconds, frames, fps, batch seconds
        seconds, frames, fps, batch = rows.T
        n = len(rows)
        clip = {**variant, "per": "clip", "frames": sorted({int(f) for f in frames}), "fps": sorted({float(f) for f in fps})}
        return [
            MetricValue("latency_clip_p50", float(np.percentile(seconds, 50)), "s", False, n, clip),
            MetricValue("latency_clip_p90", float(np.percentile(seconds, 90)), "s", False, n, clip),
            MetricValue("compute_per_video_second", float(np.percentile(seconds / (frames / fps), 50)), "s/s", False, n,
                        {**clip, "definition": "seconds of compute per second of video (frames / fps), p50 over clips"}),
            MetricValue("generated_fps", float(frames.sum() / seconds.sum()), "frames/s", True, n,
                        {**clip, "definition": "frames generated over seconds of compute, all clips"}),
            MetricValue("time_to_first_frame", float(np.percentile(batch, 50)), "s", False, n,
                        {**clip, "definition": "p50 over clips of their batch's seconds: the VAE decodes a clip's frames "
                                               "together, so its first frame exists when the batch ends"}),
        ]

    def _stage_values(self, variant: dict, first_session: dict) -> list[MetricValue]:
        """Per-image seconds of each stage (p50 over batches), and the cold (first) run beside the warm ones."""
        out: list[MetricValue] = []
        if self.stages:
            per_image = {name: [s[stage] / s["batch_size"] for s in self.stages.values()]
                         for name, stage in _STAGE_VALUES.items()}
            for name, values in per_image.items():
                out.append(MetricValue(name, float(np.percentile(values, 50)), "s", False, len(values),
                                       {**variant, "per": ("clip" if self.clips else "image")
                                        + (" and step" if name == "latency_denoise_step" else "")}))
        warm_up = first_session.get("warmup_seconds")
        images = first_session.get("warmup_images")
        if warm_up and images and first_session.get("warmup_stages") is not None:
            cold = first_session["warmup_stages"]
            out.append(MetricValue("latency_cold_image", float(warm_up) / int(images), "s", False, int(images),
                                   {**variant, "run": "first batch in process (warm-up), untimed in the p50s",
                                    "cold_stages_s": {k: cold[k] for k in ("text_encoding_s", "denoising_s", "vae_decode_s")
                                                      if k in cold}}))
        return out


def _model_variant(manifest: dict) -> dict:
    """Variant keys that change latency: only present when they differ from the plain model."""
    model = manifest.get("model") or {}
    runtime = manifest.get("runtime") or {}
    out = {}
    if model.get("compile"):
        out["compile"] = model["compile"]
    if (model.get("vae") or {}).get("class"):
        out["decoder"] = model["vae"]["class"]
    if model.get("lora") and not model["lora"].get("fused", True):
        out["lora"] = "unfused adapter"
    if "tf32_matmul" in runtime:
        out["tf32"] = bool(runtime["tf32_matmul"])
    return out


def _gpu(manifest: dict) -> str | None:
    cuda = (manifest.get("hardware") or {}).get("cuda")
    if cuda and cuda.get("devices"):
        return cuda["devices"][0]["name"]
    return "apple-mps" if manifest.get("device") == "mps" else None
