"""Reading a run directory in tests: committed hashes (each item once) and metric values."""

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
