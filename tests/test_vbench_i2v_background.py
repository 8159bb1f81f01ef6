"""VBench-I2V's i2v background dimension: benchkit's DreamSim ensemble equal to the dreamsim package's
``PerceptualModel.embed``, and ``vbench-i2v-background`` equal to VBench-I2V's own ``i2v_background.py`` on the same
clips and input images, with the same random weights.

The weights are random, in the files of dreamsim_ensemble_checkpoint.zip (``{clip,open_clip}_vitb16_pretrain.pth.tar``
as ``{'state_dict': ...}``, ``dino_vitb16_pretrain.pth`` with the DINO head, ``ensemble_lora/`` as peft saves it) plus
the DINO backbone torch.hub would fetch: 128 wide (two 64-wide heads), DINO 12 deep (DreamSim reads its block 11),
the CLIPs 2. DreamSim's ``vit_base`` hard-codes ViT-B's sizes, so for the package the tiny ones are passed on (as the
MUSIQ test passes its tiny sizes); everything else there is the package's code. (At the full ViT-B/16 sizes, with only
``torch.hub.load`` replaced, the embeddings agreed to 5e-8 once; too slow for CI.) VBench-I2V's numbers on
tests/data/vbench/i2v/ were recorded by tests/data/vbench/make_i2v_background_reference.py; with VBENCH_REPO set, the
test runs that code too. The package check needs ``pip install --no-deps dreamsim==0.2.1`` (it imports peft,
open_clip_torch and transformers) and is skipped without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from metric_models import dino_state

import metrics.weights as W
from benchkit.core.errors import BenchkitError
from metrics import build_metrics
from metrics import dreamsim as DS
from metrics import vbench_i2v as I2V
from metrics import vbench_i2v_background as BG
from metrics.base import MetricContext, SampleBatch
from run_files import score_in_two_chunks

DATA = Path(__file__).parent / "data" / "vbench" / "i2v"
CLIPS = ("static", "moving", "wide", "short")
SEED = 20
WIDTH, DINO_DEPTH, CLIP_DEPTH = 128, 12, 2  # two 64-wide heads; DreamSim reads DINO's block 11
TINY_VIT = {"embed_dim": WIDTH, "num_heads": WIDTH // 64, "mlp_ratio": 4}  # vit_base's, but the width and depth
LORA = {"r": 4, "lora_alpha": 2.0, "lora_dropout": 0.3, "bias": "none", "target_modules": ["qkv"]}
TOL = 2e-6  # float32 on both sides, batched here and one frame at a time there
SPEC = W.WeightSpec(
    "dreamsim-ensemble", "DreamSim ensemble checkpoint folder (test)", "test", "test",
    ("ensemble_lora/adapter_model.bin", "ensemble_lora/adapter_config.json", "clip_vitb16_pretrain.pth.tar",
     "open_clip_vitb16_pretrain.pth.tar"), is_dir=True, alternatives=("ensemble_lora/adapter_model.safetensors",))


# ---- random weights in DreamSim's files ---------------------------------------------------------------------

def _vit_state(seed: int, depth: int) -> dict[str, torch.Tensor]:
    """metric_models.dino_state with q and k at fan-in scale: its 3x sharper attention, 12 blocks deep, makes the
    features chaotic (float32 rounding grows to 1e-3 there)."""
    state = dino_state(seed, dim=WIDTH, depth=depth)
    for key, value in state.items():
        if key.endswith("attn.qkv.weight"):
            value[: 2 * WIDTH] /= 3.0
    return state


def _clip_as_dino_state(seed: int) -> dict[str, torch.Tensor]:
    """What load_{open_,}clip_as_dino.py read: a DINO-layout ViT, CLIP's ln_pre as ``pos_drop``, and ``proj``."""
    g = torch.Generator().manual_seed(seed + 1000)
    dim = WIDTH
    state = _vit_state(seed, CLIP_DEPTH)
    state["pos_drop.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
    state["pos_drop.bias"] = 0.1 * torch.randn(dim, generator=g)
    state["proj"] = torch.randn(dim, 64, generator=g) * dim ** -0.5
    return state


def save_tiny_dreamsim(root: Path, seed: int = SEED) -> tuple[Path, Path]:
    """(the DINO backbone file torch.hub would fetch, the unzipped checkpoint folder), random and tiny."""
    folder = root / "dreamsim"
    (folder / "ensemble_lora").mkdir(parents=True, exist_ok=True)
    dino_file = root / "dino_vitbase16_pretrain.pth"
    torch.save(_vit_state(seed, DINO_DEPTH), dino_file)
    g = torch.Generator().manual_seed(seed)
    head = {f"module.head.{k}": 0.01 * torch.randn(4, 4, generator=g) for k in
            ("mlp.0.weight", "mlp.2.weight", "mlp.4.weight", "last_layer.weight")}  # read, unused by the ensemble
    head.update({f"module.head.mlp.{i}.bias": torch.zeros(4) for i in (0, 2, 4)})
    torch.save({"student": head}, folder / "dino_vitb16_pretrain.pth")
    for i, name in enumerate(DS.BACKBONES):
        torch.save({"state_dict": _clip_as_dino_state(seed + 1 + i)}, folder / name)
    dim, r, lora = WIDTH, LORA["r"], {}
    for e, depth in enumerate((DINO_DEPTH, CLIP_DEPTH, CLIP_DEPTH)):
        for b in range(depth):
            key = f"base_model.model.extractor_list.{e}.model.blocks.{b}.attn.qkv"
            lora[f"{key}.lora_A.weight"] = torch.randn(r, dim, generator=g) * dim ** -0.5
            lora[f"{key}.lora_B.weight"] = torch.randn(3 * dim, r, generator=g) * 0.5
    torch.save(lora, folder / "ensemble_lora" / "adapter_model.bin")
    config = {"peft_type": "LORA", "task_type": None, "base_model_name_or_path": None, "inference_mode": True,
              "fan_in_fan_out": False, "init_lora_weights": True, "modules_to_save": None, **LORA}
    (folder / "ensemble_lora" / "adapter_config.json").write_text(json.dumps(config))
    return dino_file, folder


@contextlib.contextmanager
def dreamsim_package(dino_file: Path):
    """The dreamsim package offline on CPU: ``torch.hub.load`` gives DINO's ViT (the package's own copy of
    facebookresearch/dino's VisionTransformer) with the backbone file's tensors, as hubconf's dino_vitb16 does;
    ``vit_base`` builds the tiny width; ``dreamsim()`` on the CPU. The checkpoint folder is found complete, so
    nothing is downloaded."""
    import dreamsim.model
    from dreamsim.feature_extraction import load_clip_as_dino, load_open_clip_as_dino
    from dreamsim.feature_extraction.vision_transformer import VisionTransformer

    tiny = partial(VisionTransformer, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **TINY_VIT)

    def hub_load(repo, model, *args, **kwargs):
        assert (repo, model) == ("facebookresearch/dino:main", "dino_vitb16")
        vit = tiny(patch_size=16, depth=DINO_DEPTH)
        vit.load_state_dict(torch.load(dino_file, weights_only=True), strict=True)
        return vit

    saved = torch.hub.load, torch.hub.get_dir(), load_clip_as_dino.vit_base, load_open_clip_as_dino.vit_base
    clip_vit = partial(tiny, depth=CLIP_DEPTH)
    torch.hub.load, load_clip_as_dino.vit_base, load_open_clip_as_dino.vit_base = hub_load, clip_vit, clip_vit
    try:
        yield partial(dreamsim.model.dreamsim, device="cpu")  # its default is CUDA
    finally:
        torch.hub.load, _, load_clip_as_dino.vit_base, load_open_clip_as_dino.vit_base = saved
        torch.hub.set_dir(saved[1])  # create_model points torch.hub at the checkpoint folder


# ---- benchkit's metric on the committed clips -------------------------------------------------------------

def _records(names=CLIPS):
    return [{"prompt_id": name, "prompt": f"a {name} clip", "seed": 0, "meta": {"dimension": ["i2v_background"]},
             "video": f"videos/{name}_0.mp4", "video_format": "mp4", "frames": "8", "fps": "8",
             "input_image": str(DATA / "images" / f"{name}.png")} for name in names]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    pytest.importorskip("av")  # the clips are mp4
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dreamsim")
    dino_file, folder = save_tiny_dreamsim(root)
    return {"dino-vitb16": str(dino_file), "dreamsim-ensemble": str(folder)}


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setitem(W.REGISTRY, SPEC.name, SPEC)


def _score(weights, tmp_path, monkeypatch, names=CLIPS):
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps(weights))
    ctx = MetricContext(cache_dir=tmp_path / "cache")
    ctx.run_dir = DATA
    metric = build_metrics(["vbench-i2v-background"], ctx)[0]
    records = _records(names)
    score_in_two_chunks(metric, records, 1)  # merged as the scorer merges chunks
    return metric


def _compare(metric, want):
    got = {f"{k.split(chr(31))[0]}_0.mp4": v[0] for k, v in metric.videos.items()}
    assert set(got) <= set(want["clips"])
    worst = max(abs(got[k] - want["clips"][k]) for k in got)
    value = metric.compute()[0]
    print(f"i2v background: benchkit {value.value:.8f} vbench {want['value']:.8f}, per clip max |diff| {worst:.2e}")
    return value, worst


@pytest.fixture(scope="module")
def scored(weights, tmp_path_factory):
    with pytest.MonkeyPatch.context() as m:
        m.setitem(W.REGISTRY, SPEC.name, SPEC)
        return _score(weights, tmp_path_factory.mktemp("scored"), m)


def test_i2v_background_equals_vbench_i2v(scored, weights):
    torch.set_num_threads(1)
    want = json.loads((DATA / "background_reference.json").read_text())["i2v_background"]
    value, worst = _compare(scored, want)
    assert worst < TOL and abs(value.value - want["value"]) < TOL and value.n == 4
    assert value.variant["protocol"].startswith("VBench-I2V") and value.variant["dimension"] == "i2v_background"
    assert set(value.variant["weights_sha256"]) == {"dino-vitb16", "dreamsim-ensemble"}
    clips = {k.split("\x1f")[0]: v[0] for k, v in scored.videos.items()}
    assert clips["static"] > clips["moving"] and clips["static"] > clips["wide"]  # a still clip of its own image scores highest
    if os.environ.get("VBENCH_REPO"):  # VBench-I2V's code itself on the same files
        sys.path.insert(0, str(DATA.parent))
        from make_i2v_background_reference import run_vbench_i2v_background

        live = run_vbench_i2v_background(Path(os.environ["VBENCH_REPO"]), Path(weights["dino-vitb16"]),
                                         Path(weights["dreamsim-ensemble"]))
        value, worst = _compare(scored, live)
        assert worst < TOL and abs(value.value - live["value"]) < TOL


def test_the_ensemble_equals_the_dreamsim_package(weights):
    """benchkit's network against ``dreamsim(pretrained=True)``'s ``embed`` on a few images, and what the check
    sees: the LoRA left out, DINO's CLS after its final norm."""
    pytest.importorskip("dreamsim")
    torch.set_num_threads(1)
    dino, ens = _resolved(weights)
    folder = ens.path
    ours = DS.load_dreamsim_ensemble(dino, ens, torch.device("cpu"))
    x = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with dreamsim_package(Path(weights["dino-vitb16"])) as make, torch.no_grad():
        theirs, _ = make(pretrained=True, cache_dir=str(folder))
        want = torch.cat([theirs.embed(x[i : i + 1]) for i in range(len(x))])  # one image a call, as VBench-I2V
        got = ours(x)
        plain = DS.DreamSimEnsemble(*_unmerged(dino, folder))(x)
    diff = float((got - want).abs().max())
    print(f"DreamSim embed: max |diff| {diff:.2e} over {tuple(want.shape)}")
    assert want.shape == (3, 128 + 64 + 64) and diff < 1e-6  # DINO's CLS, CLIP's and OpenCLIP's embeddings
    assert float((plain - want).abs().max()) > 100 * diff + 1e-3  # the LoRA matters
    with torch.no_grad():
        d = ours.extractor_list[0].model
        normed = d.norm(d.blocks(ours._tokens(d, DS._normalize(x, DS.IMAGENET_MEAN, DS.IMAGENET_STD))))[:, 0]
    assert float((normed - got[:, :WIDTH]).abs().max()) > 1e-2  # DINO's feature is taken before its final norm


def _resolved(weights, folder=None):
    """The two weights as metrics.weights.resolve would hand them over (no registry needed)."""
    from metrics.weights import ResolvedWeight

    dino, folder = Path(weights["dino-vitb16"]), Path(folder or weights["dreamsim-ensemble"])
    return (ResolvedWeight("dino-vitb16", dino, dino, "0", "test", "test"),
            ResolvedWeight("dreamsim-ensemble", folder, DS.lora_file(folder), "0", "test", "test"))


def _unmerged(dino, folder):
    """The ensemble's parts without the LoRA."""
    from benchkit.core.safe_load import read_state_dict
    from metrics.vbench_dimensions import load_dino

    vits = [DS.clip_as_dino_vit(read_state_dict(folder / n)["state_dict"], n, q) for n, q in zip(DS.BACKBONES, (True, False))]
    return load_dino(dino, torch.device("cpu")).vit, *vits[0], *vits[1]


def test_the_parity_test_sees_the_resize_weights_and_normalisation(weights, registry, tmp_path, monkeypatch):
    """What the tolerance catches, each on one clip: the frames resized without antialiasing, the per-clip weights
    of max and min swapped, DreamSim's embedding mean not subtracted (the features only scaled to unit length)."""
    torch.set_num_threads(1)
    want = json.loads((DATA / "background_reference.json").read_text())["i2v_background"]

    def unantialiased(video):
        from torchvision.transforms import functional as TF

        x = TF.resize(video, [224, 224], interpolation=TF.InterpolationMode.BICUBIC, antialias=False)
        return x.float().div(255.0)

    def unit_only(embed):
        return torch.nn.functional.normalize(embed, dim=-1)

    for module, attr, wrong, clip in ((BG, "dreamsim_frames_transform", unantialiased, "moving"),
                                      (I2V, "MAX_WEIGHT", 0.3, "moving"), (DS, "normalize_embedding", unit_only, "wide")):
        with monkeypatch.context() as m:
            m.setattr(module, attr, wrong)
            if attr == "MAX_WEIGHT":
                m.setattr(I2V, "MIN_WEIGHT", 0.4)
            _, worst = _compare(_score(weights, tmp_path, m, names=(clip,)), want)
        assert worst > 20 * TOL, attr


def test_a_missing_or_misfit_checkpoint_is_one_line(weights, registry, tmp_path, monkeypatch):
    with pytest.raises(BenchkitError) as err:  # an input image is needed
        records = _records()[:1]
        del records[0]["input_image"]
        monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps(weights))
        ctx = MetricContext(cache_dir=tmp_path / "cache")
        ctx.run_dir = DATA
        build_metrics(["vbench-i2v-background"], ctx)[0].update(SampleBatch([], records))
    assert "image-to-video run" in str(err.value) and "\n" not in str(err.value)
    folder = Path(weights["dreamsim-ensemble"])
    lora = torch.load(folder / "ensemble_lora" / "adapter_model.bin", weights_only=True)
    config = json.loads((folder / "ensemble_lora" / "adapter_config.json").read_text())

    def checkpoint(name, adapter, **options):
        """A copy of the checkpoint folder with another adapter."""
        other = tmp_path / name
        (other / "ensemble_lora").mkdir(parents=True)
        for file in DS.BACKBONES:
            (other / file).symlink_to(folder / file)
        (other / "ensemble_lora" / "adapter_config.json").write_text(json.dumps({**config, **options}))
        if name == "safetensors":
            from safetensors.torch import save_file

            save_file(adapter, other / "ensemble_lora" / "adapter_model.safetensors")
        else:
            torch.save(adapter, other / "ensemble_lora" / "adapter_model.bin")
        return DS.load_dreamsim_ensemble(*_resolved(weights, other), torch.device("cpu"))

    qkv = "extractor_list.2.model.blocks.1.attn.qkv.weight"
    merged = DS.load_dreamsim_ensemble(*_resolved(weights), torch.device("cpu")).state_dict()[qkv]
    assert torch.equal(checkpoint("safetensors", lora).state_dict()[qkv], merged)  # newer peft saves .safetensors
    for name, adapter, options, says in (
            ("misplaced", {k.replace("extractor_list.2", "extractor_list.3"): v for k, v in lora.items()}, {},
             "does not fit the ensemble"),
            ("dora", lora, {"use_dora": True}, "plain LoRA only")):
        with pytest.raises(BenchkitError) as err:
            checkpoint(name, adapter, **options)
        assert says in str(err.value) and "\n" not in str(err.value), name
