"""The `benchkit` command line: a thin typer layer over the Python API.

Every user-caused error is a BenchkitError and is printed as one red line (exit status 2);
a run interrupted by Ctrl-C says how to resume.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchkit.core.errors import BenchkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Evaluate and benchmark few-step diffusion models.")
prompts_app = typer.Typer(no_args_is_help=True, help="List and inspect prompt sets.")
toy_app = typer.Typer(no_args_is_help=True, help="Retrain the embedded toy world (teacher and classifier).")
app.add_typer(prompts_app, name="prompts")
reference_app = typer.Typer(no_args_is_help=True, help="Build FID reference sets from local datasets.")
app.add_typer(toy_app, name="toy")
app.add_typer(reference_app, name="reference")
out = Console()


def default_run_dir(spec, prompt_set, seeds) -> Path:
    """Deterministic, so re-running the same command resumes the same run."""
    key = json.dumps({"spec": spec.identity(), "prompts": [prompt_set.sha256, prompt_set.subset], "seeds": seeds}, sort_keys=True)
    from benchkit.core.rundir import slug

    return Path("runs") / f"{slug(spec.name) or 'run'}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def print_results(results: dict, footer: str = "") -> None:
    from benchkit.core.distributed import launched_rank

    if launched_rank() != 0:  # under torchrun every rank returns the results; one prints them
        return
    table = Table(title=results["run"].get("label") or results["run"].get("name"), show_lines=False)
    for col in ("metric", "value", "unit", "n", "better"):
        table.add_column(col, justify="right" if col in ("value", "n") else "left")
    for m in results["metrics"]:
        better = {True: "higher", False: "lower", None: ""}[m["higher_is_better"]]
        table.add_row(m["name"], f"{m['value']:.6g}", m["unit"], str(m["n"]), better)
    out.print(table)
    if footer:
        out.print(footer)
    for name, why in (results["run"].get("metrics_left_out") or {}).items():
        Console(stderr=True).print(f"note: default metric {name} left out: {escape(why)}", highlight=False, soft_wrap=True)


@app.command("eval")
def eval_cmd(
    model: str = typer.Option("toy-digits", "--model", "-m", help="Preset name or TOML spec file."),
    prompts: str = typer.Option("toy-digits", "--prompts", "-p", help="Built-in prompt set or a txt/csv/tsv/jsonl file."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds per prompt: 0-3 or 0,5,9 (default 0-3; 0-4 on VBench's "
                                        "prompt sets, its 5 samples per prompt)."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated metric names (default: the model family's, "
                                          "toy metrics for the toy world; those that cannot run here are left out with a note)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default: runs/<model>-<hash>; rerun to resume)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override recipe steps."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Override scheduler (ddim, euler, lcm, tcd, ... or a class name)."),
    spacing: Optional[str] = typer.Option(None, "--spacing", help="Override timestep_spacing (leading, trailing, linspace)."),
    timesteps: Optional[str] = typer.Option(None, "--timesteps", help="Explicit timesteps, e.g. 999,749,499,249."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Override classifier-free guidance scale."),
    eta: Optional[float] = typer.Option(None, "--eta", help="Override eta (DDIM/TCD)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N prompts (after the options below)."),
    category: Optional[str] = typer.Option(None, "--category", help="Only prompts of this category (PartiPrompts, vbench-category)."),
    challenge: Optional[str] = typer.Option(None, "--challenge", help="Only prompts of this PartiPrompts challenge."),
    dimension: Optional[str] = typer.Option(None, "--dimension", help="Only prompts probing this VBench dimension."),
    sample: Optional[int] = typer.Option(None, "--sample", help="N prompts drawn without replacement, kept in file order."),
    sample_seed: int = typer.Option(0, "--sample-seed", help="Seed of --sample."),
    batch_size: int = typer.Option(8, "--batch-size", "-b"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32, float16 or bfloat16 (default: fp32 on cpu, fp16 on gpu)."),
    warmup: int = typer.Option(1, "--warmup", help="Untimed warm-up batches before timing."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Reference-statistics cache (default $BENCHKIT_CACHE or ~/.cache/benchkit)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing benchkit run (only a run) instead of resuming it."),
    wait: bool = typer.Option(False, "--wait", help="If another process is using --out, wait for it instead of exiting."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes that decode and preprocess images for the "
                                          "metrics (default: one per CPU core but one, at most 8; 0: none). Scores do not depend on it."),
    weights: list[str] = typer.Option([], "--weights", help="NAME=PATH of a metric weight (repeatable; see `benchkit weights`)."),
    images_from: Optional[Path] = typer.Option(None, "--images-from", help="Image-to-video: a run whose image of each "
                                               "(prompt, seed) is that item's input image (e.g. a text-to-image model's)."),
    image_dir: Optional[Path] = typer.Option(None, "--image-dir", help="Image-to-video: the folder the prompt set's relative "
                                             "'image' paths are in (vbench-i2v: VBench's data/crop/<ratio>/)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="A benchkit run (e.g. the teacher's) or an image "
                                             "folder that FID, PRDC and the like compare with, instead of their default."),
):
    """Generate images for a prompt set with a model, score them, and write a run directory."""
    _use_weights(weights)
    from benchkit.evaluate import run_eval
    from benchkit.models.presets import resolve_spec
    from prompts import load_prompt_set, parse_seeds

    spec = resolve_spec(model)
    changes = {"steps": steps, "scheduler": scheduler, "guidance_scale": guidance, "eta": eta}
    if timesteps:
        try:
            changes["timesteps"] = [float(t) for t in timesteps.split(",")]  # whole numbers become ints in the recipe
        except ValueError:
            raise BenchkitError(f"--timesteps '{timesteps}': give numbers separated by commas, e.g. 999,749,499,249") from None
    if spacing:
        changes["scheduler_kwargs"] = {**spec.recipe.scheduler_kwargs, "timestep_spacing": spacing}
    spec = spec.with_recipe(**changes)
    prompt_set = load_prompt_set(prompts).select({"category": category, "challenge": challenge, "dimension": dimension},
                                                 sample, sample_seed, limit)
    if image_dir is not None:
        prompt_set = prompt_set.with_image_dir(image_dir)
    seed_list = parse_seeds(seeds if seeds is not None else prompt_set.default_seeds)
    run_dir = out_dir or default_run_dir(spec, prompt_set, seed_list)
    results = run_eval(spec, prompt_set, seed_list, run_dir, metrics=metrics.split(",") if metrics is not None else None,
                       device=device, dtype=dtype, batch_size=batch_size, warmup_batches=warmup, cache_dir=cache_dir,
                       overwrite=overwrite, show_progress=not quiet, wait=wait, workers=workers, images_from=images_from,
                       reference=reference)
    print_results(results, f"run written to [bold]{run_dir}[/bold]")


@app.command("score")
def score_cmd(
    folder: Path = typer.Argument(..., help="Folder of images ({prompt_id}_{seed}.png, or listed in a 'file' column)."),
    prompts: str = typer.Option(..., "--prompts", "-p", help="Prompt set or file the images were made from."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated metric names (default: toy metrics for "
                                          "8x8 toy images, else the image metrics whose weights are present)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the scored run (default: FOLDER-scored); "
                                           "a new or empty folder, or an earlier score run, which is replaced."),
    wait: bool = typer.Option(False, "--wait", help="If another process is using --out, wait for it instead of exiting."),
    device: str = typer.Option("auto", "--device"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes that decode and preprocess images for the "
                                          "metrics (default: one per CPU core but one, at most 8; 0: none). Scores do not depend on it."),
    weights: list[str] = typer.Option([], "--weights", help="NAME=PATH of a metric weight (repeatable; see `benchkit weights`)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="A benchkit run or an image folder that FID, PRDC "
                                             "and the like compare with, instead of their default."),
):
    """Score a folder of existing images with the same metrics as `eval`."""
    _use_weights(weights)
    from benchkit.core.hardware import resolve_device
    from benchkit.evaluate import default_cache_dir
    from benchkit.folder_scoring import score_folder
    from prompts import load_prompt_set

    target = out_dir or folder.resolve().with_name(folder.resolve().name + "-scored")
    results = score_folder(folder, load_prompt_set(prompts), metrics.split(",") if metrics is not None else None, target,
                           cache_dir or default_cache_dir(), resolve_device(device), show_progress=not quiet, wait=wait,
                           workers=workers, reference=reference)
    print_results(results, f"results written to [bold]{target / 'results.json'}[/bold]")


@app.command("report")
def report_cmd(
    runs: list[Path] = typer.Argument(..., help="Run directories to compare."),
    out_dir: Path = typer.Option(Path("report"), "--out", "-o"),
    title: str = typer.Option("benchkit report", "--title"),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A run (one of RUNS or another) every run is "
                                            "compared and paired with: verdicts in the summary, where each loses most."),
):
    """Markdown and self-contained HTML: a summary first, then plots, paired comparisons, samples and details."""
    from reports import write_report

    paths = write_report(runs, out_dir, title=title, baseline=baseline)
    out.print(f"report: [bold]{paths['html']}[/bold] and {paths['markdown']}")


@app.command("compare")
def compare_cmd(
    baseline: Path = typer.Argument(..., help="Baseline run directory."),
    candidates: list[Path] = typer.Argument(..., help="Candidate run directories."),
    tolerance: list[str] = typer.Option([], "--tolerance", "-t", help="NAME=VALUE or NAME=PERCENT% (repeatable)."),
    sigma: float = typer.Option(2.0, "--sigma", help="Width of seed-spread bands in standard errors."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Only these metrics (comma-separated)."),
    allow_different_prompts: bool = typer.Option(
        False, "--allow-different-prompts",
        help="Compare quality metrics even over different prompt sets, subsets, seed lists or image counts "
             "(refused with exit 3 otherwise); the difference is still shown."),
    paired: bool = typer.Option(
        False, "--paired",
        help="Also pair the images by prompt and seed: per-image score differences with paired intervals, per-prompt "
             "win rates (sign test), each image's distance to the baseline's, and where the candidate loses most."),
    distances: Optional[str] = typer.Option(None, "--distances", help="With --paired: only these image distances "
                                            "(comma-separated: pixel-rmse, lpips-alex, dinov2-cosine, toy-feature-l2)."),
    device: str = typer.Option("auto", "--device", help="With --paired: where distance networks run (auto, cpu, cuda...)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
):
    """Per-metric deltas with noise bands and verdicts; exit 1 on a regression, 3 if not comparable."""
    import math

    from reports.compare import (
        compare_runs,
        exit_code,
        parse_tolerances,
        sample_difference,
    )
    from benchkit.core.hardware import resolve_device
    from reports.paired import paired_comparison
    from reports.runs import load_run

    if not math.isfinite(sigma) or sigma <= 0:
        raise BenchkitError(f"--sigma must be a positive number, got {sigma}")
    tolerances = parse_tolerances(tolerance)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    distance_names = [d.strip() for d in distances.split(",") if d.strip()] if distances else None
    if distance_names:
        from metrics.pair_distances import PAIR_DISTANCES

        for name in distance_names:  # before any run is read
            PAIR_DISTANCES.get_or_fail(name)
    base = load_run(baseline)
    cands = [load_run(path) for path in candidates]  # every input is checked before anything is printed
    results, code = [], 0
    for path, cand in zip(candidates, cands):
        comps = compare_runs(base, cand, tolerances, sigma, names, allow_different_samples=allow_different_prompts)
        differences = sample_difference(base, cand)
        run_code = exit_code(comps)
        pc = paired_comparison(base, cand, resolve_device(device), distance_names) if paired else None
        if pc is not None and pc.regressed():
            run_code = 1
        code = 1 if 1 in (code, run_code) else max(code, run_code)
        results.append({"baseline": str(baseline), "candidate": str(path), "exit_code": run_code,
                        "sample_difference": differences, "allowed_different_prompts": allow_different_prompts,
                        "metrics": [c.to_dict() for c in comps], **({"paired": pc.to_dict()} if pc else {})})
        if not as_json:
            table = Table(title=f"{cand.label}  vs  baseline {base.label}")
            for col in ("metric", "baseline", "candidate", "delta", "band", "verdict", "band from / reason"):
                table.add_column(col, justify="right" if col in ("baseline", "candidate", "delta", "band") else "left")
            colour = {"better": "green", "worse": "red", "not comparable": "yellow"}
            for c in comps:
                mark = colour.get(c.verdict)
                verdict = f"[{mark}]{c.verdict}[/{mark}]" if mark else c.verdict
                band = "" if c.band is None else f"±{c.band:.4g}"
                why = "; ".join(x for x in (c.band_source, c.reason) if x)
                table.add_row(escape(c.name), _with_interval(c.baseline, c.baseline_interval),
                              _with_interval(c.candidate, c.candidate_interval), f"{c.delta:+.4g}", band, verdict, escape(why))
            out.print(table)
            if pc is not None:
                _print_paired(pc, cand.label, base.label, colour)
            if differences:
                refused = any(c.verdict == "not comparable" and c.reason.startswith(tuple(differences)) for c in comps)
                what = ("compared anyway" if allow_different_prompts else
                        "quality metrics not comparable" if refused else "samples differ, covered by the intervals")
                out.print(f"[yellow]{what}:[/yellow] {escape('; '.join(differences))}", soft_wrap=True)
    if as_json:
        print(json.dumps(results, indent=2))
    if code:
        raise typer.Exit(code)


def _with_interval(value: float, found: tuple[float, float] | None) -> str:
    return f"{value:.6g}" if found is None else f"{value:.6g} [{found[0]:.4g}, {found[1]:.4g}]"


def _print_paired(pc, cand_label: str, base_label: str, colour: dict[str, str]) -> None:
    """The paired tables of `compare --paired`: scores, distances, where the candidate loses most."""
    table = Table(title=f"paired: {cand_label} vs {base_label} on {pc.items} shared images ({pc.prompts} prompts)")
    for col in ("score", "baseline", "candidate", "delta [95% paired interval]", "verdict", "prompts won/lost/tied",
                "win rate [exact 95%]", "sign test p"):
        table.add_column(col, justify="left" if col in ("score", "verdict") else "right")
    for s in pc.scores:
        mark = colour.get(s.verdict)
        verdict = f"[{mark}]{s.verdict}[/{mark}]" if mark else s.verdict
        table.add_row(escape(s.name), f"{s.baseline:.4g}", f"{s.candidate:.4g}",
                      f"{s.delta:+.4g} [{s.interval['low']:+.4g}, {s.interval['high']:+.4g}]", verdict,
                      f"{s.wins}/{s.losses}/{s.ties}", f"{s.win_rate:.0%} [{s.win_rate_interval[0]:.0%}, "
                      f"{s.win_rate_interval[1]:.0%}]", f"{s.sign_test_p:.3g}")
    out.print(table)
    for d in pc.distances:
        far = ", ".join(f"{p['prompt_id']} ({p['distance']:.3g})" for p in d.farthest_prompts[:3])
        out.print(f"distance to the baseline's image, {escape(d.name)}: {d.mean:.4g} [{d.interval['low']:.4g}, "
                  f"{d.interval['high']:.4g}] {escape(d.unit)}; farthest prompts: {escape(far)}")
    for s in pc.scores:
        if s.worst_prompts:
            worst = ", ".join(f"{p['prompt_id']} ({p['delta']:+.3g})" for p in s.worst_prompts[:3])
            out.print(f"{escape(s.name)}: the candidate loses most on {escape(worst)}")
    for m in pc.distribution:
        out.print(f"{escape(m['name'])} with {escape(base_label)} as reference: {m['value']:.4g}")
    for name, why in pc.left_out.items():
        out.print(f"[yellow]left out[/yellow] {escape(name)}: {escape(why)}", soft_wrap=True)


@app.command("sweep")
def sweep_cmd(
    model: str = typer.Argument(..., help="Preset name or TOML spec file."),
    steps: str = typer.Option(..., "--steps", help="Steps to try, e.g. 1,2,4,8."),
    guidance: Optional[str] = typer.Option(None, "--guidance", help="Guidance scales to try, e.g. 1,2 (default: the recipe's)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Schedulers to try, e.g. ddim,euler (default: the recipe's)."),
    prompts: str = typer.Option("toy-digits", "--prompts", "-p", help="Built-in prompt set or a txt/csv/tsv/jsonl file."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds per prompt (default 0-3)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N prompts."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated metric names (default: the family's)."),
    quality: Optional[str] = typer.Option(None, "--quality", help="The metric the Pareto fronts trade against cost "
                                          "(default: FID-type first, then alignment)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Sweep folder: runs/<setting>/, sweep.json, report/ (rerun to resume)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32, float16 or bfloat16."),
    warmup: int = typer.Option(1, "--warmup", help="Untimed warm-up batches before timing (the 'first run' column)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir"),
    wait: bool = typer.Option(False, "--wait", help="If another process is using --out, wait for it instead of exiting."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes that decode and preprocess images for scoring."),
    weights: list[str] = typer.Option([], "--weights", help="NAME=PATH of a metric weight (repeatable)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="A run or image folder FID-type metrics compare with."),
):
    """Evaluate a model over steps x guidance x scheduler; Pareto fronts of quality against latency and NFE."""
    _use_weights(weights)
    from benchkit.models.presets import resolve_spec
    from benchkit.sweep import parse_grid, run_sweep
    from prompts import load_prompt_set, parse_seeds

    points = parse_grid(steps, guidance, scheduler)
    spec = resolve_spec(model)
    prompt_set = load_prompt_set(prompts).select({}, None, 0, limit)
    seed_list = parse_seeds(seeds if seeds is not None else prompt_set.default_seeds)
    summary = run_sweep(spec, prompt_set, seed_list, out_dir, points,
                        metrics=metrics.split(",") if metrics is not None else None, quality=quality, device=device,
                        dtype=dtype, batch_size=batch_size, warmup_batches=warmup, cache_dir=cache_dir,
                        show_progress=not quiet, wait=wait, workers=workers, reference=reference)
    if "pareto" not in summary:  # a rank other than 0
        return
    table = Table(title=f"sweep: {spec.name}, Pareto fronts on {summary['quality']}")
    for col in ("front", "settings, cheapest first"):
        table.add_column(col)
    for key, names in summary["pareto"].items():
        table.add_row(f"vs {key}", escape(", ".join(names)))
    out.print(table)
    out.print(f"report: [bold]{summary['report']['html']}[/bold]; sweep: {summary['sweep']}")


@app.command("nightly")
def nightly_cmd(
    config: Path = typer.Argument(..., help="Nightly suite TOML (models x prompt sets x devices)."),
    night: Optional[str] = typer.Option(None, "--night", help="Night id (default: UTC timestamp); re-using one re-runs it."),
    wait: bool = typer.Option(False, "--wait", help="If another nightly is using the output folder, wait for it instead of exiting."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Run a suite, append it to the SQLite history, compare with the last good night; exit 1 on a regression."""
    from benchkit.nightly import run_nightly

    summary = run_nightly(config, night=night, show_progress=not quiet, wait=wait)
    for aborted in summary.get("aborted") or []:
        out.print(f"[yellow]night {escape(aborted)} never finished (its process is gone): marked aborted[/yellow]")
    table = Table(title=f"nightly {escape(summary['night'])}: {summary['status']}")
    for col in ("job", "baseline night", "verdicts"):
        table.add_column(col)
    for job in summary["jobs"]:
        verdicts = (", ".join(f"{k}: {v}" for k, v in job["verdicts"].items())
                    or ("no gate metric in both runs" if job["baseline_night"]
                        else "no earlier passing night over these prompts and seeds"))
        table.add_row(escape(job["job"]), escape(job["baseline_night"] or "-"), escape(verdicts))
    out.print(table)
    out.print(f"report: [bold]{escape(str(summary['report']['html']))}[/bold]; history: {escape(summary['history'])}")
    if summary["status"] == "fail":
        raise typer.Exit(1)


@app.command("demo")
def demo_cmd(
    out_dir: Path = typer.Option(Path("benchkit-demo"), "--out", "-o"),
    device: str = typer.Option("auto", "--device"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Evaluate the toy teacher at 50, 8, 4, 2 and 1 steps with two schedulers, and the shipped
    distilled students, and write the report."""
    from benchkit.demo import run_demo

    summary = run_demo(out_dir, device=device, show_progress=not quiet)
    table = Table(title="toy-digits: teacher vs distilled students, quality and speed")
    for col in ("scheduler", "steps", "toy-fid ↓", "toy-alignment ↑", "ms/image (p50)", "NFE"):
        table.add_column(col, justify="right", no_wrap=col == "scheduler")
    for row in summary["rows"]:
        table.add_row(row["scheduler"], str(row["steps"]), f"{row['toy-fid']:.2f}", f"{row['toy-alignment']:.3f}",
                      f"{row['latency_image_p50'] * 1000:.2f}", str(int(row["nfe"])))
    out.print(table)
    out.print(f"report: [bold]{summary['report']['html']}[/bold]")


@app.command("distill")
def distill_cmd(
    ctx: typer.Context,
    method: str = typer.Option(..., "--method", help="dmd2, hyper-sd, adm or lightning."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher preset or spec (e.g. toy-digits)."),
    steps: int = typer.Option(1000, "--steps", help="Training steps."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder, a model spec (default distill/<method>); rerun to resume."),
    student_steps: Optional[int] = typer.Option(None, "--student-steps", help="Sampling steps of the student (method default otherwise)."),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA (peft) instead of the full student."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Teacher ODE pairs from `benchkit pairs`."),
    init: Optional[str] = typer.Option(None, "--init", help="Start the student from another student spec (same architecture)."),
    settings: list[str] = typer.Option([], "--set", help="Config field=value (repeatable), e.g. --set lr=1e-4."),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no, bf16 or fp16."),
    grad_accum: int = typer.Option(1, "--grad-accum"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every"),
    eval_every: int = typer.Option(0, "--eval-every", help="Mini-evaluation (toy FID) every N steps; 0: off."),
    half: bool = typer.Option(False, "--half", help="Save the student's weights in float16."),
    name: Optional[str] = typer.Option(None, "--name", help="Student spec name."),
    device: str = typer.Option("auto", "--device"),
    from_release: bool = typer.Option(False, "--from-release", help="Load the method's released student instead of training."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing", help="Recompute activations of the trainable networks in the backward pass (less memory, more compute)."),
    teacher_dtype: str = typer.Option("fp32", "--teacher-dtype", help="Precision of the frozen teacher: fp32, bf16 or fp16 (halves its memory on GPUs)."),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", help="Train only N more steps, checkpoint and stop; rerun to go on."),
    fsdp: bool = typer.Option(False, "--fsdp", help="Under torchrun: shard the trained networks over the processes (FSDP2) instead of replicating them (dmd2, adm)."),
):
    """Distill a few-step student from a teacher; the output folder is a model spec for `benchkit eval`.

    Under `torchrun --nproc-per-node N` or `accelerate launch`, N processes share --batch-size (the
    global batch) and average gradients every step; rank 0 writes the outputs."""
    from distillers.run import distill, released_spec

    if from_release:
        spec = released_spec(method, student_steps)
        out.print(f"{method}: released student [bold]{spec.name}[/bold] ({spec.recipe_label()}); evaluate it with `benchkit eval -m {spec.name}`")
        return
    if teacher is None:
        raise BenchkitError("benchkit distill: give --teacher SPEC (or --from-release)")
    from distillers.config import parse_settings
    from distillers.methods import get_method

    # The options named like a field of the method's config dataclass (--lora, --seed, --batch-size...)
    # are config fields: those given on the command line override `--set`, which is checked and read
    # against the dataclass (from_overrides in distill); left at their defaults, the method's default stands.
    fields = get_method(method).config.field_types()
    given = {key: value for key, value in ctx.params.items() if key in fields and key != "steps"
             and getattr(ctx.get_parameter_source(key), "name", "DEFAULT") != "DEFAULT"}
    overrides = {**parse_settings(settings), **given}
    target = out_dir or Path("distill") / method
    result = distill(method, teacher, steps, target, overrides, pairs_path=pairs, device=device,
                     checkpoint_every=checkpoint_every, eval_every=eval_every, show_progress=not quiet, half=half, name=name,
                     init=init, stop_after=stop_after)
    from benchkit.core.distributed import launched_rank

    if launched_rank() != 0:  # every rank trained; one prints
        return
    if not result["finished"]:
        out.print(f"stopped at step {result['step']} of {steps}; rerun the same command to resume")
        return
    for row in result["history"][-3:]:
        out.print("eval " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    out.print(f"student spec: [bold]{result['spec']}[/bold] (benchkit eval -m {result['spec']})")


@app.command("pairs")
def pairs_cmd(
    teacher: str = typer.Option(..., "--teacher", help="Teacher preset or spec."),
    out_file: Path = typer.Option(Path("pairs.safetensors"), "--out", "-o"),
    count: int = typer.Option(2000, "--count"),
    steps: int = typer.Option(8, "--steps", help="Teacher DDIM (trailing) steps per pair."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Teacher CFG (default 2; 1 for a guidance-distilled teacher such as FLUX.1-dev, guided by its recipe's embedded guidance)."),
    prompts: Optional[str] = typer.Option(None, "--prompts", "-p", help="Prompt set or file (default for the toy: its training captions)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Pairs per teacher batch (default 100 for the toy, 8 otherwise); the pairs do not depend on it."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Teacher ODE pairs (noise, sample) for ADP pre-training and consistency stages."""
    from distillers.run import pairs_command

    pairs = pairs_command(teacher, out_file, count, steps, guidance, seed, device=device, show_progress=not quiet, prompts=prompts,
                          batch_size=batch_size)
    out.print(f"{len(pairs.x0)} pairs ({steps} DDIM steps, CFG {pairs.meta['guidance']:g}) written to [bold]{out_file}[/bold]")


@app.command("env")
def env_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Hardware and software fingerprint (the same one every manifest records)."""
    from benchkit.core.hardware import fingerprint

    fp = fingerprint()
    if as_json:
        print(json.dumps(fp, indent=2))
        return
    table = Table(title="benchkit env", show_header=False)
    table.add_column("key")
    table.add_column("value")
    for key, value in fp.items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    out.print(table)


@app.command("models")
def models_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List model presets, their recipes, the files each needs and whether they are present locally."""
    from benchkit.models.model_table import model_rows, models_table
    from benchkit.models.presets import PRESETS

    rows = model_rows(PRESETS)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        out.print(models_table(rows))


def _print_rows(rows: list[dict], as_json: bool, title: str, columns: dict) -> None:
    """Rows as JSON for machines, or as a rich table of the given column -> cell functions."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for r in rows:
        table.add_row(*(cell(r) for cell in columns.values()))
    out.print(table)


_CATEGORY = typer.Option(None, "--category", help="Only prompts of this category.")
_CHALLENGE = typer.Option(None, "--challenge", help="Only prompts of this PartiPrompts challenge.")
_DIMENSION = typer.Option(None, "--dimension", help="Only prompts probing this VBench dimension.")
_SAMPLE = typer.Option(None, "--sample", help="N prompts drawn without replacement, kept in file order.")
_SAMPLE_SEED = typer.Option(0, "--sample-seed", help="Seed of --sample.")


@prompts_app.command("list")
def prompts_list(as_json: bool = typer.Option(False, "--json")):
    """Built-in prompt sets with their counts, group fields, sources and licenses."""
    from prompts import BUILTIN_SETS

    rows = [s.info() for s in BUILTIN_SETS.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="prompt sets (--json adds descriptions and files)")
    for col in ("name", "count", "groups"):
        table.add_column(col, no_wrap=True, justify="right" if col == "count" else "left")
    table.add_column("source", overflow="fold")
    table.add_column("license")
    for r in rows:
        table.add_row(r["name"], str(r["count"]), ", ".join(r["group_fields"]), r["source"], r["license"])
    out.print(table)


@prompts_app.command("show")
def prompts_show(name: str = typer.Argument(..., help="Built-in set or prompt file."),
                 limit: int = typer.Option(20, "--limit", help="How many prompts to print."),
                 category: Optional[str] = _CATEGORY, challenge: Optional[str] = _CHALLENGE,
                 dimension: Optional[str] = _DIMENSION, sample: Optional[int] = _SAMPLE, sample_seed: int = _SAMPLE_SEED):
    """Print the first prompts of a set or of a selection from it (id, prompt, meta)."""
    from prompts import load_prompt_set

    ps = load_prompt_set(name).select({"category": category, "challenge": challenge, "dimension": dimension}, sample, sample_seed)
    table = Table(title=f"{ps.name}: {len(ps)} prompts ({ps.subset}), sha256 {ps.sha256[:12]}")
    table.add_column("prompt_id")
    table.add_column("prompt")
    table.add_column("meta")
    for r in ps.records[:limit]:
        table.add_row(r.prompt_id, r.prompt, json.dumps(r.meta, ensure_ascii=False) if r.meta else "")
    out.print(table)


@prompts_app.command("export")
def prompts_export(name: str = typer.Argument(..., help="Built-in set or prompt file."),
                   out_file: Path = typer.Option(..., "--out", "-o", help="A .txt, .csv, .tsv or .jsonl file."),
                   seeds: Optional[str] = typer.Option(None, "--seeds", help="One row per prompt and seed (not for .txt)."),
                   limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N prompts (after the selection)."),
                   overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
                   category: Optional[str] = _CATEGORY, challenge: Optional[str] = _CHALLENGE,
                   dimension: Optional[str] = _DIMENSION, sample: Optional[int] = _SAMPLE, sample_seed: int = _SAMPLE_SEED):
    """Write a set or a selection from it as a prompt file that `eval -p` and other tools read back."""
    from prompts import load_prompt_set, parse_seeds, write_prompt_file

    ps = load_prompt_set(name).select({"category": category, "challenge": challenge, "dimension": dimension},
                                      sample, sample_seed, limit)
    seed_list = parse_seeds(seeds) if seeds is not None else None
    write_prompt_file(ps, out_file, seed_list, overwrite=overwrite)
    rows = len(ps) * len(seed_list or [None])
    out.print(f"wrote {rows} rows ({len(ps)} prompts of {ps.name}, {ps.subset}) to [bold]{out_file}[/bold]")


@reference_app.command("coco")
def reference_coco(
    coco_dir: Path = typer.Option(..., "--coco-dir", help="Your local COCO val2014/ folder."),
    prompts: str = typer.Option("coco2014-30k", "--prompts", "-p", help="COCO prompt set whose ids 'matched' pairs with."),
    pairing: str = typer.Option("all", "--pairing", help="all: every val2014 image (DMD2/GigaGAN 30k); matched: the prompts' images."),
    out_dir: Path = typer.Option(Path("references"), "--out", "-o"),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Accept an incomplete val2014 (numbers then not comparable)."),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="Also cache FID statistics for this protocol (clean-fid, dmd2-sd15-coco30k, dmd2-sdxl-coco10k)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Statistics cache (default $BENCHKIT_CACHE or ~/.cache/benchkit)."),
    device: str = typer.Option("auto", "--device"),
    weights: list[str] = typer.Option([], "--weights", help="NAME=PATH of a metric weight (e.g. fid-inception=PATH)."),
    wait: bool = typer.Option(False, "--wait", help="If another process is writing --out, wait for it instead of exiting."),
):
    """Pair a local val2014 with a protocol, verify ids and counts, write reference.json, cache FID statistics."""
    from benchkit.reference import cache_fid_statistics, coco_reference, write_reference
    from prompts import load_prompt_set

    _use_weights(weights)
    if protocol:
        from metrics.fid import get_protocol

        get_protocol(protocol)  # fail on a typo before hashing 40k files
    from benchkit.core.lock import folder_lock
    from benchkit.core.outpaths import check_separate

    check_separate(out_dir, [("COCO folder", coco_dir)])
    prompt_set = load_prompt_set(prompts) if pairing == "matched" else None
    with folder_lock(out_dir, "benchkit reference coco", wait=wait):
        ref = coco_reference(coco_dir, pairing, prompt_set, allow_partial=allow_partial)
        path = write_reference(ref, out_dir / ref.name)
        out.print(f"{ref.name}: {len(ref.files)} images, sha256 {ref.sha256[:16]}; written to [bold]{path}[/bold]")
        if protocol:
            from benchkit.evaluate import default_cache_dir

            entry = cache_fid_statistics(ref, protocol, cache_dir or default_cache_dir(), device)
            for view, info in entry["views"].items():
                state = "already cached" if info["was_cached"] else "computed and cached"
                out.print(f"{protocol} {view} statistics ({info['n']} images): {state}, key {info['stats_key'][:16]}")


@reference_app.command("folder")
def reference_folder(
    folder: Path = typer.Argument(..., help="A folder of images (png, jpg, webp; searched recursively), e.g. a local MJHQ-30K copy."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Also compute and cache the reference features these "
                                          "metrics read (e.g. fid,prdc); without it only the files are hashed."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Feature cache (default $BENCHKIT_CACHE or ~/.cache/benchkit)."),
    device: str = typer.Option("auto", "--device"),
    weights: list[str] = typer.Option([], "--weights", help="NAME=PATH of a metric weight (e.g. fid-inception=PATH)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Hash an image folder (and read its MJHQ-style meta_data.json) for `--reference FOLDER`, and cache its features."""
    _use_weights(weights)
    from benchkit.core.hardware import resolve_device
    from benchkit.evaluate import default_cache_dir
    from metrics import REGISTRY, MetricContext, build_metrics, parse_metric_names
    from metrics.reference_sets import folder_reference

    names = parse_metric_names(metrics) if metrics is not None else []
    unusable = [n for n in names if not REGISTRY[n].takes_reference]
    if unusable:
        raise BenchkitError(f"--metrics: {', '.join(unusable)} compare(s) with no reference; choose among "
                            + ", ".join(n for n, cls in REGISTRY.items() if cls.takes_reference))
    cache = cache_dir or default_cache_dir()
    ref = folder_reference(folder, cache, show_progress=not quiet)
    about = ref.describe()
    cats = f", {about['categories']} categories" if "categories" in about else ""
    out.print(f"{folder}: {about['count']} images{cats}, set sha256 {about['sha256'][:16]}")
    if names:
        ctx = MetricContext(cache_dir=cache, device=resolve_device(device), reference=ref)
        for metric in build_metrics(names, ctx):
            metric.reference()
        out.print(f"reference features for {', '.join(names)} cached under [bold]{cache}[/bold]")
    out.print(f"use it with [bold]--reference {folder}[/bold]")


@app.command("rescore")
def rescore_cmd(
    run: Path = typer.Argument(..., help="A finished benchkit run (eval or score)."),
    metrics: str = typer.Option(..., "--metrics", help="Comma-separated metric names to compute (others already in "
                                "results.json are kept)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="A benchkit run (e.g. the teacher's) or an image "
                                             "folder that FID, PRDC and the like compare with."),
    device: str = typer.Option("auto", "--device"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    wait: bool = typer.Option(False, "--wait", help="If another process is using RUN, wait for it instead of exiting."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes that decode and preprocess images (default: "
                                          "one per CPU core but one, at most 8; 0: none). Scores do not depend on it."),
    weights: list[str] = typer.Option([], "--weights", help="NAME=PATH of a metric weight (repeatable; see `benchkit weights`)."),
):
    """Score a finished run again with other metrics; stored extractor features are reused, not recomputed."""
    _use_weights(weights)
    from benchkit.core.hardware import resolve_device
    from benchkit.evaluate import default_cache_dir
    from benchkit.scoring import rescore_run

    results = rescore_run(run, metrics.split(","), cache_dir or default_cache_dir(), resolve_device(device), reference,
                          show_progress=not quiet, workers=workers, wait=wait)
    scoring = results["run"]["scoring"]
    print_results(results, f"results written to [bold]{run / 'results.json'}[/bold] ({scoring['features_stored_before']} "
                           f"stored features reused, {scoring['features_computed']} computed)")


weights_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                          help="Metric weights: list them (no subcommand) or fetch them.")
app.add_typer(weights_app, name="weights")


@weights_app.callback()
def weights_cmd(ctx: typer.Context,
                as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
                weights: list[str] = typer.Option([], "--weights", help="NAME=PATH to check a file you have.")):
    """Metric weights: present (where, sha256, how verified) or missing, with the command that fetches each."""
    from metrics.weights import status_rows

    _use_weights(weights)
    if ctx.invoked_subcommand is not None:
        return
    rows = status_rows()
    _print_rows(rows, as_json, "metric weights ($BENCHKIT_WEIGHTS, HF cache, TORCH_HOME; --json for all fields)", {
        "name": lambda r: r["name"],
        "status": lambda r: "[green]present[/green]" if r["status"] == "present" else f"[red]{r['status']}[/red]",
        "sha256 (verified by)": lambda r: f"{r['sha256'][:12]}… ({r['verified']})" if r["status"] == "present" else "",
        "path": lambda r: escape(r.get("path", "")),
    })
    if not as_json:
        for r in rows:
            if r["status"] != "present":
                out.print(f"{r['name']} ({r['license']}): {escape(r['fetch'])}", soft_wrap=True, highlight=False)
        if any(r["status"] != "present" for r in rows):
            out.print("Set $BENCHKIT_WEIGHTS to the folder you fetch into, or pass --weights NAME=PATH; "
                      "pin sha256s in $BENCHKIT_WEIGHTS/SHA256SUMS ('<sha256>  <name>'). "
                      "`benchkit weights fetch NAME... | --all` downloads and verifies them.", soft_wrap=True)


@weights_app.command("fetch")
def weights_fetch_cmd(
    names: Optional[list[str]] = typer.Argument(None, metavar="NAME", help="Registry names (see `benchkit weights`)."),
    all_: bool = typer.Option(False, "--all", help="Every weight in the registry."),
    as_json: bool = typer.Option(False, "--json", help="The summary as JSON (failure lines still go to stderr)."),
    wait: bool = typer.Option(False, "--wait", help="If another fetch is writing $BENCHKIT_WEIGHTS, wait for it."),
):
    """Download and verify weights; exit 2 if any failed.

    Direct links go to $BENCHKIT_WEIGHTS (resumed if interrupted); Hub repos to the HF cache (HF_ENDPOINT: a mirror).

    Checked against the registry sha256, your $BENCHKIT_WEIGHTS/SHA256SUMS pin or the published name; else pinned."""
    from benchkit.core.lock import folder_lock
    from metrics.weights import weights_dir
    from metrics.weights_fetch import fetch, select

    chosen = select(list(names or []), all_)  # unknown names: one line, before any download
    from benchkit.core.progress import console as err  # the progress bar's console: lines print above the bar

    def report(r) -> None:
        if r.status in ("failed", "manual"):
            err.print(f"[bold red]error:[/bold red] {escape(r.message)}", highlight=False, soft_wrap=True)
        elif r.message:  # a note: pinned now, or present but unverified
            err.print(f"note: {escape(r.message)}", highlight=False, soft_wrap=True)

    folder = weights_dir()
    if folder is None:
        results = fetch(chosen, report=report)  # raises the one line that says to set $BENCHKIT_WEIGHTS
    else:
        with folder_lock(folder, "benchkit weights fetch", wait=wait):
            results = fetch(chosen, report=report)
    rows = [{"name": r.name, "status": r.status, "verified": r.verified, "path": r.path,
             **({"problem": r.message} if not r.ok else {})} for r in results]
    _print_rows(rows, as_json, "weights fetch", {
        "name": lambda r: r["name"],
        "result": lambda r: f"[green]{r['status']}[/green]" if r["status"] in ("fetched", "present")
        else f"[red]{r['status']}[/red]",
        "sha256 verified by": lambda r: r["verified"],
        "path": lambda r: escape(r["path"]),
    })
    failed = [r.name for r in results if not r.ok]
    if failed:
        if not as_json:
            err.print(f"{len(failed)} of {len(results)} not fetched ({', '.join(failed)}): see the lines above",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(2)


@app.command("metrics")
def metrics_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
                weights: list[str] = typer.Option([], "--weights", help="NAME=PATH of a metric weight you have.")):
    """Every metric: what it measures, what it needs (seeds, references, weights) and whether its weights are present."""
    from metrics import describe_metrics

    _use_weights(weights)
    _print_rows(describe_metrics(), as_json, "metrics (--json for protocols, scales, directions and values)", {
        "name": lambda r: r["name"],
        "weights": lambda r: ", ".join(f"{w} ({'[green]present[/green]' if s == 'present' else f'[red]{s}[/red]'})"
                                       for w, s in r["weights"].items()) or "none",
        "needs": lambda r: escape("; ".join(r["needs"])),
        "what": lambda r: escape(r["description"]),
    })


@app.command("families")
def families_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Every model family: how it is built and sampled, what it makes, and its default metrics."""
    from benchkit.models.families import describe_families

    _print_rows(describe_families(), as_json, "model families (set `family` in a spec to choose one)", {
        "name": lambda r: r["name"],
        "pipeline": lambda r: r["runs"],
        "makes": lambda r: r["media"],
        "default metrics": lambda r: ", ".join(r["default_metrics"]),
        "what": lambda r: escape(r["description"]),
    })


# VBench is scored by its official toolkit: `export` hands it a run's clips, `import` brings its results back.
export_app = typer.Typer(no_args_is_help=True, help="Write a run's outputs in another toolkit's layout.")
import_app = typer.Typer(no_args_is_help=True, help="Turn another toolkit's results into a benchkit run.")
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")


@export_app.command("vbench")
def export_vbench_cmd(
    run: Path = typer.Argument(..., help="Run directory of a video model (clips as mp4)."),
    out_dir: Path = typer.Argument(..., help="Folder for the clips (new, empty, or an earlier export of them)."),
    allow_fewer: bool = typer.Option(False, "--allow-fewer", help="Export prompts with fewer than 5 clips too."),
):
    """Copy a run's clips as {prompt}-{index}.mp4 (index 0-4 by seed) for VBench's standard mode."""
    from benchkit.vbench_bridge import export_vbench

    done = export_vbench(run, out_dir, allow_fewer=allow_fewer)
    out.print(f"{done['clips']} clips of {done['prompts']} prompts in [bold]{escape(done['dir'])}[/bold] "
              f"({done['written']} written, {done['already_there']} already there)", soft_wrap=True)
    if done["fewer"]:
        out.print(f"[yellow]{len(done['fewer'])} prompts have fewer than 5 clips[/yellow]")
    if done["duplicate_prompts"]:
        out.print(f"{len(done['duplicate_prompts'])} prompts are listed twice in the set; VBench reads one set of clips "
                  "per prompt text, so those of the first prompt id were exported")
    if done["seeds_left_out"]:
        out.print(f"{done['seeds_left_out']} clips beyond each prompt's fifth seed were left out")
    out.print(f"score them with: vbench evaluate --videos_path {escape(done['dir'])} --dimension <dimension>; "
              "then `benchkit import vbench <results>_eval_results.json --out <run>`", soft_wrap=True)


@import_app.command("vbench")
def import_vbench_cmd(
    results: list[Path] = typer.Argument(..., help="The *_eval_results.json file(s) `vbench evaluate` wrote."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder to write (new, empty, or an earlier import)."),
    prompts: str = typer.Option("vbench", "--prompts", "-p", help="Prompt set the clips were made from."),
    label: Optional[str] = typer.Option(None, "--label", help="Name in reports (default: the --out folder's name)."),
    vbench_version: Optional[str] = typer.Option(None, "--vbench-version",
                                                 help="The vbench version that scored them (results files do not say)."),
):
    """A benchkit run from VBench's official results: raw and normalised dimensions, Quality, Semantic, Total."""
    from benchkit.vbench_bridge import import_vbench

    done = import_vbench(results, out_dir, prompts=prompts, label=label, vbench_version=vbench_version)
    print_results(done, f"imported into [bold]{escape(str(out_dir))}[/bold]")
    partial = [m for m in done["metrics"] if m["name"].endswith("-partial")]
    if partial:
        missing = ", ".join(dict.fromkeys(d for m in partial for d in m["extra"]["missing"]))
        out.print(f"[yellow]{', '.join(m['name'] for m in partial)}: means over the dimensions scored; "
                  f"missing (not counted as 0): {escape(missing)}[/yellow]", soft_wrap=True)


def _use_weights(items: list[str]) -> None:
    if items:
        from metrics.weights import parse_weight_overrides, set_overrides

        set_overrides(parse_weight_overrides(items))


@toy_app.command("train-teacher")
def toy_train_teacher(
    out_dir: Path = typer.Option(None, "--out", "-o", help="Where to save (default: the shipped asset folder)."),
    steps: int = typer.Option(2500, "--steps"),
    seed: int = typer.Option(0, "--seed"),
):
    """Retrain the toy teacher from scratch (fixed seed: reproduces the shipped weights)."""
    from benchkit.toy import TEACHER_DIR
    from benchkit.toy.teacher import TeacherTrainConfig, train_teacher

    target = out_dir or TEACHER_DIR
    with _training_bar("train teacher") as update:
        summary = train_teacher(target, TeacherTrainConfig(seed=seed, steps=steps), progress=update)
    out.print(f"teacher saved to [bold]{target}[/bold]; unet sha256 {summary['unet_sha256']}, final loss {summary['final_loss']:.4f}")


@toy_app.command("train-classifier")
def toy_train_classifier(
    out_dir: Path = typer.Option(None, "--out", "-o", help="Where to save (default: the shipped asset folder)."),
    seed: int = typer.Option(0, "--seed"),
):
    """Retrain the toy digits classifier (the toy FID extractor and alignment scorer)."""
    from benchkit.toy import CLASSIFIER_DIR
    from benchkit.toy.classifier import ClassifierTrainConfig, train_classifier

    target = out_dir or CLASSIFIER_DIR
    with _training_bar("train classifier") as update:
        summary = train_classifier(target, ClassifierTrainConfig(seed=seed), progress=update)
    out.print(f"classifier saved to [bold]{target}[/bold]; test accuracy {summary['test_accuracy']:.4f}, sha256 {summary['sha256']}")


class _training_bar:
    def __init__(self, label: str):
        from benchkit.core.progress import progress_bar

        self.label = label
        self.ctx = progress_bar(True)

    def __enter__(self):
        self.bar = self.ctx.__enter__()
        self.task = self.bar.add_task(self.label, total=None, info="")

        def update(done: int, total: int, loss: float) -> None:
            self.bar.update(self.task, completed=done, total=total, info=f"loss {loss:.4f}")

        return update

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)


def _quiet_libraries() -> None:
    """Offline first, and no library chatter (shard-writing bars, config warnings) in our output."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: BenchkitError -> one line on stderr, exit status 2."""
    _quiet_libraries()
    err = Console(stderr=True)
    try:
        status = app(args=argv, standalone_mode=False)  # returns typer.Exit's code instead of raising
    except BenchkitError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume where it stopped")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        # Usage errors (unknown option, bad value). Duck-typed: newer typer bundles its own
        # click, whose ClickException is not importable under a public name.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if "torch.distributed" in sys.modules:  # never import torch just to learn there is nothing to end
        from benchkit.core.distributed import finish

        finish()  # under torchrun: every rank leaves together
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
