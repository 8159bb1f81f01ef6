"""The Vendi score (Friedman & Dieng, "The Vendi Score: A Diversity Evaluation Metric for Machine
Learning", TMLR 2023): the exponential of the Shannon entropy of the eigenvalues of K/n, where K is
the n x n similarity matrix of the samples. It reads as an effective number of distinct images:
1 when all are alike, n when all are mutually orthogonal in feature space.

As the reference package computes it on embeddings (``vendi_score.vendi.score_X`` /
``score_dual``, called by its ``image_utils.embedding_vendi_score``): features are L2-normalised
row by row (sklearn's ``normalize``: a row of norm below 10 eps is left as it is), the kernel is
their cosine similarity ``K = X X^T``, and the eigenvalues of ``K/n`` are taken in float64 with
``scipy.linalg.eigvalsh``; ``X^T X / n`` (d x d) has the same nonzero eigenvalues and is what is
summed here, so the state is a fixed d x d matrix however many images arrive, and shards and
chunks merge by addition. Only the top min(n, d) eigenvalues are kept: the others are zero in
exact arithmetic (rank), and dropping their rounding noise makes the d x d path give the n x n
path's number also for orders q < 1. The order-q generalisation (Pasarkar & Dieng) is
``exp(log(sum p^q) / (1 - q))``, ``exp(-log max p)`` for q = "inf", as the package's
``entropy_q``; the registered metric uses q = 1, the paper's score.

Two values: ``vendi``, the score of all images together (across prompts and seeds), and
``vendi_per_prompt``, the mean over prompts of the score of each prompt's seeds (the diversity
a prompt's seeds show, as LPIPS diversity measures it with distances). Only the features of
prompts still waiting for seeds are held: a prompt is scored and dropped once all the run's
seeds are in.

``vendi`` reads clean-fid's Inception pool features (2048) under clean-fid's clean protocol, the
very inputs FID's ``clean-fid`` protocol prepares (same preprocessing key, so a run scoring both
resizes each image once). :class:`VendiMetric` is the extractor-independent part: a subclass
names the extractor, the features of a batch and its protocol (the toy world's would read the toy
digits classifier).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import Metric, MetricContext, MetricValue, SampleBatch, SeedGroups
from metrics.feature_store import FeatureView
from metrics.fid import PROTOCOLS, inception, inception_view, view_preprocessor
from metrics.weights import library_versions

Order = float | str  # q: a number >= 0, or "inf"

KERNEL = "cosine: k(x, y) = x.y / (|x| |y|) on the extractor's features (rows L2-normalised, as sklearn normalize)"
SPECTRUM = ("float64 eigenvalues (scipy.linalg.eigvalsh) of K/n = X X^T / n, or of X^T X / n (d x d, the same nonzero "
            "eigenvalues); the top min(n, d) kept")


def check_order(q: Order) -> Order:
    """q as the package takes it: a number >= 0 or the string "inf"; anything else is refused."""
    if q == "inf":
        return q
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not np.isfinite(q) or q < 0:
        raise ValueError(f"the Vendi order q must be a number >= 0 or 'inf', got {q!r}")
    return q


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float64, as ``sklearn.preprocessing.normalize(x, axis=1)``
    (same arithmetic: einsum row norms, and a norm below 10 eps counts as 1, leaving that row as is)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be an n x d matrix, got shape {x.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(np.float64).eps] = 1.0
    return x / norms[:, None]


def vendi_from_eigenvalues(w: np.ndarray, q: Order = 1) -> float:
    """exp of the order-q entropy of eigenvalues ``w`` (the package's ``entropy_q``: nonpositive
    eigenvalues are rounding noise and left out)."""
    q = check_order(q)
    w = np.asarray(w, dtype=np.float64)
    p = w[w > 0]
    if q == "inf":
        entropy = -np.log(np.max(w))
    elif q == 1:
        entropy = -(p * np.log(p)).sum()
    else:
        entropy = np.log((p**q).sum()) / (1 - q)
    return float(np.exp(entropy))


def spectrum(matrix_over_n: np.ndarray, n: int) -> np.ndarray:
    """Eigenvalues of K/n (or X^T X / n), ascending, less the ones that are zero by rank."""
    import scipy.linalg

    w = scipy.linalg.eigvalsh(matrix_over_n)
    return w[len(w) - min(n, len(w)) :]


def vendi_of_normalized(x: np.ndarray, q: Order = 1) -> float:
    """Vendi score of rows already L2-normalised: the n x n kernel when n < d, else d x d (the package's choice)."""
    n, d = x.shape
    if n == 0:
        raise ValueError("the Vendi score of no samples is undefined")
    return vendi_from_eigenvalues(spectrum((x @ x.T) / n if n < d else (x.T @ x) / n, n), q)


def vendi_score(features: np.ndarray, q: Order = 1) -> float:
    """Vendi score of the rows of ``features`` under the cosine kernel (``vendi_score.vendi.score_X``
    for q = 1; ``score_dual`` / ``score_K`` of the cosine kernel for any q)."""
    return vendi_of_normalized(normalize_rows(features), q)


class VendiMetric(SeedGroups, Metric):
    """Vendi score of all images and of each prompt's seeds, on a subclass's features.

    A subclass sets ``name`` and ``protocol`` and implements :meth:`load_extractor` (an object
    with ``name``, ``dim`` and ``weights_sha256``), :meth:`features` (the batch's float features,
    one row per image) and, when its images are prepared ahead, :meth:`preprocessors`.
    """

    description = "Vendi score (q=1, cosine kernel): effective number of distinct images, all and per prompt"
    scale = "effective number of distinct images: 1 (all alike) up to n (all orthogonal in feature space)"
    higher_is_better = True
    compares_seeds = True  # the per-prompt value compares the seeds of a prompt (and holds them until all are in)
    q: ClassVar[Order] = 1
    protocol: ClassVar[Any]
    libraries: ClassVar[tuple[str, ...]] = ("numpy", "scipy", "torch")  # recorded with their versions

    @classmethod
    def value_names(cls) -> tuple[str, ...]:
        return (cls.name, f"{cls.name}_per_prompt")

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        check_order(self.q)
        self.extractor = self.load_extractor(ctx)
        dim = int(self.extractor.dim)
        self.add_state("scatter", np.zeros((dim, dim)), merge="sum")  # sum of x x^T over the L2-normalised features
        self.add_state("n_images", 0, merge="sum")
        # prompt -> {seed: normalised features} until all are in; then prompt -> (Vendi of its seeds, number of seeds)
        self.init_seed_groups(ctx)

    def load_extractor(self, ctx: MetricContext):
        raise NotImplementedError

    def features(self, batch: SampleBatch) -> np.ndarray:
        raise NotImplementedError

    def protocol_variant(self) -> dict[str, Any]:
        """What the variant says of the images' path to the extractor."""
        return {"protocol": self.protocol}

    def score_prompt(self, prompt_id: str, seeds: dict[int, np.ndarray]) -> tuple[float, int]:
        x = np.stack([seeds[s] for s in sorted(seeds)])  # seed order: the same bits however the seeds arrived
        return vendi_of_normalized(x, self.q), len(seeds)

    def update(self, batch: SampleBatch) -> None:
        if not batch.records:
            return
        feats = normalize_rows(self.features(batch))
        if feats.shape != (len(batch.records), self.scatter.shape[0]):
            raise BenchkitError(f"{self.name}: the extractor gave features of shape {feats.shape} for "
                                f"{len(batch.records)} images of dimension {self.scatter.shape[0]}")
        self.scatter = self.scatter + feats.T @ feats
        self.n_images += len(feats)
        for rec, f in zip(batch.records, feats):
            self.hold(str(rec["prompt_id"]), int(rec["seed"]), f)

    def compute(self) -> list[MetricValue]:
        scored = self.scored_prompts()
        n, dim = self.n_images, self.scatter.shape[0]
        overall = vendi_from_eigenvalues(spectrum(self.scatter / n, n), self.q)
        scores = np.array([score for score, _ in scored])
        seed_counts = sorted({c for _, c in scored})
        variant = {
            "extractor": self.extractor.name, "extractor_sha256": self.extractor.weights_sha256,
            **self.protocol_variant(), "kernel": KERNEL, "q": self.q, "feature_dim": dim, "n": n,
            "spectrum": SPECTRUM, "libraries": library_versions(*self.libraries),
        }
        return [
            MetricValue(self.name, overall, "vendi", True, n, {**variant, "over": "all images together"},
                        {"prompts": len(scores)}),
            MetricValue(f"{self.name}_per_prompt", float(scores.mean()), "vendi", True, n,
                        {**variant, "over": "the seeds of each prompt; mean over prompts",
                         "seeds_per_prompt": seed_counts[0] if len(seed_counts) == 1 else seed_counts},
                        {"prompts": len(scores), "std_over_prompts": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
                         "min_over_prompts": float(scores.min()), "max_over_prompts": float(scores.max())}),
        ]


_CLEAN_FID = PROTOCOLS["clean-fid"]
_CLEAN_VIEW = _CLEAN_FID.views[0]


@register_metric()
class Vendi(VendiMetric):
    name = "vendi"
    description = ("Vendi score (q=1, cosine kernel) of clean-fid Inception pool features: all images, and the mean "
                   "over prompts of each prompt's seeds")
    weights = ("fid-inception",)
    protocol = _CLEAN_FID
    libraries = ("clean-fid", "torch", "numpy", "scipy", "pillow")

    def load_extractor(self, ctx: MetricContext):
        return inception(ctx.device)

    def preprocessors(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        return {self.view().preprocessing: view_preprocessor(_CLEAN_VIEW)}

    def view(self) -> FeatureView:
        """FID's clean view of the same network: one Inception pass (and one stored copy) serves both."""
        return inception_view(self.extractor, _CLEAN_FID, _CLEAN_VIEW)

    def feature_views(self) -> list[FeatureView]:
        return [self.view()]

    @torch.no_grad()
    def features(self, batch: SampleBatch) -> np.ndarray:
        return self.view_features(batch, self.view(), self.extractor)

    def protocol_variant(self) -> dict[str, Any]:
        return {"protocol": _CLEAN_FID.name, "preprocessing": _CLEAN_VIEW.steps,
                "weights_sha256": {"fid-inception": self.extractor.weights_sha256},
                "features": "Inception-v3 2048-d pool features (clean-fid's TorchScript network)"}
