"""`benchkit nightly CONFIG.toml`: run a suite, append it to the history, gate on regressions.

The suite is the cross product of the config's models, prompt sets and devices. Each job is
an ordinary resumable run under ``OUT/<night>/<job>``; its metrics go into the SQLite history
(``reports.history``) and are compared with the job's last passing night. The night fails,
and the command exits 1, when a gate metric got worse beyond its band.

Config::

    out = "nightly"                       # runs, report and history.sqlite go here
    seeds = "0-3"
    metrics = ["toy-fid", "toy-alignment", "toy-diversity", "latency"]
    gate = ["toy-fid", "toy-alignment"]   # metrics that can fail a night (default: all)
    devices = ["cpu"]
    sigma = 2.0
    [tolerances]                          # optional explicit bands
    toy-fid = "5%"
    [[models]]
    name = "teacher-8"                    # job name part
    spec = "toy-digits"                   # preset or .toml (relative to this file)
    steps = 8                             # optional recipe overrides: steps, scheduler, guidance_scale
    [[prompts]]
    set = "toy-digits"
    limit = 6
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchkit.errors import BenchkitError
from benchkit.evaluate import DEFAULT_METRICS, now, run_eval
from benchkit.presets import resolve_spec
from benchkit.rundir import slug
from benchkit.spec import ModelSpec
from prompts import PromptSet, load_prompt_set, parse_seeds

_TOP_KEYS = {"out", "seeds", "metrics", "gate", "devices", "dtype", "sigma", "batch_size", "tolerances", "models", "prompts"}
_RECIPE_OVERRIDES = ("steps", "scheduler", "guidance_scale")


@dataclass
class Job:
    key: str
    spec: ModelSpec
    prompt_set: PromptSet
    device: str


def load_config(path: Path) -> tuple[dict[str, Any], list[Job], str]:
    """Parsed config, its jobs, and the sha256 of the file; every problem is a one-line error."""
    try:
        data = Path(path).read_bytes()
        raw = tomllib.loads(data.decode("utf-8"))
    except OSError as exc:
        raise BenchkitError(f"cannot read nightly config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BenchkitError(f"{path}: invalid TOML ({exc})") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise BenchkitError(f"{path}: unknown field '{sorted(unknown)[0]}'; allowed: {', '.join(sorted(_TOP_KEYS))}")
    if not raw.get("models") or not raw.get("prompts"):
        raise BenchkitError(f"{path}: needs at least one [[models]] and one [[prompts]] table")
    models = []
    for i, m in enumerate(raw["models"]):
        if "spec" not in m:
            raise BenchkitError(f"{path}: models[{i}] needs 'spec' (a preset name or .toml file)")
        spec_ref = m["spec"]
        if spec_ref.endswith(".toml") and not Path(spec_ref).is_absolute():
            spec_ref = str(Path(path).parent / spec_ref)
        spec = resolve_spec(spec_ref).with_recipe(**{k: m[k] for k in _RECIPE_OVERRIDES if k in m})
        models.append((m.get("name") or spec.name, spec))
    prompt_sets = []
    for i, p in enumerate(raw["prompts"]):
        if "set" not in p:
            raise BenchkitError(f"{path}: prompts[{i}] needs 'set' (a built-in set or a prompt file)")
        prompt_sets.append(load_prompt_set(p["set"]).limit(p.get("limit")))
    jobs = [Job(slug(f"{name}--{ps.name}--{device}"), spec, ps, device)
            for name, spec in models for ps in prompt_sets for device in raw.get("devices", ["cpu"])]
    return raw, jobs, hashlib.sha256(data).hexdigest()


def run_nightly(config_path: Path, night: str | None = None, show_progress: bool = True) -> dict[str, Any]:
    from reports.compare import compare_runs, exit_code, parse_tolerances
    from reports.history import History
    from reports.plots import trend_plot
    from reports.render import write_report
    from reports.runs import load_run

    raw, jobs, config_sha = load_config(config_path)
    night = night or dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = Path(raw.get("out", "nightly"))
    if not Path(out).is_absolute():
        out = Path(config_path).parent / out
    seeds = parse_seeds(raw.get("seeds", "0-3"))
    metrics = list(raw.get("metrics", DEFAULT_METRICS))
    gate = list(raw.get("gate", metrics))
    tolerances = parse_tolerances([f"{k}={v}" for k, v in (raw.get("tolerances") or {}).items()])
    history = History(out / "history.sqlite")
    try:
        history.start_night(night, now(), config_sha)
        summary: list[dict[str, Any]] = []
        for job in jobs:
            run_dir = out / night / job.key
            results = run_eval(job.spec, job.prompt_set, seeds, run_dir, metrics=metrics, device=job.device,
                               dtype=raw.get("dtype"), batch_size=int(raw.get("batch_size", 8)), show_progress=show_progress)
            history.record_run(night, job.key, run_dir, results, load_run(run_dir).manifest)
            entry: dict[str, Any] = {"job": job.key, "run": str(run_dir), "baseline_night": None, "exit_code": 0, "verdicts": {}}
            baseline = history.last_good(job.key, before=night)
            if baseline:
                comps = compare_runs(load_run(baseline[1]), load_run(run_dir), tolerances, float(raw.get("sigma", 2.0)),
                                     [g for g in gate if g in {m["name"] for m in results["metrics"]}])
                history.record_verdicts(night, job.key, baseline[0], comps)
                entry.update(baseline_night=baseline[0], exit_code=exit_code(comps),
                             verdicts={c.name: c.verdict for c in comps})
            summary.append(entry)
        status = "fail" if any(e["exit_code"] == 1 for e in summary) else "pass"
        history.finish_night(night, status)
        figures = []
        for metric in gate:
            svg = trend_plot(history.trend(metric), metric)
            if svg:
                figures.append((f"Trend: {metric}", svg))
        report = write_report([Path(e["run"]) for e in summary], out / night / "report",
                              title=f"benchkit nightly {night}: {status}", figures=figures)
        return {"night": night, "status": status, "jobs": summary, "report": report, "history": str(out / "history.sqlite")}
    finally:
        history.close()
