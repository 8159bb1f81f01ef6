"""Reading what commands leave in tests: a run's committed hashes (each item once) and metric values, a
folder's files by hash, the one-line error a bad input must give, and a metric scored in two merged chunks."""

import hashlib
import json
from pathlib import Path


def committed_hashes(run: Path) -> dict[str, str]:
    """{prompt_id_seed: sha256} of samples.jsonl, asserting that no item was committed twice."""
    recs = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    keys = [f"{r['prompt_id']}_{r['seed']}" for r in recs]
    assert len(keys) == len(set(keys)), "an item was committed twice"
    return {f"{r['prompt_id']}_{r['seed']}": r["sha256"] for r in recs}


def metrics_by_name(run: Path) -> dict[str, dict]:
    return {m["name"]: m for m in json.loads((run / "results.json").read_text())["metrics"]}


def tree(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below ``folder`` (what must survive untouched)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(code: int, err: str, message: str) -> None:
    """A refusal as benchkit gives it: exit 2, one line naming ``message``, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert message in err, err


def score_in_two_chunks(metric, records: list[dict], split: int):
    """``metric`` updated on ``records[:split]`` and ``records[split:]``, each from the empty state and merged, as the
    scorer merges its chunks (clip metrics: the records name their clips, the batch holds no images)."""
    from metrics.base import SampleBatch

    empty = metric.state_dict()
    for chunk in (records[:split], records[split:]):
        part = metric.with_state(empty)
        part.update(SampleBatch([], chunk))
        metric.merge(part)
    return metric
