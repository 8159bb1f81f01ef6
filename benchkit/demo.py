"""`benchkit demo`: the whole pipeline, for real, on the embedded toy world.

Evaluates the toy teacher at 50, 8, 4, 2 and 1 steps with DDIM and Euler (both with
trailing spacing, so the 1-step sample starts at t=999 as few-step recipes do), then the
distilled toy students benchkit ships (DMD2, Hyper-SD, ADM, Lightning; 1 and 4 steps, each
with its own recipe from its spec.toml), then writes the comparison report. Each evaluation
is an ordinary resumable run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchkit.evaluate import run_eval
from benchkit.models.presets import PRESETS
from prompts import load_prompt_set, parse_seeds

DEMO_STEPS = (50, 8, 4, 2, 1)
DEMO_SCHEDULERS = {"ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler"}
DEMO_SEEDS = "0-9"
DEMO_BATCH = 25


def shipped_students() -> list[Path]:
    """spec.toml of every toy student under benchkit/toy/assets/students, sorted by name."""
    from benchkit.toy import ASSETS

    return sorted((ASSETS / "students").glob("*/spec.toml"))


def run_demo(out_dir: Path, device: str = "auto", show_progress: bool = True,
             steps: tuple[int, ...] = DEMO_STEPS, seeds: str = DEMO_SEEDS, students: bool = True) -> dict[str, Any]:
    from benchkit.models.spec import load_spec_file
    from reports import write_report

    out_dir = Path(out_dir)
    teacher = PRESETS["toy-digits"]
    prompt_set = load_prompt_set("toy-digits")
    seed_list = parse_seeds(seeds)
    rows, run_dirs = [], []

    def evaluate(spec, label: str, n: int, run_name: str) -> None:
        run_dir = out_dir / "runs" / run_name
        results = run_eval(spec, prompt_set, seed_list, run_dir, device=device, batch_size=DEMO_BATCH,
                           show_progress=show_progress)
        values = {m["name"]: m["value"] for m in results["metrics"]}
        rows.append({"scheduler": label, "steps": n, "model": spec.name, "run": str(run_dir), **values})
        run_dirs.append(run_dir)

    for short, scheduler in DEMO_SCHEDULERS.items():
        for n in steps:
            evaluate(teacher.with_recipe(scheduler=scheduler, steps=n), short, n, f"{short}-{n:02d}steps")
    if students:
        for spec_file in shipped_students():
            spec = load_spec_file(spec_file, PRESETS)
            method = spec_file.parent.name.rsplit("-", 1)[0]
            evaluate(spec, f"{method} student", spec.recipe.steps, f"student-{spec_file.parent.name}")
    # the most-step DDIM teacher is every run's baseline: verdicts and paired comparisons against it
    report = write_report(run_dirs, out_dir / "report", title="benchkit demo: toy-digits teacher and distilled students",
                          baseline=out_dir / "runs" / f"ddim-{max(steps):02d}steps")
    return {"rows": rows, "report": report}
