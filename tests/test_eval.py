"""`benchkit eval` end to end on the toy teacher, and `benchkit score` on its images."""

import json
import shutil

import pytest
import torch

from benchkit.core.errors import BenchkitError
from benchkit.evaluate import run_eval
from benchkit.folder_scoring import score_folder
from benchkit.models.presets import PRESETS
from prompts import DATA_DIR, load_prompt_file, load_prompt_set


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    results = run_eval(PRESETS["toy-digits"].with_recipe(steps=8), load_prompt_set("toy-digits").limit(4), [0, 1, 2],
                       root / "run", device="cpu", batch_size=5, cache_dir=root / "cache", show_progress=False)
    return root, results


def test_run_directory_contract(toy_run):
    root, results = toy_run
    run = root / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["spec"]["recipe"]["steps"] == 8 and manifest["spec"]["recipe"]["scheduler"] == "DDIMScheduler"
    assert manifest["prompt_set"]["name"] == "toy-digits" and manifest["prompt_set"]["count"] == 4
    assert manifest["seeds"] == [0, 1, 2] and manifest["dtype"] == "float32" and manifest["device"] == "cpu"
    assert manifest["hardware"]["versions"]["torch"] and len(manifest["model"]["weights_sha256"]) == 64
    samples = [json.loads(l) for l in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12
    assert {"prompt_id", "prompt", "seed", "file", "sha256", "seconds"} <= samples[0].keys()
    assert sorted(p.name for p in (run / "images").iterdir()) == sorted(f"{s['prompt_id']}_{s['seed']}.png" for s in samples)
    on_disk = json.loads((run / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    for m in on_disk["metrics"]:
        assert {"name", "value", "variant", "n", "unit", "higher_is_better"} <= m.keys()


def test_metrics_are_plausible(toy_run):
    _, results = toy_run
    v = {m["name"]: m for m in results["metrics"]}
    assert v["nfe"]["value"] == 16  # 8 steps with guidance: two UNet calls each
    assert v["toy-alignment"]["value"] > 0.5 and 0 <= v["toy-alignment"]["extra"]["accuracy"] <= 1
    assert v["toy-fid"]["value"] > 0 and v["toy-fid"]["n"] == 12
    assert v["latency_image_p50"]["value"] > 0 and v["latency_image_p90"]["value"] >= v["latency_image_p50"]["value"]
    assert v["latency_batch_p50"]["n"] == 3  # 12 images in batches of 5, 5, 2
    assert v["model_size"]["value"] > 1e6 and v["cold_start"]["value"] > 0 and v["peak_memory"]["value"] > 0


def test_second_run_resumes_and_reuses_cached_reference(toy_run):
    root, results = toy_run
    again = run_eval(PRESETS["toy-digits"].with_recipe(steps=8), load_prompt_set("toy-digits").limit(4), [0, 1, 2],
                     root / "run", device="cpu", batch_size=5, cache_dir=root / "cache", show_progress=False)
    manifest = json.loads((root / "run" / "manifest.json").read_text())
    assert manifest["sessions"][-1]["resumed_with"] == 12 and manifest["sessions"][-1]["generated"] == 0
    fid = lambda r: next(m for m in r["metrics"] if m["name"] == "toy-fid")
    assert fid(again)["value"] == fid(results)["value"]
    assert len(list((root / "cache" / "refstats").glob("*.npz"))) == 1


def test_different_recipe_refuses_same_out(toy_run):
    root, _ = toy_run
    with pytest.raises(BenchkitError, match="different 'spec_hash'"):
        run_eval(PRESETS["toy-digits"].with_recipe(steps=4), load_prompt_set("toy-digits").limit(4), [0, 1, 2],
                 root / "run", device="cpu", cache_dir=root / "cache", show_progress=False)


def test_score_folder_matches_eval(toy_run, tmp_path):
    root, results = toy_run
    folder = tmp_path / "imgs"
    shutil.copytree(root / "run" / "images", folder)
    prompts = tmp_path / "prompts.tsv"
    shutil.copy(DATA_DIR / "toy-digits.tsv", prompts)
    scored = score_folder(folder, load_prompt_file(prompts), ["toy-fid", "toy-alignment", "toy-diversity"], tmp_path / "scored",
                          root / "cache", torch.device("cpu"), show_progress=False)
    a = {m["name"]: m["value"] for m in scored["metrics"]}
    b = {m["name"]: m["value"] for m in results["metrics"]}
    for name in ("toy-fid", "toy-alignment", "toy-diversity"):
        assert a[name] == pytest.approx(b[name], rel=1e-12)
    (folder / "stranger_0.png").write_bytes((folder / "digit0-a_0.png").read_bytes())
    with pytest.raises(BenchkitError, match="stranger_0.png: no prompt with id 'stranger'"):
        score_folder(folder, load_prompt_file(prompts), ["toy-fid"], tmp_path / "s2", root / "cache", torch.device("cpu"), show_progress=False)
    with pytest.raises(BenchkitError, match="latency cannot be measured"):
        score_folder(folder, load_prompt_file(prompts), ["latency"], tmp_path / "s3", root / "cache", torch.device("cpu"), show_progress=False)
