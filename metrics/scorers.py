"""Shared plumbing of the per-image text-image scorers (CLIP score, PickScore, HPSv2).

A scorer turns (images, prompts) into one float per image; the metric keeps per-item scores
(keyed by prompt id and seed, so a merge or resume cannot count one twice) and reports
their mean. Models are loaded once per process and weight file, because breakdowns build
one metric object per group.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from metrics.base import Metric, MetricContext, MetricValue, SampleBatch, item_key
from metrics.uncertainty import interval


def hf_features(output: Any) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features (projection in pooler_output); 4.x a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class Scorer:
    """What a scorer provides: a score per (image, prompt) and its provenance.

    A scorer that splits its work sets ``preprocess`` (a picklable function of one uint8 image
    to the model's input, run in DataLoader workers) and implements ``forward`` on a list of
    those inputs; ``__call__`` is then the two in turn. One that does not implements ``__call__``.
    """

    weights_sha256: dict[str, str]
    variant: dict[str, Any]
    preprocess: Callable[[np.ndarray], Any] | None = None

    def forward(self, inputs: list[Any], prompts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, images: list[np.ndarray], prompts: list[str]) -> np.ndarray:
        if self.preprocess is None:
            raise NotImplementedError
        return self.forward([self.preprocess(im) for im in images], prompts)


class MeanScoreMetric(Metric):
    """Mean of a per-image score over every (prompt, seed) item."""

    unit: ClassVar[str] = "score"
    higher_is_better = True
    micro_batch: ClassVar[int] = 16

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.scorer = self.build_scorer(ctx.device)
        self.add_state("scores", {}, merge="update")  # {item key: score}

    def build_scorer(self, device: torch.device) -> Scorer:
        raise NotImplementedError

    def _key(self) -> str:
        return f"{self.name}:" + ",".join(f"{k}={v}" for k, v in sorted(self.scorer.weights_sha256.items()))

    def preprocessors(self) -> dict[str, Callable[[np.ndarray], Any]]:
        """The scorer's image transform, when it has one apart from its network."""
        return {self._key(): self.scorer.preprocess} if self.scorer.preprocess is not None else {}

    def update(self, batch: SampleBatch) -> None:
        prompts = [r["prompt"] for r in batch.records]
        split = self.scorer.preprocess is not None
        inputs = self.prepared(batch, self._key()) if split else batch.images
        for start in range(0, len(prompts), self.micro_batch):
            part = slice(start, start + self.micro_batch)
            values = self.scorer.forward(inputs[part], prompts[part]) if split else self.scorer(inputs[part], prompts[part])
            for rec, v in zip(batch.records[part], values):
                self.scores[item_key(rec)] = float(v)

    def item_scores(self) -> dict[str, float]:
        return self.scores

    def finish(self, mean: float) -> float:
        """The reported value from the mean of per-image scores (torchmetrics' CLIPScore clamps at 0)."""
        return mean

    def compute(self) -> list[MetricValue]:
        if not self.scores:
            raise BenchkitError(f"{self.name} has no images to score")
        values = np.array([self.scores[k] for k in sorted(self.scores)], dtype=np.float64)
        variant = {**self.scorer.variant, "scale": self.scale, "weights_sha256": self.scorer.weights_sha256}
        extra = {"std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                 "interval": interval(self.scores, self.finish, strata=self.ctx.strata)}  # prompts, then seeds within them, resampled
        return [MetricValue(self.name, self.finish(float(values.mean())), self.unit, True, len(values), variant, extra)]
