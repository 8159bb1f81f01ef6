"""VBench dimensions: clips/s per dimension, and what decoding each clip once for all of them saves.

    python -m benchmarks --only vbench_clips [--quick]

Clips are mp4 (PyAV), written as `benchkit eval` writes them. Each dimension is scored alone through the scorer
(its own pass, decoding every clip again, as VBench's per-dimension functions each read the clips), then all of
them together in one pass (each clip decoded once, in the DataLoader workers, for every dimension). The networks
have their real architectures and sizes (DINO ViT-B/16, CLIP ViT-B/32 and ViT-L/14 with the linear head, pyiqa's
MUSIQ, AMT-S, RAFT) with random weights, as nothing can be downloaded here; the numbers do not depend on the
weights' values. ViCLIP and UMT, ViT-L video transformers that take minutes a clip at full size on a CPU, are the
tests' tiny ones, so their rows (temporal style, overall consistency, human action) time the harness around a small
network. ``--quick`` uses the tests' tiny networks everywhere and fewer clips (a smoke test). Needs the parity
references the tests use (vbench, easydict, einops, OpenCV) to build RAFT, ViCLIP and UMT files.

Rows: clips/s of each dimension alone; the shared pass against the sum of the separate passes (goal: under 1.0,
sharing pays); and decoding alone by worker count, which is what bounds a GPU run once the networks are fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import row

NAME = "vbench_clips"
REPO = Path(__file__).resolve().parents[1]
# real-size networks on small clips: 128 px is RAFT's smallest with finite flow; larger clips take over half an
# hour on 2 CPU cores (the rows are per-clip rates and a ratio, which the clip count does not change)
SIZES = {False: {"clips": 4, "frames": 12, "px": 128}, True: {"clips": 4, "frames": 8, "px": 128}}
B32 = {"embed_dim": 512, "image_resolution": 224, "vision_layers": 12, "vision_width": 768, "vision_patch_size": 32,
       "context_length": 77, "vocab_size": 49408, "transformer_width": 512, "transformer_heads": 8, "transformer_layers": 12}
STYLE = {"appearance_style": {"appearance_style": "oil painting"}}
L14 = {**B32, "embed_dim": 768, "vision_layers": 24, "vision_width": 1024, "vision_patch_size": 14,
       "transformer_width": 768, "transformer_heads": 12}


def make_clips(root: Path, n: int, frames: int, px: int) -> list[dict]:
    """``n`` moving clips as sample records of a run at ``root`` (mp4 through PyAV)."""
    from benchkit.models.video import write_video

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        small = rng.integers(0, 256, (px // 16 + 1, px // 16 + 1, 3)).astype(np.float64)
        still = np.kron(small, np.ones((16, 16, 1)))[:px, :px]
        clip = np.stack([np.clip(np.roll(still, 2 * t, axis=1) + rng.normal(0, 8, still.shape), 0, 255).astype(np.uint8)
                         for t in range(frames)])
        # a prompt every dimension scores: a Kinetics-400 action (human action) and an appearance style
        rec = {"prompt_id": f"p{i}", "prompt": "A person is walking the dog", "seed": 0, "meta": {"auxiliary_info": STYLE},
               **write_video(root, f"p{i}_0", clip, 24)}
        if rec["video_format"] != "mp4":
            raise RuntimeError("this benchmark needs PyAV (pip install av): clips are mp4 as VBench reads them")
        records.append(rec)
    return records


def build_weights(folder: Path, quick: bool) -> dict[str, str]:
    """Random weights for every dimension's networks: the real sizes, or the tests' tiny ones with ``quick``."""
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    try:
        import metric_models as mm
        from test_vbench_dynamic_degree import _save_princeton, _vbench_raft
        from test_vbench_human_action import save_tiny_umt
        from test_vbench_motion_smoothness import amt_state
        from test_vbench_text_dimensions import save_tiny_viclip
    finally:
        sys.path.remove(str(REPO / "tests"))
    b32, l14 = (mm.TINY_OPENAI_B32, mm.TINY_OPENAI_L14) if quick else (B32, L14)
    dino = folder / "dino" / "dino_vitbase16_pretrain.pth"
    dino.parent.mkdir(parents=True)
    torch.save(mm.dino_state(0) if quick else mm.dino_state(0, dim=768, depth=12), dino)
    amt = folder / "amt-s.pth"
    torch.save({"state_dict": amt_state(0)}, amt)
    musiq = folder / "musiq" / "musiq_spaq_ckpt-358bb6af.pth"
    if quick:
        mm.save_tiny_musiq(musiq, seed=0)
    else:
        from pyiqa.archs.musiq_arch import MUSIQ

        musiq.parent.mkdir(parents=True)
        torch.manual_seed(0)
        torch.save(MUSIQ(pretrained=False).state_dict(), musiq)  # pyiqa's defaults: the SPAQ checkpoint's sizes
    return {
        "dino-vitb16": str(dino.parent), "amt-s": str(amt), "musiq-spaq": str(musiq),
        "clip-vit-base-patch32": str(mm.save_openai_clip_as_hf(folder / "b32", mm.openai_clip_state(1, b32), b32)),
        "clip-vit-large-patch14": str(mm.save_openai_clip_as_hf(folder / "l14", mm.openai_clip_state(2, l14), l14,
                                                                with_processor=True)),
        "laion-aesthetic-linear-l14": str(mm.save_aesthetic_linear_head(folder / "sa_0_4_vit_l_14_linear.pth", seed=3)),
        "raft-things": _save_princeton(_vbench_raft(seed=4), folder / "raft-things.pth"),
        "viclip-internvid-10m-flt": str(save_tiny_viclip(folder / "ViClip-InternVid-10M-FLT.pth", seed=5)),
        "umt-l16-k400": str(save_tiny_umt(folder / "l16_ptk710_ftk710_ftk400_f16_res224.pth", seed=6)),
    }


def timed_pass(root: Path, records: list[dict], names: list[str], ctx, workers: int) -> float:
    """Seconds of one scoring pass of ``names`` over the clips (the networks built and warmed on one clip first)."""
    from benchkit.scoring import score_records
    from metrics import NotApplicable, build_metrics

    warm = build_metrics(names, ctx)
    score_records(root, records[:1], warm, None, workers=0)  # model load and first-call costs, untimed
    metrics = build_metrics(names, ctx)
    start = time.perf_counter()
    score_records(root, records, metrics, None, workers=workers)
    for metric in metrics:
        try:
            metric.compute()
        except NotApplicable:  # temporal flickering with no static clip (these clips move): nothing left to time
            pass
    return time.perf_counter() - start


def decode_rate(root: Path, records: list[dict], workers: int) -> float:
    """Clips/s of decoding alone, through the scorer's loader."""
    from metrics.clips import CLIP_CHUNK, read_clip
    from metrics.loading import load_chunks

    paths = [root / r["video"] for r in records]
    chunks = [paths[s : s + CLIP_CHUNK] for s in range(0, len(paths), CLIP_CHUNK)]
    start = time.perf_counter()
    for clips, _ in load_chunks(chunks, {}, True, workers, decode=read_clip):
        for i in range(len(clips)):
            clips[i]
    return len(paths) / (time.perf_counter() - start)


def run(quick: bool) -> list[dict]:
    import torch

    from metrics import REGISTRY, MetricContext
    from metrics import weights as W
    from metrics.loading import default_workers

    size = SIZES[quick]
    workers = default_workers()
    names = [n for n, cls in REGISTRY.items() if getattr(cls, "dimension", None) and set(cls.weights) <= set(W.REGISTRY)
             and not n.startswith("vbench-i2v")]  # the image-to-video dimension needs input images
    rows = []
    with tempfile.TemporaryDirectory(prefix="bk-vbench-") as tmp:
        root = Path(tmp)
        records = make_clips(root / "run", size["clips"], size["frames"], size["px"])
        weights = build_weights(root / "weights", quick)
        names = [n for n in names if set(REGISTRY[n].weights) <= set(weights)]
        saved_env, saved_head = os.environ.get(W.OVERRIDES_ENV), W.REGISTRY["laion-aesthetic-linear-l14"]
        os.environ[W.OVERRIDES_ENV] = json.dumps(weights)
        W.REGISTRY[saved_head.name] = dataclasses.replace(saved_head, sha256=None)  # random head, not LAION's file
        W._RESOLVED.clear()
        try:
            ctx = MetricContext(cache_dir=root / "cache", device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
            ctx.run_dir = root / "run"
            alone = {}
            for name in names:
                alone[name] = timed_pass(root / "run", records, [name], ctx, workers)
                rows.append(row("VBench clips", f"{name} alone: clips/s ({size['clips']} clips, {size['frames']} frames, "
                                f"{size['px']} px, {workers} workers)", len(records) / alone[name], None, None,
                                unit="clips/s"))
            together = timed_pass(root / "run", records, names, ctx, workers)
            rows.append(row("VBench clips", f"all {len(names)} dimensions in one pass (each clip decoded once) vs each in "
                            "its own pass (decoding again)", together, sum(alone.values()), 1.0,
                            note=f"one pass {together:.1f} s, separate passes {sum(alone.values()):.1f} s"))
            rates = {w: decode_rate(root / "run", records, w) for w in sorted({0, 1, workers})}
            rows.append(row("VBench clips", "decoding alone, clips/s by workers " + " / ".join(map(str, rates)),
                            rates[max(rates)], rates[0], None, unit="clips/s",
                            note=" / ".join(f"{v:.1f}" for v in rates.values())))
        finally:
            W.REGISTRY[saved_head.name] = saved_head
            W._RESOLVED.clear()
            if saved_env is None:
                os.environ.pop(W.OVERRIDES_ENV, None)
            else:
                os.environ[W.OVERRIDES_ENV] = saved_env
    return rows
