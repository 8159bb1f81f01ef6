"""FID/KID protocols: preprocessing pinned on hand-checked images, and FID, KID and cached
reference statistics against clean-fid's own functions with the same (random) Inception."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from metric_models import save_random_inception
from PIL import Image

from benchkit.reference import coco_file_name
from metrics import preprocess as pp


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path, monkeypatch):
    """Weight hashes are remembered under $BENCHKIT_CACHE; keep the user's cache out of tests."""
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))

# --- preprocessing, step by step ------------------------------------------------------------

def _columns(width: int, height: int) -> np.ndarray:
    """Each pixel holds its column index in red and its row index in green."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = np.arange(width)[None, :]
    img[..., 1] = np.arange(height)[:, None]
    return img


@pytest.mark.parametrize("width,left", [(6, 1), (7, 2), (4, 0)])
def test_center_crop_long_edge_offsets(width, left):
    # torchvision rounds the offset half to even: (6-4)/2 = 1, (7-4)/2 = 1.5 -> 2
    out = np.array(pp.center_crop_long_edge(Image.fromarray(_columns(width, 4))))
    assert out.shape == (4, 4, 3)
    assert out[0, :, 0].tolist() == list(range(left, left + 4))
    assert out[:, 0, 1].tolist() == [0, 1, 2, 3]
    tall = np.array(pp.center_crop_long_edge(Image.fromarray(_columns(4, 7))))  # crops rows, not columns
    assert tall[:, 0, 1].tolist() == [2, 3, 4, 5] and tall[0, :, 0].tolist() == [0, 1, 2, 3]


def test_crop_happens_before_lanczos_resize():
    # 8x4: red and blue 2-column borders around a green 4x4 centre. Cropping first leaves pure
    # green, which LANCZOS keeps exactly; squashing first would bleed red and blue in.
    img = np.zeros((4, 8, 3), np.uint8)
    img[:, :2] = (255, 0, 0)
    img[:, 2:6] = (0, 255, 0)
    img[:, 6:] = (0, 0, 255)
    out = pp.crop_lanczos(2)(img)
    assert out.shape == (2, 2, 3) and (out == (0, 255, 0)).all()
    squashed = np.array(Image.fromarray(img).resize((2, 2), Image.LANCZOS))
    assert not (squashed == (0, 255, 0)).all()


def test_lanczos_is_the_filter():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = pp.crop_lanczos(8)(img)
    assert np.array_equal(out, np.array(Image.fromarray(img).resize((8, 8), Image.LANCZOS)))
    assert not np.array_equal(out, np.array(Image.fromarray(img).resize((8, 8), Image.BICUBIC)))


def test_clean_resize_is_float_bicubic_per_channel():
    flat = np.full((10, 12, 3), 128, np.uint8)
    assert pp.clean_resize_299(flat).dtype == np.float32
    assert (pp.clean_resize_299(flat) == 128.0).all()
    img = np.zeros((10, 12, 3), np.uint8)
    img[:, 6:] = 255
    out = pp.clean_resize_299(img)
    expected = np.asarray(Image.fromarray(img[..., 0].astype(np.float32), mode="F").resize((299, 299), Image.BICUBIC))
    np.testing.assert_array_equal(out[..., 0], expected.clip(0, 255))
    assert not np.allclose(out, np.rint(out))  # not quantised back to integers


def test_patch_crop_takes_the_centre_299_without_resizing():
    img = np.zeros((320, 400, 3), np.uint8)
    img[..., 0] = (np.arange(400) % 256)[None, :]
    img[..., 1] = (np.arange(320) % 256)[:, None]
    out = pp.patch_299(img)
    # left = round((400-299)/2) = round(50.5) = 50, top = round(10.5) = 10 (half to even)
    assert out.shape == (299, 299, 3) and out[0, 0, 0] == 50 and out[0, 0, 1] == 10
    small = np.zeros((200, 300, 3), np.uint8)
    assert pp.patch_299(small).shape == (200, 300, 3)


def test_grayscale_and_rgba_become_rgb_as_pil_converts_them():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(pp.to_rgb_uint8(gray), np.array(Image.fromarray(gray).convert("RGB")))
    rgba = np.random.default_rng(1).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(pp.to_rgb_uint8(rgba), np.array(Image.fromarray(rgba, "RGBA").convert("RGB")))


# --- FID and KID against clean-fid on the same folders ---------------------------------------

@pytest.fixture(scope="module")
def inception_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inception")
    save_random_inception(folder)
    return folder


def _dmd2_transform(size):
    """DMD2's resize_and_center_crop (main/coco_eval/coco_evaluator.py), as that script writes it."""
    import torchvision.transforms as T

    def transform(image_np):
        image = Image.fromarray(image_np)
        image = T.functional.center_crop(image, min(image.size))
        return np.array(image.resize((size, size), Image.LANCZOS))

    return transform


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidimgs")
    rng = np.random.default_rng(0)
    val, gen = root / "val2014", root / "gen"
    val.mkdir()
    gen.mkdir()
    for i, image_id in enumerate([42, 73, 74, 133]):
        h, w = rng.integers(40, 90, 2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(val / coco_file_name(image_id), quality=90)
    lines = []
    for i in range(3):
        img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        img[16:48, 16:48] = rng.integers(0, 256, 3, dtype=np.uint8)
        Image.fromarray(img).save(gen / f"p{i}_0.png")
        lines.append(f"p{i},a prompt {i}")
    (root / "prompts.csv").write_text("prompt_id,prompt\n" + "\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def scored(folders, inception_dir, tmp_path_factory):
    """`benchkit reference coco --protocol` then `benchkit score --metrics fid-dmd2-sd15`, via the CLI."""
    from benchkit.cli import main

    cache = tmp_path_factory.mktemp("fidcache")
    weights = f"fid-inception={inception_dir / 'inception-2015-12-05.pt'}"
    ref_args = ["reference", "coco", "--coco-dir", str(folders / "val2014"), "--pairing", "all", "--allow-partial",
                "--protocol", "dmd2-sd15-coco30k", "--cache-dir", str(cache), "--device", "cpu", "--weights", weights,
                "-o", str(folders / "refs")]
    score_args = ["score", str(folders / "gen"), "-p", str(folders / "prompts.csv"), "--metrics", "fid-dmd2-sd15",
                  "--cache-dir", str(cache), "--device", "cpu", "-q", "--weights", weights, "-o", str(folders / "scored")]
    with pytest.MonkeyPatch.context() as mp:  # --weights lands in the environment; keep it to this fixture
        mp.delenv("BENCHKIT_WEIGHT_PATHS", raising=False)
        mp.setenv("BENCHKIT_CACHE", str(cache))
        for args in (ref_args, score_args):
            with pytest.raises(SystemExit) as exc:
                main(args)
                raise SystemExit(0)
            assert exc.value.code == 0
    results = json.loads((folders / "scored" / "results.json").read_text())
    return cache, {m["name"]: m for m in results["metrics"]}


@pytest.fixture(scope="module")
def cleanfid_features(folders, inception_dir):
    """clean-fid's folder features (its dataset, resizer and Inception wrapper) under DMD2's transform."""
    from cleanfid import fid as cleanfid
    from cleanfid.inception_torchscript import InceptionV3W

    model = InceptionV3W(str(inception_dir), download=False)
    kwargs = dict(mode="clean", custom_image_tranform=_dmd2_transform(256), num_workers=0, batch_size=8,
                  device=torch.device("cpu"), verbose=False)
    return {name: cleanfid.get_folder_features(str(folders / name), model, **kwargs) for name in ("gen", "val2014")}


def test_fid_and_kid_match_clean_fid(scored, cleanfid_features):
    """clean-fid's compare_folders: its features -> np.mean / np.cov -> Frechet distance.

    With a handful of images the 2048-d covariances are rank-deficient, and clean-fid's
    scipy ``sqrtm`` of their product is ill-conditioned (on these folders it raised "Imaginary
    component 1.2e4" or agreed to 1e-5, depending on the random network). So the folders'
    statistics are compared with clean-fid's exactly, and the distance itself with clean-fid's
    ``frechet_distance`` where that is numerically defined (next test).
    """
    from cleanfid import fid as cleanfid

    from metrics.frechet import frechet_distance

    _, metrics = scored
    gen, ref = cleanfid_features["gen"], cleanfid_features["val2014"]
    expected = frechet_distance(gen.mean(0), np.cov(gen, rowvar=False), ref.mean(0), np.cov(ref, rowvar=False))
    assert metrics["fid-dmd2-sd15"]["value"] == pytest.approx(expected, rel=1e-6)
    # clean-fid draws KID subsets from numpy's global generator (ours is seeded with 0) and computes
    # in its features' float32; in float64 the estimators agree to rounding, in float32 to 1e-4
    np.random.seed(0)
    assert metrics["kid-dmd2-sd15"]["value"] == pytest.approx(
        cleanfid.kernel_distance(gen.astype(np.float64), ref.astype(np.float64)), rel=1e-9)
    np.random.seed(0)
    assert metrics["kid-dmd2-sd15"]["value"] == pytest.approx(cleanfid.kernel_distance(gen, ref), rel=1e-4)
    variant = metrics["fid-dmd2-sd15"]["variant"]
    assert variant["protocol"] == "dmd2-sd15-coco30k" and "LANCZOS 256" in variant["preprocessing"]
    assert variant["reference_n"] == 4 and variant["libraries"]["clean-fid"] == "0.1.35"
    assert variant["weights_sha256"]["fid-inception"] == variant["extractor_sha256"] and "x1000" in metrics["kid-dmd2-sd15"]["variant"]["scale"]


def test_frechet_matches_clean_fids_function_on_inception_features(cleanfid_features):
    """clean-fid's own frechet_distance on full-rank statistics built from the Inception features
    (64 feature columns, 300 random mixtures of the images plus unit noise), against ours."""
    from cleanfid.fid import frechet_distance as cleanfid_frechet

    from metrics.frechet import frechet_distance

    rng = np.random.default_rng(0)
    gen, ref = (cleanfid_features[k][:, :64].astype(np.float64) for k in ("gen", "val2014"))
    a = rng.dirichlet(np.ones(len(gen)), 300) @ gen + rng.normal(size=(300, 64))
    b = rng.dirichlet(np.ones(len(ref)), 300) @ ref + rng.normal(size=(300, 64))
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(cleanfid_frechet(mu1, s1, mu2, s2), rel=1e-7)


def test_cached_reference_statistics_are_clean_fids(folders, scored, cleanfid_features):
    from metrics.refstats import load_cached_arrays

    cache, metrics = scored
    entry = json.loads((cache / "references" / "dmd2-sd15-coco30k.json").read_text())
    ref_json = json.loads((folders / "refs" / "coco2014-val-all" / "reference.json").read_text())
    assert entry["reference"]["sha256"] == ref_json["sha256"]  # keyed by the reference's content hash
    arrays = load_cached_arrays(cache, entry["views"]["fid"]["stats_key"])
    feats = cleanfid_features["val2014"]
    np.testing.assert_allclose(arrays["mu"], feats.mean(0), rtol=1e-6, atol=1e-9)
    sigma = np.cov(feats, rowvar=False)
    np.testing.assert_allclose(arrays["sigma"], sigma, rtol=1e-4, atol=1e-6 * np.abs(sigma).max())
    np.testing.assert_allclose(arrays["feats"], feats, rtol=1e-6)
    assert metrics["fid-dmd2-sd15"]["variant"]["reference_stats_key"] == entry["views"]["fid"]["stats_key"]


def test_sdxl_patch_view_matches_dmd2_patch_fid(inception_dir, monkeypatch):
    """The SDXL protocol's patch view gives clean-fid's features of DMD2's patch-FID crop (its
    LANCZOS-512 view is the SD1.5 path at another size, pinned above and by the folder test)."""
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.utils import ResizeDataset

    from metrics.fid import PROTOCOLS, inception, view_features

    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(inception_dir))
    image = np.random.default_rng(3).integers(0, 256, (303, 320, 3), dtype=np.uint8)
    main_view, patch_view = PROTOCOLS["dmd2-sdxl-coco10k"].views
    assert "LANCZOS 512" in main_view.steps and main_view.transform(image).shape == (512, 512, 3)

    def patch_crop(image_np):  # DMD2's patch_fid branch of resize_and_center_crop
        import torchvision.transforms as T

        pil = Image.fromarray(image_np)
        return np.array(T.functional.center_crop(pil, 299) if pil.size[0] >= 299 and pil.size[1] >= 299 else pil)

    dataset = ResizeDataset([], mode="clean")
    x = dataset.fn_resize(patch_crop(image))
    with torch.no_grad():
        expected = InceptionV3W(str(inception_dir), download=False)(torch.from_numpy(x.transpose(2, 0, 1).copy())[None]).numpy()
    np.testing.assert_allclose(view_features(inception(torch.device("cpu")), patch_view, [image]), expected,
                               rtol=1e-5, atol=1e-5)


def test_kid_estimator_is_clean_fids():
    from cleanfid.fid import kernel_distance as cleanfid_kid

    from metrics.fid import kernel_distance

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(60, 8)), rng.normal(size=(70, 8)) + 0.2
    np.random.seed(0)  # subsets of 50 out of 60 and 70: the draws must match clean-fid's order exactly
    expected = cleanfid_kid(a, b, num_subsets=20, max_subset_size=50)
    assert kernel_distance(a, b, num_subsets=20, max_subset_size=50) == pytest.approx(expected, rel=1e-12)
    assert kernel_distance(a, b, num_subsets=20, max_subset_size=50, seed=1) != pytest.approx(expected, rel=1e-6)


def test_missing_reference_and_stale_weights_are_one_line(tmp_path, inception_dir, monkeypatch):
    from benchkit.core.errors import BenchkitError
    from metrics import MetricContext, build_metrics

    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(inception_dir))
    (metric,) = build_metrics(["fid"], MetricContext(cache_dir=tmp_path))
    from metrics.base import SampleBatch

    images = [np.full((8, 8, 3), v, np.uint8) for v in (0, 255)]
    metric.update(SampleBatch(images, [{"prompt_id": str(i), "seed": 0} for i in range(2)]))
    with pytest.raises(BenchkitError, match=r"no reference statistics for protocol clean-fid.*benchkit reference coco"):
        metric.compute()
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "clean-fid.json").write_text(json.dumps({"extractor_sha256": "0" * 64, "views": {}}))
    with pytest.raises(BenchkitError, match="made with Inception weights 000000000000"):
        metric.compute()


def test_fid_against_an_image_folder_reference_is_clean_fids(folders, inception_dir, cleanfid_features, tmp_path, cli):
    """`--reference FOLDER` gives the Frechet distance and KID of clean-fid's features of the two folders, and
    a second scoring reads the reference's features back from the cache instead of running Inception again."""
    from cleanfid import fid as cleanfid

    from metrics.frechet import frechet_distance

    weights = f"fid-inception={inception_dir / 'inception-2015-12-05.pt'}"
    args = ["score", str(folders / "gen"), "-p", str(folders / "prompts.csv"), "--metrics", "fid-dmd2-sd15",
            "--reference", str(folders / "val2014"), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "-q",
            "--weights", weights, "--workers", "0"]
    code, _, err = cli(*args, "-o", str(tmp_path / "scored"))
    assert code == 0, err
    results = json.loads((tmp_path / "scored" / "results.json").read_text())
    got = {m["name"]: m for m in results["metrics"]}
    gen, ref = cleanfid_features["gen"], cleanfid_features["val2014"]
    expected = frechet_distance(gen.mean(0), np.cov(gen, rowvar=False), ref.mean(0), np.cov(ref, rowvar=False))
    assert got["fid-dmd2-sd15"]["value"] == pytest.approx(expected, rel=1e-6)
    np.random.seed(0)
    assert got["kid-dmd2-sd15"]["value"] == pytest.approx(
        cleanfid.kernel_distance(gen.astype(np.float64), ref.astype(np.float64)), rel=1e-9)
    variant = got["fid-dmd2-sd15"]["variant"]
    assert variant["reference_kind"] == "folder" and variant["reference_count"] == 4 and variant["reference_n"] == 4
    assert results["run"]["scoring"]["features_computed"] == 3
    parts = sorted((tmp_path / "cache" / "features").glob("*/part-*.npz"))
    assert len(parts) == 1  # the reference's features, in the cache; the run's own are in the run
    code, _, err = cli(*args, "-o", str(tmp_path / "again"))  # another run of the same images
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["metrics"] == results["metrics"]
    assert sorted((tmp_path / "cache" / "features").glob("*/part-*.npz")) == parts  # the reference was read back
