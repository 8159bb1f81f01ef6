"""The VBench dimensions against the ``vbench`` 0.1.5 package's own functions, on the same clips with the same
random weights.

The clips are written as `benchkit eval` writes them (benchkit.models.video.write_video: mp4 through PyAV), some
static, some moving, one not square (DINO then resamples its position grid), one shorter (so how frames and
clips are weighted shows). VBench's side is its ``compute_*`` functions, run on a VBench info json of the
clips, reading them with decord and OpenCV as it does; only its network loaders are replaced, because they
download: ``torch.hub.load`` returns a transcription of facebookresearch/dino's VisionTransformer (cited by
line below; the hub repository cannot be fetched here) and ``clip.load`` returns the ``clip`` package's own CLIP
class holding the random weights. benchkit loads the same tensors from the files it reads in a real run (DINO's
state dict; the transformers port of the CLIP weights; the linear head file).

Needs the references installed without their pins: pip install --no-deps vbench==0.1.5 openai-clip==1.0.1, and
av, decord and opencv-python-headless; without them the parity tests skip.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import logging
import math
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
from metric_models import (TINY_MUSIQ, TINY_OPENAI_B32, TINY_OPENAI_L14, dino_state, openai_clip_state,
                           save_aesthetic_linear_head, save_openai_clip_as_hf, save_tiny_dino, save_tiny_musiq)

from benchkit.core.errors import BenchkitError
from metrics import REGISTRY, build_metrics
from metrics import vbench_dimensions as V
from metrics import weights as W
from metrics.base import MetricContext, SampleBatch, ScorePlan
from metrics.clips import read_clip
from run_files import score_in_two_chunks

pytestmark = pytest.mark.usefixtures("every_clip_static")  # temporal flickering's static filter: test_vbench_static_filter.py

NAMES = ["vbench-subject-consistency", "vbench-background-consistency", "vbench-temporal-flickering",
         "vbench-aesthetic-quality", "vbench-imaging-quality"]
DIMENSIONS = {name: name.removeprefix("vbench-").replace("-", "_") for name in NAMES}
# float32 networks on both sides (seen: up to 3e-7); flickering is exact here where VBench sums float32 (seen: 3e-9)
TOL = {"vbench-subject-consistency": 2e-6, "vbench-background-consistency": 2e-6, "vbench-temporal-flickering": 1e-7,
       "vbench-aesthetic-quality": 2e-6, "vbench-imaging-quality": 2e-6}


# ---- facebookresearch/dino vision_transformer.py, transcribed (commit 7c446df) -----------------------------

class _DinoAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5  # :72-73
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)  # qkv_bias=True (vit_base, :250-253)

    def forward(self, x):  # :80-92
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _DinoMlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)  # :49-65

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _DinoBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = _DinoAttention(dim, heads), _DinoMlp(dim)

    def forward(self, x):  # :107-113
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DinoReference(nn.Module):
    """``VisionTransformer`` (:134-214) with ``vit_base``'s settings, ``dim`` wide: what torch.hub.load gives VBench."""

    def __init__(self, dim=128, depth=2, patch=16, image=224):
        super().__init__()
        self.patch = patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)  # :126
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, dim))
        self.blocks = nn.ModuleList([_DinoBlock(dim, dim // 64) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def interpolate_pos_encoding(self, x, w, h):  # :174-194
        npatch, n = x.shape[1] - 1, self.pos_embed.shape[1] - 1
        if npatch == n and w == h:
            return self.pos_embed
        dim = x.shape[-1]
        w0, h0 = w // self.patch + 0.1, h // self.patch + 0.1
        grid = nn.functional.interpolate(
            self.pos_embed[:, 1:].reshape(1, int(math.sqrt(n)), int(math.sqrt(n)), dim).permute(0, 3, 1, 2),
            scale_factor=(w0 / math.sqrt(n), h0 / math.sqrt(n)), mode="bicubic")
        assert int(w0) == grid.shape[-2] and int(h0) == grid.shape[-1]
        return torch.cat((self.pos_embed[:, 0].unsqueeze(0), grid.permute(0, 2, 3, 1).view(1, -1, dim)), dim=1)

    def forward(self, x):  # :196-214
        _, _, w, h = x.shape
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x, w, h)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]


# ---- the clips, the weights, and VBench -------------------------------------------------------------------

def _clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)

    def smooth(h, w):  # a blurred random image: H.264 keeps it close, and it moves visibly when rolled
        small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
        big = np.kron(small, np.ones((8, 8, 1)))[:h, :w]
        return np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)

    still, wide, noisy, large = smooth(64, 64), smooth(48, 80), smooth(64, 64), smooth(272, 544)
    return {
        "static": np.stack([still] * 8),
        "moving": np.stack([np.roll(still, 3 * t, axis=1) for t in range(8)]),
        "wide": np.stack([np.roll(wide, 4 * t, axis=0) for t in range(8)]),  # 48x80: 224x373 for DINO
        "short": np.stack([np.clip(noisy.astype(int) + rng.integers(-40, 40, noisy.shape), 0, 255).astype(np.uint8)
                           for _ in range(5)]),
        "large": np.stack([np.roll(large, 16 * t, axis=1) for t in range(3)]),  # over 512: MUSIQ's frames are resized
    }


_CLIP_NAMES = ("static", "moving", "wide", "short", "large")


@pytest.fixture(scope="module")
def vb():
    """The vbench modules (imported without their download-time side effects on logging)."""
    for module in ("av", "decord", "cv2", "vbench"):
        pytest.importorskip(module)
    shim = None
    try:
        import pkg_resources  # noqa: F401  (openai-clip 1.0.1 imports its `packaging`; setuptools 81 dropped it)
    except ImportError:
        import packaging.version

        shim = sys.modules["pkg_resources"] = types.ModuleType("pkg_resources")
        shim.packaging = packaging
    try:
        pytest.importorskip("clip")
    finally:
        if shim is not None:
            del sys.modules["pkg_resources"]
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from vbench import aesthetic_quality, background_consistency, subject_consistency, temporal_flickering
    finally:  # vbench.utils calls logging.basicConfig at import
        root.handlers[:] = handlers
        root.setLevel(level)
    return types.SimpleNamespace(subject=subject_consistency, background=background_consistency,
                                 flicker=temporal_flickering, aesthetic=aesthetic_quality)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from benchkit.models.video import write_video

    pytest.importorskip("av")  # the clips are mp4, as a run with PyAV installed writes them
    root = tmp_path_factory.mktemp("vbench")
    run = root / "run"
    run.mkdir()
    records, info = [], []
    for name, frames in _clips().items():
        rec = {"prompt_id": name, "prompt": f"a {name} clip", "seed": 0, "meta": {}}
        rec.update(write_video(run, f"{name}_0", frames, 8))
        assert rec["video_format"] == "mp4"
        records.append(rec)
        dims = [d for n, d in DIMENSIONS.items() if name in _clips_of(n)]
        info.append({"prompt_en": rec["prompt"], "dimension": dims, "video_list": [str(run / rec["video"])]})
    (root / "full_info.json").write_text(json.dumps(info))
    w = root / "weights"
    b32, l14 = openai_clip_state(11, TINY_OPENAI_B32), openai_clip_state(12, TINY_OPENAI_L14)
    weights = {
        "dino-vitb16": str(save_tiny_dino(w / "dino", seed=10)),
        **({"musiq-spaq": str(save_tiny_musiq(w / "musiq" / "musiq_spaq_ckpt-358bb6af.pth", seed=14))}
           if importlib.util.find_spec("pyiqa") else {}),
        "clip-vit-base-patch32": str(save_openai_clip_as_hf(w / "clip-b32", b32, TINY_OPENAI_B32)),
        "clip-vit-large-patch14": str(save_openai_clip_as_hf(w / "clip-l14", l14, TINY_OPENAI_L14, with_processor=True)),
        "laion-aesthetic-linear-l14": str(save_aesthetic_linear_head(w / "emb_reader" / "sa_0_4_vit_l_14_linear.pth", seed=13)),
    }
    return {"root": root, "run": run, "records": records, "info": str(root / "full_info.json"), "weights": weights, "vbench": {},
            "b32": b32, "l14": l14}


def _openai_clip(state, cfg):
    import clip.model

    model = clip.model.CLIP(**cfg)
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def _clips_of(name: str) -> tuple[str, ...]:
    """The clips a dimension is scored on: all, but MUSIQ (224 and 384 px copies of every frame) only two."""
    return ("short", "large") if name == "vbench-imaging-quality" else tuple(_CLIP_NAMES)


def _records(world, name):
    return [r for r in world["records"] if r["prompt_id"] in _clips_of(name)]


def _vbench(vb, world, name, monkeypatch) -> tuple[float, dict[str, float]]:
    """VBench's number for the clips, and its per-clip results by clip path (computed once per dimension)."""
    if name not in world["vbench"]:
        world["vbench"][name] = _run_vbench(vb, world, name, monkeypatch)
    return world["vbench"][name]


def _run_vbench(vb, world, name, monkeypatch) -> tuple[float, dict[str, float]]:
    cpu = torch.device("cpu")
    if name == "vbench-subject-consistency":
        dino = DinoReference()
        dino.load_state_dict(dino_state(10), strict=True)
        monkeypatch.setattr(torch.hub, "load", lambda **kwargs: dino)  # VBench never calls .eval(): DINO has no dropout
        value, per_clip = vb.subject.compute_subject_consistency(world["info"], cpu, {
            "repo_or_dir": "facebookresearch/dino:main", "source": "github", "model": "dino_vitb16", "read_frame": False})
    elif name == "vbench-background-consistency":
        model = _openai_clip(world["b32"], TINY_OPENAI_B32)
        monkeypatch.setattr(vb.background.clip, "load", lambda path, device: (model, None))
        value, per_clip = vb.background.compute_background_consistency(world["info"], cpu, ["ViT-B/32", False])
    elif name == "vbench-temporal-flickering":
        value, per_clip = vb.flicker.compute_temporal_flickering(world["info"], cpu, [])
    elif name == "vbench-imaging-quality":
        pytest.importorskip("pyiqa")
        from pyiqa.archs.musiq_arch import MUSIQ
        from vbench import imaging_quality

        # VBench builds MUSIQ with its full-size defaults: the tiny one's sizes are passed on
        monkeypatch.setattr(imaging_quality, "MUSIQ", functools.partial(MUSIQ, **TINY_MUSIQ))
        with torch.no_grad():  # VBench's loop keeps autograd on (the same numbers, and a warning per frame)
            value, per_clip = imaging_quality.compute_imaging_quality(world["info"], cpu,
                                                                      {"model_path": world["weights"]["musiq-spaq"]})
    else:
        model = _openai_clip(world["l14"], TINY_OPENAI_L14)
        monkeypatch.setattr(vb.aesthetic.clip, "load", lambda path, device: (model, None))
        head_folder = str(world["root"] / "weights" / "emb_reader")  # get_aesthetic_model reads <it>/sa_0_4_vit_l_14_linear.pth
        value, per_clip = vb.aesthetic.compute_aesthetic_quality(world["info"], cpu, ["ViT-L/14", head_folder])
    scale = 100 if name == "vbench-imaging-quality" else 1  # its per-clip results are 0-100, its value 0-1
    return float(value), {r["video_path"]: float(r["video_results"]) / scale for r in per_clip}


def _context(world, monkeypatch) -> MetricContext:
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps(world["weights"]))
    # the registry knows the real head's sha256 (LAION-AI/aesthetic-predictor's file); this one is random
    head = W.REGISTRY["laion-aesthetic-linear-l14"]
    monkeypatch.setitem(W.REGISTRY, head.name, dataclasses.replace(head, sha256=None))
    ctx = MetricContext(cache_dir=world["root"] / "cache")
    ctx.run_dir = world["run"]  # records name their clips relative to the run folder
    return ctx


def _score(name, world, ctx):
    """The metric over the clips in two chunks, merged as the scorer merges them."""
    metric = build_metrics([name], ctx)[0]
    records = _records(world, name)
    score_in_two_chunks(metric, records, 2)  # merged as the scorer merges chunks
    return metric


def _per_clip(name, result: list[float]) -> float:
    if name in ("vbench-subject-consistency", "vbench-background-consistency"):
        return result[0] / result[1]
    return result[0] / (100 if name == "vbench-imaging-quality" else 1)


@pytest.mark.parametrize("name", NAMES)
def test_dimension_equals_vbench(vb, world, monkeypatch, name):
    torch.set_num_threads(1)
    want, want_clips = _vbench(vb, world, name, monkeypatch)
    metric = _score(name, world, _context(world, monkeypatch))
    value = metric.compute()[0]
    records = _records(world, name)
    assert value.n == len(records) and value.variant["protocol"] == "VBench 0.1.5 protocol"
    got_clips = {str(world["run"] / r["video"]): _per_clip(name, metric.videos[f"{r['prompt_id']}\x1f0"]) for r in records}
    assert set(got_clips) == set(want_clips)
    worst = max(abs(got_clips[k] - want_clips[k]) for k in want_clips)
    print(f"{name}: benchkit {value.value:.8f} vbench {want:.8f} |diff| {abs(value.value - want):.2e}, per clip max {worst:.2e}")
    assert abs(value.value - want) < TOL[name] and worst < TOL[name]
    # the clips tell the dimension's cases apart: a static clip scores higher than a moving one
    if name not in ("vbench-aesthetic-quality", "vbench-imaging-quality"):
        assert got_clips[str(world["run"] / "videos/static_0.mp4")] > got_clips[str(world["run"] / "videos/moving_0.mp4")]
    # how VBench weighs clips matters here: the other weighting (per-clip means vs frame-weighted) is far off
    results = [metric.videos[k] for k in sorted(metric.videos)]
    if name in ("vbench-subject-consistency", "vbench-background-consistency"):
        other = float(np.mean([r[0] / r[1] for r in results]))
    else:  # every frame pooled
        frames = {f"{r['prompt_id']}\x1f0": int(r["frames"]) for r in records}
        other = sum(r[0] * frames[k] for k, r in zip(sorted(metric.videos), results)) / sum(frames.values())
        other /= 100 if name == "vbench-imaging-quality" else 1
    print(f"{name}: the other weighting is off by {abs(other - want):.2e}")
    assert abs(other - want) > 20 * TOL[name]


def test_the_parity_tests_see_dino_resampling_and_clip_resizing(vb, world, monkeypatch):
    """What the tolerances catch: DINO's position grid resampled to a size (as timm and transformers do) instead of
    by DINO's scale factors, and frames resized with antialiasing (as PIL and benchkit's image metrics do) for CLIP
    and, over 512 px, for MUSIQ."""
    torch.set_num_threads(1)
    ctx = _context(world, monkeypatch)

    def by_size(pos_embed, height, width, patch):
        n, dim = pos_embed.shape[1] - 1, pos_embed.shape[-1]
        side, rows, cols = math.isqrt(n), height // patch, width // patch
        if rows * cols == n and height == width:
            return pos_embed
        grid = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        grid = torch.nn.functional.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
        return torch.cat([pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)

    def antialiased_resize(video, longest=512):
        from torchvision.transforms import functional as TF

        h, w = video.shape[-2:]
        scale = longest / max(h, w)
        return TF.resize(video, [int(scale * h), int(scale * w)], antialias=True) / 255.0 if scale < 1 else video / 255.0

    def antialiased(video, size=224):
        from torchvision.transforms import functional as TF

        x = TF.center_crop(TF.resize(video, size, interpolation=TF.InterpolationMode.BICUBIC, antialias=True), size)
        return TF.normalize(x.float().div(255.0), V.CLIP_MEAN, V.CLIP_STD)

    for name, attr, wrong in (("vbench-subject-consistency", "dino_position_embedding", by_size),
                              ("vbench-background-consistency", "clip_transform", antialiased),
                              ("vbench-aesthetic-quality", "clip_transform", antialiased),
                              ("vbench-imaging-quality", "musiq_transform", antialiased_resize)):
        if name == "vbench-imaging-quality" and importlib.util.find_spec("pyiqa") is None:
            continue
        want, _ = _vbench(vb, world, name, monkeypatch)
        with monkeypatch.context() as m:
            m.setattr(V, attr, wrong)
            got = _score(name, world, ctx).compute()[0].value
        print(f"{name} with {wrong.__name__}: |diff| {abs(got - want):.2e}")
        assert abs(got - want) > 20 * TOL[name], name


def test_breakdown_groups_reuse_the_batch_scores(tmp_path, monkeypatch):
    """A breakdown group scores a subset of the same batch: the clips are not scored again (nor decoded: the
    batch keeps them), and the group's per-clip results are the whole batch's."""
    from benchkit.models import video

    monkeypatch.setattr(video, "mp4_encoder", lambda: None)  # APNG: no PyAV needed
    records = [{"prompt_id": name, "seed": 0, **video.write_video(tmp_path, f"{name}_0", frames, 8)}
               for name, frames in _clips().items()]
    ctx = MetricContext(cache_dir=tmp_path / "cache")
    ctx.run_dir = tmp_path
    metric, twin = build_metrics(["vbench-temporal-flickering"] * 2, ctx)
    calls, decoded = [], []
    monkeypatch.setattr(V, "flicker_score", lambda frames: calls.append(len(frames)) or float(frames.mean()))
    monkeypatch.setattr("metrics.clips.read_clip", lambda path, read=read_clip: decoded.append(path) or read(path))
    batch = SampleBatch([], records)
    metric.update(batch)
    twin.update(batch.subset([0, 2]))
    assert len(calls) == len(decoded) == len(records)
    assert twin.videos == {k: metric.videos[k] for k in ("static\x1f0", "wide\x1f0")}


def test_apng_clips_read_back_exactly(tmp_path, monkeypatch):
    from benchkit.models import video

    frames = _clips()["wide"]
    monkeypatch.setattr(video, "mp4_encoder", lambda: None)
    rec = video.write_video(tmp_path, "wide_0", frames, 8)
    assert rec["video_format"] == "apng"
    assert np.array_equal(read_clip(tmp_path / rec["video"]), frames)


def test_image_families_records_and_clips_are_refused_in_one_line(tmp_path, monkeypatch):
    from metrics import parse_metric_names

    assert set(NAMES) <= {n for n, cls in REGISTRY.items() if cls.reads_clips}
    # `--metrics vbench` is every VBench dimension benchkit computes, once each, beside the metrics named with it
    group = parse_metric_names("latency,vbench,vbench-temporal-flickering")
    assert group[0] == "latency" and set(NAMES) <= set(group) and len(group) == len(set(group))
    assert all(getattr(REGISTRY[n], "dimension", None) for n in group[1:])
    ctx = MetricContext(cache_dir=tmp_path)
    for name in NAMES:
        with pytest.raises(BenchkitError) as err:
            REGISTRY[name].check(ScorePlan(records=[], seeds_per_prompt=1, family="sdxl", media="image"), ctx)
        assert "makes images" in str(err.value) and "\n" not in str(err.value)
    flicker = build_metrics(["vbench-temporal-flickering"], ctx)[0]
    REGISTRY["vbench-temporal-flickering"].check(ScorePlan(records=[], seeds_per_prompt=1, family="wan", media="video"), ctx)
    cases = [({"prompt_id": "p", "seed": 0, "file": "images/p_0.png"}, "no clip"),
             ({"prompt_id": "p", "seed": 0, "video": str(tmp_path / "gone.mp4")}, "not found"),
             ({"prompt_id": "p", "seed": 0, "video": "videos/p_0.mp4"}, "relative to its run folder")]
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "one.png")
    cases.append(({"prompt_id": "p", "seed": 0, "video": str(tmp_path / "one.png")}, "at least 2 frames"))
    for record, words in cases:
        with pytest.raises(BenchkitError) as err:
            flicker.update(SampleBatch([], [record]))
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_wrong_weight_files_are_one_line(tmp_path, monkeypatch):
    full = tmp_path / "full" / "dino_vitbase16_pretrain.pth"
    full.parent.mkdir()
    torch.save({"student": dino_state(0), "teacher": dino_state(1)}, full)  # DINO's full training checkpoint
    head = save_aesthetic_linear_head(tmp_path / "head" / "sa_0_4_vit_l_14_linear.pth", dim=16)
    for weight, path, words in (("dino-vitb16", full, "backbone-only"), ("laion-aesthetic-linear-l14", head, "768")):
        resolved = W.ResolvedWeight(weight, path, path, "0" * 64, "unverified", "--weights")
        load = V.load_dino if weight == "dino-vitb16" else functools.partial(V.load_linear_head, input_size=768)
        with pytest.raises(BenchkitError) as err:
            load(resolved, device=torch.device("cpu"))
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_vbench_prompts_score_only_the_dimensions_they_probe(tmp_path, monkeypatch):
    """VBench's suite: a prompt of the vbench sets is scored for the dimensions its `dimension` field lists (as
    load_dimension_info picks videos); a prompt from elsewhere for every dimension (VBench's custom input). A plan
    whose VBench prompts probe none of a dimension is one line before any work."""
    from benchkit.models import video

    monkeypatch.setattr(video, "mp4_encoder", lambda: None)
    clips = _clips()
    suites = {"static": ["temporal_flickering", "subject_consistency"], "moving": ["subject_consistency"], "wide": None}
    records = []
    for name, dims in suites.items():
        rec = {"prompt_id": name, "seed": 0, "meta": {} if dims is None else {"dimension": dims},
               **video.write_video(tmp_path, f"{name}_0", clips[name], 8)}
        records.append(rec)
    ctx = MetricContext(cache_dir=tmp_path / "cache")
    ctx.run_dir = tmp_path
    flicker = build_metrics(["vbench-temporal-flickering"], ctx)[0]
    flicker.update(SampleBatch([], records))
    assert sorted(flicker.videos) == ["static\x1f0", "wide\x1f0"]  # 'moving' probes subject consistency only
    value = flicker.compute()[0]
    assert value.n == 2 and value.extra["samples_per_prompt"] == [1]
    assert value.value == pytest.approx(np.mean([V.flicker_score(clips["static"]), V.flicker_score(clips["wide"])]))
    cls = REGISTRY["vbench-temporal-flickering"]
    plan = ScorePlan(records=[{"prompt_id": "m", "meta": {"dimension": ["subject_consistency"]}}], seeds_per_prompt=5,
                     family="cogvideox", media="video")
    with pytest.raises(BenchkitError) as err:
        cls.check(plan, ctx)
    assert "--dimension temporal_flickering" in str(err.value) and "\n" not in str(err.value)
    cls.check(dataclasses.replace(plan, records=[*plan.records, {"prompt_id": "c", "meta": {}}]), ctx)  # custom: fine
    only_moving = build_metrics(["vbench-temporal-flickering"], ctx)[0]
    only_moving.update(SampleBatch([], records[1:2]))
    with pytest.raises(BenchkitError, match="only on its own prompts"):
        only_moving.compute()


def test_a_group_leaves_out_the_dimensions_its_prompts_do_not_probe(tmp_path):
    """`--metrics vbench` on VBench prompts of one dimension scores that one and notes the rest (before their weights
    are looked for); a dimension named on its own with no prompt for it is still an error."""
    from metrics import NotApplicable, check_metrics, grouped_only, metric_groups, parse_metric_names

    ctx = MetricContext(cache_dir=tmp_path)
    plan = ScorePlan(records=[{"prompt_id": "0", "meta": {"dimension": ["temporal_flickering"]}}], seeds_per_prompt=5,
                     family="cogvideox", media="video")
    names = parse_metric_names("latency,vbench")
    assert grouped_only("latency,vbench") == set(metric_groups()["vbench"]) and grouped_only(None) == set()
    left = check_metrics(names, plan, ctx, optional=grouped_only("latency,vbench"))
    assert set(left) == set(metric_groups()["vbench"]) - {"vbench-temporal-flickering"}
    assert all("probes" in why for why in left.values())
    with pytest.raises(NotApplicable):
        check_metrics(["vbench-subject-consistency"], plan, ctx, optional=grouped_only("vbench-subject-consistency"))
    with pytest.raises(BenchkitError, match="none of the metrics has anything to score"):
        check_metrics(parse_metric_names("vbench-i2v"), dataclasses.replace(plan, records=[
            {"prompt_id": "0", "meta": {"dimension": ["color"]}}]), ctx, optional=grouped_only("vbench-i2v"))


def test_the_scorer_decodes_each_clip_once_in_its_workers(tmp_path, monkeypatch):
    """score_records decodes every clip once per pass, in the DataLoader workers when there are some, for all the
    clip metrics and breakdown groups; the scores do not depend on the worker count, and no first-frame image is
    decoded for a clip metric."""
    from benchkit import scoring
    from benchkit.models import video
    from metrics.breakdown import Breakdown

    monkeypatch.setattr(video, "mp4_encoder", lambda: None)
    records = []
    for k, (name, frames) in enumerate(list(_clips().items())[:4] * 3):  # 12 clips: two chunks of CLIP_CHUNK
        rec = {"prompt_id": f"{name}{k}", "seed": 0, "meta": {"kind": name}, "file": f"images/{name}{k}_0.png",
               **video.write_video(tmp_path, f"{name}{k}_0", frames, 8)}
        records.append(rec)
    ctx = MetricContext(cache_dir=tmp_path / "cache")
    ctx.run_dir = tmp_path
    decoded = []
    monkeypatch.setattr(scoring, "read_clip", lambda path, read=read_clip: decoded.append(path) or read(path))
    results = {}
    for workers in (0, 2):
        metrics = build_metrics(["vbench-temporal-flickering"], ctx)
        breakdown = Breakdown(["kind"], ["vbench-temporal-flickering"], ctx)
        scoring.score_records(tmp_path, records, metrics, breakdown, workers=workers)
        results[workers] = (metrics[0].compute()[0].value, [g["metrics"][0]["value"] for g in breakdown.compute()])
        if workers == 0:  # counted in this process: once per clip, though the breakdown scores each clip again
            assert sorted(map(str, decoded)) == sorted(str(tmp_path / r["video"]) for r in records)
    assert results[0] == results[2]
    direct = build_metrics(["vbench-temporal-flickering"], ctx)[0]
    direct.update(SampleBatch([], records))
    assert direct.compute()[0].value == results[0][0]  # no image file exists: none was read
