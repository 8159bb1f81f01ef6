"""VBench's human action dimension against the ``vbench`` 0.1.5 package's ``compute_human_action``, on the same
clips and prompts with the same random UMT weights.

The clips are mp4 as `benchkit eval` writes them, small (UMT resizes every frame to a short side of 256 anyway), of
8 to 24 frames (so VBench's 16 'middle' frames and its padding of short clips show), one not square with an odd
crop margin (Python's half-to-even ``round`` places the crop), one larger than 256 px (OpenCV's downscale). The
network is VBench's own UMT class (``vbench/third_party/umt/models/modeling_finetune.py``) at a tiny size: its
builder, which fixes ViT-L, is the one thing replaced (``create_model`` in vbench.human_action; with timm 1.x
VBench's own call fails anyway, as timm passes ``cache_dir``, which UMT's ``vit_large_patch16_224`` does not take);
VBench loads the test's checkpoint, a plain state dict as VBench's file is, with its own ``torch.load``. Random
weights make arbitrary predictions, so the prompts are built from the port's predictions: actions the model keeps
for a clip (VBench counts the clip right) and one it does not (in the clip's top 5 but under 0.85).

Needs the references installed without their pins: pip install --no-deps vbench==0.1.5 openai-clip==1.0.1, and
av, decord, timm and opencv-python-headless; without them the parity tests skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import sys
import types
import warnings

import numpy as np
import pytest
import torch

from benchkit.core.errors import BenchkitError
from metrics import build_metrics
from metrics import weights as W
from metrics.base import MetricContext, ScorePlan
from metrics.clips import read_clip
from run_files import score_in_two_chunks

NAME, WEIGHT = "vbench-human-action", "umt-l16-k400"
# the tiny UMT: ViT-L/16's layout (64-wide heads, MLP x4, 16 frames of 224 px, one frame a token), 128 wide (two
# heads, so how heads are split shows), one block: 3136 tokens a clip make a forward pass 0.4 s on one core
TINY = {"width": 128, "depth": 1, "mlp_hidden": 512, "num_classes": 400}
TOL = 1e-5  # on the logits: the port runs VBench's operations in VBench's order (seen: 0)
SPEC = W.WeightSpec(  # what the registry's entry holds (metrics/weights.py), less the digest of the real file
    WEIGHT, "UMT ViT-L/16 Kinetics-400 classifier (l16_ptk710_ftk710_ftk400_f16_res224.pth): VBench human action",
    "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/l16_ptk710_ftk710_ftk400_f16_res224.pth",
    "MIT (OpenGVLab/unmasked_teacher)", ("l16_ptk710_ftk710_ftk400_f16_res224.pth",),
    hf_repo="OpenGVLab/VBench_Used_Models")


@pytest.fixture(scope="module")
def H():
    """The metric module, imported when these tests run (importing it registers the metric)."""
    from metrics import vbench_human_action

    return vbench_human_action


# ---- VBench ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vb():
    """vbench.human_action, imported with two shims for this environment's newer libraries (openai-clip 1.0.1
    imports ``pkg_resources``, which setuptools 81 dropped; VBench's UMT dataset code imports ``disp`` from
    ``numpy.lib.function_base``, which numpy 2 removed; neither is on the path the test runs), its import-time
    logging setup undone, and timm's own ``vit_large_patch16_224``, which VBench's UMT registers over, put back."""
    for module in ("av", "decord", "cv2", "timm", "vbench"):
        pytest.importorskip(module)
    import timm.models._registry as registry

    shims = {}
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import packaging.version

        shims["pkg_resources"] = types.ModuleType("pkg_resources")
        shims["pkg_resources"].packaging = packaging
    try:
        import numpy.lib.function_base  # noqa: F401
    except ImportError:
        shims["numpy.lib.function_base"] = types.ModuleType("numpy.lib.function_base")
        shims["numpy.lib.function_base"].disp = print
    sys.modules.update(shims)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    timm_vit = {t: dict(getattr(registry, t)) for t in ("_model_entrypoints", "_model_to_module")}
    try:
        pytest.importorskip("clip")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # timm's deprecated module paths, the registry overwrite
            from vbench import human_action
            from vbench.third_party.umt.models import modeling_finetune
    finally:
        for name in shims:
            del sys.modules[name]
        root.handlers[:] = handlers  # vbench.utils calls logging.basicConfig at import
        root.setLevel(level)
        for table, saved in timm_vit.items():
            getattr(registry, table).update({k: v for k, v in saved.items() if k == "vit_large_patch16_224"})
    return types.SimpleNamespace(human_action=human_action, umt=modeling_finetune)


def _tiny_builder(vb, built: list):
    """``create_model('vit_large_patch16_224', ...)`` as human_action.py:46-62 calls it, building VBench's UMT class
    with the tiny sizes and every other argument as VBench passes it; the model's logits are recorded per call."""

    def create_model(name, pretrained=False, **kwargs):
        assert name == "vit_large_patch16_224" and not pretrained
        from functools import partial

        kwargs = {k: v for k, v in kwargs.items() if v is not None}  # as timm's create_model drops them (drop_block_rate)

        with contextlib.redirect_stdout(io.StringIO()):  # UMT prints its position-table choices
            model = vb.umt.VisionTransformer(patch_size=16, embed_dim=TINY["width"], depth=TINY["depth"],
                                             num_heads=TINY["width"] // 64, mlp_ratio=TINY["mlp_hidden"] / TINY["width"],
                                             qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **kwargs)
        model.logits = []
        model.register_forward_hook(lambda module, args, out: module.logits.append(out.detach().cpu()[0]))
        built.append(model)
        return model

    return create_model


# ---- the clips, the weights and the prompts -------------------------------------------------------------------

def _clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)

    def smooth(h, w, cell=8):  # a blurred random image: H.264 keeps it close, and it moves visibly when rolled
        small = rng.integers(0, 256, (h // cell + 1, w // cell + 1, 3)).astype(np.float64)
        big = np.kron(small, np.ones((cell, cell, 1)))[:h, :w]
        return np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)

    a, wide, large = smooth(64, 64), smooth(48, 82), smooth(288, 344, 32)
    return {
        "long": np.stack([np.roll(a, 3 * t, axis=1) for t in range(24)]),  # 16 'middle' frames of 24
        # under 16 frames: the last one repeated. 48x82 -> 256x437, cropped at round(106.5) = 106 (half to even)
        "wide": np.stack([np.roll(wide, 4 * t, axis=1) for t in range(12)]),
        # over 256: OpenCV downscales, 288x344 -> 256x305, cropped at round(40.5) = 40
        "large": np.stack([np.roll(large, 16 * t, axis=1) for t in range(8)]),
    }


def umt_state(seed: int) -> dict[str, torch.Tensor]:
    """Random tensors for every parameter of the tiny UMT (its own sine position table replaced by random ones)."""
    from metrics.umt import UMTVideoClassifier

    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in UMTVideoClassifier(**TINY).state_dict().items():
        noise = torch.randn(value.shape, generator=g)
        if key.endswith(("norm1.weight", "norm2.weight", "fc_norm.weight")):
            state[key] = 1 + 0.1 * noise
        elif key == "head.weight":
            state[key] = 0.1 * noise
        elif key == "head.bias":
            state[key] = 0.5 * noise - 1.5  # top-5 probabilities on both sides of VBench's 0.85
        elif value.dim() == 1:
            state[key] = 0.05 * noise
        else:
            state[key] = noise * (0.2 if key == "pos_embed" else value.shape[-1] ** -0.5 if value.dim() == 2 else 0.02)
    return state


def save_tiny_umt(path, seed: int = 0):
    """A tiny UMT checkpoint in the real file's format (a plain state dict), for this and other tests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(umt_state(seed), path)
    return path


def _prompt(action: str) -> str:
    return f"A person is {action}"


@pytest.fixture(scope="module")
def world(tmp_path_factory, H):
    from benchkit.models.video import write_video

    pytest.importorskip("av")  # the clips are mp4, as a run with PyAV installed writes them
    pytest.importorskip("cv2")
    root = tmp_path_factory.mktemp("vbench-human-action")
    run = root / "run"
    run.mkdir()
    records = []
    for name, frames in _clips().items():
        rec = {"prompt_id": name, "seed": 0, **write_video(run, f"{name}_0", frames, 8)}
        assert rec["video_format"] == "mp4"
        records.append(rec)
    # a plain state dict, as VBench's file (human_action.py:45, 70 loads it as is)
    weight = save_tiny_umt(root / "weights" / SPEC.files[0], seed=30)
    state = umt_state(30)
    return {"root": root, "run": run, "records": records, "state": state, "weight": str(weight), "vbench": None}


def _context(world, monkeypatch) -> MetricContext:
    monkeypatch.setitem(W.REGISTRY, WEIGHT, SPEC)  # until metrics/weights.py has the entry
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({WEIGHT: world["weight"]}))
    ctx = MetricContext(cache_dir=world["root"] / "cache")
    ctx.run_dir = world["run"]
    return ctx


@pytest.fixture(scope="module")
def predicted(world, H):
    """The port's logits per clip (benchkit's decoding), and a prompt per clip built from them: one clip gets an
    action the model keeps for it (right), another an action in its top 5 under 0.85 (wrong), the third an action
    it keeps, else one far down its ranking."""
    torch.set_num_threads(1)
    from metrics.umt import load_umt

    model = load_umt(world["weight"], torch.device("cpu"), num_classes=400)
    classes = H.kinetics_classes()
    logits, kept, top = {}, {}, {}
    for rec in world["records"]:
        k = rec["prompt_id"]
        with torch.no_grad():
            logits[k] = model(H.umt_clip(read_clip(world["run"] / rec["video"]))[None])[0]
        probabilities = torch.sigmoid(logits[k])
        kept[k], top[k] = H.kept_classes(probabilities), torch.topk(probabilities, 5).indices.tolist()
    right = next((k for k in kept if kept[k]), None)
    under = next((k for k in kept if k != right and set(top[k]) - set(kept[k])), None)
    assert right and under, f"recalibrate umt_state's head: kept {kept}, top 5 {top}"
    unkept = [c for c in top[under] if c not in kept[under]]
    prompts = {right: _prompt(classes[kept[right][-1]]),
               # an action the right clip keeps where it can: the same words right for one clip, wrong for this one
               under: _prompt(classes[next((c for c in unkept if c in kept[right]), unkept[0])])}
    for k in kept:  # the third clip: an action it keeps, else one far down its ranking
        if k not in prompts:
            prompts[k] = _prompt(classes[kept[k][0] if kept[k] else int(torch.argsort(logits[k], descending=True)[200])])
    for rec in world["records"]:
        rec.update(prompt=prompts[rec["prompt_id"]], meta={"dimension": ["human_action"]})
    return logits


def _vbench(vb, world, predicted) -> dict:
    """VBench's number, its per-clip results by benchkit clip, and its model's logits and tensors (run once).
    The clips are filed as VBench's standard mode files them (``{prompt}-{index}.mp4``: VBench reads the action
    from the name), in an info json with the human_action dimension."""
    if world["vbench"] is None:
        folder = world["root"] / "vbench-videos"
        folder.mkdir()
        entries, paths, index = [], {}, {}
        for rec in world["records"]:  # a prompt's clips are numbered, as VBench numbers a prompt's 5 samples
            index[rec["prompt"]] = index.get(rec["prompt"], -1) + 1
            path = folder / f"{rec['prompt']}-{index[rec['prompt']]}.mp4"
            os.link(world["run"] / rec["video"], path)
            paths[str(path)] = rec["prompt_id"]
            entries.append({"prompt_en": rec["prompt"], "dimension": ["human_action"], "video_list": [str(path)]})
        info = world["root"] / "full_info.json"
        info.write_text(json.dumps(entries))
        built: list = []
        original = vb.human_action.create_model
        vb.human_action.create_model = _tiny_builder(vb, built)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value, per_clip = vb.human_action.compute_human_action(str(info), torch.device("cpu"), [world["weight"]])
        finally:
            vb.human_action.create_model = original
        (model,) = built
        order = [paths[r["video_path"]] for r in per_clip]
        right = {paths[r["video_path"]]: bool(r["video_results"]) for r in per_clip}
        world["vbench"] = {"value": float(value), "right": right,
                           "logits": dict(zip(order, model.logits)), "tensors": model.state_dict()}
    return world["vbench"]


def _score(world, ctx):
    """The metric over the clips in two chunks, merged as the scorer merges them."""
    metric = build_metrics([NAME], ctx)[0]
    records = world["records"]
    score_in_two_chunks(metric, records, 2)  # merged as the scorer merges chunks
    return metric


# ---- parity --------------------------------------------------------------------------------------------------------

def test_human_action_equals_vbench(H, vb, world, predicted, monkeypatch):
    torch.set_num_threads(1)
    want = _vbench(vb, world, predicted)
    # VBench's non-strict load took every tensor of the file (a key it did not know would have kept its random init)
    assert all(torch.equal(want["tensors"][k], v) for k, v in world["state"].items())
    assert set(want["tensors"]) == set(world["state"])
    metric = _score(world, _context(world, monkeypatch))
    value = metric.compute()[0]
    got = {r["prompt_id"]: metric.videos[f"{r['prompt_id']}\x1f0"] for r in world["records"]}
    assert value.n == len(world["records"]) and value.variant["protocol"] == "VBench 0.1.5 protocol"
    assert value.variant["frames"].startswith("16 frames")
    worst = max(float((predicted[k] - want["logits"][k]).abs().max()) for k in got)
    print(f"{NAME}: benchkit {value.value} vbench {want['value']}; logits max |diff| {worst:.2e}; per clip right "
          + ", ".join(f"{r['prompt_id']} '{r['prompt']}' {want['right'][r['prompt_id']]}" for r in world["records"]))
    assert {k: bool(r[0]) for k, r in got.items()} == want["right"]
    assert value.value == want["value"] and set(want["right"].values()) == {True, False}  # both outcomes occur
    assert worst < TOL
    classes = H.kinetics_classes()
    for rec in world["records"]:  # the state's probability of the prompt's action is the sigmoid of VBench's logit
        k = rec["prompt_id"]
        p = float(torch.sigmoid(want["logits"][k])[classes.index(H.record_action(rec))])
        assert abs(got[k][1] - p) < TOL
    # VBench's 0.85 decides a clip here: its action is in the clip's top 5, and VBench counts it wrong
    assert any(not want["right"][r["prompt_id"]] and classes.index(H.record_action(r)) in
               torch.topk(want["logits"][r["prompt_id"]], 5).indices.tolist() for r in world["records"])
    assert value.extra["clips_right"] == sum(want["right"].values()) and value.extra["clips_whose_action_is_no_class"] == 0


def test_the_parity_test_sees_frames_resizing_and_normalisation(H, vb, world, predicted, monkeypatch):
    """What the logit comparison catches, each far beyond its tolerance: frames picked evenly from first to last
    (np.linspace, as many video codebases do) instead of VBench's 'middle' ones; torch's bilinear resize instead of
    OpenCV's; UMT's default 0.5/0.5 normalisation instead of the ImageNet one VBench passes; the crop placed by
    rounding half up instead of Python's half-to-even ``round``."""
    torch.set_num_threads(1)
    want = _vbench(vb, world, predicted)
    ctx = _context(world, monkeypatch)
    metric = build_metrics([NAME], ctx)[0]
    frames = {r["prompt_id"]: read_clip(world["run"] / r["video"]) for r in world["records"]}

    def linspace(num_frames, vlen):
        return np.linspace(0, vlen - 1, num_frames).round().astype(int).tolist()

    def torch_resize(clip, size=256):
        from torchvision.transforms import functional as TF

        x = torch.from_numpy(clip).permute(0, 3, 1, 2)
        h, w = x.shape[-2:]
        out = TF.resize(x, [int(size * h / w), size] if w < h else [size, int(size * w / h)], antialias=False)
        return out.permute(0, 2, 3, 1).numpy()

    def half_up(clip, size=224):
        h, w = clip.shape[1:3]
        top, left = int((h - size) / 2 + 0.5), int((w - size) / 2 + 0.5)
        return clip[:, top : top + size, left : left + size]

    for attr, wrong, clip in (("middle_frame_indices", linspace, "long"), ("resize_frames", torch_resize, "large"),
                              ("MEAN", (0.5, 0.5, 0.5), "long"), ("centre_crop", half_up, "wide")):
        with monkeypatch.context() as m:
            m.setattr(H, attr, wrong)
            off = float((metric.logits(frames[clip]) - want["logits"][clip]).abs().max())
        print(f"{NAME} with {attr} -> {getattr(wrong, '__name__', wrong)}: logits off by {off:.2e} on clip {clip}")
        assert off > 100 * TOL, attr


# ---- the pieces --------------------------------------------------------------------------------------------------

def test_actions_are_read_as_vbench_reads_file_names(H):
    """human_action.py:78 on '{prompt}-{index}.mp4'; every VBench human-action prompt names a Kinetics-400 class."""
    from prompts import load_prompt_set

    assert H.action_label("A person is riding a bike") == "riding a bike"
    assert H.action_label("A Person Is Playing Ice Hockey") == "playing ice hockey"  # lower case first
    assert H.action_label("A person is roller-skating") == "roller"  # up to the first '-'
    assert H.action_label("A person is tai_chi") == "tai"  # up to the first '_'
    assert H.action_label("Tai chi") == "tai chi"  # no 'person is': the whole name
    assert H.record_action({"prompt": "long text", "meta": {"short_prompt": "A person is marching"}}) == "marching"
    classes = H.kinetics_classes()
    assert len(set(classes)) == 400 and classes[0] == "riding a bike" and classes[399] == "playing badminton"
    records = load_prompt_set("vbench").filter("dimension", "human_action").records
    assert len(records) == 100 and all(H.record_action({"prompt": r.prompt, "meta": r.meta}) in classes for r in records)


def test_category_file_is_vbench_s():
    vbench = importlib.util.find_spec("vbench")
    if vbench is None:
        pytest.skip("vbench not installed")
    from pathlib import Path

    from metrics.vbench_human_action import CATEGORIES

    theirs = Path(vbench.submodule_search_locations[0]) / "third_party" / "umt" / "kinetics_400_categories.txt"
    assert CATEGORIES.read_bytes() == theirs.read_bytes()


def test_frame_indices_and_crop_offsets(H):
    assert H.middle_frame_indices(16, 24) == [0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 18, 19, 21, 22]
    assert H.middle_frame_indices(16, 8) == list(range(8)) + [7] * 8
    frames = np.zeros((1, 256, 437, 3), np.uint8)
    frames[:, :, 106] = 1
    assert H.centre_crop(frames)[0, 0, 0, 0] == 1  # round(106.5) == 106
    assert H.resize_frames(np.zeros((1, 288, 344, 3), np.uint8)).shape == (1, 256, 305, 3)
    assert H.resize_frames(np.zeros((1, 48, 82, 3), np.uint8)).shape == (1, 256, 437, 3)
    assert H.resize_frames(np.zeros((2, 256, 300, 3), np.uint8)).shape == (2, 256, 300, 3)  # short side 256: as is
    assert H.resize_frames(np.zeros((2, 480, 832, 3), np.uint8)).shape == (2, 256, 443, 3)


def test_position_table_is_umt_s(vb):
    """The table a checkpoint without ``pos_embed`` leaves in VBench's model (modeling_finetune.py:158-202), here
    64 wide (UMT's loop over every element takes a second at 128; ViT-L's 1024 was compared once, equal too)."""
    from metrics.umt import sinusoid_position_table

    with contextlib.redirect_stdout(io.StringIO()):
        want = vb.umt.get_sinusoid_encoding_table(3136, 64, 16)
    assert torch.equal(sinusoid_position_table(3136, 64, 16), want.data)


def test_checkpoint_forms_and_wrong_files(world, tmp_path):
    """The plain state dict, UMT's training form ({'model': ...}) and a file without ``pos_embed`` load strictly;
    other files are one line."""
    from metrics.umt import UMTVideoClassifier, load_umt

    cpu = torch.device("cpu")
    state = world["state"]
    wrapped, no_pos = tmp_path / "wrapped.pth", tmp_path / "no_pos.pth"
    torch.save({"model": state, "epoch": 3}, wrapped)
    torch.save({k: v for k, v in state.items() if k != "pos_embed"}, no_pos)
    assert all(torch.equal(load_umt(wrapped, cpu).state_dict()[k], v) for k, v in state.items())
    default = UMTVideoClassifier(**TINY).pos_embed
    assert torch.equal(load_umt(no_pos, cpu).pos_embed, default)
    cases = {"not_umt": ({"conv.weight": torch.zeros(3)}, "not a UMT"),
             "missing": ({k: v for k, v in state.items() if not k.startswith("fc_norm")}, "does not fit"),
             "ten_classes": ({**state, "head.weight": state["head.weight"][:10], "head.bias": state["head.bias"][:10]},
                             "not Kinetics-400's 400")}
    for name, (bad, words) in cases.items():
        torch.save(bad, tmp_path / f"{name}.pth")
        with pytest.raises(BenchkitError) as err:
            load_umt(tmp_path / f"{name}.pth", cpu, num_classes=400)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_which_prompts_are_scored_and_plans_refused(H, world, monkeypatch):
    """VBench prompts probing human_action are scored; a prompt from elsewhere when it names a Kinetics-400 action;
    a plan with none of those is one line (image models too)."""
    ctx = _context(world, monkeypatch)
    cls = H.VBenchHumanAction
    metric = build_metrics([NAME], ctx)[0]
    assert metric.scores({"prompt": "A person is marching", "meta": {}})
    assert not metric.scores({"prompt": "A red car on a road", "meta": {}})
    assert metric.scores({"prompt": "A person is dancing", "meta": {"dimension": ["human_action"]}})  # counted wrong
    assert not metric.scores({"prompt": "A person is marching", "meta": {"dimension": ["color"]}})

    def plan(records, media="video"):
        return ScorePlan(records=records, seeds_per_prompt=1, family="wan", media=media)

    from metrics import NotApplicable

    cls.check(plan([{"prompt": "A person is marching", "meta": {}}, {"prompt": "A red car", "meta": {}}]), ctx)
    for records, media, error, words in (
            ([{"prompt": "A red car", "meta": {}}], "video", NotApplicable, "--dimension human_action"),
            ([{"prompt": "A red car", "meta": {"dimension": ["color"]}}], "video", NotApplicable, "--dimension human_action"),
            ([{"prompt": "A person is marching", "meta": {}}], "image", BenchkitError, "makes images")):
        with pytest.raises(error) as err:
            cls.check(plan(records, media), ctx)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cv2" else real(name, *a))
    with pytest.raises(BenchkitError, match="opencv-python-headless"):
        cls.check(plan([{"prompt": "A person is marching", "meta": {}}]), ctx)
