"""The bridge to the official VBench toolkit (Vchitect/VBench, `vbench` on PyPI).

VBench's 16 dimensions need about ten networks, several of which ship only inside the toolkit
(GRiT on detectron2, UMT, Tag2Text, ViCLIP, AMT), and papers report the toolkit's own numbers;
so benchkit does not re-implement them but meets the toolkit at its two ends:

* export: a run's clips copied under the names VBench's standard mode looks for,
  ``{prompt}-{index}.mp4`` with index 0..4 by seed order (vbench/__init__.py:119-121), into a
  folder `vbench evaluate --videos_path` can read. Nothing in that folder is ever overwritten:
  a file already named like a clip must hold that clip's bytes (an earlier export of the same
  run), and the folder may hold nothing else: another clip named after a VBench prompt would be
  scored with this run's, and the standard mode takes the clip suffix from whichever file it
  lists first (vbench/__init__.py:112-113).
* import: the toolkit's ``*_eval_results.json`` ({dimension: [mean score, [per-video
  results]]}, vbench/__init__.py:145-157) as a benchkit run folder, with each dimension raw
  and normalised and Quality / Semantic / Total (metrics.vbench_scores), so that `benchkit
  compare`, `report` and `nightly` treat it like any run. Every input is checked before
  anything is written.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from benchkit import __version__
from benchkit.core.atomic import atomic_target
from benchkit.core.errors import BenchkitError, describe_os_error
from benchkit.core.provenance import now
from benchkit.core.rundir import RunDir, committed_records
from metrics.vbench_scores import (
    BY_NAME,
    QUALITY,
    SEMANTIC,
    SOURCE,
    dimension_name,
    vbench_scores,
)

CLIPS_PER_PROMPT = 5  # the standard mode's video indices 0..4 (vbench/__init__.py:119)
IMPLEMENTATION = "VBench official toolkit, imported"
KIND = "vbench-official"
_INDEX_SUFFIX = re.compile(r"-\d+$")  # what vbench.utils.get_prompt_from_filename strips (vbench/utils.py:381-383)


def vbench_prompt(record: dict[str, Any]) -> str:
    """The prompt VBench files a clip under: a vbench-long clip under its short prompt, as VBench scores it."""
    meta = record.get("meta") or {}
    return str(meta.get("short_prompt") or record.get("prompt") or "")


def prompt_of_filename(path: str) -> str:
    """The prompt a VBench clip name stands for (vbench/utils.py:375-384), from a path of any OS."""
    return _INDEX_SUFFIX.sub("", PurePosixPath(re.split(r"[\\/]", path)[-1]).stem)


def _file_name_problem(prompt: str) -> str | None:
    if not prompt.strip():
        return "is empty"
    if "/" in prompt or "\\" in prompt or "\0" in prompt:
        return "holds a path separator"
    if len(f"{prompt}-{CLIPS_PER_PROMPT - 1}.mp4".encode()) > 255:
        return "is too long for a file name"
    return None


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


# -- export ---------------------------------------------------------------------------------------

@dataclass
class ExportPlan:
    """What an export will copy, worked out (and checked) before any file is touched."""

    copies: list[tuple[Path, str]] = field(default_factory=list)  # (source clip, name in DIR)
    prompts: int = 0
    fewer: dict[str, int] = field(default_factory=dict)  # prompt -> clips, where fewer than 5
    seeds_left_out: int = 0  # clips beyond the fifth seed of a prompt
    duplicates: list[str] = field(default_factory=list)  # prompts the set lists twice: one prompt id's clips exported


def plan_export(run: Path, dest: Path, allow_fewer: bool = False) -> ExportPlan:
    """Check the run and choose each prompt's clips: the first prompt id's, five by ascending seed."""
    run, dest = Path(run), Path(dest)
    if RunDir(run).kind() is None:
        raise BenchkitError(f"{run} is not a benchkit run (no benchkit manifest.json): give a run folder made by `benchkit eval`")
    if _inside(dest.resolve(), run.resolve()) or _inside(run.resolve(), dest.resolve()):
        raise BenchkitError(f"{dest} is {run} or inside or around it: export into a folder of its own")
    if dest.exists() and not dest.is_dir():
        raise BenchkitError(f"{dest} is a file: give a folder to export the clips into")
    clips = [r for r in committed_records(run) if r.get("video")]
    if not clips:
        raise BenchkitError(f"{run} has no clips: VBench scores videos, and this run holds none (an image model's run?)")
    apng = [r for r in clips if str(r.get("video_format", "")).startswith("apng") or str(r["video"]).lower().endswith(".png")]
    if apng:
        raise BenchkitError(f"{run} holds {len(apng)} clips as APNG (no mp4 encoder was installed when they were made) and "
                            "VBench reads mp4: `pip install av`, then generate the run again")
    by_prompt: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rec in clips:
        by_prompt.setdefault(vbench_prompt(rec), {}).setdefault(str(rec["prompt_id"]), []).append(rec)
    plan = ExportPlan(prompts=len(by_prompt))
    for prompt, ids in by_prompt.items():
        problem = _file_name_problem(prompt)
        if problem:
            raise BenchkitError(f"prompt {min(ids)} of {run} {problem} ({prompt[:60]!r}); VBench names clips after "
                                "their prompt, so this prompt set cannot be exported")
        if len(ids) > 1:
            plan.duplicates.append(prompt)
        chosen = sorted(ids[min(ids)], key=lambda r: int(r["seed"]))
        if len(chosen) < CLIPS_PER_PROMPT:
            plan.fewer[prompt] = len(chosen)
        plan.seeds_left_out += max(0, len(chosen) - CLIPS_PER_PROMPT)
        for index, rec in enumerate(chosen[:CLIPS_PER_PROMPT]):
            source = Path(rec["video"]) if Path(rec["video"]).is_absolute() else run / rec["video"]
            if not source.is_file():
                raise BenchkitError(f"{source} is missing: the run is damaged; generate it again (or resume it)")
            plan.copies.append((source, f"{prompt}-{index}.mp4"))
    if plan.fewer and not allow_fewer:
        prompt, n = next(iter(plan.fewer.items()))
        raise BenchkitError(f"{len(plan.fewer)} of {plan.prompts} prompts have fewer than {CLIPS_PER_PROMPT} clips "
                            f"({prompt[:60]!r} has {n}); VBench's standard mode expects {CLIPS_PER_PROMPT} per prompt: "
                            "generate seeds 0-4, or pass --allow-fewer")
    return plan


def _dest_check(dest: Path, plan: ExportPlan, lock_name: str) -> tuple[set[str], list[Path]]:
    """Which clips are already there (same bytes) and which temp files are a killed export's.

    Refuses a file of another content under a clip's name, another clip (VBench would score it
    with this run's if it is named after a VBench prompt), and anything that is not an .mp4.
    """
    wanted = {name: source for source, name in plan.copies}
    temp = re.compile(r"\.(?P<name>.+\.mp4)\.[A-Za-z0-9_]+\.tmp")  # atomic_target's temp name for a clip
    same, stale = set(), []
    for entry in sorted(dest.iterdir()) if dest.is_dir() else []:
        match = temp.fullmatch(entry.name)
        if entry.name == lock_name:
            continue
        if match and match["name"] in wanted and entry.is_file():
            stale.append(entry)
        elif entry.name in wanted:
            if not (entry.is_file() and filecmp.cmp(entry, wanted[entry.name], shallow=False)):
                raise BenchkitError(f"{entry} exists and is not this run's clip; benchkit never overwrites a file it did "
                                    "not write: choose an empty or new folder")
            same.add(entry.name)
        elif entry.is_file() and entry.suffix == ".mp4":
            raise BenchkitError(f"{dest} holds {entry.name}, which is not one of this run's clips, and VBench would score "
                                "it with them: export into an empty or new folder")
        else:
            raise BenchkitError(f"{dest} holds {entry.name}, not a clip; VBench's standard mode takes the clip suffix from "
                                "the first file it lists, so export into an empty or new folder")
    return same, stale


def export_vbench(run: Path, dest: Path, allow_fewer: bool = False) -> dict[str, Any]:
    """Copy a run's clips into ``dest`` as ``{prompt}-{index}.mp4`` (never moved, never over another file)."""
    from benchkit.core.lock import LOCK_NAME, folder_lock

    plan = plan_export(run, dest, allow_fewer)
    dest = Path(dest)
    _dest_check(dest, plan, LOCK_NAME)  # refuse before the lock creates the folder
    with folder_lock(dest, "benchkit export vbench"):
        same, stale = _dest_check(dest, plan, LOCK_NAME)
        for path in stale:  # a killed export's partial copy, under benchkit's own temp name
            path.unlink(missing_ok=True)
        written = 0
        for source, name in plan.copies:
            if name in same:
                continue
            with atomic_target(dest / name) as tmp:
                try:
                    shutil.copyfile(source, tmp)
                except OSError as exc:
                    raise describe_os_error(exc, dest / name) from None
            written += 1
    return {"dir": str(dest), "prompts": plan.prompts, "clips": len(plan.copies), "written": written,
            "already_there": len(same), "fewer": plan.fewer, "seeds_left_out": plan.seeds_left_out,
            "duplicate_prompts": plan.duplicates}


# -- import ---------------------------------------------------------------------------------------

@dataclass
class DimensionResult:
    name: str
    mean: float
    videos: list[str]  # the per-video entries' video_path
    file: Path


def _read_one(path: Path) -> tuple[dict[str, Any], str]:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise BenchkitError(f"{path} not found: give the *_eval_results.json file `vbench evaluate` wrote") from None
    except IsADirectoryError:
        raise BenchkitError(f"{path} is a folder: give the *_eval_results.json file inside it") from None
    except OSError as exc:
        raise describe_os_error(exc, path, "reading") from None
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BenchkitError(f"{path} is not JSON ({str(exc).splitlines()[0]}): give a VBench *_eval_results.json") from None
    if not isinstance(parsed, dict) or not parsed:
        raise BenchkitError(f"{path} is not a VBench results file: expected {{dimension: [score, [per-video results]]}}")
    return parsed, hashlib.sha256(data).hexdigest()


def read_vbench_results(paths: list[Path]) -> tuple[dict[str, DimensionResult], list[dict[str, Any]]]:
    """Every dimension of one or more results files (one per `vbench evaluate --dimension` run, or one for all).

    A file that is not VBench's shape, an unknown dimension, a non-finite score, or a dimension
    in two files is a one-line error.
    """
    if not paths:
        raise BenchkitError("no results file given: pass the *_eval_results.json files `vbench evaluate` wrote")
    dims: dict[str, DimensionResult] = {}
    sources = []
    for path in paths:
        parsed, sha = _read_one(Path(path))
        names = []
        for key, entry in parsed.items():
            where = f"{path}: '{key}'"
            try:
                name = dimension_name(key)
            except BenchkitError as exc:
                raise BenchkitError(f"{path}: {exc}") from None
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
                raise BenchkitError(f"{where} is not [score, [per-video results]] as `vbench evaluate` writes it")
            mean, per_video = entry
            if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
                raise BenchkitError(f"{where}: the score {mean!r} is not a finite number")
            if not per_video or not all(isinstance(v, dict) and isinstance(v.get("video_path"), str) for v in per_video):
                raise BenchkitError(f"{where}: expected a non-empty list of per-video results, each with a video_path")
            if name in dims:
                raise BenchkitError(f"dimension {name} is in both {dims[name].file} and {path}: import each dimension once")
            dims[name] = DimensionResult(name, float(mean), [v["video_path"] for v in per_video], Path(path))
            names.append(name)
        sources.append({"path": str(Path(path).resolve()), "sha256": sha, "dimensions": names})
    return dims, sources


def _check_prompts(dims: dict[str, DimensionResult], prompt_set: Any) -> None:
    """Every clip scored must be named after a prompt of the set the user says it came from."""
    names = {vbench_prompt({"prompt": r.prompt, "meta": r.meta}) for r in prompt_set.records}
    for dim in dims.values():
        for video in dim.videos:
            if prompt_of_filename(video) not in names:
                raise BenchkitError(f"{dim.file}: {dim.name} scored {video!r}, which is not named after a prompt of "
                                    f"{prompt_set.name} ({{prompt}}-{{index}}.mp4): pass the --prompts its clips were made from")


def _metric(name: str, value: float, n: int, variant: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A results.json metric entry, as metrics.base.MetricValue.to_dict writes it (VBench: higher is better)."""
    return {"name": name, "value": float(value), "unit": "", "higher_is_better": True, "n": n,
            "variant": variant, "extra": extra}


def vbench_metrics(dims: dict[str, DimensionResult], vbench_version: str | None = None) -> list[dict[str, Any]]:
    """Each dimension raw and normalised, then Quality, Semantic and Total (or their partial forms)."""
    variant: dict[str, Any] = {"implementation": IMPLEMENTATION}
    if vbench_version:
        variant["vbench_version"] = vbench_version
    scores = vbench_scores({name: d.mean for name, d in dims.items()})
    out = []
    for name, normalized in scores["normalized"].items():
        d, dim = dims[name], BY_NAME[name]
        extra = {"dimension": dim.label, "group": dim.group, "videos": len(set(d.videos)), "file": str(d.file)}
        out.append(_metric(dim.metric, d.mean, len(d.videos), variant, extra))
        out.append(_metric(f"{dim.metric}-normalized", normalized, len(d.videos), {**variant, "normalization": SOURCE},
                           {**extra, "raw": d.mean, "min": dim.low, "max": dim.high}))
    for key in (QUALITY, SEMANTIC, "total"):
        full = key in scores
        agg = {"value": scores[key], "present": [n for n in scores["normalized"] if key == "total" or BY_NAME[n].group == key],
               "missing": []} if full else scores[f"{key}_partial"]
        if agg["value"] is None:
            continue  # not one of its dimensions was scored
        videos = {v for n in agg["present"] for v in dims[n].videos}
        agg_variant = {**variant, "normalization": SOURCE, **({} if full else {"missing": agg["missing"]})}
        out.append(_metric(f"vbench-{key}" if full else f"vbench-{key}-partial", agg["value"], len(videos), agg_variant,
                           {"dimensions": agg["present"], "missing": agg["missing"]}))
    return out


def import_vbench(paths: list[Path], out: Path, prompts: str = "vbench", label: str | None = None,
                  vbench_version: str | None = None) -> dict[str, Any]:
    """Write the run folder ``out`` from VBench results files; returns its results.json content.

    ``out`` may be new, empty, or an earlier import (replaced); any other folder is refused.
    """
    from benchkit.core.lock import folder_lock
    from prompts import load_prompt_set

    out = Path(out)
    dims, sources = read_vbench_results([Path(p) for p in paths])
    prompt_set = load_prompt_set(prompts)
    _check_prompts(dims, prompt_set)
    for source in sources:
        if _inside(Path(source["path"]), out.resolve()):
            raise BenchkitError(f"{source['path']} is inside --out {out}: write the imported run to a folder of its own")
    if out.exists() and not out.is_dir():
        raise BenchkitError(f"--out {out} is a file: give a folder for the imported run")
    found = RunDir(out).kind()
    if found not in (None, "import") or (found is None and out.is_dir() and any(out.iterdir())):
        what = f"a benchkit {found} run" if found else "not empty and not a benchkit run"
        raise BenchkitError(f"{out} is {what}; benchkit only replaces its own import runs: choose an empty or new --out")
    metrics = vbench_metrics(dims, vbench_version)
    label = label or out.name
    manifest = {"benchkit_run": 1, "created": now(), "command": "import", "kind": KIND, "label": label,
                "source": sources, "prompt_set": prompt_set.describe(), "vbench_version": vbench_version,
                "benchkit": __version__}
    identity = {"kind": KIND, "source_sha256": [s["sha256"] for s in sources], "prompt_set_sha256": prompt_set.sha256}
    videos = {v for d in dims.values() for v in d.videos}
    results = {
        "run": {"path": str(out), "name": KIND, "label": label, "kind": KIND, "prompt_set": prompt_set.describe(),
                "source": sources, "vbench_version": vbench_version, "n_videos": len(videos),
                "benchkit": __version__, "imported": now()},
        "metrics": metrics,
        "breakdowns": [],
    }
    with folder_lock(out, "benchkit import vbench"):
        run = RunDir.open(out, identity, manifest, overwrite=True)
        try:
            if run.images_dir.is_dir() and not any(run.images_dir.iterdir()):
                run.images_dir.rmdir()  # RunDir.open makes it; an import has no images
        except OSError:
            pass
        run.write_results(results)
        run.update_manifest(status="complete", completed=now())
    return results
