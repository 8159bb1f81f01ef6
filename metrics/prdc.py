"""Precision, recall, density and coverage (Naeem et al., "Reliable Fidelity and Diversity Metrics for
Generative Models", ICML 2020), as the authors' ``prdc`` package computes them, with k = 5.

Each real feature gets a k-NN ball (radius: distance to its k-th nearest other real feature; the
package takes the (k+1)-th smallest distance, itself included), and likewise each fake one:

- precision: share of fakes inside some real ball (fidelity);
- recall: share of reals inside some fake ball (diversity);
- density: mean over fakes of the number of real balls holding it, / k (fidelity, outlier-robust);
- coverage: share of reals whose ball holds some fake (mode coverage, the argument between DMD-style
  and adversarial distillers).

Distances are sklearn's Euclidean ``pairwise_distances`` in float64, as the package's (which hands
its float32 inputs to the same function), but computed in row blocks, so 30k x 30k never sits in
memory at once (the package builds the full matrices). A strict ``<`` as in the package.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Sequence

import numpy as np

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import MetricContext, MetricValue, ReferenceFeatureMetric
from metrics.feature_store import FeatureView
from metrics.fid import PROTOCOLS, inception, inception_view, load_reference, reference_index_path, view_preprocessor

NEAREST_K = 5
BLOCK = 2048  # rows per distance block: 2048 x 30k float64 is 0.5 GB


def _distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import sklearn.metrics

    return sklearn.metrics.pairwise_distances(x, y, metric="euclidean")


def _blocks(n: int):
    for start in range(0, n, BLOCK):
        yield slice(start, min(n, start + BLOCK))


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (the (k+1)-th smallest, itself included)."""
    if len(features) <= k:
        raise BenchkitError(f"precision/recall/density/coverage with k={k} need more than {k} images on each side, "
                            f"got {len(features)}")
    out = np.empty(len(features))
    for rows in _blocks(len(features)):
        d = _distances(features[rows], features)
        out[rows] = np.partition(d, k, axis=1)[:, k]
    return out


# A reference's radii by (content digest, k): a breakdown scores every group against the same
# reference, and the k-NN pass over 30k reference features is the expensive part.
_REAL_RADII: dict[tuple[str, int], np.ndarray] = {}


def reference_radii(real: np.ndarray, k: int) -> np.ndarray:
    key = (hashlib.sha256(np.ascontiguousarray(real).tobytes()).hexdigest(), k)
    if key not in _REAL_RADII:
        _REAL_RADII.clear()  # one reference at a time is enough
        _REAL_RADII[key] = knn_radii(real, k)
    return _REAL_RADII[key]


def compute_prdc(real: np.ndarray, fake: np.ndarray, k: int = NEAREST_K) -> dict[str, float]:
    """The four numbers of ``prdc.compute_prdc(real, fake, k)``."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    real_radii = reference_radii(real, k)
    fake_radii = knn_radii(fake, k)
    in_real_balls = np.zeros(len(fake), dtype=np.int64)  # per fake: how many real balls hold it
    real_in_fake_ball = np.zeros(len(real), dtype=bool)  # per real: inside some fake ball
    real_covered = np.zeros(len(real), dtype=bool)  # per real: its nearest fake is inside its ball
    for rows in _blocks(len(real)):
        d = _distances(real[rows], fake)  # real block x all fakes
        inside = d < real_radii[rows, None]
        in_real_balls += inside.sum(axis=0)
        real_in_fake_ball[rows] = (d < fake_radii[None, :]).any(axis=1)
        real_covered[rows] = d.min(axis=1) < real_radii[rows]
    return {
        "precision": float((in_real_balls > 0).mean()),
        "recall": float(real_in_fake_ball.mean()),
        "density": float(in_real_balls.mean() / k),
        "coverage": float(real_covered.mean()),
    }


class PRDCMetric(ReferenceFeatureMetric):
    """PRDC of the run's images against a reference's, on a subclass's feature view.

    A subclass sets ``name`` and ``protocol`` and gives what :class:`~metrics.base.ReferenceFeatureMetric`
    asks for (its view, extractor, the reference images' preparation and, when it has one, a default reference).
    """

    description = "precision, recall, density, coverage (k=5) against a reference"
    scale = "fractions 0-1 (density can exceed 1)"
    higher_is_better = True
    nearest_k: ClassVar[int] = NEAREST_K
    protocol: ClassVar[Any]
    values: ClassVar[tuple[str, ...]] = ("precision", "recall", "density", "coverage")

    @classmethod
    def value_name(cls, key: str) -> str:
        """The name ``key`` ("precision", ...) is reported under: prdc's plain names, toy-prdc's "toy-precision"."""
        return cls.name[: -len("prdc")] + key

    @classmethod
    def value_names(cls) -> tuple[str, ...]:
        return tuple(cls.value_name(v) for v in cls.values)

    def about_features(self) -> dict[str, Any]:
        """More of the variant: what a subclass's features are (protocol details beyond the view)."""
        return {}

    def compute(self) -> list[MetricValue]:
        fake = self.run_features(at_least=self.nearest_k + 1)
        real, about = self.reference()
        numbers = compute_prdc(real, fake, self.nearest_k)
        view = self.view()
        variant = {"protocol": self.protocol, "extractor": view.extractor, "extractor_sha256": view.extractor_sha256,
                   "preprocessing": view.preprocessing, "nearest_k": self.nearest_k, "reference_n": len(real),
                   "distance": "euclidean, float64 (sklearn pairwise_distances, as the prdc package)", **about,
                   **self.about_features()}
        return [MetricValue(self.value_name(key), numbers[key], "fraction", True, len(fake), variant) for key in self.values]


_CLEAN_FID = PROTOCOLS["clean-fid"]
_CLEAN_VIEW = _CLEAN_FID.views[0]


@register_metric()
class PRDC(PRDCMetric):
    """PRDC on clean-fid's Inception pool features (FID's clean view: one pass and one stored copy serve both)."""

    name = "prdc"
    description = ("precision, recall, density, coverage (k=5) of clean-fid Inception features against --reference "
                   "(default: the clean-fid COCO reference of `benchkit reference coco --protocol clean-fid`)")
    weights = ("fid-inception",)
    protocol = _CLEAN_FID.name

    @classmethod
    def check(cls, plan, ctx: MetricContext) -> None:
        super().check(plan, ctx)
        if ctx.reference is None and not reference_index_path(ctx.cache_dir, _CLEAN_FID.name).exists():
            raise BenchkitError("prdc compares with a reference: pass --reference RUN_OR_IMAGE_FOLDER, or build the COCO one "
                                "with `benchkit reference coco --coco-dir PATH/val2014 --protocol clean-fid` (same --cache-dir)")

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), "default reference: `benchkit reference coco --protocol clean-fid`"]

    def __init__(self, ctx: MetricContext):
        self.extractor = inception(ctx.device)
        super().__init__(ctx)

    def view(self) -> FeatureView:
        return inception_view(self.extractor, _CLEAN_FID, _CLEAN_VIEW)

    def preprocessors(self):
        return {self.view().preprocessing: view_preprocessor(_CLEAN_VIEW)}

    def extract(self, prepared: Sequence[Any]) -> np.ndarray:
        return self.extractor(prepared)

    def prepare_one(self, image: np.ndarray) -> np.ndarray:
        return view_preprocessor(_CLEAN_VIEW)(image)

    def default_reference(self) -> tuple[np.ndarray, dict[str, Any]]:
        entry, arrays = load_reference(self.ctx.cache_dir, _CLEAN_FID, self.extractor)
        return arrays[_CLEAN_VIEW.key]["feats"].astype(np.float64), {
            "reference": entry["reference"].get("name"), "reference_sha256": entry["reference"].get("sha256")}
