"""GenEval in benchkit: the rules against GenEval's own code, and the metric's wiring.

- Rules: ``tests/data/geneval/reference_decisions.json`` holds hand-made detections and what GenEval's
  own ``evaluate_image`` (djghosh13/geneval@af4902f, evaluation/evaluate_images.py, run with its
  detector and CLIP stubbed out by ``tests/data/geneval/make_reference.py``) decided for each: the
  verdict, the objects it kept, every colour-classifier call (which objects, the templates and
  colours, and the sha256 of the masked crop CLIP would see) and the reasons. benchkit's engine
  must agree on all of it. Its two summaries are what GenEval's ``summary_scores.py`` printed.
  These recorded outputs are the only expected values written down here.
- Metric: a tiny random Mask R-CNN (torchvision's MaskRCNN class, saved as a plain state dict like
  torchvision's file) and a tiny CLIP stand in for the real weights; the detections reaching the
  rules must be what torchvision's model returns for the same weights, and the values must be the
  summary of the rules' decisions.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchkit.core.errors import BenchkitError
from metrics import MetricContext, ScorePlan, build_metrics
from metrics import geneval as ge
from metrics.base import SampleBatch
from metrics.geneval_rules import (CLASSNAMES, COLOR_TEMPLATES, COLORS, GENEVAL_COMMIT, TAGS, Detection, Options, decide,
                                   metadata_problem, summarize)
from prompts import load_prompt_set
from prompts.registry import DATA_DIR

REF_DIR = Path(__file__).parent / "data" / "geneval"
REFERENCE = json.loads((REF_DIR / "reference_decisions.json").read_text())
CASES = REFERENCE["cases"]
sys.path.insert(0, str(REF_DIR))
from make_reference import pattern_image  # noqa: E402 (the image the reference's crops were taken from)


def _detections(case: dict) -> list[tuple[Detection, str | None]]:
    h, w = case["image_size"]
    out = []
    for d in case["detections"]:
        mask = None
        if d["mask"] is not None:
            x1, y1, x2, y2 = d["mask"]
            mask = np.zeros((h, w), dtype=bool)
            mask[y1:y2, x1:x2] = True
        out.append((Detection(d["class"], d["score"], d["box"], mask), d["color"]))
    return out


def _crop_digest(image: Image.Image) -> dict:
    return {"size": list(image.size), "mode": image.mode, "sha256": hashlib.sha256(image.tobytes()).hexdigest()}


def _relations_sorted(reason: str) -> str:
    """GenEval joins a set of relations (its order follows string hashing); compare them sorted."""
    return re.sub(r"found (.*?) target", lambda m: "found " + " and ".join(sorted(m[1].split(" and "))) + " target", reason)


def test_reference_is_geneval_at_the_pinned_commit():
    meta = REFERENCE["geneval"]
    assert meta["commit"] == GENEVAL_COMMIT
    data = (DATA_DIR / "geneval" / "evaluation_metadata.jsonl").read_bytes()
    assert hashlib.sha256(data).hexdigest() == meta["files_sha256"]["prompts/evaluation_metadata.jsonl"]
    names = "".join(f"{n}\n" for n in CLASSNAMES).encode()
    assert hashlib.sha256(names).hexdigest() == meta["files_sha256"]["evaluation/object_names.txt"]
    assert REFERENCE["environment"]["numpy"].startswith("1.23.")  # GenEval's pinned numpy (environment.yml)
    outcomes = {(c["metadata"]["tag"], c["geneval"]["correct"]) for c in CASES}
    assert outcomes == {(tag, ok) for tag in TAGS for ok in (True, False)}
    calls = [call for c in CASES for call in c["geneval"]["color_calls"]]
    assert calls and all(call["colors"] == list(COLORS) for call in calls)
    assert all(call["templates"] == [t.replace("{classname}", call["class"]) for t in COLOR_TEMPLATES] for call in calls)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_rules_match_geneval(case):
    dets = _detections(case)
    colours = {id(d): colour for d, colour in dets}
    image = Image.fromarray(pattern_image(*case["image_size"]))
    calls = []

    def classify(objects, classname):
        calls.append({"class": classname, "boxes": [o.row().tolist() for o in objects],
                      "masks": [o.mask is not None for o in objects],
                      "crops": [_crop_digest(ge.color_crop(image, o)) for o in objects]})
        return [colours[id(o)] for o in objects]

    decision = decide(case["metadata"], [d for d, _ in dets], classify, Options(**case["options"]))
    want = case["geneval"]
    assert decision.correct == want["correct"]
    assert {name: [o.row().tolist() for o in objs] for name, objs in decision.objects.items()} == want["details"]
    assert calls == [{k: call[k] for k in ("class", "boxes", "masks", "crops")} for call in want["color_calls"]]
    assert _relations_sorted(decision.reason) == _relations_sorted(want["reason"])


def _summary_report(items: list[tuple[str, str, bool]]) -> str:
    """benchkit's summary printed with summary_scores.py's format strings (l.26-45)."""
    s = summarize(items)
    lines = ["Summary", "=======", f"Total images: {s.images}", f"Total prompts: {s.prompts}",
             f"% correct images: {s.correct_images:.2%}", f"% correct prompts: {s.correct_prompts:.2%}", "",
             "Task breakdown", "=============="]
    lines += [f"{tag:<16} = {c / n:.2%} ({c} / {n})" for tag, (c, n) in s.tasks.items()]
    lines += ["", f"Overall score (avg. over tasks): {s.overall:.5f}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("summary", REFERENCE["summaries"], ids=[s["name"] for s in REFERENCE["summaries"]])
def test_summary_matches_summary_scores(summary):
    items = [(r["metadata"], r["tag"], r["correct"]) for r in summary["results"]]
    assert _summary_report(items) == summary["stdout"]


def test_summary_averages_tasks_not_images():
    s = summarize([("a", "counting", True), ("b", "position", False), ("c", "position", False), ("d", "position", False),
                   ("a", "counting", False)])
    assert s.tasks == {"counting": (1, 2), "position": (0, 3)}
    assert s.overall == (1 / 2 + 0 / 3) / 2 and s.correct_images == 1 / 5 and (s.prompts, s.correct_prompts) == (4, 1 / 4)
    with pytest.raises(ValueError):
        summarize([])


def test_every_geneval_prompt_has_usable_metadata():
    ps = load_prompt_set("geneval")
    assert all(metadata_problem(r.meta) is None for r in ps.records)
    assert {c["class"] for r in ps.records for c in r.meta["include"]} == set(CLASSNAMES)


@pytest.mark.parametrize("meta, phrase", [
    (None, "has no meta"),
    ({"include": [{"class": "dog", "count": 1}]}, "has no 'tag'"),
    ({"tag": "animals", "include": [{"class": "dog", "count": 1}]}, "tag 'animals'"),
    ({"tag": "single_object", "include": '[{"class": "dog", "count": 1}]'}, "no 'include' list"),
    ({"tag": "single_object", "include": [{"class": "puppy", "count": 1}]}, "include[0] without a GenEval"),
    ({"tag": "counting", "include": [{"class": "dog", "count": "2"}]}, "positive integer count"),
    ({"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "teal"}]}, "colour 'teal'"),
    ({"tag": "position", "include": [{"class": "dog", "count": 1, "position": ["right of", 0]}]}, "position ['right of', 0]"),
    ({"tag": "counting", "include": [{"class": "dog", "count": 2}], "exclude": [{"class": "dog", "count": 0}]}, "exclude[0]"),
])
def test_metadata_problems_are_named(meta, phrase):
    assert phrase in metadata_problem(meta)


def test_coco_label_ids_map_to_geneval_names():
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

    categories = MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"]
    renamed = {"mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard"}
    want = {i: renamed.get(name, name) for i, name in enumerate(categories) if name not in ("__background__", "N/A")}
    assert ge.COCO_ID_TO_CLASS == want


def test_clip_input_is_open_clips_openai_transform():
    import open_clip

    transform = open_clip.image_transform(224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD)
    for h, w in ((50, 90), (300, 224), (17, 17)):
        image = Image.fromarray(pattern_image(h, w))
        assert torch.equal(ge.clip_input(image, 224), transform(image))


# --- the metric, with tiny random networks ---

DOG, TEDDY = 18, 88  # torchvision COCO label ids
PROMPT_IDS = ["00027", "00050", "00151", "00204", "00244", "00289", "00353", "00464"]


def tiny_maskrcnn() -> torch.nn.Module:
    """torchvision's MaskRCNN with a two-conv backbone and small heads (the real v2 needs ~10 s per image here)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
                                   torch.nn.Conv2d(16, 16, 3, stride=2, padding=1), torch.nn.ReLU())
    backbone.out_channels = 16
    return MaskRCNN(backbone, num_classes=None, min_size=64, max_size=96,
                    rpn_anchor_generator=AnchorGenerator(((8, 16, 32),), ((0.5, 1.0, 2.0),)),
                    box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
                    box_head=TwoMLPHead(16 * 49, 32), box_predictor=FastRCNNPredictor(32, 91),
                    mask_head=MaskRCNNHeads(16, [16], 1), mask_predictor=MaskRCNNPredictor(16, 16, 91),
                    rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=60, box_detections_per_img=60).eval()


def save_tiny_maskrcnn(path: Path, seed: int = 0) -> Path:
    """A plain state dict (as torchvision's file); dogs and teddy bears are lifted over the 0.3 threshold."""
    torch.manual_seed(seed)
    model = tiny_maskrcnn()
    with torch.no_grad():
        cls = model.roi_heads.box_predictor.cls_score
        cls.weight.mul_(20)
        cls.bias.zero_()
        cls.bias[DOG], cls.bias[TEDDY] = 9.5, 9.0
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from metric_models import save_tiny_hf_clip

    root = tmp_path_factory.mktemp("geneval")
    save_tiny_maskrcnn(root / "weights" / ge.DETECTOR_WEIGHT)
    save_tiny_hf_clip(root / "weights" / ge.CLIP_WEIGHT, seed=7)
    return root


@pytest.fixture()
def tiny(weights, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", "{}")  # set, not deleted: teardown then removes what --weights adds
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(weights / "weights"))
    monkeypatch.setenv("BENCHKIT_CACHE", str(weights / "cache"))
    monkeypatch.setattr(ge, "build_detector", tiny_maskrcnn)
    return weights


def _batch(n_seeds: int = 1) -> SampleBatch:
    records = {r.prompt_id: r for r in load_prompt_set("geneval").records}
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (80, 96), (96, 64), (72, 72)]
    images, recs = [], []
    for k, pid in enumerate(PROMPT_IDS):
        for seed in range(n_seeds):
            images.append(rng.integers(0, 256, (*sizes[(k + seed) % 4], 3), dtype=np.uint8))
            recs.append({"prompt_id": pid, "prompt": records[pid].prompt, "seed": seed, "meta": dict(records[pid].meta)})
    return SampleBatch(images, recs)


def _direct_detections(model: torch.nn.Module, image: np.ndarray) -> list[Detection]:
    """torchvision's model called directly, its output converted as GenEval's detector output is read."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

    categories = MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"]
    renamed = {"mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard"}
    with torch.no_grad():
        out = model([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    dets = []
    for box, label, score, mask in zip(out["boxes"], out["labels"], out["scores"], out["masks"]):
        name = renamed.get(categories[int(label)], categories[int(label)])
        if name in CLASSNAMES and np.float32(score.item()) > np.float32(0.3):
            dets.append(Detection(name, score.item(), box.tolist(), (mask[0] > 0.5).numpy()))
    return dets


def test_metric_feeds_torchvision_detections_to_the_rules(tiny, monkeypatch):
    seen = []

    colour_calls = []

    def spy(meta, detections, classify, options):
        detections = list(detections)

        def counted(objects, classname):
            colour_calls.append(classname)
            return classify(objects, classname)

        decision = decide(meta, detections, counted, options)
        seen.append((meta, detections, decision))
        return decision

    monkeypatch.setattr(ge, "decide", spy)
    ctx = MetricContext(cache_dir=tiny / "cache")
    batch = _batch()
    first, second = build_metrics(["geneval", "geneval"], ctx)
    half = len(batch.records) // 2
    first.update(batch.subset(list(range(half))))
    second.update(batch.subset(list(range(half, len(batch.records)))))
    first.merge(first.with_state(second.state_dict()))
    values = {v.name: v for v in first.compute()}

    model = tiny_maskrcnn()  # the same weights, loaded here without benchkit
    model.load_state_dict(torch.load(tiny / "weights" / ge.DETECTOR_WEIGHT, weights_only=True))
    assert len(seen) == len(batch.records)
    n_kept = 0
    for image, record, (meta, got, decision) in zip(batch.images, batch.records, seen):
        want = _direct_detections(model, image)
        n_kept += len(want)
        assert meta == record["meta"]
        assert [(d.name, d.score, list(d.box)) for d in got] == [(d.name, d.score, list(d.box)) for d in want]
        assert all(g.mask.shape == image.shape[:2] and np.array_equal(g.mask, w.mask) for g, w in zip(got, want))
        colours = first.judge.colors
        again = decide(meta, want, lambda objs, cls, im=Image.fromarray(image): colours(im, objs, cls), Options())
        assert again.correct == decision.correct
    assert n_kept > 0 and {d.correct for _, _, d in seen} == {True, False}  # the wiring is exercised both ways
    assert colour_calls and any("target" in d.reason for _, _, d in seen)  # and reaches the colour and position steps

    summary = summarize((r["prompt_id"], r["meta"]["tag"], d.correct) for r, (_, _, d) in zip(batch.records, seen))
    assert values["geneval"].value == summary.overall and values["geneval"].n == len(batch.records)
    assert {name[len("geneval_"):]: v.value for name, v in values.items() if name != "geneval"} == \
        {tag: summary.accuracy(tag) for tag in summary.tasks}
    variant = values["geneval"].variant
    assert "not the paper's" in variant["comparability"] and "Mask R-CNN" in variant["comparability"]
    assert set(variant["weights_sha256"]) == {ge.DETECTOR_WEIGHT, ge.CLIP_WEIGHT}


def test_colour_classifier_is_clip_zero_shot(tiny):
    from transformers import CLIPModel, CLIPTokenizer

    clf = ge.ClipColorClassifier(torch.device("cpu"))
    folder = tiny / "weights" / ge.CLIP_WEIGHT
    model, tok = CLIPModel.from_pretrained(str(folder)).eval(), CLIPTokenizer.from_pretrained(str(folder))
    image = Image.fromarray(pattern_image(120, 160))
    mask = np.zeros((120, 160), dtype=bool)
    mask[30:90, 20:100] = True
    objects = [Detection("dog", 0.9, [10, 20, 110, 100], mask), Detection("dog", 0.8, [60.4, 0.6, 159.5, 119.5]),
               Detection("dog", 0.7, [0, 0, 40, 30])]
    with torch.no_grad():
        columns = []
        for colour in COLORS:
            ids = tok([f"a photo of a {colour} dog", f"a photo of a {colour}-colored dog", f"a photo of a {colour} object"],
                      padding=True, return_tensors="pt")
            emb = model.get_text_features(**ids)
            emb = emb if isinstance(emb, torch.Tensor) else emb.pooler_output
            mean = torch.nn.functional.normalize(emb, dim=-1).mean(0)
            columns.append(mean / mean.norm())
        pixels = torch.stack([ge.clip_input(ge.color_crop(image, o), 224) for o in objects])
        feats = model.get_image_features(pixel_values=pixels)
        feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
        logits = torch.nn.functional.normalize(feats, dim=-1) @ torch.stack(columns, dim=1)
    torch.testing.assert_close(clf.classifier("dog"), torch.stack(columns, dim=1))
    assert clf(image, objects, "dog") == [COLORS[i] for i in logits.argmax(1).tolist()]
    crop = np.asarray(ge.color_crop(image, objects[0]))
    assert crop.shape == (80, 100, 3) and (crop[:10] == 153).all() and (crop[10:70, 10:90] == pattern_image(120, 160)[30:90, 20:100]).all()


def test_check_refuses_prompts_without_geneval_metadata_before_any_work(tmp_path, monkeypatch):
    from metrics import REGISTRY

    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", "{}")
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path / "empty"))  # no weights: looking for them would fail differently
    ctx = MetricContext(cache_dir=tmp_path)
    records = [{"prompt_id": r.prompt_id, "prompt": r.prompt, "meta": dict(r.meta)} for r in load_prompt_set("toy-digits").records]
    with pytest.raises(BenchkitError) as err:
        REGISTRY["geneval"].check(ScorePlan(records, 1), ctx)
    assert "GenEval metadata" in str(err.value) and "\n" not in str(err.value)
    geneval = [{"prompt_id": r.prompt_id, "prompt": r.prompt, "meta": dict(r.meta)} for r in load_prompt_set("geneval").records]
    with pytest.raises(BenchkitError, match=f"weights '{ge.DETECTOR_WEIGHT}' not found"):
        REGISTRY["geneval"].check(ScorePlan(geneval, 1), ctx)


def test_detector_file_is_read_as_data(tiny, tmp_path):
    import pickle

    from metrics.weights import ResolvedWeight

    bad = tmp_path / "bad.pth"
    bad.write_bytes(pickle.dumps(Image.new("RGB", (2, 2))))  # a pickle that needs code to load
    for path in (bad, tiny / "weights" / ge.CLIP_WEIGHT / "config.json"):
        weight = ResolvedWeight(ge.DETECTOR_WEIGHT, path, path, "0" * 64, "unverified", "test")
        with pytest.raises(BenchkitError, match="do not load into torchvision maskrcnn_resnet50_fpn_v2") as err:
            ge.load_detector(weight, torch.device("cpu"))
        assert "\n" not in str(err.value)


def test_cli_scores_a_folder_by_tag(tiny, cli, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    batch = _batch().subset([0, 2, 3, 6])
    for image, record in zip(batch.images, batch.records):
        Image.fromarray(image).save(folder / f"{record['prompt_id']}_0.png")
    code, _, err = cli("score", str(folder), "-p", "geneval", "--metrics", "geneval", "--device", "cpu", "-q",
                       "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out"))
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    values = {m["name"]: m for m in results["metrics"]}
    tags = {r["meta"]["tag"] for r in batch.records}
    assert set(values) == {"geneval", *(f"geneval_{t}" for t in tags)}
    assert values["geneval"]["value"] == pytest.approx(np.mean([values[f"geneval_{t}"]["value"] for t in tags]))
    plain = tmp_path / "plain.csv"  # the same ids and prompts, no GenEval metadata
    plain.write_text("prompt_id,prompt\n" + "".join(f"{r['prompt_id']},{r['prompt']}\n" for r in batch.records))
    code, _, err = cli("score", str(folder), "-p", str(plain), "--metrics", "geneval", "--device", "cpu", "-q",
                       "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out2"))
    assert code == 2 and "GenEval metadata" in err


def test_breakdown_groups_reuse_the_decisions_of_their_chunk(tiny, monkeypatch):
    """The per-tag breakdown scores each group with its own copy of the metric; the detector still runs once per image."""
    from metrics.breakdown import Breakdown

    calls = []
    real = ge.MaskRCNNDetector.__call__
    monkeypatch.setattr(ge.MaskRCNNDetector, "__call__", lambda self, image: calls.append(1) or real(self, image))
    ctx = MetricContext(cache_dir=tiny / "cache")
    metric, batch = ge.GenEvalScore(ctx), _batch(n_seeds=2)
    breakdown = Breakdown(["tag"], ["geneval"], ctx)
    metric.update(batch)
    breakdown.update(batch)
    assert len(calls) == len(batch.records)
    alone = ge.GenEvalScore(ctx)
    alone.update(_batch(n_seeds=2))  # a fresh chunk: judged again, to the same decisions
    assert len(calls) == 2 * len(batch.records) and alone.decisions == metric.decisions
    groups = {g["value"]: g for g in breakdown.compute()}
    for tag, group in groups.items():
        mine = [d for d in metric.decisions.values() if d[1] == tag]
        assert group["metrics"][0]["value"] == pytest.approx(sum(d[2] for d in mine) / len(mine))
