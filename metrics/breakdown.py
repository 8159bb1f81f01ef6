"""Per-group metrics: the same metrics computed separately for each value of a prompt-set
field (PartiPrompts category and challenge, VBench dimension, the toy digit).

Each group gets its own metric instances fed with the matching images, so a breakdown value
is exactly what the metric would give on that subset. A prompt whose field holds a list
(a VBench prompt probes several dimensions) counts in each of its groups. Grouping by
``seed`` gives one value per seed: their spread is the noise `benchkit compare` allows for.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from benchkit.core.errors import BenchkitError
from benchkit.core.items import meta_values
from metrics.base import Metric, MetricContext, SampleBatch

SEED_FIELD = "seed"  # not a prompt meta field: groups by the item's seed, for seed-to-seed spread
CATEGORY_FIELD = "category"  # matched with a reference's categories (MJHQ-30K's meta_data.json)


def _values(record: dict[str, Any], field: str) -> list[str]:
    return [str(record["seed"])] if field == SEED_FIELD else meta_values(record.get("meta"), field)


class Breakdown:
    """Image metrics per (field, value); timing metrics are left out (batches mix groups)."""

    def __init__(self, fields: list[str], metric_names: list[str], ctx: MetricContext):
        from metrics import REGISTRY

        self.fields = list(fields)
        self.names = [n for n in metric_names if REGISTRY[n].needs_images]
        self.ctx = ctx
        self.groups: dict[tuple[str, str], list[Metric]] = {}
        self.counts: dict[tuple[str, str], int] = defaultdict(int)

    def _metrics(self, key: tuple[str, str]) -> list[Metric]:
        from metrics import REGISTRY, build_metrics

        if key not in self.groups:
            # a one-seed group has nothing to compare across seeds: leave diversity metrics out
            # rather than have them hold every image of the seed until the end
            names = [n for n in self.names if not (key[0] == SEED_FIELD and REGISTRY[n].compares_seeds)]
            self.groups[key] = build_metrics(names, self._context(key))
        return self.groups[key]

    def _context(self, key: tuple[str, str]) -> MetricContext:
        """A category group of a reference with categories (MJHQ-30K) compares with that category's
        reference images, as MJHQ's per-category FID does; every other group with the whole reference."""
        ref = self.ctx.reference
        if key[0] == CATEGORY_FIELD and ref is not None and ref.categories:
            return dataclasses.replace(self.ctx, reference=ref.restricted(key[1]), frechet_intervals=False)
        return dataclasses.replace(self.ctx, frechet_intervals=False)

    def update(self, batch: SampleBatch) -> None:
        if not self.names:
            return
        for field in self.fields:
            members: dict[str, list[int]] = defaultdict(list)
            for i, rec in enumerate(batch.records):
                for value in _values(rec, field):
                    members[value].append(i)
            for value, idx in members.items():
                sub = batch.subset(idx)  # with the scorer's prepared inputs: each image is prepared once
                self.counts[(field, value)] += len(idx)
                for metric in self._metrics((field, value)):
                    metric.update(sub)

    def state_dict(self) -> dict[str, Any]:
        """Every group's metric states and counts, to merge this breakdown into another process's."""
        return {"groups": {key: [m.state_dict() for m in ms] for key, ms in self.groups.items()},
                "counts": dict(self.counts)}

    def merge(self, other: "Breakdown") -> None:
        """Merge another breakdown of this process (its metric objects as they are, no state copied)."""
        for key, metrics in other.groups.items():
            for metric, theirs in zip(self._metrics(key), metrics, strict=True):
                metric.merge(theirs)
        for key, n in other.counts.items():
            self.counts[key] += n

    def merge_state(self, state: dict[str, Any]) -> None:
        for key, states in state["groups"].items():
            for metric, metric_state in zip(self._metrics(key), states, strict=True):
                metric.merge(metric.with_state(metric_state))
        for key, n in state["counts"].items():
            self.counts[key] += n

    def compute(self) -> list[dict[str, Any]]:
        """[{"field", "value", "n", "metrics": [...], "skipped": {name: why}}], sorted by field then value."""
        out = []
        for (field, value), metrics in sorted(self.groups.items()):
            values, skipped = [], {}
            for metric in metrics:
                try:
                    values += [v.to_dict() for v in metric.compute()]
                except BenchkitError as exc:  # e.g. diversity of a group with one seed
                    skipped[metric.name] = str(exc)
            out.append({"field": field, "value": value, "n": self.counts[(field, value)], "metrics": values,
                        "skipped": skipped})
        return out
