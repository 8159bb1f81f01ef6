"""MPS against the reference formula of Kwai-Kolors/MPS (eval_overall_mps_on_*.py, infer_one_sample), computed
here one image at a time with the reference's own model classes on a tiny random model, which is pickled whole
(torch.save(model)) as MPS_overall_checkpoint.pth is. Also: the restricted loader refuses code in a pickle, and
`benchkit score --metrics mps --weights mps=PATH` runs end to end."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from metric_models import save_clip_processor, save_tiny_mps
from PIL import Image
from torch import einsum

from metrics import MetricContext, build_metrics
from metrics.base import SampleBatch

# The "overall" condition as printed in the Kwai-Kolors/MPS README
OVERALL = ("light, color, clarity, tone, style, ambiance, artistry, shape, face, hair, hands, limbs, structure, "
           "instance, texture, quantity, attributes, position, number, location, word, things.")


def _batch():
    rng = np.random.default_rng(3)
    sizes = [(64, 96), (224, 224), (90, 90), (300, 200), (50, 70), (80, 80)]
    images = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes]
    # "zebra zebra" has a larger text-condition maximum than the others in this tiny model, so dividing by the
    # batch's maximum instead of each prompt's own would change the other prompts' masks
    prompts = ["a cat with bright color", "a watercolor of a lighthouse at dusk, soft light", "two hands " * 40,
               "a red cube", "portrait, face and hair, cinematic tone", "zebra zebra"]
    return SampleBatch(images, [{"prompt_id": f"p{i}", "prompt": p, "seed": 0} for i, p in enumerate(prompts)])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("mps")
    save_clip_processor(root / "weights" / "clip-vit-h-14-processor")
    model = save_tiny_mps(root / "weights" / "MPS_overall_checkpoint.pth", seed=5)
    return root, model


@pytest.fixture()
def ctx(world, monkeypatch):
    root, _ = world
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", "{}")  # set, not deleted: teardown then removes what --weights adds
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(root / "weights"))
    monkeypatch.setenv("BENCHKIT_CACHE", str(root / "cache"))
    return MetricContext(cache_dir=root / "cache")


@torch.no_grad()
def _reference_scores(model, folder, batch, threshold=0.3, use_mask=True):
    """infer_one_sample of eval_overall_mps_on_imagereward.py, image by image (float32 instead of half)."""
    from transformers import AutoTokenizer, CLIPImageProcessor

    image_processor = CLIPImageProcessor.from_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))

    def _tokenize(caption):
        return tokenizer(caption, max_length=77, padding="max_length", truncation=True, return_tensors="pt").input_ids

    scores, masks = [], []
    for image, rec in zip(batch.images, batch.records):
        image_input = image_processor(Image.fromarray(image).convert("RGB"), return_tensors="pt")["pixel_values"]
        text_input = _tokenize(rec["prompt"])
        condition_batch = _tokenize(OVERALL).repeat(text_input.shape[0], 1)
        text_f, text_features = model.model.get_text_features(text_input)
        image_f = model.model.get_image_features(image_input)
        condition_f, _ = model.model.get_text_features(condition_batch)
        sim_text_condition = einsum("b i d, b j d -> b j i", text_f, condition_f)
        sim_text_condition = torch.max(sim_text_condition, dim=1, keepdim=True)[0]
        sim_text_condition = sim_text_condition / sim_text_condition.max()
        mask = torch.where(sim_text_condition > threshold, 0, float("-inf"))
        mask = mask.repeat(1, image_f.shape[1], 1)
        masks.append(mask)
        image_features = model.cross_model(image_f, text_f, mask if use_mask else torch.zeros_like(mask))[:, 0, :]
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        scores.append(float((model.logit_scale.exp() * text_features @ image_features.T)[0, 0]))
    return np.array(scores), masks


def test_mps_matches_the_reference_formula(world, ctx):
    root, model = world
    batch = _batch()
    (metric,) = build_metrics(["mps"], ctx)
    metric.update(batch)  # all six images in one forward pass
    (value,) = metric.compute()
    expected, masks = _reference_scores(model, root / "weights" / "clip-vit-h-14-processor", batch)
    got = np.array([metric.scores[f"p{i}\x1f0"] for i in range(len(batch.images))])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert value.value == pytest.approx(expected.mean(), rel=1e-6)
    # the condition mask is live here: it keeps some prompt tokens and drops others, and scores depend on it
    assert any(bool(torch.isinf(m).any() and (m == 0).any()) for m in masks)
    unmasked, _ = _reference_scores(model, root / "weights" / "clip-vit-h-14-processor", batch, use_mask=False)
    assert np.abs(unmasked - expected).max() > 1e-3
    assert value.variant["condition"] == OVERALL and value.variant["mask_threshold"] == 0.3
    assert value.variant["scale"] == "logit_scale.exp() x cosine"
    assert set(value.variant["weights_sha256"]) == {"mps", "clip-vit-h-14-processor"}
    assert value.variant["libraries"]["transformers"] != "not installed"


def test_mps_state_crosses_processes(world, ctx):
    batch = _batch()
    (whole,) = build_metrics(["mps"], ctx)
    whole.update(batch)
    (a,) = build_metrics(["mps"], ctx)
    (b,) = build_metrics(["mps"], ctx)
    a.update(SampleBatch(batch.images[:2], batch.records[:2]))
    b.update(SampleBatch(batch.images[2:], batch.records[2:]))
    a.merge(a.with_state(json.loads(json.dumps(b.state_dict()))))
    # equal up to float32 rounding of different batch shapes (CPU kernels round the last bit differently)
    assert a.compute()[0].value == pytest.approx(whole.compute()[0].value, rel=1e-5)
    assert a.compute()[0].n == 6


class _Evil:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _EvilEval:
    def __reduce__(self):
        return eval, ("__import__('os').system('true')",)


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval"])
def test_loader_refuses_code_in_the_pickle(tmp_path, payload):
    from benchkit.core.errors import BenchkitError
    from metrics.mps import load_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "MPS_overall_checkpoint.pth"
    torch.save(_Evil(f"touch {marker}") if payload == "os.system" else _EvilEval(), path)
    with pytest.raises(BenchkitError, match="refusing global (posix|os|builtins)\\.(system|eval)") as exc:
        load_checkpoint(path)
    assert "\n" not in str(exc.value) and not marker.exists()


def test_loader_rejects_a_plain_state_dict(tmp_path):
    from benchkit.core.errors import BenchkitError
    from metrics.mps import load_checkpoint

    path = tmp_path / "sd.pth"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(BenchkitError, match="is not a pickled MPS model"):
        load_checkpoint(path)


def test_score_cli_with_mps_weights(world, tmp_path, monkeypatch, cli):
    root, _ = world
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", "{}")  # set, not deleted: teardown then removes what --weights adds
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path / "empty"))
    images = tmp_path / "images"
    images.mkdir()
    batch = _batch()
    lines = []
    for i, (image, rec) in enumerate(zip(batch.images[:3], batch.records[:3])):
        Image.fromarray(image).save(images / f"p{i}_0.png")
        lines.append(f"p{i},\"{rec['prompt']}\"")
    (tmp_path / "prompts.csv").write_text("prompt_id,prompt\n" + "\n".join(lines) + "\n")
    weights = ["--weights", f"mps={root / 'weights' / 'MPS_overall_checkpoint.pth'}",
               "--weights", f"clip-vit-h-14-processor={root / 'weights' / 'clip-vit-h-14-processor'}"]
    code, out, err = cli("score", str(images), "-p", str(tmp_path / "prompts.csv"), "--metrics", "mps", "--device", "cpu",
                         "-q", "-o", str(tmp_path / "scored"), *weights)
    assert code == 0, err
    (value,) = [m for m in json.loads((tmp_path / "scored" / "results.json").read_text())["metrics"] if m["name"] == "mps"]
    expected, _ = _reference_scores(world[1], root / "weights" / "clip-vit-h-14-processor", SampleBatch(batch.images[:3], batch.records[:3]))
    assert value["n"] == 3 and value["value"] == pytest.approx(expected.mean(), rel=1e-5)

    evil = tmp_path / "evil.pth"
    torch.save(_Evil(f"touch {tmp_path / 'pwned'}"), evil)
    code, out, err = cli("score", str(images), "-p", str(tmp_path / "prompts.csv"), "--metrics", "mps", "--device", "cpu",
                         "-q", "-o", str(tmp_path / "scored2"), "--weights", f"mps={evil}", weights[2], weights[3])
    assert code == 2 and "refusing global" in err + out and not (tmp_path / "pwned").exists()
