"""`benchkit nightly CONFIG.toml`: run a suite, append it to the history, gate on regressions.

The suite is the cross product of the config's models, prompt sets and devices. Each job is
an ordinary resumable run under ``OUT/<night>/<job>``; its metrics go into the SQLite history
(``reports.history``) and are compared with the job's baseline: the newest night that started
earlier, passed, and ran the job over the same prompts and seeds (nights are ordered by start
time, never by id). The night fails, and the command exits 1, when a gate metric got worse
beyond its band. A gate metric that cannot be compared (its variant changed, e.g. new
classifier weights) does not fail the night; its verdict says why, and the night becomes the
next baseline. A night whose process died is marked ``aborted`` when the next night starts;
re-running its id resumes it.

The whole config is checked before anything runs or any history is written: every problem
is one error line naming the file and the field.

Config::

    out = "nightly"                       # runs, report and history.sqlite go here
    seeds = "0-3"                         # or a list: [0, 1, 2, 3]
    metrics = ["toy-fid", "toy-alignment", "toy-diversity", "latency"]  # default: each model family's own
    gate = ["toy-fid", "toy-alignment"]   # metric values that can fail a night (default: all)
    devices = ["cpu"]
    dtype = "float32"                     # optional
    sigma = 2.0
    batch_size = 8
    [tolerances]                          # optional explicit bands: a number or "N%"
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
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from benchkit.core.errors import BenchkitError
from benchkit.core.rundir import slug
from benchkit.evaluate import run_eval
from benchkit.models.presets import resolve_spec
from benchkit.models.spec import ModelSpec, read_toml
from prompts import PromptSet, is_seed, load_prompt_set, parse_seeds

_TOP_KEYS = {"out", "seeds", "metrics", "gate", "devices", "dtype", "sigma", "batch_size", "tolerances", "models", "prompts"}
_MODEL_KEYS = {"name", "spec", "steps", "scheduler", "guidance_scale"}
_PROMPT_KEYS = {"set", "limit"}
_RECIPE_OVERRIDES = ("steps", "scheduler", "guidance_scale")
_NIGHT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

@dataclass
class Job:
    key: str
    spec: ModelSpec
    prompt_set: PromptSet
    device: str


@dataclass
class NightlyConfig:
    """A checked config: every field has its type and a valid value."""

    path: Path
    sha256: str
    out: Path
    seeds: list[int]
    metrics: list[str] | None  # None: each model's family's default metrics
    gate: list[str]
    devices: list[str]
    dtype: str | None
    sigma: float
    batch_size: int
    tolerances: dict[str, Any]
    jobs: list[Job] = field(default_factory=list)


def _show(value: Any) -> str:
    """A config value as the error line quotes it: TOML words for booleans, short reprs otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def value_names(metric_names: list[str]) -> set[str]:
    """The metric values (results.json names) the given metrics report: what gate and tolerances name."""
    from metrics import REGISTRY

    return {value for name in metric_names for value in REGISTRY[name].value_names()}


def _family_defaults() -> list[str]:
    """Every metric some model family runs by default: what a config without `metrics` may report."""
    from benchkit.models.families import FAMILIES

    return list(dict.fromkeys(name for family in FAMILIES.values() for name in family.default_metrics))


class _Checker:
    """Raises one BenchkitError line: '<config>: <field> <problem>'."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str) -> NoReturn:
        raise BenchkitError(f"{self.path}: {where} {problem}")

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"must be a non-empty string, got {_show(value)}")
        return value

    def positive_int(self, value: Any, where: str) -> int:
        if not _is_int(value) or value < 1:
            self.fail(where, f"must be a positive integer, got {_show(value)}")
        return value

    def strings(self, value: Any, where: str, allow_one: bool = False) -> list[str]:
        if allow_one and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not value:
            self.fail(where, f"must be a non-empty list of strings, got {_show(value)}")
        for i, item in enumerate(value):
            self.string(item, f"{where}[{i}]")
        repeated = next((v for i, v in enumerate(value) if v in value[:i]), None)
        if repeated is not None:
            self.fail(where, f"lists '{repeated}' twice")
        return list(value)

    def tables(self, raw: dict[str, Any], key: str, allowed: set[str]) -> list[dict[str, Any]]:
        value = raw.get(key)
        if value is None:
            self.fail(key, f"is missing: add at least one [[{key}]] table")
        if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
            self.fail(key, f"must be one or more [[{key}]] tables, got {_show(value)}")
        for i, table in enumerate(value):
            unknown = sorted(set(table) - allowed)
            if unknown:
                self.fail(f"{key}[{i}]", f"has unknown field '{unknown[0]}'; allowed: {', '.join(sorted(allowed))}")
        return value


def _seeds(check: _Checker, value: Any) -> list[int]:
    if isinstance(value, str):
        try:
            return parse_seeds(value)
        except BenchkitError:
            check.fail("seeds", f"must be a range like \"0-3\", a list like \"0,1,7\" or [0, 1, 7], got {_show(value)}")
    if isinstance(value, list) and value and all(is_seed(s) for s in value):
        if len(set(value)) != len(value):
            check.fail("seeds", f"lists a seed twice: {_show(value)}")
        return list(value)
    check.fail("seeds", f"must be a string like \"0-3\" or a list of non-negative integers, got {_show(value)}")


def _tolerances(check: _Checker, value: Any, known: set[str]) -> dict[str, Any]:
    from reports.compare import Tolerance

    if not isinstance(value, dict):
        check.fail("tolerances", f"must be a table of NAME = number or \"N%\", got {_show(value)}")
    out = {}
    for name, raw in value.items():
        where = f"tolerances.{name}"
        if name not in known:
            check.fail(where, f"names no metric value of these metrics; known: {', '.join(sorted(known))}")
        if _is_number(raw) and raw >= 0:
            out[name] = Tolerance(float(raw), relative=False)
            continue
        if isinstance(raw, str) and raw.endswith("%"):
            try:
                percent = float(raw[:-1])
            except ValueError:
                percent = -1.0
            if math.isfinite(percent) and percent >= 0:
                out[name] = Tolerance(percent / 100, relative=True)
                continue
        check.fail(where, f"must be a non-negative number or a percentage like \"5%\", got {_show(raw)}")
    return out


def load_config(path: Path) -> NightlyConfig:
    """The checked config and its jobs; every problem is one error line naming this file and the field.

    Nothing is run or written here, so a bad config costs nothing and leaves no history behind.
    """
    from benchkit.core.hardware import DTYPES, resolve_device
    from metrics import parse_metric_names

    path = Path(path)
    check = _Checker(path)
    raw, data = read_toml(path, "nightly config", encoding="utf-8-sig")
    sha = hashlib.sha256(data).hexdigest()
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise BenchkitError(f"{path}: unknown field '{unknown[0]}'; allowed: {', '.join(sorted(_TOP_KEYS))}")
    if not raw.get("models") or not raw.get("prompts"):
        raise BenchkitError(f"{path}: needs at least one [[models]] and one [[prompts]] table")

    out = Path(check.string(raw.get("out", "nightly"), "out"))
    out = out if out.is_absolute() else path.parent / out
    seeds = _seeds(check, raw.get("seeds", "0-3"))
    # without `metrics`, each model gets its family's default metrics (as `benchkit eval` does)
    metrics = check.strings(raw["metrics"], "metrics", allow_one=True) if "metrics" in raw else None
    try:
        if metrics is not None:
            parse_metric_names(metrics)
    except BenchkitError as exc:
        check.fail("metrics:", str(exc))
    possible = metrics or _family_defaults()
    known = value_names(possible)
    if "gate" in raw:
        gate = check.strings(raw["gate"], "gate")
        for i, name in enumerate(gate):
            if name not in known:
                check.fail(f"gate[{i}]", f"'{name}' is not a value the metrics {', '.join(possible)} report; "
                                         f"choose from {', '.join(sorted(known))}")
    else:
        gate = list(possible)
    devices = check.strings(raw.get("devices", ["cpu"]), "devices")
    for i, device in enumerate(devices):
        try:
            resolve_device(device)  # unknown or absent devices fail now, not after the first job
        except BenchkitError as exc:
            check.fail(f"devices[{i}]:", str(exc))
    dtype = raw.get("dtype")
    if dtype is not None and (not isinstance(dtype, str) or (dtype.lower() not in DTYPES and dtype != "auto")):
        check.fail("dtype", f"must be one of auto, {', '.join(DTYPES)}, got {_show(dtype)}")
    sigma = raw.get("sigma", 2.0)
    if not _is_number(sigma) or sigma <= 0:
        check.fail("sigma", f"must be a positive number, got {_show(sigma)}")
    batch_size = check.positive_int(raw.get("batch_size", 8), "batch_size")
    tolerances = _tolerances(check, raw.get("tolerances", {}), known)

    models = []
    for i, m in enumerate(check.tables(raw, "models", _MODEL_KEYS)):
        where = f"models[{i}]"
        if "spec" not in m:
            check.fail(where, "needs 'spec' (a preset name or .toml file)")
        spec_ref = check.string(m["spec"], f"{where}.spec")
        name = check.string(m["name"], f"{where}.name") if "name" in m else None
        if "steps" in m:
            check.positive_int(m["steps"], f"{where}.steps")
        if "scheduler" in m:
            check.string(m["scheduler"], f"{where}.scheduler")
        if "guidance_scale" in m and not _is_number(m["guidance_scale"]):
            check.fail(f"{where}.guidance_scale", f"must be a finite number, got {_show(m['guidance_scale'])}")
        if spec_ref.endswith(".toml") and not Path(spec_ref).is_absolute():
            spec_ref = str(path.parent / spec_ref)
        try:
            spec = resolve_spec(spec_ref).with_recipe(**{k: m[k] for k in _RECIPE_OVERRIDES if k in m})
        except BenchkitError as exc:
            check.fail(f"{where}:", str(exc))
        models.append((name or spec.name, spec))
    prompt_sets = []
    for i, p in enumerate(check.tables(raw, "prompts", _PROMPT_KEYS)):
        where = f"prompts[{i}]"
        if "set" not in p:
            check.fail(where, "needs 'set' (a built-in set or a prompt file)")
        limit = check.positive_int(p["limit"], f"{where}.limit") if "limit" in p else None
        try:
            prompt_sets.append(load_prompt_set(check.string(p["set"], f"{where}.set")).limit(limit))
        except BenchkitError as exc:
            check.fail(f"{where}.set:", str(exc))

    jobs, origin = [], {}
    for mi, (name, spec) in enumerate(models):
        for pi, ps in enumerate(prompt_sets):
            for di, device in enumerate(devices):
                job = Job(slug(f"{name}--{ps.name}--{device}"), spec, ps, device)
                here = f"models[{mi}] x prompts[{pi}] x devices[{di}]"
                if job.key in origin:
                    check.fail(here, f"gives job '{job.key}' again (as {origin[job.key]} does): give the models "
                                     "distinct names or drop the repeated entry")
                origin[job.key] = here
                jobs.append(job)
    return NightlyConfig(path, sha, out, seeds, metrics, gate, devices, dtype, float(sigma), batch_size, tolerances, jobs)


def _timestamp() -> str:
    """UTC start time to the microsecond: nights are ordered by it, and two can start in one second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def run_nightly(config_path: Path, night: str | None = None, show_progress: bool = True, wait: bool = False) -> dict[str, Any]:
    """Check the whole config, then run the night holding the output folder's lock (one nightly at a time)."""
    from benchkit.core.lock import folder_lock

    cfg = load_config(config_path)
    night = night or dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    if not _NIGHT_ID.fullmatch(night):
        raise BenchkitError(f"--night {night!r}: use up to 100 letters, digits, '.', '_' or '-', starting with a "
                            f"letter or digit (it names a folder under {cfg.out})")
    with folder_lock(cfg.out, f"benchkit nightly {night}", wait=wait):
        return _run_night(cfg, night, show_progress)


def _run_night(cfg: "NightlyConfig", night: str, show_progress: bool) -> dict[str, Any]:
    from reports.compare import compare_runs, exit_code
    from reports.history import History
    from reports.plots import trend_plot
    from reports.render import write_report
    from reports.runs import load_run

    history = History(cfg.out / "history.sqlite")
    try:
        aborted = history.start_night(night, _timestamp(), cfg.sha256)
    except BaseException:
        history.close()
        raise
    try:
        summary: list[dict[str, Any]] = []
        for job in cfg.jobs:
            run_dir = cfg.out / night / job.key
            results = run_eval(job.spec, job.prompt_set, cfg.seeds, run_dir, metrics=cfg.metrics, device=job.device,
                               dtype=cfg.dtype, batch_size=cfg.batch_size, show_progress=show_progress)
            history.record_run(night, job.key, run_dir, results, load_run(run_dir).manifest)
            entry: dict[str, Any] = {"job": job.key, "run": str(run_dir), "baseline_night": None, "exit_code": 0, "verdicts": {}}
            baseline = history.last_good(job.key, before=night, prompt_sha256=job.prompt_set.sha256,
                                         prompt_subset=job.prompt_set.subset, seeds=cfg.seeds)
            if baseline:
                base_run, cand_run = load_run(baseline[1]), load_run(run_dir)
                # a gate metric new since the baseline has nothing to be compared with yet
                both = set(base_run.metrics) & set(cand_run.metrics)
                comps = compare_runs(base_run, cand_run, cfg.tolerances, cfg.sigma, [g for g in cfg.gate if g in both])
                history.record_verdicts(night, job.key, baseline[0], comps)
                entry.update(baseline_night=baseline[0], exit_code=exit_code(comps),
                             verdicts={c.name: c.verdict for c in comps})
            summary.append(entry)
        status = "fail" if any(e["exit_code"] == 1 for e in summary) else "pass"
        figures = []
        for metric in cfg.gate:
            svg = trend_plot(history.trend(metric), metric, order=[n for n, _ in history.nights()])
            if svg:
                figures.append((f"Trend: {metric}", svg))
        report = write_report([Path(e["run"]) for e in summary], cfg.out / night / "report",
                              title=f"benchkit nightly {night}: {status}", figures=figures)
        history.finish_night(night, status, _timestamp())  # last: a night is only pass/fail once all of it exists
        return {"night": night, "status": status, "jobs": summary, "report": report, "aborted": aborted,
                "history": str(cfg.out / "history.sqlite")}
    except BaseException:
        # Crashed or interrupted (a kill -9 cannot get here: the next night marks that one).
        try:
            history.finish_night(night, "aborted", _timestamp())
        except Exception:  # the history itself failing must not hide why the night stopped
            pass
        raise
    finally:
        history.close()
