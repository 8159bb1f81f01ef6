"""``geneval``: GenEval's object-composition score, with GenEval's rules and a detector that installs here.

GenEval (Ghosh et al., NeurIPS 2023; github.com/djghosh13/geneval, MIT) has 553 prompts in six
tasks (single_object, two_object, counting, colors, position, color_attr; the built-in
``geneval`` prompt set carries each prompt's metadata). An image is correct when an object
detector finds what the metadata asks for: the classes, at least ``count`` of each (and fewer
than an exclude clause's count), the colours (CLIP zero-shot on each object's masked crop) and
the relative positions (box centres with a margin). The task score is the fraction of correct
images, the GenEval score the mean over tasks. The rules are in :mod:`metrics.geneval_rules`,
checked against GenEval's own code (``tests/data/geneval/make_reference.py``).

The detector is not the paper's. GenEval runs mmdetection 2.x's Mask2Former Swin-S
(``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco``), and mmdet/mmcv-full 1.7 do not install
with this torch. benchkit uses torchvision's ``maskrcnn_resnet50_fpn_v2`` COCO_V1 weights
(BSD-3-Clause; box mAP 47.4, mask mAP 41.8 on COCO val2017) because it is the strongest detector
with instance masks that ships with a library benchkit already depends on, needs no extra
package, predicts the same 80 COCO classes GenEval's object names are (torchvision says
"mouse", "remote", "keyboard" where GenEval says "computer mouse", "tv remote", "computer
keyboard"; mapped by COCO category order), and gives the per-object masks GenEval's colour step
uses. Its numbers are therefore "GenEval rules with detector torchvision Mask R-CNN R50-FPN v2":
they rank models against each other, but are not the paper's numbers nor anyone's published
GenEval score, and every value's variant says so.

Detector use: one image at a time (as GenEval's ``inference_detector`` on one file, and so a
batch's composition cannot change a result), RGB in [0, 1], torchvision's default post-processing
(score > 0.05, per-class NMS 0.5, at most 100 detections); a mask is the mask head's probability
> 0.5 at the image's size. The rules then keep scores above 0.3 (0.9 for counting prompts).

Colour: as GenEval (evaluate_images.py l.81-127): the object's pixels outside its mask are set
to #999, the image is cropped to its box, and CLIP ViT-L/14 (OpenAI weights, here in the
transformers layout of the ``clip-vit-large-patch14`` weight entry; GenEval loads the same
weights through open_clip) classifies it among ten colours with three templates per colour
(text embeddings normalised, averaged, normalised, as clip_benchmark's ``zero_shot_classifier``),
after open_clip's OpenAI eval transform (bicubic resize of the short side to 224, centre crop,
CLIP mean/std). GenEval runs CLIP under CUDA autocast (fp16); benchkit runs it in float32.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics import preprocess as pp
from metrics.base import Metric, MetricContext, MetricValue, SampleBatch, ScorePlan, item_key
from metrics.geneval_rules import (CLASSNAMES, COLOR_TEMPLATES, COLORS, DEFAULT_OPTIONS, GENEVAL_COMMIT, GENEVAL_REPO, TAGS,
                                   Detection, Options, decide, metadata_problem, summarize)
from metrics.model_cache import cached_model
from metrics.weights import ResolvedWeight, library_versions, resolve

DETECTOR_WEIGHT = "maskrcnn-resnet50-fpn-v2-coco"
CLIP_WEIGHT = "clip-vit-large-patch14"
MASK_THRESHOLD = 0.5  # torchvision's (and mmdet Mask R-CNN's mask_thr_binary) binarisation of the mask head
# torchvision's COCO label ids (0 background, 1-90 with 10 unused ids) -> GenEval's class names, in COCO order
_UNUSED_IDS = (0, 12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
COCO_ID_TO_CLASS: dict[int, str] = dict(zip([i for i in range(91) if i not in _UNUSED_IDS], CLASSNAMES))
# open_clip's OpenAI CLIP normalisation (open_clip.constants OPENAI_DATASET_MEAN / _STD)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VARIANT_NOTE = ("GenEval rules with detector torchvision Mask R-CNN R50-FPN v2 (COCO_V1), not the paper's mmdet Mask2Former "
                "Swin-S: not comparable with published GenEval scores")


def build_detector() -> torch.nn.Module:
    """The architecture the weight file fills: torchvision's Mask R-CNN ResNet-50 FPN v2, 91 COCO ids."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    return maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=91)


def load_detector(weight: ResolvedWeight, device: torch.device) -> torch.nn.Module:
    """The detector from a local state-dict file (read as data: ``weights_only=True``), never the network."""
    try:
        state = torch.load(weight.hashed_file, map_location="cpu", weights_only=True)
        model = build_detector()
        model.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise BenchkitError(f"weights '{weight.name}' at {weight.hashed_file} do not load into torchvision "
                            f"maskrcnn_resnet50_fpn_v2 ({str(exc).splitlines()[0][:200]}); check the file "
                            "(see `benchkit weights`)") from None
    return model.float().eval().to(device)


class MaskRCNNDetector:
    """Detections of one image in the rule engine's format (class names, float32 boxes and scores, bool masks)."""

    def __init__(self, device: torch.device, min_score: float):
        self.weight = resolve(DETECTOR_WEIGHT)
        self.device = device
        self.min_score = min_score  # lower ones can never pass the rules' thresholds; dropped before masks are kept
        self.model = cached_model(("torchvision-maskrcnn-v2", str(self.weight.hashed_file), self.weight.sha256, str(device)),
                                  lambda: load_detector(self.weight, device))

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        """The detections of one HxWx3 uint8 image; masks are binarised on the device, for the kept ones only."""
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255).to(self.device)
        out = self.model([x])[0]
        keep = out["scores"] > self.min_score  # float32, as the rules compare
        scores = out["scores"][keep].cpu().numpy()
        boxes = out["boxes"][keep].cpu().numpy()
        labels = out["labels"][keep].cpu().tolist()
        masks = list((out["masks"][keep, 0] > MASK_THRESHOLD).cpu().numpy())
        return [Detection(COCO_ID_TO_CLASS[label], float(score), box.tolist(), mask)
                for label, score, box, mask in zip(labels, scores, boxes, masks) if label in COCO_ID_TO_CLASS]


def color_crop(image: Image.Image, det: Detection, bgcolor: str = DEFAULT_OPTIONS.bgcolor) -> Image.Image:
    """What GenEval's colour classifier sees of one object (evaluate_images.py ``ImageCrops``, l.94-106):
    the pixels outside its mask replaced by ``bgcolor``, then the box cropped (PIL rounds the float
    box). A box under half a pixel wide or high, whose crop would be empty (GenEval fails there),
    is widened to one pixel."""
    if det.mask is not None:
        mask = np.asarray(det.mask, dtype=bool)
        if mask.shape != (image.height, image.width):
            raise ValueError(f"mask of shape {mask.shape} for an image of {image.height}x{image.width}")
        image = Image.composite(image, Image.new("RGB", image.size, color=bgcolor), Image.fromarray(mask))
    x1, y1, x2, y2 = (float(v) for v in det.row()[:4])
    if round(x2) <= round(x1):
        x2 = round(x1) + 1
    if round(y2) <= round(y1):
        y2 = round(y1) + 1
    return image.crop((x1, y1, x2, y2))


def clip_input(image: Image.Image, size: int) -> torch.Tensor:
    """open_clip's OpenAI eval transform (Resize short side bicubic, CenterCrop, ToTensor, Normalize)."""
    import torchvision.transforms as T

    transform = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size), T.ToTensor(),
                           T.Normalize(CLIP_MEAN, CLIP_STD)])
    return transform(image.convert("RGB"))


class ClipColorClassifier:
    """GenEval's zero-shot colour classifier (evaluate_images.py ``color_classification``, l.109-127)."""

    def __init__(self, device: torch.device):
        from metrics.clip_score import load_hf_clip

        self.weight = resolve(CLIP_WEIGHT)
        self.device = device
        self.model, self.processor = cached_model(("hf_clip", str(self.weight.path), self.weight.sha256, str(device)),
                                                  lambda: load_hf_clip(self.weight, device))
        self.size = int(self.model.config.vision_config.image_size)
        self.classifiers: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def classifier(self, classname: str) -> torch.Tensor:
        """(dim, colours): per colour, the normalised mean of the normalised template embeddings."""
        from metrics.scorers import hf_features

        if classname not in self.classifiers:
            columns = []
            for color in COLORS:
                texts = [t.format(c=color, classname=classname) for t in COLOR_TEMPLATES]
                tok = self.processor.tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
                emb = hf_features(self.model.get_text_features(input_ids=tok["input_ids"].to(self.device),
                                                               attention_mask=tok["attention_mask"].to(self.device)))
                mean = torch.nn.functional.normalize(emb.float(), dim=-1).mean(dim=0)
                columns.append(mean / mean.norm())
            self.classifiers[classname] = torch.stack(columns, dim=1)
        return self.classifiers[classname]

    @torch.no_grad()
    def __call__(self, image: Image.Image, objects: list[Detection], classname: str) -> list[str]:
        from metrics.scorers import hf_features

        if not objects:
            return []
        pixels = torch.stack([clip_input(color_crop(image, obj), self.size) for obj in objects]).to(self.device)
        features = torch.nn.functional.normalize(hf_features(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1)
        logits = 100.0 * features @ self.classifier(classname)
        return [COLORS[i] for i in logits.argmax(dim=1).tolist()]


class GenEvalJudge:
    """Detector, colour classifier and rules together: one image and its metadata -> a Decision."""

    def __init__(self, device: torch.device, options: Options = DEFAULT_OPTIONS):
        self.options = options
        self.detector = MaskRCNNDetector(device, min(options.threshold, options.counting_threshold))
        self.colors = ClipColorClassifier(device)

    def __call__(self, image: np.ndarray, meta: dict[str, Any]):
        rgb = pp.to_rgb_uint8(image)
        pil = Image.fromarray(rgb)
        return decide(meta, self.detector(rgb), lambda objects, classname: self.colors(pil, objects, classname), self.options)

    def variant(self) -> dict[str, Any]:
        return {
            "protocol": f"geneval rules ({GENEVAL_REPO}@{GENEVAL_COMMIT[:7]})", "comparability": VARIANT_NOTE,
            "detector": "torchvision maskrcnn_resnet50_fpn_v2 COCO_V1, default post-processing, masks > 0.5, one image per call",
            "paper_detector": "mmdet 2.x mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco (not used)",
            "color_model": "openai/clip-vit-large-patch14 (transformers), float32, open_clip OpenAI eval transform",
            "color_templates": list(COLOR_TEMPLATES), "options": asdict(self.options),
            "weights_sha256": {DETECTOR_WEIGHT: self.detector.weight.sha256, CLIP_WEIGHT: self.colors.weight.sha256},
            "libraries": library_versions("torch", "torchvision", "transformers", "pillow", "numpy"),
        }


def _problem(record: dict[str, Any]) -> str | None:
    problem = metadata_problem(record.get("meta"))
    if problem:
        return (f"geneval needs each prompt's GenEval metadata (tag, include, exclude) in its meta: prompt "
                f"{record.get('prompt_id')} {problem}; use -p geneval or GenEval's evaluation_metadata.jsonl")
    return None


@register_metric()
class GenEvalScore(Metric):
    name = "geneval"
    protocol = "GenEval rules (af4902f) with torchvision Mask R-CNN R50-FPN v2 detections and CLIP ViT-L/14 colours; not the paper's detector"
    description = ("GenEval object-composition accuracy (mean over its six tasks) with GenEval's rules and torchvision "
                   "Mask R-CNN R50-FPN v2 instead of the paper's Mask2Former: not the paper's numbers")
    weights = (DETECTOR_WEIGHT, CLIP_WEIGHT)
    scale = "fraction of images judged correct, 0-1; geneval = mean over the tasks present"
    higher_is_better = True

    @classmethod
    def check(cls, plan: ScorePlan, ctx: MetricContext) -> None:
        for record in plan.records:  # before the weights are looked for and hashed
            problem = _problem(record)
            if problem:
                raise BenchkitError(problem)
        super().check(plan, ctx)

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), "prompts with GenEval metadata (-p geneval)"]

    @classmethod
    def value_names(cls) -> tuple[str, ...]:
        return (cls.name, *(f"{cls.name}_{tag}" for tag in TAGS))

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.judge = GenEvalJudge(ctx.device)
        self.add_state("decisions", {}, merge="update")  # item key -> [prompt id, tag, correct]

    def update(self, batch: SampleBatch) -> None:
        # a breakdown group's copy of this metric scores a subset of the same chunk: the detector runs once per image
        judge = self.judge
        judged = batch.memo.setdefault(
            f"{self.name}:{judge.detector.weight.sha256}:{judge.colors.weight.sha256}:{judge.options!r}", {})
        for i, record in enumerate(batch.records):
            problem = _problem(record)
            if problem:
                raise BenchkitError(problem)
            key = item_key(record)
            if key not in judged:
                judged[key] = self.judge(batch.images[i], record["meta"]).correct
            self.decisions[key] = [str(record.get("prompt_id")), record["meta"]["tag"], judged[key]]

    def compute(self) -> list[MetricValue]:
        if not self.decisions:
            raise BenchkitError(f"{self.name} has no images to score")
        summary = summarize(self.decisions[k] for k in sorted(self.decisions))
        variant = {**self.judge.variant(), "scale": self.scale}
        tasks = {tag: {"correct": c, "images": n, "accuracy": c / n} for tag, (c, n) in summary.tasks.items()}
        extra = {"tasks": tasks, "correct_images": summary.correct_images, "correct_prompts": summary.correct_prompts,
                 "prompts": summary.prompts}
        values = [MetricValue(self.name, summary.overall, "fraction", True, summary.images, variant, extra)]
        for tag in TAGS:
            if tag in summary.tasks:
                correct, n = summary.tasks[tag]
                values.append(MetricValue(f"{self.name}_{tag}", correct / n, "fraction", True, n, variant,
                                          {"correct": correct}))
        return values
