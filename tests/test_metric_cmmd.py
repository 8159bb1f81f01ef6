"""CMMD against the google-research original (cmmd/io_util.py, embedding.py, distance.py): its image steps
run with PIL and jax as it runs them (bit for bit), the CLIP ViT-L/14-336 embedding against open_clip's
OpenAI-layout ViT (the architecture of the original's scenic port) with the same tiny random weights, and the
distance against distance.py's formula in jax, in float64 and in the original's float32.

jax runs in a child process (:class:`Original`): once its runtime has started threads, every later fork in
the test session (the scorers' DataLoader workers) would risk a deadlock."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from metric_models import save_tiny_clip_336
from PIL import Image

from metrics import cmmd as ours
from metrics.feature_store import FeatureStore, FeatureView, file_sha256

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax (the original's runtime) is not "
                                "installed: pip install jax")

# The original's steps, run by the child process. _read_image: PIL open, crop box with floor offsets, PIL BICUBIC
# to 336, float32, grayscale tiled, / 255.0 (io_util.py:38-57, 78-82, 139); _clip_preprocess under jit (the
# original's embed is pmapped): jax.image.resize to 336 bicubic, scenic's normalize_image with its float64 numpy
# constants (embedding.py:26-33, 57); distance.py's mmd under jax.jit (sigma 10, scale 1000, biased estimator,
# squared distances as -2 x.y + |x|^2 + |y|^2), in float32 as the original or float64 under enable_x64.
ORIGINAL = r"""
import sys
import numpy as np
import jax
import jax.numpy as jnp
from PIL import Image

IMAGE_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
IMAGE_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def read_image(path, size=336):
    im = Image.open(path)
    im.load()
    w, h = im.size
    l = min(w, h)
    top, left = (h - l) // 2, (w - l) // 2
    im = im.crop((left, top, left + l, top + l)).resize((size, size), resample=Image.BICUBIC)
    x = np.asarray(im).astype(np.float32)
    return np.tile(x[..., np.newaxis], (1, 1, 3)) if x.ndim == 2 else x


@jax.jit
def clip_preprocess(images):
    images = jax.image.resize(images, shape=images.shape[:-3] + (336, 336, 3), method="bicubic")
    return (images - IMAGE_MEAN) / IMAGE_STD


@jax.jit
def mmd(x, y):
    x_sq, y_sq = jnp.diag(jnp.matmul(x, x.T)), jnp.diag(jnp.matmul(y, y.T))
    gamma = 1 / (2 * 10**2)

    def k(a, b, a_sq, b_sq):
        return jnp.mean(jnp.exp(-gamma * (-2 * jnp.matmul(a, b.T) + jnp.expand_dims(a_sq, 1) + jnp.expand_dims(b_sq, 0))))

    return 1000 * (k(x, x, x_sq, x_sq) + k(y, y, y_sq, y_sq) - 2 * k(x, y, x_sq, y_sq))


for line in sys.stdin:
    request = line.strip()
    with np.load(request) as req:
        op = str(req["op"])
        if op == "inputs":
            batch = np.stack([read_image(str(p)) for p in req["paths"]]) / 255.0
            out = np.asarray(clip_preprocess(batch))
        elif op == "mmd" and bool(req["x64"]):
            with jax.enable_x64(True):
                out = np.asarray(mmd(jnp.asarray(req["x"]), jnp.asarray(req["y"])))
        elif op == "mmd":
            out = np.asarray(mmd(jnp.asarray(req["x"].astype(np.float32)), jnp.asarray(req["y"].astype(np.float32))))
        else:  # "resize": jax's antialiased bicubic of a float image
            out = np.asarray(jax.image.resize(req["image"], tuple(req["shape"]), "bicubic", antialias=True))
    np.save(request + ".out.npy", out)
    print("ok", flush=True)
"""


class Original:
    """The original's image steps and distance, in a jax child process that stays up for the module."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.log = open(folder / "jax-stderr.txt", "w")
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", ORIGINAL], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env)
        self.count = 0

    def _ask(self, **arrays) -> np.ndarray:
        self.count += 1
        request = self.folder / f"request-{self.count}.npz"
        np.savez(request, **arrays)
        self.proc.stdin.write(f"{request}\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ok":
            raise RuntimeError("the jax process failed: " + (self.folder / "jax-stderr.txt").read_text()[-2000:])
        return np.load(f"{request}.out.npy")

    def inputs(self, paths: list[Path]) -> np.ndarray:
        """N x 336 x 336 x 3 float32: what the original's embed feeds its network."""
        return self._ask(op=np.array("inputs"), paths=np.array([str(p) for p in paths]))

    def mmd(self, x: np.ndarray, y: np.ndarray, x64: bool = False) -> float:
        return float(self._ask(op=np.array("mmd"), x=x, y=y, x64=np.array(x64)))

    def resize(self, image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return self._ask(op=np.array("resize"), image=image, shape=np.array(shape))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


@pytest.fixture(scope="module")
def original():
    with tempfile.TemporaryDirectory() as folder:
        proc = Original(Path(folder))
        yield proc
        proc.close()


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "hash-cache"))


def open_clip_visual(folder: Path) -> torch.nn.Module:
    """open_clip's VisionTransformer in OpenAI CLIP's layout (conv1 without bias, class and position embeddings,
    ln_pre, fused in_proj attention, quick GELU, ln_post, proj: the network scenic's CLIP port runs), cut to the
    tiny sizes, loaded with the transformers checkpoint's tensors."""
    import open_clip
    from safetensors.torch import load_file

    sd = load_file(str(folder / "model.safetensors"))
    vision = json.loads((folder / "config.json").read_text())["vision_config"]
    width, layers = vision["hidden_size"], vision["num_hidden_layers"]
    model = open_clip.CLIP(embed_dim=vision["projection_dim"], quick_gelu=True,
                           vision_cfg={"image_size": 336, "layers": layers, "width": width, "patch_size": 14,
                                       "head_width": width // vision["num_attention_heads"],
                                       "mlp_ratio": vision["intermediate_size"] / width},
                           text_cfg={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1})
    v = "vision_model."
    state = {"class_embedding": sd[v + "embeddings.class_embedding"],
             "positional_embedding": sd[v + "embeddings.position_embedding.weight"],
             "conv1.weight": sd[v + "embeddings.patch_embedding.weight"], "proj": sd["visual_projection.weight"].T,
             "ln_pre.weight": sd[v + "pre_layrnorm.weight"], "ln_pre.bias": sd[v + "pre_layrnorm.bias"],
             "ln_post.weight": sd[v + "post_layernorm.weight"], "ln_post.bias": sd[v + "post_layernorm.bias"]}
    for i in range(layers):
        hf, oc = f"{v}encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for part in ("weight", "bias"):
            state[f"{oc}attn.in_proj_{part}"] = torch.cat([sd[f"{hf}self_attn.{p}_proj.{part}"] for p in "qkv"])
            for theirs, mine in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                                 ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                state[f"{oc}{mine}.{part}"] = sd[f"{hf}{theirs}.{part}"]
    model.visual.load_state_dict(state, strict=True)
    return model.visual.eval()


@torch.no_grad()
def reference_embeddings(original: Original, visual: torch.nn.Module, files: list[Path]) -> np.ndarray:
    """The original's embedding of each file: its input, the OpenAI-layout ViT, x / |x| in float32 (scenic
    encode_image with normalize=True), one image per call."""
    out = []
    for x in original.inputs(files):
        e = visual(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
        out.append((e / torch.linalg.norm(e, dim=-1, keepdim=True)).double().numpy())
    return np.concatenate(out)


def _save(folder: Path, name: str, pixels: np.ndarray, mode: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(folder / name)
    return folder / name


# --- preprocessing ---------------------------------------------------------------------------------------------

def test_crop_offsets_are_floored_as_the_original_not_rounded():
    # io_util's box: (w - l) // 2; torchvision's center_crop (metrics.preprocess) would round 1.5 up to 2
    assert ours.center_crop_box(7, 4) == (1, 0, 5, 4)
    assert ours.center_crop_box(4, 7) == (0, 1, 4, 5)
    assert ours.center_crop_box(6, 4) == (1, 0, 5, 4) and ours.center_crop_box(5, 5) == (0, 0, 5, 5)
    # through the whole input path: 339 columns crop to 1..336 (no resize at 336 rows), columns kept in order
    img = np.zeros((336, 339, 3), np.uint8)
    img[..., 0] = (np.arange(339) % 200)[None, :]
    x = ours.cmmd_input(img)[0] * ours.CLIP_STD[0] + ours.CLIP_MEAN[0]
    assert np.array_equal(np.round(x[0] * 255), np.arange(1, 337) % 200)


def test_input_is_the_originals_bit_for_bit(tmp_path, original):
    from benchkit.core.rundir import read_image

    paths = []
    for i, (mode, size) in enumerate((("RGB", (500, 700)), ("RGB", (336, 336)), ("RGB", (120, 90)), ("L", (400, 333)),
                                      ("RGB", (337, 341)))):
        rng = np.random.default_rng(i)
        pixels = rng.integers(0, 256, (*size, 3) if mode == "RGB" else size, dtype=np.uint8)
        paths.append(_save(tmp_path, f"im{i}-{mode}.png", pixels, mode))
    expected = original.inputs(paths)
    for path, theirs in zip(paths, expected):
        got = ours.cmmd_input(read_image(path)).transpose(1, 2, 0)  # the array the scorer decodes
        assert got.dtype == theirs.dtype == np.float32 and got.shape == (336, 336, 3)
        assert np.array_equal(got, theirs), path.name


def test_resize_antialiases_as_the_original_and_unlike_the_pytorch_port(original):
    """A 1024 px image of 1-px stripes: PIL's bicubic (the original's) averages them as jax's antialiased bicubic
    does; a plain bicubic interpolation (cmmd-pytorch, its issue 4) aliases them into other stripes."""
    img = np.zeros((1024, 1024, 3), np.uint8)
    img[:, ::2] = 255
    img[::3] += 40
    got = ours.cmmd_input(img).transpose(1, 2, 0) * ours.CLIP_STD + ours.CLIP_MEAN
    f = img.astype(np.float32) / 255.0
    antialiased = original.resize(f, (336, 336, 3))
    aliased = torch.nn.functional.interpolate(torch.from_numpy(f).permute(2, 0, 1)[None], size=(336, 336), mode="bicubic",
                                              antialias=False, align_corners=False)[0].permute(1, 2, 0).numpy()
    assert np.abs(got - antialiased).max() < 2 / 255  # uint8 rounding apart
    assert np.abs(got - aliased).max() > 0.5


# --- the embedding and the distance ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_clip_336(tmp_path_factory.mktemp("clip336") / "clip-336", seed=4)


def test_embeddings_match_open_clips_openai_layout_vit(tiny, tmp_path, original):
    rng = np.random.default_rng(3)
    files = [_save(tmp_path, f"{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
             for i, (h, w) in enumerate(((400, 300), (336, 336), (64, 96)))]
    expected = reference_embeddings(original, open_clip_visual(tiny), files)
    model = ours.load_clip_336(tiny, torch.device("cpu"))
    with torch.no_grad():
        emb = model.get_image_features(pixel_values=torch.from_numpy(np.stack([ours.cmmd_input(np.asarray(Image.open(f)))
                                                                                for f in files])))
    emb = ours.hf_features(emb)
    got = (emb / emb.norm(dim=-1, keepdim=True)).double().numpy()
    assert np.allclose(np.linalg.norm(got, axis=1), 1) and np.abs(got @ got.T - np.eye(3)).max() > 1e-3  # not all alike
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_wrong_weights_are_refused_in_one_line(tmp_path):
    from metric_models import save_tiny_hf_clip

    from benchkit.core.errors import BenchkitError

    clip_224 = save_tiny_hf_clip(tmp_path / "clip", with_processor=False)
    with pytest.raises(BenchkitError, match="not a 336-px CLIP") as exc:
        ours.load_clip_336(clip_224, torch.device("cpu"))
    assert "\n" not in str(exc.value)


def _unit(rng, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    x = rng.normal(size=(n, d)) + shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("n_x,n_y,d,shift", [(60, 45, 16, 0.3), (7, 90, 768, 0.05)])
def test_distance_is_distance_py_in_float64_and_near_it_in_float32(monkeypatch, original, n_x, n_y, d, shift):
    rng = np.random.default_rng(n_x + d)
    x, y = _unit(rng, n_x, d), _unit(rng, n_y, d, shift)
    monkeypatch.setattr(ours, "BLOCK", 7)  # row blocks must not change the sums beyond rounding
    got = ours.cmmd_distance(x, y)
    assert got == pytest.approx(original.mmd(x, y, x64=True), rel=1e-10)
    # the original runs in float32: 1 - exp(...) near 1 cancels, times 1000 (measured: up to 7e-4 here)
    assert got == pytest.approx(original.mmd(x, y), abs=2e-3)
    assert got > 0


def test_distance_on_hand_checked_sets():
    e1, e2 = np.eye(3)[:1], np.eye(3)[1:2]
    # one point each, orthonormal: k(x, x) = k(y, y) = 1, |x - y|^2 = 2, so 1000 (2 - 2 exp(-2 / 200))
    assert ours.cmmd_distance(e1, e2) == pytest.approx(1000 * (2 - 2 * np.exp(-2 / 200)), rel=1e-14)
    same = _unit(np.random.default_rng(0), 20, 5)
    assert abs(ours.cmmd_distance(same, same)) < 1e-12
    assert ours.cmmd_distance(same, same[::-1]) == pytest.approx(0, abs=1e-12)  # sets, not sequences


# --- the metric through the CLI ---------------------------------------------------------------------------------

def _generated(folder: Path, n_prompts: int, seed: int, shift: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n_prompts):
        for s in (0, 1):
            _save(folder, f"p{i:02d}_{s}.png", (rng.integers(0, 200, (64, 80, 3)) + shift).astype(np.uint8))
    prompts = folder.parent / f"{folder.name}-prompts.csv"
    prompts.write_text("prompt_id,prompt\n" + "".join(f"p{i:02d},a photo number {i}\n" for i in range(n_prompts)))
    return prompts


def test_cmmd_against_a_folder_is_the_originals_on_the_same_images(tiny, tmp_path, cli, monkeypatch, original):
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", "{}")
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    prompts = _generated(gen, 8, seed=1, shift=50)
    rng = np.random.default_rng(2)
    for i in range(12):  # other sizes and one grayscale image
        pixels = rng.integers(0, 256, (96, 64) if i == 5 else (70 + i, 90, 3), dtype=np.uint8)
        _save(ref, f"r{i:02d}.png", pixels)
    code, _, err = cli("score", str(gen), "-p", str(prompts), "--metrics", "cmmd", "--reference", str(ref), "--device", "cpu",
                       "-q", "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out"), "--weights",
                       f"clip-vit-large-patch14-336={tiny}")
    assert code == 0, err
    value = json.loads((tmp_path / "out" / "results.json").read_text())["metrics"][0]
    assert value["name"] == "cmmd" and value["n"] == 16
    gen_files, ref_files = sorted(gen.iterdir()), sorted(ref.iterdir())
    # the embeddings the metric stored (run's and reference's), and the independent network's of the same files
    view = FeatureView(ours.EXTRACTOR, file_sha256(tiny / "model.safetensors"), ours.PREPROCESSING, 16)
    stored = [np.stack(FeatureStore([root]).lookup(view, [file_sha256(f) for f in files])).astype(np.float64)
              for root, files in ((tmp_path / "out", gen_files), (tmp_path / "cache", ref_files))]
    visual = open_clip_visual(tiny)
    independent = [reference_embeddings(original, visual, files) for files in (gen_files, ref_files)]
    for mine, theirs in zip(stored, independent):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
    assert value["value"] == pytest.approx(original.mmd(stored[1], stored[0], x64=True), rel=1e-10)
    assert value["value"] == pytest.approx(original.mmd(independent[1], independent[0], x64=True), rel=1e-3)
    assert value["value"] > 0.1  # the sets differ (brighter generated images): a value well above rounding
    variant = value["variant"]
    assert variant["extractor_sha256"] == file_sha256(tiny / "model.safetensors") and variant["reference_count"] == 12
    assert variant["protocol"] == "google-research cmmd" and "transformers" in variant["libraries"]


def test_without_a_reference_the_run_is_refused_in_one_line(tiny, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", "{}")
    prompts = _generated(tmp_path / "gen", 2, seed=0)
    code, _, err = cli("score", str(tmp_path / "gen"), "-p", str(prompts), "--metrics", "cmmd", "--device", "cpu", "-q",
                       "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out"),
                       "--weights", f"clip-vit-large-patch14-336={tiny}")
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1 and "--reference" in err, err
