"""The Metric protocol: streaming update / compute / merge over float64 state.

Modelled on torchmetrics: state is running sums, so a metric can be fed in batches,
sharded across processes (``merge``) and recomputed after a resume. Every value names its
variant (extractor, weights hash, protocol, scale) so only comparable numbers are compared.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from benchkit.core.errors import BenchkitError


@dataclass
class MetricValue:
    """One number in results.json."""

    name: str
    value: float
    unit: str
    higher_is_better: bool | None
    n: int
    variant: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = float(self.value)
        return d


@dataclass
class SampleBatch:
    """Images (uint8 arrays, HxW or HxWx3) with their sample records (prompt_id, prompt, seed, meta...).

    ``prepared`` holds what metrics' :meth:`Metric.preprocessors` made of each image, by key, when
    the scorer ran them ahead (in DataLoader workers, see :mod:`metrics.loading`); a metric whose
    key is absent prepares the images itself, with the same function. When every metric reads
    only prepared inputs the scorer leaves ``images`` empty.

    ``features`` holds, per feature view id (:class:`metrics.feature_store.FeatureView`), each
    item's float32 features or None: the scorer fills it from the feature store, and
    :meth:`Metric.view_features` fills the gaps, so the next metric on the same view (and the
    store) gets them without another network pass; ``fresh`` says which items were computed here.
    ``sha256`` is each image file's content hash (the store's key), when the scorer knows it.
    """

    images: Sequence[np.ndarray]
    records: list[dict[str, Any]]
    prepared: dict[str, Sequence[Any]] = field(default_factory=dict)
    sha256: list[str] | None = None
    features: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    fresh: dict[str, tuple[Any, set[int]]] = field(default_factory=dict)  # view id -> (view, items computed here)
    # per-item results a metric keeps for its twins on the same chunk (the breakdown's group copies score
    # subsets of it): {what: {item key: value}}, one dict shared by a batch and its subsets
    memo: dict[str, dict[str, Any]] = field(default_factory=dict)

    def subset(self, idx: list[int]) -> "SampleBatch":
        """The items at positions ``idx``, with their prepared inputs and stored features."""
        return SampleBatch([self.images[i] for i in idx] if len(self.images) else [], [self.records[i] for i in idx],
                           {key: [values[i] for i in idx] for key, values in self.prepared.items()},
                           [self.sha256[i] for i in idx] if self.sha256 is not None else None,
                           {key: [values[i] for i in idx] for key, values in self.features.items()}, memo=self.memo)


def item_key(record: dict[str, Any]) -> str:
    """``prompt_id\\x1fseed``: how per-item state (and a run's item_scores.json, reports.paired) names one image;
    the unit separator occurs in neither part, so the key splits back with :func:`prompt_of`."""
    return f"{record.get('prompt_id')}\x1f{record.get('seed')}"


def prompt_of(key: str) -> str:
    """The prompt id of an :func:`item_key`."""
    return key.split("\x1f")[0]


class PrepareFailed:
    """Stands in a prepared list for an image its preprocessing raised on; the error is raised
    again when a metric asks for that input, in the order a serial pass would have met it."""

    def __init__(self, error: BaseException):
        self.error = error


@dataclass
class MetricContext:
    """What a metric may need besides images: where to cache, which device, the run's manifest."""

    cache_dir: Path
    device: torch.device = torch.device("cpu")
    manifest: dict[str, Any] | None = None
    reference: Any = None  # an ImageReference (metrics.reference_sets) from --reference, for the metrics that take one
    run_dir: Path | None = None  # the run folder being scored: records' relative paths (a clip's `video`) are under it
    strata: Any = None  # the prompt set's strata (metrics.uncertainty.Strata), which bootstrap intervals resample within
    # False in a breakdown group's copies: a Frechet distance's interval is 200-1,000 eigendecompositions, too much
    # to spend on every group of every run (the means' intervals cost milliseconds and stay)
    frechet_intervals: bool = True


class NotApplicable(BenchkitError):
    """A metric has nothing to score in this plan (a VBench dimension none of the VBench prompts probes): an error
    for a metric named on its own, a note when a group (``--metrics vbench``) brought it in."""


@dataclass
class ScorePlan:
    """What a run will hand its metrics, known before the first image is made.

    Metrics check their preconditions against it (:meth:`Metric.check`), so that a metric that
    cannot be computed fails in one line before generation, not after hours of it. Fields that
    are not known yet (the family and image size before the model is loaded) are None and not
    checked.
    """

    records: list[dict[str, Any]]  # prompt_id, prompt, meta of every prompt to be scored
    seeds_per_prompt: int  # the fewest seeds any prompt has
    family: str | None = None  # model family ("toy", "sd15", ...), when known
    media: str | None = None  # "image" or "video" (the family's), when known: clip metrics need a video model
    image_sizes: set[tuple[int, int]] | None = None  # (height, width) of the images, when known


def _sum(a: Any, b: Any) -> Any:
    return a + b


def _extend(a: list, b: list) -> list:
    a.extend(b)
    return a


def _update(a: dict, b: dict) -> dict:
    a.update(b)
    return a


def _update_each(a: dict, b: dict) -> dict:
    for key, inner in b.items():
        a.setdefault(key, {}).update(inner)
    return a


def _moments(a: Any, b: Any) -> Any:
    if isinstance(a, dict):  # one FeatureMoments per view
        for key, m in b.items():
            a[key].merge(m)
    else:
        a.merge(b)
    return a


# How two values of one declared state combine when chunks or ranks are merged (torchmetrics'
# dist_reduce_fx): ``rule(mine, theirs) -> merged``, applied in chunk order, so results do not
# depend on how the images were split. Per-item dicts are keyed by item, so ``update`` is exact.
MERGE_RULES: dict[str, Callable[[Any, Any], Any]] = {
    "sum": _sum,  # running counts and sums
    "extend": _extend,  # lists in arrival order
    "update": _update,  # {item key: value}
    "update_each": _update_each,  # {group: {item key: value}}
    "moments": _moments,  # FeatureMoments (or {view: FeatureMoments}): Chan's pairwise combination
}


class SeedGroups:
    """For a metric that compares the seeds of each prompt (``compares_seeds``): each prompt's per-seed
    values are held until all the run's seeds are in (the manifest's seeds; unknown: until ``compute``),
    then scored with :meth:`score_prompt` and dropped, so only prompts still waiting are in memory.

    Mixed in before :class:`Metric`; the subclass calls :meth:`init_seed_groups` where its states are declared.
    """

    def init_seed_groups(self, ctx: MetricContext) -> None:
        seeds = (ctx.manifest or {}).get("seeds")
        self.expected_seeds = len(seeds) if seeds else 0  # 0: unknown, score every prompt at compute()
        self.add_state("pending", defaultdict(dict), merge="update_each")  # prompt -> {seed: value} not yet scored
        self.add_state("per_prompt", {}, merge="update")  # prompt -> score_prompt's result

    def score_prompt(self, prompt_id: str, seeds: dict[int, Any]) -> Any:
        raise NotImplementedError

    def hold(self, prompt_id: str, seed: int, value: Any) -> None:
        """Keep one seed's value; a prompt whose seeds are all here is scored at once."""
        self.pending[prompt_id][seed] = value
        self._flush_if_complete(prompt_id)

    def _flush_if_complete(self, prompt_id: str) -> None:
        if self.expected_seeds and len(self.pending[prompt_id]) >= self.expected_seeds:
            self._flush(prompt_id)

    def _flush(self, prompt_id: str) -> None:
        seeds = self.pending.pop(prompt_id)
        if len(seeds) >= 2:
            self.per_prompt[prompt_id] = self.score_prompt(prompt_id, seeds)

    def merge(self, other: "Metric") -> None:
        super().merge(other)
        for pid in other.pending:  # a prompt whose seeds are now all here is scored at once
            self._flush_if_complete(pid)

    def scored_prompts(self) -> list[Any]:
        """Every prompt's score in prompt order, the waiting ones scored now; one line when none has 2 seeds."""
        for pid in list(self.pending):
            self._flush(pid)
        if not self.per_prompt:
            raise BenchkitError(f"{self.name} needs at least 2 seeds per prompt (e.g. --seeds 0-3)")
        return [self.per_prompt[k] for k in sorted(self.per_prompt)]


class Metric:
    """Base class. Subclasses set ``name``, declare their state with :meth:`add_state` and
    implement update/compute; ``merge``, ``state_dict`` and ``with_state`` follow from the
    declarations."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    needs_images: ClassVar[bool] = True  # False: the metric reads only sample records (latency)
    reads_clips: ClassVar[bool] = False  # True: reads each item's clip (metrics.clips), decoded for it, not its image
    compares_seeds: ClassVar[bool] = False  # True: measured across the seeds of a prompt (diversity)
    takes_reference: ClassVar[bool] = False  # True: measured against --reference (a run or an image folder) when given
    requires_reference: ClassVar[bool] = False  # True: has no default reference, so --reference must be given
    weights: ClassVar[tuple[str, ...]] = ()  # weight registry names the metric loads (metrics/weights.py)
    scale: ClassVar[str] = ""  # what its numbers are, for `benchkit metrics` (its values carry their unit)
    higher_is_better: ClassVar[bool | None] = None  # None: several values with their own directions

    def __init__(self, ctx: MetricContext):
        self.ctx = ctx
        self._states: dict[str, str] = {}  # declared state name -> merge rule

    def add_state(self, name: str, default: Any, merge: str) -> None:
        """Declare ``name`` as running state (what crosses chunks and ranks), starting at ``default``
        and combined by the rule ``merge`` (a key of :data:`MERGE_RULES`)."""
        if merge not in MERGE_RULES:
            raise ValueError(f"{type(self).__name__}.{name}: unknown merge rule {merge!r}; one of {', '.join(MERGE_RULES)}")
        self._states = {**self._states, name: merge}
        setattr(self, name, default)

    @classmethod
    def check(cls, plan: ScorePlan, ctx: MetricContext) -> None:
        """Raise a one-line BenchkitError when this metric cannot be computed on ``plan``.

        The base rules: seed-comparing metrics need two seeds per prompt, and every declared
        weight must be present (resolved and hashed once; cached for the run that follows).
        """
        if cls.compares_seeds and plan.seeds_per_prompt < 2:
            raise BenchkitError(f"{cls.name} compares the seeds of each prompt and needs at least 2 per prompt "
                                f"(got {plan.seeds_per_prompt}); use e.g. --seeds 0-3 or drop {cls.name}")
        if cls.requires_reference and ctx.reference is None:
            raise BenchkitError(f"{cls.name} compares with a reference and has no default one: pass --reference "
                                "RUN_OR_IMAGE_FOLDER (e.g. the teacher's run, or a local MJHQ-30K or COCO image folder)")
        if cls.weights:
            from metrics.weights import resolve

            for weight in cls.weights:
                resolve(weight)

    @classmethod
    def needs(cls) -> list[str]:
        """What the metric needs besides its weights, in words (`benchkit metrics`); ``check`` enforces it."""
        out = ["2+ seeds per prompt"] if cls.compares_seeds else []
        if cls.requires_reference:
            out.append("needs --reference RUN|FOLDER (no default reference)")
        elif cls.takes_reference:
            out.append("takes --reference RUN|FOLDER (else its default reference)")
        if not cls.needs_images:
            out.append("a timed `benchkit eval` (not `score`)")
        return out

    @classmethod
    def value_names(cls) -> tuple[str, ...]:
        """The names of the values ``compute`` reports (what gates and tolerances may name)."""
        return (cls.name,)

    def preprocessors(self) -> dict[str, Callable[[np.ndarray], Any]]:
        """The metric's CPU-side work per image, apart from its networks: ``{key: fn}``, ``fn`` a
        picklable, deterministic function of one decoded uint8 image (HxW or HxWxC) to what
        :meth:`update` feeds the network (FID's protocol resize, CLIP's transform).

        The scorer runs them in DataLoader workers, once per image and key, and hands the results
        to :meth:`update` in ``batch.prepared``; :meth:`prepared` falls back to calling ``fn`` when
        they are absent (a direct ``update`` call), so both paths give the same numbers. A key
        names its function and everything the function depends on (weights' hash, sizes): metrics
        with equal keys share one result. The default, ``{}``, means the metric reads ``batch.images``.
        """
        return {}

    def prepared(self, batch: SampleBatch, key: str) -> list[Any]:
        """``preprocessors()[key]`` of every image of ``batch``: the scorer's, or computed here."""
        got = batch.prepared.get(key)
        if got is None:
            fn = self.preprocessors()[key]
            return [fn(image) for image in batch.images]
        if isinstance(got, list):  # (the scorer's lazy sequences raise a failed item's error when it is read)
            for value in got:
                if isinstance(value, PrepareFailed):
                    raise value.error
        return got

    def feature_views(self) -> list[Any]:
        """The :class:`~metrics.feature_store.FeatureView` s whose features the metric reads through
        :meth:`view_features`: the scorer looks them up in the feature store before preparing any
        image, and prepares only the images whose features are not stored. Default: none."""
        return []

    def view_features(self, batch: SampleBatch, view: Any, extract: Callable[[Sequence[Any]], np.ndarray],
                      inputs: Callable[[SampleBatch], Sequence[Any]] | None = None) -> np.ndarray:
        """The batch's features under ``view`` (float64, one row per item): those stored or already
        computed for this batch, and ``extract`` of the inputs of the rest (``inputs(sub-batch)``;
        default: the prepared inputs of ``view.preprocessing``), which are kept in the batch for
        the next metric on the view and for the store."""
        from metrics.feature_store import as_stored

        n = len(batch.records)
        have = batch.features.setdefault(view.id, [None] * n)
        missing = [i for i, f in enumerate(have) if f is None]
        if missing:
            sub = batch.subset(missing)
            got = np.asarray(extract(inputs(sub) if inputs is not None else self.prepared(sub, view.preprocessing)))
            if got.shape != (len(missing), view.dim):
                raise BenchkitError(f"{self.name}: extractor {view.extractor} gave features of shape {got.shape} for "
                                    f"{len(missing)} images of a {view.dim}-d view")
            for i, f in zip(missing, got.astype(np.float32)):
                have[i] = f
            batch.fresh.setdefault(view.id, (view, set()))[1].update(missing)
        return as_stored(np.stack(have)) if n else np.zeros((0, view.dim))

    def update(self, batch: SampleBatch) -> None:
        raise NotImplementedError

    def compute(self) -> list[MetricValue]:
        raise NotImplementedError

    def item_scores(self) -> dict[str, float] | None:
        """Each image's own score (keys ``prompt_id\\x1fseed``) for a metric that is a mean of them, kept in the
        run (item_scores.json) for paired comparisons; None for metrics of the whole sample (FID, diversity)."""
        return None

    def merge(self, other: "Metric") -> None:
        """Fold ``other``'s state (the next chunk, or another rank's) into this one, state by state."""
        for name, rule in self._states.items():
            setattr(self, name, MERGE_RULES[rule](getattr(self, name), getattr(other, name)))

    def state_dict(self) -> dict[str, Any]:
        """The declared running state, the part that crosses processes (sums, moments, per-item values).

        Models, extractors and the context stay behind: a rank rebuilds a metric from its own
        copy and loads another rank's state into it before ``merge``. A snapshot (deep copy):
        a later ``update`` or ``merge`` must not change a state already taken.
        """
        return copy.deepcopy({name: getattr(self, name) for name in self._states})

    def with_state(self, state: dict[str, Any]) -> "Metric":
        """A shallow copy of this metric (same models) holding ``state``, ready to be merged."""
        if set(state) != set(self._states):
            raise ValueError(f"{self.name}: a state with {sorted(state)} for declared {sorted(self._states)}")
        twin = copy.copy(self)
        for name, value in copy.deepcopy(state).items():
            setattr(twin, name, value)
        return twin


class ReferenceFeatureMetric(Metric):
    """A metric of the run's features against its reference's, on one feature view (PRDC, FD-DINOv2, CMMD).

    Every item's features are kept (float32, by item key, so the order images arrive in does not
    matter) and the reference's are read through the same view, stored by content like the run's.
    A subclass gives :meth:`view`, :meth:`extract` (prepared inputs -> features), :meth:`prepare_one`
    (one image -> the extractor's input, for the reference's images) and, when it has one,
    :meth:`default_reference`.
    """

    takes_reference = True

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.add_state("feats", {}, merge="update")  # item key -> float32 features

    def view(self) -> Any:
        raise NotImplementedError

    def extract(self, prepared: Sequence[Any]) -> np.ndarray:
        raise NotImplementedError

    def prepare_one(self, image: np.ndarray) -> Any:
        raise NotImplementedError

    def default_reference(self) -> tuple[np.ndarray, dict[str, Any]] | None:
        """(features, what they are) when no --reference is given; None: a reference is required."""
        return None

    def feature_views(self) -> list[Any]:
        return [self.view()]

    def update(self, batch: SampleBatch) -> None:
        feats = self.view_features(batch, self.view(), self.extract)
        for rec, f in zip(batch.records, feats):
            self.feats[item_key(rec)] = f.astype(np.float32)

    def run_features(self, at_least: int = 2) -> np.ndarray:
        """The run's features in item-key order (float64); one line when fewer than ``at_least``."""
        if len(self.feats) < at_least:
            raise BenchkitError(f"{self.name} needs at least {at_least} images, got {len(self.feats)}")
        return np.stack([self.feats[k] for k in sorted(self.feats)]).astype(np.float64)

    def reference(self) -> tuple[np.ndarray, dict[str, Any]]:
        """(the reference's features, what the reference is for the variant): --reference's, else the default."""
        ref = self.ctx.reference
        if ref is not None:
            return ref.features(self.view(), self.prepare_one, self.extract), {
                "reference": ref.name, **{f"reference_{k}": v for k, v in ref.describe().items()}}
        found = self.default_reference()
        if found is None:
            raise BenchkitError(f"{self.name} compares with a reference and has no default one: pass --reference "
                                "RUN_OR_IMAGE_FOLDER")
        return found


class FeatureMoments:
    """Running float64 mean and scatter matrix of features, mergeable across shards.

    Uses Chan et al.'s pairwise update (batch mean and centred scatter, combined with a
    correction term) rather than raw sums of x and x x^T, whose difference cancels
    catastrophically when feature means are large relative to their spread.
    """

    def __init__(self, dim: int):
        self.n = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.scatter = np.zeros((dim, dim), dtype=np.float64)

    def _combine(self, n: int, mean: np.ndarray, scatter: np.ndarray) -> None:
        if n == 0:
            return
        total = self.n + n
        delta = mean - self.mean
        self.scatter += scatter + np.outer(delta, delta) * (self.n * n / total)
        self.mean += delta * (n / total)
        self.n = total

    def update(self, features: np.ndarray) -> None:
        f = np.asarray(features, dtype=np.float64)
        if len(f) == 0:
            return
        mean = f.mean(axis=0)
        centred = f - mean
        self._combine(len(f), mean, centred.T @ centred)

    def merge(self, other: "FeatureMoments") -> None:
        self._combine(other.n, other.mean, other.scatter)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased covariance (N-1), as numpy.cov computes them."""
        if self.n < 2:
            raise ValueError("need at least 2 samples for a covariance")
        return self.mean.copy(), self.scatter / (self.n - 1)

