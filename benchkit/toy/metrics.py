"""Toy-world metrics: FID, prompt alignment and diversity on the toy digits classifier.

They follow the real metrics' protocols in miniature: toy FID is a Frechet distance over a
pluggable extractor with cached reference statistics (the scikit-learn digits stand in for
COCO), toy alignment is the classifier's probability of the prompted digit (as CLIP score
asks "does the image show the prompt"), toy diversity is the mean pairwise feature distance
between the seeds of one prompt (as LPIPS diversity).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from benchkit.toy.data import digit_of_prompt, load_digits_uint8
from metrics import register_metric
from metrics.base import (
    FeatureMoments,
    Metric,
    MetricContext,
    MetricValue,
    SampleBatch,
    ScorePlan,
    item_key,
)
from metrics.feature_store import FeatureView
from metrics.features import get_extractor, register_extractor, to_grayscale
from metrics.frechet import frechet_distance
from metrics.uncertainty import frechet_interval, interval, prompt_interval
from metrics.model_cache import cached_model
from metrics.pair_distances import PairDistance, register_pair_distance
from metrics.refstats import cached_stats
from metrics.rewards import RewardFn, register_reward
from metrics.prdc import PRDCMetric
from metrics.vendi import VendiMetric

TOY_SIZE = (8, 8)  # the toy world's images: 8x8 grey digits


def _extractor(name: str, ctx: MetricContext):
    """The registered extractor ``name`` on the context's device, loaded once (its weights ship with benchkit)."""
    return cached_model(("extractor", name, str(ctx.device)), lambda: get_extractor(name)(ctx.device))


@register_extractor("toy-digits-classifier")
class ToyDigitsExtractor:
    """Penultimate features of benchkit's toy digits classifier (the toy world's Inception)."""

    name = "toy-digits-classifier"

    def __init__(self, device: torch.device = torch.device("cpu")):
        from benchkit.toy import CLASSIFIER_DIR
        from benchkit.toy.classifier import FEATURE_DIM, load_classifier

        self.model = load_classifier(CLASSIFIER_DIR).to(device)
        self.device = device
        self.dim = FEATURE_DIM
        self.weights_sha256 = hashlib.sha256((CLASSIFIER_DIR / "model.safetensors").read_bytes()).hexdigest()

    preprocess_key = "toy-digits-classifier:gray8"

    @staticmethod
    def preprocess(image: np.ndarray) -> np.ndarray:
        """One image as the classifier reads it: an 8x8 grey digit (idempotent: a prepared image passes as is)."""
        if image.shape[:2] != (8, 8):  # resizing a real image to 8x8 grey would score it as a digit, silently
            raise BenchkitError(f"the toy digits classifier reads only 8x8 digits, got an image of "
                                f"{image.shape[0]}x{image.shape[1]}; toy metrics are for the toy world")
        return to_grayscale(image)

    def _input(self, images: list[np.ndarray]) -> torch.Tensor:
        from benchkit.toy.classifier import images_to_input

        return images_to_input(np.stack([self.preprocess(im) for im in images])).to(self.device)

    def _per_image(self, fn, images: list[np.ndarray]) -> torch.Tensor:
        # One image per forward: CPU conv/GEMM kernels round differently for different batch
        # sizes, and per-image calls make features bit-identical however runs are batched or
        # sharded. The toy network is small enough (0.2 s for 1,797 digits) to afford it.
        x = self._input(images)
        return torch.cat([fn(x[i : i + 1]) for i in range(len(x))]).double().cpu()

    @torch.no_grad()
    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        return self._per_image(self.model.features, images).numpy()

    @torch.no_grad()
    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        return torch.softmax(self._per_image(self.model, images), dim=1).numpy()



def _check_toy_images(name: str, plan: ScorePlan) -> None:
    """Toy metrics read the toy world's 8x8 digits; a real model's images would be shrunk to 8x8
    grey and scored as if they were digits, which means nothing."""
    if plan.family is not None and plan.family != "toy":
        raise BenchkitError(f"{name} scores only the toy world's digits, not a {plan.family} model's images; "
                            "choose metrics for real images (e.g. clip-score, fid)")
    wrong = sorted(s for s in plan.image_sizes or () if s != TOY_SIZE)
    if wrong:
        raise BenchkitError(f"{name} scores only the toy world's 8x8 digits, these images are "
                            f"{wrong[0][0]}x{wrong[0][1]}; choose metrics for real images (e.g. clip-score, fid)")


class ToyMetric(Metric):
    """A metric of the toy world: it reads 8x8 digits only, and refuses anything else up front.

    Its extractor's ``preprocess`` (the 8x8 check and grey conversion), when it has one, runs in
    the scorer's workers, shared by every toy metric on the same extractor."""

    extractor: object

    def _prep_key(self) -> str:
        return getattr(self.extractor, "preprocess_key", f"{self.extractor.name}:preprocess")

    def preprocessors(self):
        prep = getattr(self.extractor, "preprocess", None)
        return {self._prep_key(): prep} if prep is not None else {}

    def view(self) -> FeatureView:
        """The extractor's features of the prepared 8x8 digit: cached per image content (metrics.feature_store)."""
        return FeatureView(self.extractor.name, self.extractor.weights_sha256, self._prep_key(), self.extractor.dim)

    def features(self, batch: SampleBatch) -> np.ndarray:
        """The batch's extractor features, stored or computed (shared by every toy metric on the extractor)."""
        return self.view_features(batch, self.view(), self.extractor, self.images)

    def images(self, batch: SampleBatch) -> list[np.ndarray]:
        """The batch's images as prepared by the scorer, or as they are (the extractor prepares
        them itself, and its preparation is idempotent)."""
        key = self._prep_key()
        return self.prepared(batch, key) if key in batch.prepared else batch.images

    @classmethod
    def check(cls, plan: ScorePlan, ctx: MetricContext) -> None:
        super().check(plan, ctx)
        _check_toy_images(cls.name, plan)

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), "the toy world's 8x8 digits"]


@register_metric()
class ToyFID(ToyMetric):
    scale = "Frechet distance of toy-classifier features, 0 up"
    higher_is_better = False
    name = "toy-fid"
    description = "Frechet distance to the 1,797 scikit-learn digits in toy-classifier feature space"
    protocol = "toy-v1: grayscale uint8 8x8, /255, no resize"

    takes_reference = True

    def __init__(self, ctx: MetricContext, extractor: str = ToyDigitsExtractor.name):
        super().__init__(ctx)
        self.extractor = _extractor(extractor, ctx)
        self.add_state("moments", FeatureMoments(self.extractor.dim), merge="moments")
        self.add_state("feats", {}, merge="update")  # item key -> features, for the bootstrap interval

    def feature_views(self):
        return [self.view()]

    def update(self, batch: SampleBatch) -> None:
        feats = self.features(batch)
        self.moments.update(feats)
        for rec, f in zip(batch.records, feats):
            self.feats[item_key(rec)] = f.astype(np.float32)

    def reference(self):
        """(mu, sigma, n, what the reference is): --reference's images, else the scikit-learn digits."""
        ref = self.ctx.reference
        if ref is not None:
            moments = FeatureMoments(self.extractor.dim)
            moments.update(ref.features(self.view(), self.extractor.preprocess, self.extractor))
            mu, sigma = moments.mean_cov()
            return mu, sigma, moments.n, {"reference": ref.name, **{f"reference_{k}": v for k, v in ref.describe().items()}}
        mu, sigma, n, key, _ = self.digits_reference()
        return mu, sigma, n, {"reference": "sklearn-digits-all", "reference_stats_key": key}

    def digits_reference(self):
        images, _ = load_digits_uint8()
        parts = {
            "reference": "sklearn-digits-all",
            "reference_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
            "extractor": self.extractor.name,
            "extractor_sha256": self.extractor.weights_sha256,
            "protocol": self.protocol,
        }

        def compute():
            ref = FeatureMoments(self.extractor.dim)
            for start in range(0, len(images), 512):
                ref.update(self.extractor(list(images[start : start + 512])))
            mu, sigma = ref.mean_cov()
            return mu, sigma, ref.n

        return cached_stats(self.ctx.cache_dir, parts, compute)

    def compute(self) -> list[MetricValue]:
        if self.moments.n < 2:
            raise BenchkitError("toy-fid needs at least 2 images")
        mu_r, sigma_r, n_r, about = self.reference()
        mu, sigma = self.moments.mean_cov()
        value = frechet_distance(mu, sigma, mu_r, sigma_r)
        variant = {
            "extractor": self.extractor.name,
            "extractor_sha256": self.extractor.weights_sha256,
            **about,
            "reference_n": n_r,
            "protocol": self.protocol,
        }
        extra = {"interval": frechet_interval(self.feats, value, mu_r, sigma_r, strata=self.ctx.strata)} \
            if self.ctx.frechet_intervals else {}
        return [MetricValue(self.name, value, "fid", False, self.moments.n, variant, extra)]


def _target_digit(record: dict) -> int:
    meta_digit = (record.get("meta") or {}).get("digit")
    if meta_digit not in (None, ""):
        text = str(meta_digit).strip()
        if not (text.isdigit() and len(text) == 1):
            raise BenchkitError(f"toy-alignment: prompt {record['prompt_id']} has digit={meta_digit!r}; "
                                "the digit field must be one of 0-9")
        return int(text)
    digit = digit_of_prompt(record["prompt"])
    if digit is None:
        raise BenchkitError(f"toy-alignment: prompt {record['prompt']!r} ({record['prompt_id']}) names no single digit")
    return digit


@register_metric()
class ToyAlignment(ToyMetric):
    scale = "probability 0-1"
    higher_is_better = True
    name = "toy-alignment"
    protocol = "toy-v1: grayscale uint8 8x8, /255, no resize"
    description = "Mean toy-classifier probability of the digit the prompt asks for (and top-1 accuracy)"

    @classmethod
    def check(cls, plan: ScorePlan, ctx: MetricContext) -> None:
        super().check(plan, ctx)
        for record in plan.records:
            _target_digit(record)

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.extractor = _extractor(ToyDigitsExtractor.name, ctx)
        self.add_state("probs", {}, merge="update")  # item key -> probability of the prompted digit
        self.add_state("correct", 0, merge="sum")

    def update(self, batch: SampleBatch) -> None:
        probs = self.extractor.probabilities(self.images(batch))
        targets = np.array([_target_digit(r) for r in batch.records])
        for rec, p in zip(batch.records, probs[np.arange(len(targets)), targets]):
            self.probs[item_key(rec)] = float(p)
        self.correct += int((probs.argmax(1) == targets).sum())

    def item_scores(self) -> dict[str, float]:
        return self.probs

    def compute(self) -> list[MetricValue]:
        variant = {"classifier": self.extractor.name, "classifier_sha256": self.extractor.weights_sha256}
        n = len(self.probs)
        mean = float(np.mean([self.probs[k] for k in sorted(self.probs)]))
        return [
            MetricValue(self.name, mean, "probability", True, n, variant,
                        {"accuracy": self.correct / n, "interval": interval(self.probs, strata=self.ctx.strata)}),
        ]


@register_metric()
class ToyDiversity(ToyMetric):
    scale = "feature L2 distance, 0 up"
    higher_is_better = True
    name = "toy-diversity"
    protocol = "toy-v1: grayscale uint8 8x8, /255, no resize"
    description = "Mean pairwise L2 distance of toy-classifier features across the seeds of each prompt"
    compares_seeds = True

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.extractor = _extractor(ToyDigitsExtractor.name, ctx)
        self.add_state("by_prompt", defaultdict(dict), merge="update_each")  # prompt -> {seed: features}

    def feature_views(self):
        return [self.view()]

    def update(self, batch: SampleBatch) -> None:
        feats = self.features(batch)
        for rec, f in zip(batch.records, feats):
            self.by_prompt[rec["prompt_id"]][int(rec["seed"])] = f

    def compute(self) -> list[MetricValue]:
        per_prompt = {}
        for prompt_id, seeds in self.by_prompt.items():
            feats = [seeds[s] for s in sorted(seeds)]
            if len(feats) < 2:
                continue
            per_prompt[prompt_id] = float(np.mean([np.linalg.norm(a - b) for a, b in itertools.combinations(feats, 2)]))
        if not per_prompt:
            raise BenchkitError("toy-diversity needs at least 2 seeds per prompt (e.g. --seeds 0-3)")
        variant = {"extractor": self.extractor.name, "extractor_sha256": self.extractor.weights_sha256, "distance": "l2"}
        n = sum(len(s) for s in self.by_prompt.values())
        return [MetricValue(self.name, float(np.mean(list(per_prompt.values()))), "feature-l2", True, n, variant,
                            {"prompts": len(per_prompt), "interval": prompt_interval(per_prompt, self.ctx.strata)})]


@register_metric()
class ToyVendi(ToyMetric, VendiMetric):
    """The Vendi score on the toy classifier's features: all images, and each prompt's seeds (see metrics.vendi)."""

    name = "toy-vendi"
    description = "Vendi score (q=1, cosine) of toy-classifier features: all images, and each prompt's seeds"
    protocol = "toy-v1: grayscale uint8 8x8, /255, no resize"

    def load_extractor(self, ctx: MetricContext):
        return _extractor(ToyDigitsExtractor.name, ctx)

    def feature_views(self):
        return [self.view()]


@register_metric()
class ToyPRDC(ToyMetric, PRDCMetric):
    """Precision, recall, density and coverage (k=5) of toy-classifier features against a reference
    (see metrics.prdc): --reference's images, else the 1,797 scikit-learn digits."""

    name = "toy-prdc"
    description = ("precision, recall, density, coverage (k=5) of toy-classifier features against --reference "
                   "(default: the scikit-learn digits)")
    protocol = "toy-v1: grayscale uint8 8x8, /255, no resize"

    def __init__(self, ctx: MetricContext):
        self.extractor = _extractor(ToyDigitsExtractor.name, ctx)
        super().__init__(ctx)

    def extract(self, prepared) -> np.ndarray:
        return self.extractor(prepared)

    def prepare_one(self, image: np.ndarray) -> np.ndarray:
        return self.extractor.preprocess(image)

    def default_reference(self):
        images, _ = load_digits_uint8()
        return self.extractor(list(images)), {"reference": "sklearn-digits-all",
                                              "reference_sha256": hashlib.sha256(images.tobytes()).hexdigest()}


@register_reward("toy-alignment")
def toy_alignment_reward(device: torch.device) -> RewardFn:
    """The toy classifier's log-probability of the prompted digit: a differentiable scorer
    (the toy counterpart of ImageReward / an aesthetic predictor)."""
    from benchkit.toy import CLASSIFIER_DIR
    from benchkit.toy.classifier import load_classifier
    from benchkit.toy.data import digit_of_prompt

    clf = load_classifier(CLASSIFIER_DIR).to(device).eval().requires_grad_(False)

    def reward(x0: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        # images_to_input maps uint8 to the classifier's input; the same map, differentiable, from [-1, 1]:
        images = ((x0.float().clamp(-1, 1) + 1) * 127.5)
        from benchkit.toy.classifier import images_to_input

        probe = images_to_input(torch.zeros(1, 8, 8, dtype=torch.uint8).numpy())
        scale = images_to_input((torch.full((1, 8, 8), 255, dtype=torch.uint8)).numpy()) - probe
        inputs = probe.to(device) + images / 255.0 * scale.to(device)
        targets = torch.tensor([digit_of_prompt(p) or 0 for p in prompts], device=device)
        return torch.log_softmax(clf(inputs), 1)[torch.arange(len(targets)), targets]

    return reward


def _toy_feature_l2(device: torch.device):
    extractor = cached_model(("extractor", ToyDigitsExtractor.name, str(device)), lambda: ToyDigitsExtractor(device))

    def distance(a, b) -> np.ndarray:
        return np.linalg.norm(extractor(list(a)) - extractor(list(b)), axis=1)

    return distance


register_pair_distance(PairDistance("toy-feature-l2", "L2 distance of the toy classifier's features (the toy "
                                    "world's stand-in for LPIPS and DINO)", "feature-l2",
                                    lambda shape: shape[:2] == TOY_SIZE, _toy_feature_l2))
