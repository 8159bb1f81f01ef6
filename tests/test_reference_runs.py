"""Any run or image folder as the reference (`--reference`), one feature pass per image (the feature
store), and `benchkit rescore`: on the toy world, numbers checked against the extractor's features
computed directly and against the `prdc` package."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchkit.core.rundir import read_image
from benchkit.toy.metrics import ToyDigitsExtractor
from metrics.feature_store import FOLDER, FeatureStore, FeatureView
from metrics.frechet import frechet_distance

COMMON = ["--seeds", "0-2", "--batch-size", "30", "--device", "cpu", "-q", "--warmup", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 4-step teacher run (the reference) and a 1-step one scored against it with toy FID and PRDC."""
    from benchkit.cli import main

    root = tmp_path_factory.mktemp("refruns")
    cache = root / "cache"
    calls = [["eval", "-m", "toy-digits", "--steps", "4", "--out", str(root / "ref"), "--metrics", "toy-alignment"],
             ["eval", "-m", "toy-digits", "--steps", "1", "--out", str(root / "one"), "--metrics", "toy-fid,toy-prdc",
              "--reference", str(root / "ref")]]
    for args in calls:
        with pytest.raises(SystemExit) as exc:
            main([*args, *COMMON, "--cache-dir", str(cache)])
            raise SystemExit(0)
        assert exc.value.code == 0
    return root


def _features(run: Path) -> np.ndarray:
    """The toy extractor's features of a run's images, in sample order, computed here from the files."""
    extractor = ToyDigitsExtractor(torch.device("cpu"))
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    return extractor([read_image(run / r["file"]) for r in records])


def _results(run: Path) -> dict:
    return {m["name"]: m for m in json.loads((run / "results.json").read_text())["metrics"]}


def test_toy_fid_and_prdc_against_a_run_are_those_of_the_two_runs_features(runs):
    from prdc import compute_prdc

    ref, gen = _features(runs / "ref"), _features(runs / "one")
    got = _results(runs / "one")
    expected_fid = frechet_distance(gen.mean(0), np.cov(gen, rowvar=False), ref.mean(0), np.cov(ref, rowvar=False))
    assert got["toy-fid"]["value"] == pytest.approx(expected_fid, rel=1e-9)
    expected = compute_prdc(ref, gen, 5)
    for key in ("precision", "recall", "density", "coverage"):
        assert got[f"toy-{key}"]["value"] == pytest.approx(float(expected[key]), abs=1e-12)
    assert got["toy-fid"]["value"] > 1  # the 1-step sample is measurably off its 4-step self
    variant = got["toy-coverage"]["variant"]
    assert variant["reference_kind"] == "run" and variant["reference_count"] == 60 and variant["nearest_k"] == 5
    assert variant["reference"] == f"run:{(runs / 'ref').resolve()}"
    assert got["toy-fid"]["variant"]["reference_sha256"] == variant["reference_sha256"]
    results = json.loads((runs / "one" / "results.json").read_text())
    assert results["run"]["reference"]["sha256"] == variant["reference_sha256"]


def test_reference_features_are_stored_in_the_cache_not_in_the_reference_run(runs):
    assert not (runs / "ref" / FOLDER).exists()  # its eval read no features; nobody writes into another run
    views = list((runs / "cache" / FOLDER).iterdir())
    assert len(views) == 1 and list(views[0].glob("part-*.npz"))
    assert len(list((runs / "one" / FOLDER).iterdir())) == 1  # the run's own, next to it


def test_rescore_reuses_stored_features_and_keeps_earlier_values(runs, tmp_path, cli):
    run = tmp_path / "one"
    shutil.copytree(runs / "one", run)
    before = _results(run)
    code, out, err = cli("rescore", str(run), "--metrics", "toy-vendi,toy-diversity", "--device", "cpu", "-q",
                         "--cache-dir", str(runs / "cache"))
    assert code == 0, err
    assert "60 stored features reused, 0 computed" in " ".join(out.split())
    after = _results(run)
    assert {k: after[k] for k in before} == before  # toy FID and PRDC kept as they were
    extractor = ToyDigitsExtractor(torch.device("cpu"))
    feats = _features(run)
    from metrics.vendi import vendi_score

    assert after["toy-vendi"]["value"] == pytest.approx(vendi_score(feats), rel=1e-9)
    assert after["toy-vendi"]["variant"]["extractor_sha256"] == extractor.weights_sha256
    scoring = json.loads((run / "results.json").read_text())["run"]["scoring"]
    assert (scoring["features_stored_before"], scoring["features_computed"]) == (60, 0)
    # the breakdown groups hold the old and the new metrics side by side
    groups = json.loads((run / "results.json").read_text())["breakdowns"]
    names = {m["name"] for g in groups for m in g["metrics"]}
    assert {"toy-fid", "toy-vendi"} <= names


def test_a_damaged_or_foreign_part_is_recomputed_to_the_same_numbers(runs, tmp_path, cli):
    run = tmp_path / "one"
    shutil.copytree(runs / "one", run)
    (part,) = (run / FOLDER).glob("*/part-*.npz")
    part.write_bytes(b"not a zip")  # damaged: skipped, its images computed again
    np.savez(part.with_name("part-" + "0" * 32 + ".npz"), sha256=np.array(["x"]), features=np.zeros((1, 3), np.float32))
    code, out, err = cli("rescore", str(run), "--metrics", "toy-fid,toy-prdc", "--reference", str(runs / "ref"),
                         "--device", "cpu", "-q", "--cache-dir", str(runs / "cache"))
    assert code == 0, err
    assert "0 stored features reused, 60 computed" in " ".join(out.split())
    assert _results(run) == _results(runs / "one")  # the very floats


def test_store_keys_features_by_content_and_writes_parts_whole(tmp_path):
    view = FeatureView("x", "0" * 64, "x:prep", 3)
    store = FeatureStore([], write_root=tmp_path)
    store.add(view, ["a", "b"], np.array([[1, 2, 3], [4, 5, 6]], np.float64))
    store.add(view, ["b", "c"], np.array([[9, 9, 9], [7, 8, 9]], np.float64))  # b is already stored: kept as first seen
    again = FeatureStore([tmp_path])
    got = again.lookup(view, ["c", "a", "z", "b"])
    assert got[2] is None and got[0].tolist() == [7, 8, 9] and got[1].tolist() == [1, 2, 3] and got[3].tolist() == [4, 5, 6]
    folder = tmp_path / FOLDER / view.id
    assert sorted(p.name.split("-")[0] for p in folder.iterdir()) == ["part", "part", "view.json"]
    assert not list(folder.glob(".*"))  # no temporary file left
    other = FeatureView("x", "1" * 64, "x:prep", 3)  # other weights: another view, nothing shared
    assert FeatureStore([tmp_path]).lookup(other, ["a"]) == [None]


def test_folder_reference_reads_categories_and_remembers_hashes(tmp_path, runs, monkeypatch, cli):
    from metrics import reference_sets

    folder = tmp_path / "mjhq"
    (folder / "people").mkdir(parents=True)
    for i, f in enumerate(sorted((runs / "ref" / "images").iterdir())[:12]):
        shutil.copy(f, folder / ("people" if i % 2 else "") / f"img{i}.png")
    (folder / "meta_data.json").write_text(json.dumps({f"img{i}": {"category": "people" if i % 2 else "animals",
                                                                   "prompt": "p"} for i in range(12)}))
    cache = tmp_path / "cache"
    code, out, err = cli("reference", "folder", str(folder), "--metrics", "toy-fid", "--cache-dir", str(cache), "-q",
                         "--device", "cpu")
    assert code == 0, err
    assert "12 images, 2 categories" in " ".join(out.split())
    assert list((cache / FOLDER).glob("*/part-*.npz"))  # the features are computed up front
    hashed = []
    monkeypatch.setattr(reference_sets, "file_sha256", lambda p: hashed.append(p) or "h" + p.name)
    ref = reference_sets.folder_reference(folder, cache)
    assert hashed == [] and len(ref.files) == 12  # nothing changed: the index answers
    (folder / "img0.png").write_bytes((folder / "img2.png").read_bytes())
    reference_sets.folder_reference(folder, cache)
    assert [p.name for p in hashed] == ["img0.png"]  # only the changed file is hashed again


@pytest.mark.parametrize("case", ["missing", "file", "one-image", "no-taker", "inside-out", "changed"])
def test_bad_references_fail_in_one_line_before_work(case, runs, tmp_path, cli):
    ref = tmp_path / "ref"
    metrics = "toy-fid"
    out = tmp_path / "out"
    if case == "file":
        ref.write_text("x")
    elif case == "one-image":
        ref.mkdir()
        shutil.copy(next((runs / "ref" / "images").iterdir()), ref / "a.png")
    elif case == "no-taker":
        ref = runs / "ref"
        metrics = "toy-alignment"
    elif case == "inside-out":
        out.mkdir()
        ref = out / "refs"
        ref.mkdir()
    elif case == "changed":
        shutil.copytree(runs / "ref", ref)
        img = next((ref / "images").iterdir())
        img.write_bytes((ref / "images" / sorted(p.name for p in (ref / "images").iterdir())[-1]).read_bytes())
    code, _, err = cli("eval", "-m", "toy-digits", "--steps", "1", "--out", str(out), "--metrics", metrics,
                       "--reference", str(ref), *COMMON, "--cache-dir", str(tmp_path / "cache"))
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err
    expect = {"missing": "no such file", "file": "is a file", "one-image": "holds 1 image", "no-taker": "none of toy-alignment",
              "inside-out": "contains the --reference", "changed": "changed since it was generated"}[case]
    assert expect in " ".join(err.split())
    assert not (out / "samples.jsonl").exists()  # nothing generated


def test_rescore_refuses_what_is_not_a_finished_run(tmp_path, runs, cli):
    code, _, err = cli("rescore", str(tmp_path), "--metrics", "toy-fid", "--device", "cpu")
    assert code == 2 and "not a benchkit run" in err
    run = tmp_path / "unfinished"
    shutil.copytree(runs / "ref", run)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    code, _, err = cli("rescore", str(run), "--metrics", "toy-fid", "--device", "cpu")
    assert code == 2 and "not finished" in err


def test_mjhq_style_categories_compare_each_group_with_its_own_reference_images(runs, tmp_path, cli):
    """A prompt file shaped as MJHQ-30K's meta_data.json breaks results down by category, and with a
    reference folder that has categories each group's FID is against that category's images only."""
    from prompts import load_prompt_set

    toy = load_prompt_set("toy-digits").records[:6]
    parity = {r.prompt_id: "even" if int(r.meta["digit"]) % 2 == 0 else "odd" for r in toy}
    prompts = tmp_path / "mjhq" / "meta_data.json"
    prompts.parent.mkdir()
    prompts.write_text(json.dumps({r.prompt_id: {"prompt": r.prompt, "category": parity[r.prompt_id]} for r in toy}))
    assert load_prompt_set(str(prompts)).group_fields == ("category",)
    ref = tmp_path / "ref"  # the 4-step teacher's images of the same prompts, with their category file
    ref.mkdir()
    for image in (runs / "ref" / "images").iterdir():
        if image.name.rsplit("_", 1)[0] in parity:
            shutil.copy(image, ref / image.name)
    (ref / "meta_data.json").write_text(json.dumps({p.stem: {"category": parity[p.stem.rsplit("_", 1)[0]], "prompt": ""}
                                                    for p in ref.iterdir() if p.suffix == ".png"}))
    out = tmp_path / "run"
    code, _, err = cli("eval", "-m", "toy-digits", "--steps", "1", "-p", str(prompts), "--out", str(out), "--metrics",
                       "toy-fid", "--reference", str(ref), *COMMON, "--cache-dir", str(runs / "cache"))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    groups = {g["value"]: g for g in results["breakdowns"] if g["field"] == "category"}
    assert set(groups) == {"even", "odd"}
    gen_records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    extractor = ToyDigitsExtractor(torch.device("cpu"))
    for category, group in groups.items():
        gen = extractor([read_image(out / r["file"]) for r in gen_records if parity[r["prompt_id"]] == category])
        mine = sorted(p for p in ref.iterdir() if p.suffix == ".png" and parity[p.stem.rsplit("_", 1)[0]] == category)
        real = extractor([read_image(p) for p in mine])
        expected = frechet_distance(gen.mean(0), np.cov(gen, rowvar=False), real.mean(0), np.cov(real, rowvar=False))
        (value,) = [m for m in group["metrics"] if m["name"] == "toy-fid"]
        assert value["value"] == pytest.approx(expected, rel=1e-9)
        assert value["variant"]["reference_category"] == category and value["variant"]["reference_count"] == 9
    assert results["metrics"][0]["variant"]["reference_categories"] == 2  # the whole run against the whole folder
