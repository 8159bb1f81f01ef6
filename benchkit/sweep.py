"""`benchkit sweep`: one model over a grid of steps x guidance x scheduler, and where the best trades are.

A few-step model's settings are a trade: each step and each guided step costs time, and whether it buys quality
depends on the model. The sweep evaluates every setting as an ordinary run (`OUT/runs/<setting>/`, resumable and
shardable like `benchkit eval`: rerun the same command after a kill, or launch it under torchrun), then writes
`OUT/sweep.json` (the grid, each setting's status and the Pareto fronts) and one report (`OUT/report/`) with the
quality-vs-latency and quality-vs-NFE fronts and the "first run / second run / size" table that community timing
notes use: seconds per image cold (the first batch of a fresh process, model load apart) and warm, load seconds,
model size and peak memory, by device.

Every setting is checked (steps, guidance, scheduler names, the folder) before the first image is made; the folder
is benchkit's (its sweep.json) or new or empty, and one sweep writes it at a time.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchkit.core.atomic import write_json_atomic
from benchkit.core.distributed import launched_rank
from benchkit.core.errors import BenchkitError
from benchkit.core.lock import LOCK_NAME, folder_lock
from benchkit.core.outpaths import check_separate
from benchkit.core.rundir import read_json
from benchkit.evaluate import run_eval
from benchkit.models.spec import MODEL_DEFAULT_SCHEDULER, SCHEDULER_ALIASES, ModelSpec
from prompts import PromptSet

SWEEP_FILE = "sweep.json"
RUNS, REPORT = "runs", "report"
_NAME_SAFE = re.compile(r"[^A-Za-z0-9.]+")


@dataclass(frozen=True)
class SweepPoint:
    """One setting of the grid; None keeps the model's own recipe value."""

    steps: int
    guidance: float | None = None
    scheduler: str | None = None

    @property
    def name(self) -> str:
        """The run folder's name, e.g. ``euler-04steps-cfg2``."""
        parts = [_NAME_SAFE.sub("-", self.scheduler.lower()).strip("-") if self.scheduler else "recipe",
                 f"{self.steps:02d}steps"]
        if self.guidance is not None:
            parts.append(f"cfg{self.guidance:g}")
        return "-".join(parts)

    def spec(self, base: ModelSpec) -> ModelSpec:
        return base.with_recipe(steps=self.steps, guidance_scale=self.guidance, scheduler=self.scheduler)


def _items(flag: str, text: str | None) -> list[str]:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    if text is not None and not items:
        raise BenchkitError(f"{flag} '{text}': give one or more values separated by commas")
    return items


def parse_grid(steps: str, guidance: str | None = None, schedulers: str | None = None) -> list[SweepPoint]:
    """The grid from the command line's lists, e.g. ``1,2,4,8`` x ``1,2`` x ``ddim,euler``; one line on a bad value."""
    step_list = []
    for item in _items("--steps", steps):
        if not item.isdigit() or int(item) < 1:
            raise BenchkitError(f"--steps: '{item}' is not a whole number of steps of 1 or more (e.g. --steps 1,2,4,8)")
        step_list.append(int(item))
    guidance_list: list[float | None] = []
    for item in _items("--guidance", guidance):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise BenchkitError(f"--guidance: '{item}' is not a guidance scale of 0 or more (e.g. --guidance 1,2,4.5)")
        guidance_list.append(value)
    scheduler_list: list[str | None] = list(_items("--scheduler", schedulers))
    for name in scheduler_list:
        _check_scheduler(str(name))
    points = [SweepPoint(s, g, sch) for sch in scheduler_list or [None] for g in guidance_list or [None] for s in step_list]
    names = [p.name for p in points]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated:
        raise BenchkitError(f"the grid names setting '{repeated}' twice: give each value once")
    return points


def _check_scheduler(name: str) -> None:
    """A scheduler the recipe will find: an alias (ddim, euler, lcm...), the model's own, or a diffusers class."""
    if name.lower() in SCHEDULER_ALIASES or name.lower() == MODEL_DEFAULT_SCHEDULER:
        return
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise BenchkitError(f"--scheduler: '{name}' is neither a short name ({', '.join(sorted(SCHEDULER_ALIASES))}) nor a "
                            "diffusers scheduler class (e.g. DDIMScheduler)")


def _identity(spec: ModelSpec, prompt_set: PromptSet, seeds: list[int], metrics: list[str] | None) -> dict[str, Any]:
    """What every run of one sweep shares: the model (apart from the swept recipe), the prompts, seeds, metrics;
    as sweep.json holds it (JSON types), so that it compares equal to what an earlier call wrote."""
    return _jsonable({"model": spec.name, "model_identity": spec.identity(), "prompt_set": prompt_set.name,
                      "prompt_sha256": prompt_set.sha256, "prompt_subset": prompt_set.subset, "seeds": list(seeds),
                      "metrics": metrics})


def _open_sweep(out: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The folder's sweep.json (same model, prompts and seeds), or a new one; never another program's folder."""
    file = out / SWEEP_FILE
    if file.exists():
        data = read_json(file)
        if not isinstance(data, dict) or "benchkit_sweep" not in data:
            raise BenchkitError(f"{file} is not a benchkit sweep's; choose an empty or new --out")
        old = data.get("identity") or {}
        if old != identity:
            diff = next(k for k in sorted(set(old) | set(identity)) if old.get(k) != identity.get(k))
            raise BenchkitError(f"{out} holds a sweep with a different '{diff}'; use another --out (a sweep folder holds "
                                "one model over one prompt set and seed list)")
        return data
    if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()):
        raise BenchkitError(f"{out} exists and is not a benchkit sweep; choose an empty or new --out")
    return {"benchkit_sweep": 1, "identity": identity, "points": {}}


def _read_state(out: Path) -> dict[str, Any]:
    file = out / SWEEP_FILE
    data = read_json(file) if file.is_file() else None
    return data if isinstance(data, dict) and isinstance(data.get("points"), dict) else {"points": {}}


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def run_sweep(spec: ModelSpec, prompt_set: PromptSet, seeds: list[int], out: Path, points: list[SweepPoint],
              metrics: list[str] | None = None, quality: str | None = None, device: str = "auto", dtype: str | None = None,
              batch_size: int = 8, warmup_batches: int = 1, cache_dir: Path | None = None, show_progress: bool = True,
              wait: bool = False, workers: int | None = None, reference: Path | None = None) -> dict[str, Any]:
    """Evaluate every point (skipping finished runs, resuming a killed one), then write sweep.json and the report."""
    out = Path(out)
    specs = {p.name: p.spec(spec) for p in points}  # every recipe is built (and checked) before any work
    check_separate(out, [("model folder", path) for path in spec.local_paths()]
                   + [("prompt file", prompt_set.file), ("--reference", reference)])
    identity = _identity(spec, prompt_set, seeds, metrics)
    main = launched_rank() == 0
    with folder_lock(out, "benchkit sweep", wait=wait):
        # rank 0 checks and writes the folder; another rank of a torchrun job reads which settings are done (rank 0
        # changes a status only after a run every rank took part in), so that all ranks run the same settings
        state = _open_sweep(out, identity) if main else _read_state(out)
        for p in points:
            state["points"].setdefault(p.name, {"steps": p.steps, "guidance": p.guidance, "scheduler": p.scheduler,
                                                "run": f"{RUNS}/{p.name}", "status": "pending"})
        if main:
            out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out / SWEEP_FILE, state)
        for p in points:
            if state["points"][p.name]["status"] == "done" and (out / RUNS / p.name / "results.json").is_file():
                continue  # finished and scored by an earlier call (same model, prompts, seeds and metrics)
            run_eval(specs[p.name], prompt_set, seeds, out / RUNS / p.name, metrics=metrics, device=device, dtype=dtype,
                     batch_size=batch_size, warmup_batches=warmup_batches, cache_dir=cache_dir,
                     show_progress=show_progress, workers=workers, reference=reference)
            state["points"][p.name]["status"] = "done"
            if main:
                write_json_atomic(out / SWEEP_FILE, state)
        if not main:
            return {"sweep": str(out / SWEEP_FILE)}
        from reports.sweep import sweep_report

        done = [out / entry["run"] for entry in state["points"].values() if entry["status"] == "done"]
        summary = sweep_report(done, out / REPORT, quality, title=f"benchkit sweep: {spec.name}")
        state["pareto"] = summary["pareto"]
        state["quality"] = summary["quality"]
        write_json_atomic(out / SWEEP_FILE, state)
        return {**summary, "sweep": str(out / SWEEP_FILE), "runs": [str(p) for p in done]}
