"""`benchkit eval` computes any subset of the paper metrics on CPU with local weights passed by
--weights, and every value records its variant, scale, versions and hashes (`benchkit score`
with --weights runs in test_fid_protocols.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from metric_models import TINY_OPEN_CLIP, save_tiny_open_clip, save_torchvision_backbone


def test_eval_and_score_with_paper_metrics(tmp_path, monkeypatch, cli):
    monkeypatch.delenv("BENCHKIT_WEIGHT_PATHS", raising=False)
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    clip = save_tiny_open_clip(tmp_path / "clip", seed=5)
    hps = tmp_path / "hps"  # a folder with open_clip_config.json overrides ViT-H-14 (a tiny architecture here)
    hps.mkdir()
    (hps / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_OPEN_CLIP}))
    torch.manual_seed(6)
    import open_clip

    torch.save({"state_dict": open_clip.CLIP(**TINY_OPEN_CLIP).state_dict()}, hps / "HPS_v2.1_compressed.pt")
    weights = ["--weights", f"clip-vit-g-14-laion2b-s12b-b42k={clip}", "--weights", f"hpsv2.1={hps}"]
    run = tmp_path / "run"
    code, out, err = cli("eval", "-m", "toy-digits", "-p", "toy-digits", "--limit", "2", "--seeds", "0-1", "--steps", "2",
                         "--metrics", "clip-score,hpsv2", "--device", "cpu", "-q", "-o", str(run), *weights)
    assert code == 0, err
    results = json.loads((run / "results.json").read_text())
    values = {m["name"]: m for m in results["metrics"]}
    assert set(values) == {"clip-score", "hpsv2"}
    assert -1 <= values["clip-score"]["value"] <= 1 and values["clip-score"]["n"] == 4
    for v in values.values():
        assert v["variant"]["libraries"] and v["variant"]["weights_sha256"] and v["variant"]["scale"]
    assert values["hpsv2"]["variant"]["hps_version"] == "v2.1"
    # per-seed breakdown: each seed's mean, and their mean is the overall mean (2 prompts per seed)
    seed_groups = [b for b in results["breakdowns"] if b["field"] == "seed"]
    assert len(seed_groups) == 2
    for name in ("clip-score", "hpsv2"):
        per_seed = [next(m["value"] for m in g["metrics"] if m["name"] == name) for g in seed_groups]
        assert np.mean(per_seed) == pytest.approx(values[name]["value"], abs=1e-6)  # fp32 batch rounding



def test_lpips_on_too_small_images_is_one_line(tmp_path, monkeypatch):
    from benchkit.core.errors import BenchkitError
    from metrics import MetricContext, build_metrics
    from metrics.base import SampleBatch

    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({"lpips-alexnet": str(save_torchvision_backbone(tmp_path, "alex"))}))
    (metric,) = build_metrics(["lpips-diversity"], MetricContext(cache_dir=tmp_path))
    images = [np.zeros((8, 8), np.uint8), np.full((8, 8), 255, np.uint8)]
    metric.update(SampleBatch(images, [{"prompt_id": "a", "seed": s} for s in (0, 1)]))
    with pytest.raises(BenchkitError, match="8x8 images are too small for the LPIPS alex network"):
        metric.compute()
