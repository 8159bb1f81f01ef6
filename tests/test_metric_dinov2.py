"""FD-DINOv2, KD-DINOv2 and PRDC-DINOv2 against dgm-eval's protocol, with tiny random weights of the real
architecture: the preprocessing against dgm-eval's own torchvision transform (bit for bit), the features
against timm's DINOv2 ViT (an independent implementation) with the hub model's position-embedding
resampling, and the values against dgm-eval's fd / kd formulas and the `prdc` package on the same features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from metric_models import save_tiny_dinov2
from PIL import Image

from metrics import dinov2 as ours
from metrics.feature_store import FOLDER, FeatureStore, FeatureView, file_sha256

IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "hash-cache"))


def dgm_eval_transform(path: Path) -> torch.Tensor:
    """dgm-eval's DINOv2 input for an image file, as it makes it: ImagePathDataset reads with
    ``Image.open(path).convert('RGB')`` (dataloaders.py:44), DINOv2Encoder.transform resizes with
    torchvision on the PIL image, ToTensor, Normalize (models/dinov2.py:46-59, clean_resize off)."""
    import torchvision.transforms as TF

    image = Image.open(path).convert("RGB")
    x = TF.Compose([TF.Resize((224, 224), TF.InterpolationMode.BICUBIC), TF.ToTensor()])(image)
    return TF.Normalize(IMAGENET_MEAN, IMAGENET_STD)(x)


def timm_dinov2(folder: Path) -> torch.nn.Module:
    """timm's VisionTransformer in its DINOv2 configuration (``vit_large_patch14_dinov2``'s layer scale, eps
    1e-6, patch 14), cut to the tiny model's sizes, loaded with the Hub checkpoint's tensors. Its position
    embeddings for 224 px are resampled from the 37x37 grid the way the torch.hub model does at run time:
    bicubic with scale factor (16 + 0.1) / 37 and no antialias (dinov2 vision_transformer.py:195-209,
    hub/backbones.py:27-28); timm's own resampling (to a size, antialiased) is another."""
    from safetensors.torch import load_file
    from timm.models.vision_transformer import VisionTransformer

    sd = load_file(str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    dim, depth, heads = config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]
    model = VisionTransformer(img_size=224, patch_size=14, embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=4,
                              init_values=1.0, num_classes=0, global_pool="token").eval()
    pos = sd["embeddings.position_embeddings"]
    side = int((pos.shape[1] - 1) ** 0.5)
    grid = torch.nn.functional.interpolate(pos[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2),
                                           scale_factor=((16 + 0.1) / side, (16 + 0.1) / side), mode="bicubic",
                                           antialias=False)
    state = {"cls_token": sd["embeddings.cls_token"],
             "pos_embed": torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, 256, dim)], dim=1),
             "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
             "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
             "norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"]}
    for i in range(depth):
        hf, tm = f"encoder.layer.{i}.", f"blocks.{i}."
        qkv = [f"{hf}attention.attention.{k}" for k in ("query", "key", "value")]
        state[tm + "attn.qkv.weight"] = torch.cat([sd[k + ".weight"] for k in qkv])
        state[tm + "attn.qkv.bias"] = torch.cat([sd[k + ".bias"] for k in qkv])
        state[tm + "attn.proj.weight"] = sd[hf + "attention.output.dense.weight"]
        state[tm + "attn.proj.bias"] = sd[hf + "attention.output.dense.bias"]
        for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
            state[f"{tm}{name}.weight"], state[f"{tm}{name}.bias"] = sd[f"{hf}{name}.weight"], sd[f"{hf}{name}.bias"]
        state[tm + "ls1.gamma"], state[tm + "ls2.gamma"] = sd[hf + "layer_scale1.lambda1"], sd[hf + "layer_scale2.lambda1"]
    model.load_state_dict(state, strict=True)
    return model


@torch.no_grad()
def timm_features(model: torch.nn.Module, files: list[Path]) -> np.ndarray:
    """The CLS token after the final norm (what the hub model's forward returns), one image per call."""
    return np.concatenate([model.forward_features(dgm_eval_transform(f)[None])[:, 0].double().numpy() for f in files])


def dgm_eval_fd(reps1: np.ndarray, reps2: np.ndarray) -> float:
    """dgm-eval's compute_FD_with_reps (metrics/fd.py:6-76): np.cov statistics, scipy's sqrtm of the product."""
    from scipy import linalg

    mu1, mu2 = reps1.mean(0), reps2.mean(0)
    s1, s2 = np.cov(reps1, rowvar=False), np.cov(reps2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def dgm_eval_kd(real: np.ndarray, gen: np.ndarray, seed: int, n_subsets: int = 100, subset_size: int = 1000) -> float:
    """dgm-eval's compute_mmd(real, gen).mean() (metrics/mmd.py:5-55) with sklearn's polynomial kernel, numpy's
    global generator seeded with ``seed`` (and put back after)."""
    from sklearn.metrics.pairwise import polynomial_kernel

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        m = min(min(len(real), len(gen)), subset_size)
        values = []
        for _ in range(n_subsets):
            x = real[np.random.choice(len(real), m, replace=False)]
            y = gen[np.random.choice(len(gen), m, replace=False)]
            kxx, kyy, kxy = polynomial_kernel(x, degree=3, coef0=1), polynomial_kernel(y, degree=3, coef0=1), \
                polynomial_kernel(x, y, degree=3, coef0=1)
            values.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m**2)
    finally:
        np.random.set_state(state)
    return float(np.mean(values))


# --- preprocessing ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,size", [("RGB", (300, 200)), ("RGB", (224, 224)), ("RGB", (50, 90)), ("L", (256, 320)),
                                       ("RGBA", (240, 160))])
def test_preprocessing_is_dgm_evals_transform_bit_for_bit(tmp_path, mode, size):
    from benchkit.core.rundir import read_image

    rng = np.random.default_rng(sum(size))
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (size[0], size[1], channels), dtype=np.uint8).squeeze()
    path = tmp_path / f"im-{mode}.png"
    Image.fromarray(pixels, mode).save(path)
    got = ours.dgm_eval_input(read_image(path))  # the array the scorer decodes, through benchkit's preprocessor
    expected = dgm_eval_transform(path).numpy()
    assert got.dtype == np.float32 and got.shape == (3, 224, 224)
    assert np.array_equal(got, expected)


def test_resize_is_bicubic_to_224_without_crop():
    # a 224x448 image with a left and a right half: squeezed to 224 wide (no centre crop), so both halves stay
    img = np.zeros((224, 448, 3), np.uint8)
    img[:, 224:] = 255
    x = ours.dgm_eval_input(img) * IMAGENET_STD[:, None, None].astype(np.float32) + IMAGENET_MEAN[:, None, None]
    assert x.shape == (3, 224, 224)
    assert np.allclose(x[:, :, :100], 0, atol=1e-6) and np.allclose(x[:, :, 124:], 1, atol=1e-6)
    # the filter is bicubic: the ramp between the halves is PIL's bicubic one, not its bilinear one
    row = np.round(x[0, 0] * 255)
    bicubic = np.asarray(Image.fromarray(img).resize((224, 224), Image.BICUBIC))[0, :, 0]
    bilinear = np.asarray(Image.fromarray(img).resize((224, 224), Image.BILINEAR))[0, :, 0]
    assert np.array_equal(row, bicubic) and not np.array_equal(row, bilinear)


# --- the network ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_dinov2(tmp_path_factory.mktemp("dinov2") / "dinov2-large", seed=3)


def _image_files(folder: Path, count: int, seed: int, shapes=((48, 64), (64, 64), (80, 40))) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        h, w = shapes[i % len(shapes)]
        files.append(folder / f"img{i:03d}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(files[-1])
    return files


def test_features_match_timm_dinov2_with_the_hub_position_resampling(tiny, tmp_path):
    from transformers import Dinov2Model

    files = _image_files(tmp_path / "imgs", 4, seed=1, shapes=((300, 200), (224, 224), (64, 96), (512, 512)))
    expected = timm_features(timm_dinov2(tiny), files)
    model = ours.load_dinov2(tiny, torch.device("cpu"))
    x = torch.from_numpy(np.stack([ours.dgm_eval_input(np.asarray(Image.open(f))) for f in files]))
    with torch.no_grad():
        got = model(pixel_values=x).pooler_output.double().numpy()
        stock = Dinov2Model.from_pretrained(str(tiny)).eval()(pixel_values=x).pooler_output.double().numpy()
    assert np.abs(expected).max() > 0.5  # features of order 1: the tolerance below is a real one
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    # transformers' own resampling (to an exact 16x16) moves the features: the hub's is what makes them agree
    assert np.abs(stock - expected).max() > 1e-3


def test_wrong_weights_are_refused_in_one_line(tmp_path):
    from metric_models import save_tiny_hf_clip

    from benchkit.core.errors import BenchkitError

    from safetensors.torch import load_file, save_file

    clip = save_tiny_hf_clip(tmp_path / "clip", with_processor=False)
    with pytest.raises(BenchkitError, match="not a DINOv2 one") as exc:
        ours.load_dinov2(clip, torch.device("cpu"))
    assert "\n" not in str(exc.value)
    # a checkpoint short of a tensor: refused, not completed with random numbers
    short = save_tiny_dinov2(tmp_path / "short", seed=1)
    tensors = load_file(str(short / "model.safetensors"))
    del tensors["layernorm.weight"]
    save_file(tensors, str(short / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BenchkitError, match="lack 1 DINOv2 tensors") as exc:
        ours.load_dinov2(short, torch.device("cpu"))
    assert "\n" not in str(exc.value)


# --- the metrics through the CLI --------------------------------------------------------------------------------

def _generated(folder: Path, n_prompts: int, seed: int) -> Path:
    """``n_prompts`` x 2 seeds of 64x64 images named as `benchkit eval` names them, and their prompt file."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n_prompts):
        for s in (0, 1):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"p{i:02d}_{s}.png")
    prompts = folder.parent / f"{folder.name}-prompts.csv"
    prompts.write_text("prompt_id,prompt\n" + "".join(f"p{i:02d},a photo number {i}\n" for i in range(n_prompts)))
    return prompts


@pytest.fixture(scope="module")
def scored(tiny, tmp_path_factory):
    """40 images (20 prompts x 2 seeds) scored with fd-dinov2 and prdc-dinov2 against a folder of 44 images of
    other sizes; the extractor's calls are counted."""
    from benchkit.cli import main

    root = tmp_path_factory.mktemp("dinov2-scored")
    gen, ref = root / "gen", root / "ref"
    prompts = _generated(gen, 20, seed=7)
    _image_files(ref, 44, seed=8)
    seen = []
    call = ours.DINOv2Extractor.__call__
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHKIT_WEIGHT_PATHS", "{}")
        mp.setenv("BENCHKIT_CACHE", str(root / "hash-cache"))
        mp.setattr(ours.DINOv2Extractor, "__call__", lambda self, inputs: seen.append(len(inputs)) or call(self, inputs))
        with pytest.raises(SystemExit) as exc:
            main(["score", str(gen), "-p", str(prompts), "--metrics", "fd-dinov2,prdc-dinov2", "--reference", str(ref),
                  "--device", "cpu", "--cache-dir", str(root / "cache"), "-q", "-o", str(root / "out"),
                  "--weights", f"dinov2-large={tiny}"])
            raise SystemExit(0)
    assert exc.value.code == 0
    results = json.loads((root / "out" / "results.json").read_text())
    return {"root": root, "gen": sorted(gen.iterdir()), "ref": sorted(ref.iterdir()), "seen": seen,
            "values": {m["name"]: m for m in results["metrics"]}}


def _stored(scored, tiny, files: list[Path], root: Path) -> np.ndarray:
    view = FeatureView(ours.EXTRACTOR, file_sha256(tiny / "model.safetensors"), ours.PREPROCESSING, 32)
    found = FeatureStore([root]).lookup(view, [file_sha256(f) for f in files])
    assert all(f is not None for f in found)
    return np.stack(found).astype(np.float64)


def test_values_are_dgm_evals_on_the_same_features(scored, tiny):
    from prdc import compute_prdc

    root = scored["root"]
    # one DINOv2 pass per image for the three values: 40 generated + 44 reference images, each once
    assert sum(scored["seen"]) == 40 + 44
    gen = _stored(scored, tiny, scored["gen"], root / "out")
    real = _stored(scored, tiny, scored["ref"], root / "cache")
    assert len(list((root / "out" / FOLDER).iterdir())) == 1 and len(list((root / "cache" / FOLDER).iterdir())) == 1
    # the stored features are the independent network's on dgm-eval's inputs
    model = timm_dinov2(tiny)
    np.testing.assert_allclose(gen, timm_features(model, scored["gen"]), atol=1e-5, rtol=0)
    np.testing.assert_allclose(real, timm_features(model, scored["ref"]), atol=1e-5, rtol=0)

    got = scored["values"]  # (file order p00_0, p00_1, p01_0 ... is the metric's item order: prompt, then seed)
    assert got["fd-dinov2"]["value"] == pytest.approx(dgm_eval_fd(real, gen), rel=1e-7)
    assert got["kd-dinov2"]["value"] == pytest.approx(dgm_eval_kd(real, gen, seed=0), rel=1e-9)
    expected = compute_prdc(real, gen, 5)
    for key in ("precision", "recall", "density", "coverage"):
        assert got[f"{key}-dinov2"]["value"] == pytest.approx(float(expected[key]), abs=1e-12)
    assert got["fd-dinov2"]["value"] > 0 and got["kd-dinov2"]["value"] != 0


def test_values_name_their_variant(scored, tiny):
    sha = file_sha256(tiny / "model.safetensors")
    for name in ("fd-dinov2", "kd-dinov2", "precision-dinov2", "coverage-dinov2"):
        v = scored["values"][name]["variant"]
        assert v["protocol"] == "dgm-eval" and v["extractor_sha256"] == sha and v["reference_kind"] == "folder"
        assert v["reference_count"] == 44 and len(v["reference_sha256"]) == 64
        assert set(v["libraries"]) >= {"transformers", "torch"}
    assert scored["values"]["kd-dinov2"]["variant"]["kd"]["subset_size"] == 40


def test_without_a_reference_the_run_is_refused_in_one_line(tiny, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", "{}")
    folder = tmp_path / "gen"
    prompts = _generated(folder, 2, seed=0)
    for metric in ("fd-dinov2", "prdc-dinov2"):
        code, _, err = cli("score", str(folder), "-p", str(prompts), "--metrics", metric, "--device", "cpu", "-q",
                           "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out"),
                           "--weights", f"dinov2-large={tiny}")
        lines = [line for line in err.strip().splitlines() if line]
        assert code == 2 and len(lines) == 1 and "--reference" in err, err
