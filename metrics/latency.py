"""Latency from what generation recorded: per-image and per-batch percentiles, throughput,
cold start, warm-up, peak memory, size on disk and the measured number of UNet calls; for real
pipelines also the per-stage split (text encoding, denoising per step, VAE decode) and the
first (cold) batch beside the warm ones. torch.compile, a replacement (tiny) VAE, unfused
LoRAs and TF32 are part of the variant, so such runs are never compared as equals.

Timings are taken by the engine around each batch with device synchronisation (cuda/mps)
after an untimed warm-up batch; this metric only summarises them, so a resumed run keeps
the timings of every session that contributed images.
"""

from __future__ import annotations

import numpy as np

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import Metric, MetricContext, MetricValue, SampleBatch

# value name -> the stage seconds it summarises (per image, p50 over batches)
_STAGE_VALUES = {"latency_text_encoding": "text_encoding_s", "latency_denoise_step": "denoise_step_s",
                 "latency_denoising": "denoising_s", "latency_vae_decode": "vae_decode_s"}


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
                "cold_start", "warmup", "peak_memory", "model_size", "nfe", *_STAGE_VALUES, "latency_cold_image")

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        if not ctx.manifest or "sessions" not in ctx.manifest:
            raise BenchkitError("latency needs a run made by `benchkit eval` (it reads the timings recorded there)")
        self.add_state("batches", {}, merge="update")  # batch id -> (seconds, size)
        self.add_state("image_seconds", [], merge="extend")
        self.add_state("stages", {}, merge="update")  # batch id -> stage split (real pipelines measure one)

    def update(self, batch: SampleBatch) -> None:
        for rec in batch.records:
            self.image_seconds.append(float(rec["seconds"]))
            self.batches[rec["batch_id"]] = (float(rec["batch_seconds"]), int(rec["batch_size"]))
            if rec.get("stages"):
                self.stages[rec["batch_id"]] = {**rec["stages"], "batch_size": int(rec["batch_size"])}

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
        return vals

    def _stage_values(self, variant: dict, first_session: dict) -> list[MetricValue]:
        """Per-image seconds of each stage (p50 over batches), and the cold (first) run beside the warm ones."""
        out: list[MetricValue] = []
        if self.stages:
            per_image = {name: [s[stage] / s["batch_size"] for s in self.stages.values()]
                         for name, stage in _STAGE_VALUES.items()}
            for name, values in per_image.items():
                out.append(MetricValue(name, float(np.percentile(values, 50)), "s", False, len(values),
                                       {**variant, "per": "image" + (" and step" if name == "latency_denoise_step" else "")}))
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
