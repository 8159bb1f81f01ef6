"""The architecture holds: layers point down (import-linter, contract in pyproject.toml), no import
cycles, and no model-family special case outside the families."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("benchkit", "distillers", "metrics", "prompts", "reports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the packages under ``root`` with the contract of ``root/pyproject.toml``."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)


def test_import_contract_is_kept():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout, done.stdout


@pytest.fixture(scope="module")
def copy_of_source(tmp_path_factory) -> Path:
    """The packages and pyproject.toml, copied so that a test can plant a bad import."""
    root = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "pyproject.toml", root)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "assets", "data"))
    return root


def _planted(root: Path, module: str, line: str):
    path = root / module
    original = path.read_text()
    path.write_text(original + f"\n{line}\n")
    return path, original


@pytest.mark.parametrize("module, line, broken", [
    ("metrics/base.py", "from benchkit.evaluate import run_eval", "metrics.base -> benchkit.evaluate"),
    ("benchkit/core/rundir.py", "import metrics.breakdown", "benchkit.core.rundir -> metrics.breakdown"),
    ("prompts/sets.py", "from metrics import REGISTRY", "prompts.sets -> metrics"),
    ("benchkit/models/loading.py", "from benchkit.scoring import score_folder", "benchkit.models.loading -> benchkit.scoring"),
])
def test_a_planted_upward_import_breaks_the_contract(copy_of_source, module, line, broken):
    path, original = _planted(copy_of_source, module, line)
    try:
        done = lint_imports(copy_of_source)
    finally:
        path.write_text(original)
    assert done.returncode == 1, done.stdout + done.stderr
    flat = " ".join(done.stdout.split())
    assert "foundation BROKEN" in flat and broken in done.stdout, done.stdout


def test_a_planted_cycle_breaks_the_contract(copy_of_source):
    """generation and pipeline_generation used to import each other; one such import back fails."""
    path, original = _planted(copy_of_source, "benchkit/models/generation.py",
                              "from benchkit.models.pipeline_generation import PipelineGenerator")
    try:
        done = lint_imports(copy_of_source)
    finally:
        path.write_text(original)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "No import cycles between the modules of a package BROKEN" in " ".join(done.stdout.split()), done.stdout
    assert ".pipeline_generation -> .generation" in done.stdout, done.stdout


# A comparison with a family's name or a builtin model's name: what the family registry replaces.
SPECIAL_CASE = re.compile(
    r"""(==|!=)\s*["'](toy|sd15|sdxl|sd3|cogvideox|builtin:[\w-]+)["']"""
    r"""|["'](toy|sd15|sdxl|sd3|cogvideox|builtin:[\w-]+)["']\s*(==|!=)"""
    r"""|family\s+(not\s+)?in\s*[(\[{]""")
# The families themselves, and the toy world, which is the toy family's implementation.
FAMILY_CODE = ("benchkit/models/families/", "benchkit/toy/")


def test_no_family_special_case_outside_the_families():
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(FAMILY_CODE):
                continue
            for no, line in enumerate(path.read_text().splitlines(), 1):
                if SPECIAL_CASE.search(line.split("#", 1)[0]):
                    found.append(f"{rel}:{no}: {line.strip()}")
    assert not found, "family special cases outside benchkit/models/families:\n" + "\n".join(found)


def test_the_special_case_check_can_fail():
    """The pattern above catches the shapes the old code had."""
    for line in ('if spec.base == "builtin:toy-digits":', 'batch = 100 if model.family == "toy" else 8',
                 'if family in ("toy", "sd15"):', 'if plan.family != "toy":'):
        assert SPECIAL_CASE.search(line), line
    assert not SPECIAL_CASE.search('conditioning = model.family_info.conditioning')
