"""benchkit: evaluation and benchmarking harness for few-step diffusion models.

Public API (the CLI is a thin layer over it)::

    from benchkit import resolve_spec, run_eval, load_prompt_set, parse_seeds
    results = run_eval(resolve_spec("toy-digits"), load_prompt_set("toy-digits"), [0, 1], Path("runs/x"))

Names are imported lazily so `benchkit --help` and error paths do not pay for torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "BenchkitError": "benchkit.core.errors",
    "run_eval": "benchkit.evaluate",
    "score_run": "benchkit.scoring",
    "Generator": "benchkit.models.generation",
    "Item": "benchkit.core.items",
    "PRESETS": "benchkit.models.presets",
    "resolve_spec": "benchkit.models.presets",
    "RunDir": "benchkit.core.rundir",
    "ModelSpec": "benchkit.models.spec",
    "Recipe": "benchkit.models.spec",
    "load_prompt_set": "prompts",
    "parse_seeds": "prompts",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'benchkit' has no attribute {name!r}")
