"""LPIPS diversity against the lpips package with the same (random) backbone weights, by hand:
mean over prompts of the mean pairwise distance between seeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from metric_models import save_torchvision_backbone

from metrics import MetricContext, build_metrics
from metrics.base import SampleBatch


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path, monkeypatch):
    """Weight hashes are remembered under $BENCHKIT_CACHE; keep the user's cache out of tests."""
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))

def _items(n_prompts=2, seeds=(0, 1, 2)):
    rng = np.random.default_rng(0)
    images, records = [], []
    for p in range(n_prompts):
        for s in seeds:
            images.append(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
            records.append({"prompt_id": f"p{p}", "prompt": f"prompt {p}", "seed": s})
    return images, records


@pytest.mark.parametrize("net,metric_name", [("alex", "lpips-diversity"), ("vgg", "lpips-diversity-vgg")])
@torch.no_grad()
def test_lpips_diversity_matches_the_lpips_package(tmp_path, monkeypatch, net, metric_name):
    import lpips
    from torchvision.models import alexnet
    from torchvision.models.vgg import cfgs, make_layers

    path = save_torchvision_backbone(tmp_path, net, seed=4)
    weight = "lpips-alexnet" if net == "alex" else "lpips-vgg16"
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", f'{{"{weight}": "{path}"}}')
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    images, records = _items()
    ctx = MetricContext(cache_dir=tmp_path, manifest={"seeds": [0, 1, 2]})
    (metric,) = build_metrics([metric_name], ctx)
    metric.update(SampleBatch(images[:4], records[:4]))  # prompt p0 completes inside the first batch
    assert set(metric.per_prompt) == {"p0"} and set(metric.pending) == {"p1"}
    metric.update(SampleBatch(images[4:], records[4:]))
    (value,) = metric.compute()

    # the reference: lpips.LPIPS whose backbone is torchvision's network with the same state dict
    reference = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    features = alexnet(weights=None).features if net == "alex" else make_layers(cfgs["D"])
    features.load_state_dict({k.removeprefix("features."): v for k, v in torch.load(path, weights_only=True).items()
                              if k.startswith("features.")})
    for slice_ in reference.net.children():
        for idx, module in slice_.named_children():
            module.load_state_dict(features[int(idx)].state_dict())
    per_prompt = []
    for p in range(2):
        xs = [torch.from_numpy(images[p * 3 + s]).permute(2, 0, 1)[None].float() / 255 for s in range(3)]
        per_prompt.append(np.mean([float(reference(a, b, normalize=True)) for a, b in itertools.combinations(xs, 2)]))
    assert value.value == pytest.approx(np.mean(per_prompt), rel=1e-5)
    assert value.n == 6 and value.extra["prompts"] == 2
    assert value.variant["net"] == net and set(value.variant["weights_sha256"]) == {weight, f"lpips-v0.1-{net}-heads"}


def test_lpips_merge_of_shards_equals_one_pass(tmp_path, monkeypatch):
    path = save_torchvision_backbone(tmp_path, "alex", seed=4)
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", f'{{"lpips-alexnet": "{path}"}}')
    images, records = _items(seeds=(0, 1))
    ctx = MetricContext(cache_dir=tmp_path, manifest={"seeds": [0, 1]})
    whole, a, b = build_metrics(["lpips-diversity"] * 3, ctx)
    whole.update(SampleBatch(images, records))
    a.update(SampleBatch(images[::2], records[::2]))  # each shard holds one seed of every prompt
    b.update(SampleBatch(images[1::2], records[1::2]))
    a.merge(a.with_state(b.state_dict()))
    assert a.compute()[0].value == pytest.approx(whole.compute()[0].value, rel=1e-9)


def test_one_seed_is_a_clear_error(tmp_path, monkeypatch):
    from benchkit.core.errors import BenchkitError

    path = save_torchvision_backbone(tmp_path, "alex")
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", f'{{"lpips-alexnet": "{path}"}}')
    images, records = _items(seeds=(0,))
    (metric,) = build_metrics(["lpips-diversity"], MetricContext(cache_dir=tmp_path))
    metric.update(SampleBatch(images, records))
    with pytest.raises(BenchkitError, match="at least 2 seeds per prompt"):
        metric.compute()
