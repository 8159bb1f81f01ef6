"""VBench's appearance style, temporal style and overall consistency against the ``vbench`` 0.1.5 package's own
functions, on the same clips and prompts with the same random weights.

The clips are mp4 as `benchkit eval` writes them, of 5 to 24 frames (so VBench's choice of 8 'middle' frames
and its padding of short clips show), one not square. VBench's side is its ``compute_*`` functions on a VBench
info json of the clips, reading them with decord as it does. Only its loaders are replaced: ``clip.load``
returns the ``clip`` package's own CLIP class holding the random ViT-B/32-shaped weights, and ViCLIP's
builders (``clip_joint_l14``, ``clip_text_l14``, which fix ViT-L/14 sizes) build VBench's own
``VisionTransformer`` and ``CLIP_TEXT`` classes at a tiny size, into which VBench's ``ViCLIP`` loads the test's
checkpoint strictly, from a file in the real format (``{'model': state dict}``), as benchkit does. VBench's
tokenizer reads its vocabulary from a private VBench cache holding open_clip's copy of the file (VBench would
download it).

Needs the references installed without their pins: pip install --no-deps vbench==0.1.5 openai-clip==1.0.1,
einops (ViCLIP imports it), av and decord; without them the parity tests skip.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from metric_models import TINY_OPENAI_B32, openai_clip_state, save_openai_clip_as_hf

from benchkit.core.errors import BenchkitError
from metrics import REGISTRY, build_metrics
from metrics import viclip as VC
from metrics.base import MetricContext, SampleBatch, ScorePlan
from run_files import score_in_two_chunks

APPEARANCE, TEMPORAL, OVERALL = "vbench-appearance-style", "vbench-temporal-style", "vbench-overall-consistency"
NAMES = [APPEARANCE, TEMPORAL, OVERALL]
VICLIP = "viclip-internvid-10m-flt"
# float32 on both sides; ViCLIP runs the same torch ops as VBench's (seen: 0), CLIP is transformers' port (seen: 1e-7)
TOL = {APPEARANCE: 2e-6, TEMPORAL: 1e-6, OVERALL: 1e-6}
# ViCLIP-L/14's layout at a tiny size: 64-wide heads, an even number of them as there (16 and 12: PyTorch's fused
# attention takes only even head counts, so that is the case to compare), patch 14 at 224 px, 8 frames, 32 text tokens
TINY_VISION = {"input_resolution": 224, "patch_size": 14, "width": 128, "layers": 2, "heads": 2, "output_dim": 32,
               "kernel_size": 1, "num_frames": 8}
TINY_TEXT = {"embed_dim": 32, "context_length": 32, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2}


@pytest.fixture(scope="module")
def T():
    """The metrics module, imported when these tests run (importing it registers its metrics)."""
    from metrics import vbench_text_dimensions

    return vbench_text_dimensions


# ---- a tiny ViCLIP checkpoint ---------------------------------------------------------------------------------

def viclip_state(seed: int) -> dict[str, torch.Tensor]:
    """Random tensors under ViCLIP's names and shapes at the tiny size. Attention is sharp (in_proj at 3x fan-in
    scale), the position and frame embeddings large, and the token embeddings unit-scale, so that the video
    embedding follows the frames and their order, and the text embedding the words."""
    g = torch.Generator().manual_seed(seed)
    shapes = {k: v.shape for k, v in VC.ViCLIP(TINY_VISION, TINY_TEXT).state_dict().items()}
    state = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=g)
        fan_in = shape[-1] if len(shape) > 1 else 1
        if name == "temp":
            state[name] = torch.tensor(0.01)
        elif name.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight", "ln_final.weight")):
            state[name] = 1 + 0.1 * noise
        elif name.endswith("in_proj_weight"):
            state[name] = noise * 3 * fan_in ** -0.5
        elif name.endswith(("class_embedding", "token_embedding.weight")):
            state[name] = noise
        elif name.endswith(("vision_encoder.positional_embedding", "temporal_positional_embedding")):
            state[name] = 0.5 * noise
        elif name == "text_encoder.positional_embedding" or len(shape) == 1:
            state[name] = 0.1 * noise
        elif name.endswith("conv1.weight"):
            state[name] = noise * (3 * shape[-1] * shape[-2]) ** -0.5
        elif name.endswith(("proj", "text_projection")):
            state[name] = noise * shape[0] ** -0.5
        else:
            state[name] = noise * fan_in ** -0.5
    return state


def save_tiny_viclip(path, seed: int = 0):
    """A tiny ViCLIP saved as ViClip-InternVid-10M-FLT.pth is: a dict whose 'model' holds the state dict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": viclip_state(seed)}, path)
    return path


# ---- VBench ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vb(tmp_path_factory):
    """The vbench modules, imported with VBench's cache pointed at a folder holding the BPE vocabulary (its
    ViCLIP tokenizer looks for it when imported, and would download it), downloads refused, and its
    import-time logging setup undone."""
    for module in ("av", "decord", "einops", "timm", "vbench"):
        pytest.importorskip(module)
    cache = tmp_path_factory.mktemp("vbench-cache")
    (cache / "ViCLIP").mkdir()
    shutil.copy(VC.bpe_vocab_file(), cache / "ViCLIP" / "bpe_simple_vocab_16e6.txt.gz")
    shim = None
    try:
        import pkg_resources  # noqa: F401  (openai-clip 1.0.1 and ViCLIP import its `packaging`; setuptools 81 dropped it)
    except ImportError:
        import packaging.version

        shim = sys.modules["pkg_resources"] = types.ModuleType("pkg_resources")
        shim.packaging = packaging
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    run = subprocess.run

    def no_download(*args, **kwargs):
        raise RuntimeError(f"VBench tried to run {args[:1]} during the test")

    try:
        pytest.importorskip("clip")
        import vbench.utils as U

        cache_dir, U.CACHE_DIR = U.CACHE_DIR, str(cache)
        subprocess.run = no_download
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # timm's deprecated module paths
                from vbench import appearance_style, overall_consistency, temporal_style
                from vbench.third_party.ViCLIP import simple_tokenizer, viclip, viclip_text, viclip_vision
        finally:
            U.CACHE_DIR = cache_dir
            subprocess.run = run
    finally:
        if shim is not None:
            del sys.modules["pkg_resources"]
        root.handlers[:] = handlers  # vbench.utils calls logging.basicConfig at import
        root.setLevel(level)
    return types.SimpleNamespace(appearance=appearance_style, temporal=temporal_style, overall=overall_consistency,
                                 viclip=viclip, vision=viclip_vision, text=viclip_text, tokenizer=simple_tokenizer,
                                 cache=str(cache))


def _tiny_builders(vb):
    """``clip_joint_l14`` and ``clip_text_l14`` (viclip_vision.py:236-260, viclip_text.py:202-240) with the tiny
    sizes: VBench's classes, with every other argument as ViCLIP passes it."""

    def vision(pretrained=False, input_resolution=224, kernel_size=1, center=True, num_frames=8, drop_path=0.,
               checkpoint_num=0, dropout=0.):
        sizes = {k: TINY_VISION[k] for k in ("patch_size", "width", "layers", "heads", "output_dim")}
        return vb.vision.VisionTransformer(input_resolution=input_resolution, kernel_size=kernel_size,
                                           num_frames=num_frames, drop_path=drop_path, checkpoint_num=checkpoint_num,
                                           dropout=dropout, **sizes).eval()

    def text(embed_dim=768, context_length=77, vocab_size=49408, transformer_width=768, transformer_heads=12,
             transformer_layers=12, checkpoint_num=0, pretrained=True):
        return vb.text.CLIP_TEXT(TINY_TEXT["embed_dim"], context_length, vocab_size, TINY_TEXT["width"],
                                 TINY_TEXT["heads"], TINY_TEXT["layers"], checkpoint_num).eval()

    return vision, text


# ---- the clips and prompts --------------------------------------------------------------------------------------

def _clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)

    def smooth(h, w):  # a blurred random image: H.264 keeps it close, and it moves visibly when rolled
        small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
        big = np.kron(small, np.ones((8, 8, 1)))[:h, :w]
        return np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)

    a, b, c, wide, noisy = smooth(64, 64), smooth(64, 64), smooth(64, 64), smooth(48, 80), smooth(64, 64)
    return {
        "static": np.stack([a] * 8),
        "moving": np.stack([np.roll(b, 3 * t, axis=1) for t in range(17)]),  # 'middle' of 17: 1, 3, 5, ...
        "long": np.stack([np.roll(c, 2 * t, axis=0) for t in range(24)]),
        "wide": np.stack([np.roll(wide, 4 * t, axis=1) for t in range(12)]),  # 48x80: 224x373, centre-cropped
        "short": np.stack([np.clip(noisy.astype(int) + rng.integers(-40, 40, noisy.shape), 0, 255).astype(np.uint8)
                           for _ in range(5)]),  # fewer than 8: the last frame repeated
    }


def _style(style, dimensions=("appearance_style",)):
    return {"dimension": list(dimensions), "auxiliary_info": {"appearance_style": {"appearance_style": style}}}


def _all(style):
    """Meta of a VBench prompt probing the three dimensions (VBench's lists allow it; its own prompts probe fewer)."""
    return _style(style, ("appearance_style", "temporal_style", "overall_consistency"))


# prompt, meta (the prompt registry's: VBench's dimension list and auxiliary info; a vbench-long prompt's short one;
# none for a prompt from elsewhere, which VBench's custom mode scores for every dimension but appearance style)
PROMPTS = {
    "static": ("A beautiful coastal beach in spring, waves lapping on sand, Van Gogh style", _all("Van Gogh style")),
    "moving": ("A boat sailing leisurely along the Seine River with the Eiffel Tower in background, oil painting",
               _all("oil painting")),
    "long": (("In a sunlit meadow, a fluffy orange cat wearing tiny round sunglasses stretches lazily, its whiskers "
              "twitching as butterflies drift past; the camera lingers in super slow motion on every blade of grass."),
             {**_all("by Hokusai, in the style of Ukiyo"), "short_prompt": "A cat wearing sunglasses, in super slow motion"}),
    "wide": (("A couple in formal evening wear going home get caught in a heavy downpour with umbrellas, "
              "Caf&eacute; “noir” style"), _all("Caf&eacute;  “noir”\tstyle")),
    "short": ("A panda drinking coffee in a cafe in Paris, in cyberpunk style", {}),
}
_CLIP_NAMES = tuple(PROMPTS)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from benchkit.models.video import write_video

    pytest.importorskip("av")  # the clips are mp4, as a run with PyAV installed writes them
    root = tmp_path_factory.mktemp("vbench-text")
    run = root / "run"
    run.mkdir()
    records = []
    for name, frames in _clips().items():
        prompt, meta = PROMPTS[name]
        rec = {"prompt_id": name, "prompt": prompt, "seed": 0, "meta": meta}
        rec.update(write_video(run, f"{name}_0", frames, 8))
        assert rec["video_format"] == "mp4"
        records.append(rec)
    w = root / "weights"
    b32 = openai_clip_state(21, TINY_OPENAI_B32)
    weights = {"clip-vit-base-patch32": str(save_openai_clip_as_hf(w / "clip-b32", b32, TINY_OPENAI_B32)),
               VICLIP: str(save_tiny_viclip(w / "ViCLIP" / "ViClip-InternVid-10M-FLT.pth", seed=22))}
    return {"root": root, "run": run, "records": records, "weights": weights, "b32": b32, "vbench": {}}


def _info(world) -> str:
    """VBench's info json of the clips, as its standard mode writes it: each clip under the prompt VBench knows it
    by (a vbench-long clip under its short prompt, as VBench's augmented-prompt protocol files it), with the
    dimensions it probes and its auxiliary info; the prompt from elsewhere with the dimensions that take any
    prompt (as VBench's custom-input mode gives it). load_dimension_info picks each dimension's clips."""
    path = world["root"] / "full_info.json"
    entries = []
    for rec in world["records"]:
        meta = rec["meta"]
        entries.append({"prompt_en": meta.get("short_prompt") or rec["prompt"],
                        "dimension": meta.get("dimension", ["temporal_style", "overall_consistency"]),
                        **({"auxiliary_info": meta["auxiliary_info"]} if "auxiliary_info" in meta else {}),
                        "video_list": [str(world["run"] / rec["video"])]})
    path.write_text(json.dumps(entries))
    return str(path)


def _openai_clip(state, cfg):
    import clip.model

    model = clip.model.CLIP(**cfg)
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def _vbench(vb, world, name, monkeypatch) -> tuple[float, dict[str, float]]:
    """VBench's number and per-clip results by clip path (computed once per dimension)."""
    if name not in world["vbench"]:
        world["vbench"][name] = _run_vbench(vb, world, name, monkeypatch)
    return world["vbench"][name]


def _run_vbench(vb, world, name, monkeypatch) -> tuple[float, dict[str, float]]:
    cpu = torch.device("cpu")
    info = _info(world)
    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ViCLIP checkpoints every vision block (use_reentrant unset) under no_grad
        if name == APPEARANCE:
            model = _openai_clip(world["b32"], TINY_OPENAI_B32)
            m.setattr(vb.appearance.clip, "load", lambda **kwargs: (model, None))
            value, per_clip = vb.appearance.compute_appearance_style(info, cpu, {"name": "ViT-B/32"})
        else:
            module = vb.temporal if name == TEMPORAL else vb.overall
            vision, text = _tiny_builders(vb)
            m.setattr(vb.viclip, "clip_joint_l14", vision)
            m.setattr(vb.viclip, "clip_text_l14", text)
            m.setattr(module, "CACHE_DIR", vb.cache)  # its tokenizer's vocabulary: open_clip's copy
            m.setattr(vb.tokenizer.SimpleTokenizer.__init__, "__defaults__",
                      (str(VC.bpe_vocab_file()),))  # the text tower's own tokenizer (viclip_text.py:98)
            module.get_text_features.__defaults__[0].clear()  # VBench's text-feature cache lives across calls
            compute = getattr(module, f"compute_{name.removeprefix('vbench-').replace('-', '_')}")
            value, per_clip = compute(info, cpu, {"pretrain": world["weights"][VICLIP]})
    return float(value), {r["video_path"]: float(r["video_results"]) for r in per_clip}


def _context(world, monkeypatch) -> MetricContext:
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps(world["weights"]))
    ctx = MetricContext(cache_dir=world["root"] / "cache")
    ctx.run_dir = world["run"]
    return ctx


def _score(name, world, ctx, records=None):
    """The metric over the clips in two chunks, merged as the scorer merges them."""
    metric = build_metrics([name], ctx)[0]
    records = world["records"] if records is None else records
    score_in_two_chunks(metric, records, 2)  # merged as the scorer merges chunks
    return metric


def _per_clip(name, result: list[float]) -> float:
    return result[0] / result[1] if name == APPEARANCE else result[0]


# ---- parity ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_dimension_equals_vbench(T, vb, world, monkeypatch, name):
    torch.set_num_threads(1)
    want, want_clips = _vbench(vb, world, name, monkeypatch)
    metric = _score(name, world, _context(world, monkeypatch))
    value = metric.compute()[0]
    scored = [r for r in world["records"] if name != APPEARANCE or r["meta"]]  # the prompt from elsewhere names no style
    assert value.n == len(scored) == len(want_clips) and value.variant["protocol"] == "VBench 0.1.5 protocol"
    got_clips = {str(world["run"] / r["video"]): _per_clip(name, metric.videos[f"{r['prompt_id']}\x1f0"]) for r in scored}
    assert set(got_clips) == set(want_clips)
    worst = max(abs(got_clips[k] - want_clips[k]) for k in want_clips)
    print(f"{name}: benchkit {value.value:.8f} vbench {want:.8f} |diff| {abs(value.value - want):.2e}, per clip max {worst:.2e}")
    assert abs(value.value - want) < TOL[name] and worst < TOL[name]
    # the clips' scores are spread well beyond the tolerance, so the comparison above tells them apart
    assert np.std(list(want_clips.values())) > 100 * TOL[name]
    if name == APPEARANCE:
        assert "short\x1f0" not in metric.videos and value.variant["frames"].startswith("every frame")
        # VBench weighs clips by their frames (sum over frames / frames); the plain mean of clip means is far off
        other = float(np.mean(list(got_clips.values())))
        print(f"{name}: the mean of clip means is off by {abs(other - want):.2e}")
        assert abs(other - want) > 20 * TOL[name]
    else:
        assert value.variant["frames"].startswith("8 frames")


def test_the_parity_tests_see_frames_prompts_and_resizing(T, vb, world, monkeypatch):
    """What the tolerances catch: 8 frames spread evenly from first to last instead of VBench's 'middle' ones; a
    vbench-long clip scored under its long prompt instead of the short one VBench files it under; the whole prompt
    instead of the style text; frames resized as float tensors (no rounding to uint8, as the other VBench
    dimensions' load_video path does) for ViCLIP, and tensor-resized without antialiasing instead of through PIL
    for appearance style."""
    torch.set_num_threads(1)
    ctx = _context(world, monkeypatch)

    def linspace_frames(num_frames, vlen):
        return np.linspace(0, vlen - 1, num_frames).round().astype(int).tolist()

    def long_prompt(record):
        return str(record["prompt"])

    def whole_prompt(record):
        return str(record["prompt"]) if "auxiliary_info" in record["meta"] else None

    def float_frames(frames):
        from metrics.vbench_dimensions import clip_transform, vbench_video

        return clip_transform(vbench_video(frames[T.middle_frame_indices(8, len(frames))]), 224)

    def tensor_style_frame(frame):
        from metrics.vbench_dimensions import clip_transform, vbench_video

        return clip_transform(vbench_video(frame[None]))[0]

    cases = [(TEMPORAL, "middle_frame_indices", linspace_frames, None), (OVERALL, "vbench_prompt", long_prompt, "long"),
             (APPEARANCE, "appearance_style_text", whole_prompt, None), (TEMPORAL, "viclip_frames", float_frames, None),
             (APPEARANCE, "style_frame", tensor_style_frame, None)]
    for name, attr, wrong, clip in cases:
        want, want_clips = _vbench(vb, world, name, monkeypatch)
        with monkeypatch.context() as m:
            m.setattr(T, attr, wrong)
            metric = _score(name, world, ctx)
            got = metric.compute()[0].value
        if clip is None:
            off = abs(got - want)
        else:  # the one clip the mistake touches
            off = abs(_per_clip(name, metric.videos[f"{clip}\x1f0"]) - want_clips[str(world["run"] / f"videos/{clip}_0.mp4")])
        print(f"{name} with {wrong.__name__}: |diff| {off:.2e}")
        assert off > 20 * TOL[name], (name, wrong.__name__)


def test_tokenizer_equals_clip_and_viclip(vb):
    """OpenAI's clip.tokenize (77, never cut) and ViCLIP's CLIP_TEXT.tokenize (32, cut to the end token), on text
    that exercises the cleaning (ftfy, HTML entities twice, whitespace, case), non-Latin scripts and the limits;
    from open_clip's copy of the vocabulary, which is OpenAI's byte for byte."""
    import clip

    from metrics.viclip import SimpleTokenizer

    texts = ["A beautiful coastal beach in spring, waves lapping on sand, Van Gogh style", "Caf&amp;eacute;  “noir”\tSTYLE",
             "naïve ÆON ﬁsh 12345 don't we'll", "一只猫 🐱 кот", "<|startoftext|>tag<|endoftext|>", "  ", "x" * 300,
             " ".join(["word"] * 40)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        viclip_text = vb.text.CLIP_TEXT(32, 32, 49408, 64, 1, 1, 0)
    for text in texts:
        assert torch.equal(VC.tokenize(text, 32, truncate=True), viclip_text.tokenize(text, context_length=32)), text
        try:
            want = clip.tokenize([text])
        except RuntimeError:  # too long for 77
            with pytest.raises(BenchkitError, match="over the context of 77"):
                VC.tokenize([text], 77)
            continue
        assert torch.equal(VC.tokenize([text], 77), want), text
    assert VC.tokenize(" ".join(["word"] * 40), 32, truncate=True)[0, -1] == 49407
    with pytest.raises(BenchkitError, match="not OpenAI's"):
        import gzip
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            bad = Path(d) / "bpe.txt.gz"
            bad.write_bytes(gzip.compress(b"#version: 0.2\na b\n"))
            SimpleTokenizer(bad)


# ---- benchkit's side alone ---------------------------------------------------------------------------------

def test_frame_indices_are_vbench_middle_sampling(T):
    assert T.middle_frame_indices(8, 8) == list(range(8))
    assert T.middle_frame_indices(8, 16) == [0, 2, 4, 6, 8, 10, 12, 14]  # each run's middle, rounded down
    assert T.middle_frame_indices(8, 17) == [0, 2, 4, 6, 8, 10, 12, 15]  # runs from int(linspace(0, 17, 9))
    assert T.middle_frame_indices(8, 81) == [4, 14, 24, 34, 44, 54, 64, 75]  # Wan's 81 frames
    assert T.middle_frame_indices(8, 5) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert T.middle_frame_indices(8, 1) == [0] * 8


def test_frame_indices_equal_vbench_for_every_length(T, vb):
    import vbench.utils

    for vlen in range(1, 300):
        assert T.middle_frame_indices(8, vlen) == [int(i) for i in vbench.utils.get_frame_indices(8, vlen, sample="middle")]


def test_texts_the_clips_are_compared_with(T):
    long = {"prompt": "a long prompt", "meta": {"short_prompt": "short", **_style("oil painting")}}
    assert T.vbench_prompt(long) == "short" and T.vbench_prompt({"prompt": "p", "meta": {}}) == "p"
    assert T.appearance_style_text(long) == "oil painting"
    assert T.appearance_style_text({"meta": {"auxiliary_info": {"appearance_style": "pixel art"}}}) == "pixel art"
    for meta in ({}, {"auxiliary_info": {"scene": {"scene": "beach"}}}, None, _style("  ")):
        assert T.appearance_style_text({"prompt": "p", "meta": meta}) is None


def test_prompt_set_meta_reaches_the_style_text(T):
    """The vbench and vbench-long sets carry VBench's auxiliary info and the short prompt where the metrics look."""
    from prompts import load_prompt_set

    for set_name in ("vbench", "vbench-long"):
        styled = load_prompt_set(set_name).select({"dimension": "appearance_style"}, None, 0).records
        assert len(styled) == 90 and all(T.appearance_style_text({"meta": r.meta}) for r in styled)
    long = load_prompt_set("vbench-long").records
    assert all(T.vbench_prompt({"prompt": r.prompt, "meta": r.meta}) == r.meta["short_prompt"] != r.prompt for r in long[:50])


def test_viclip_checkpoint_loads_strictly_and_wrong_files_are_one_line(tmp_path):
    torch.set_num_threads(1)
    path = save_tiny_viclip(tmp_path / "ok" / "ViClip-InternVid-10M-FLT.pth", seed=3)
    model = VC.load_viclip(path, torch.device("cpu"))
    assert model.config == {"vision": TINY_VISION, "text": TINY_TEXT}
    with torch.no_grad():
        video = model.encode_vision(torch.randn(2, 8, 3, 224, 224))
        text = model.encode_text(["a cat", "a dog"])
    assert video.shape == text.shape == (2, 32) and torch.isfinite(video).all()
    state = viclip_state(3)
    bare = tmp_path / "bare.pth"
    torch.save(state, bare)  # a state dict without the 'model' wrapper
    short = tmp_path / "short.pth"
    torch.save({"model": {k: v for k, v in state.items() if k != "temp"}}, short)
    extra = tmp_path / "extra.pth"
    torch.save({"model": {**state, "vision_encoder.unexpected": torch.zeros(1)}}, extra)
    code = tmp_path / "code.pth"
    torch.save({"model": state, "config": types.SimpleNamespace(a=1)}, code)  # unpickling it would build an object
    for file, words in ((bare, "not a ViCLIP checkpoint"), (short, "does not fit ViCLIP"), (extra, "does not fit ViCLIP"),
                        (code, "refused")):
        with pytest.raises(BenchkitError) as err:
            VC.load_viclip(file, torch.device("cpu"))
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_plans_and_records_without_what_the_metrics_need_are_one_line(T, world, monkeypatch):
    torch.set_num_threads(1)
    ctx = _context(world, monkeypatch)

    def check(name, records, media="video"):
        REGISTRY[name].check(ScorePlan(records=records, seeds_per_prompt=1, family="wan", media=media), ctx)

    def refused(name, records, words, media="video"):
        with pytest.raises(BenchkitError) as err:
            check(name, records, media)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)

    custom = [{"prompt_id": "p", "prompt": "a cat", "meta": {}}]
    overall = [{"prompt_id": "o", "prompt": "a dog", "meta": {"dimension": ["overall_consistency"]}}]
    styled = [{"prompt_id": "s", "prompt": "a cat, oil painting", "meta": _style("oil painting")}]
    for name in NAMES:
        refused(name, [], "makes images", media="image")
    refused(APPEARANCE, custom, "--dimension appearance_style")  # prompts from elsewhere, none with a style
    refused(APPEARANCE, overall, "probes appearance_style")  # VBench prompts of another dimension
    refused(TEMPORAL, overall, "probes temporal_style")
    check(APPEARANCE, custom + overall + styled)  # some to score: fine
    check(TEMPORAL, custom)
    check(OVERALL, overall + styled)
    # scoring only clips without a style: nothing to report, in one line
    metric = build_metrics([APPEARANCE], ctx)[0]
    metric.update(SampleBatch([], [r for r in world["records"] if not r["meta"]]))
    with pytest.raises(BenchkitError) as err:
        metric.compute()
    assert "names a VBench appearance style" in str(err.value) and "\n" not in str(err.value)
    # a style too long for CLIP's 77 tokens, as clip.tokenize refuses it
    record = {**world["records"][0], "meta": _style("style " * 80)}
    with pytest.raises(BenchkitError) as err:
        build_metrics([APPEARANCE], ctx)[0].update(SampleBatch([], [record]))
    assert "over the context of 77" in str(err.value) and "\n" not in str(err.value)


def test_breakdown_groups_reuse_the_batch_scores(T, world, monkeypatch):
    """A breakdown group scores a subset of the same batch: each clip is scored once per metric, and the group's
    per-clip results are the whole batch's."""
    torch.set_num_threads(1)
    ctx = _context(world, monkeypatch)
    for name, attr in ((TEMPORAL, "viclip_frames"), (APPEARANCE, "style_frame")):
        metric, twin = build_metrics([name] * 2, ctx)
        calls = []
        real = getattr(T, attr)
        monkeypatch.setattr(T, attr, lambda frames, real=real, calls=calls: calls.append(1) or real(frames))
        batch = SampleBatch([], world["records"])
        metric.update(batch)
        before = len(calls)
        twin.update(batch.subset([0, 4]))
        assert len(calls) == before > 0
        assert twin.videos == {k: metric.videos[k] for k in ("static\x1f0", "short\x1f0") if k in metric.videos}
        assert ("short\x1f0" in twin.videos) == (name != APPEARANCE)
