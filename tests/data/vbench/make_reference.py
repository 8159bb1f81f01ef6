"""Record what VBench's own ``scripts/cal_final_score.py`` computes, for tests/test_vbench_scores.py to
compare with where no VBench checkout is at hand (CI has no network to clone one).

    python tests/data/vbench/make_reference.py /path/to/Vchitect/VBench

The inputs are tests/test_vbench_scores.py's ``official_results`` (plausible per-dimension scores for
every dimension, and one with ``color`` missing, which the script counts as 0); the script's own
``submission`` -> ``get_nomalized_score`` -> quality / semantic / final functions run on them, exactly as
the test's ``run_official`` runs them with VBENCH_REPO set. Writes reference_scores.json beside this file.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(repo: Path) -> Path:
    sys.path.insert(0, str(HERE.parents[1]))  # tests/: the same inputs as the test
    from test_vbench_scores import official_results

    sys.path.insert(0, str(repo / "scripts"))
    official = importlib.import_module("cal_final_score")
    cases = {f"full-{seed}": official_results(seed) for seed in (0, 1, 2)}
    cases["no-color-3"] = official_results(3, drop=("color",))
    out = {"vbench_commit": subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                           text=True).stdout.strip(),
           "script": "scripts/cal_final_score.py: submission, get_nomalized_score, get_quality_score, "
                     "get_semantic_score, get_final_score", "cases": {}}
    here = os.getcwd()
    for name, results in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)  # submission() extracts into ./<model name>
            try:
                Path("model_eval_results.json").write_text(json.dumps(results))
                import zipfile

                with zipfile.ZipFile("evaluation_results.zip", "w") as z:
                    z.write("model_eval_results.json", "model_eval_results.json")
                upload = official.submission("model", "evaluation_results.zip")
                norm = official.get_nomalized_score(upload)
                quality, semantic = official.get_quality_score(norm), official.get_semantic_score(norm)
                total = official.get_final_score(quality, semantic)
            finally:
                os.chdir(here)
        out["cases"][name] = {"dimension_means": {k: v[0] for k, v in results.items()},
                              "normalized_times_weight": norm, "quality": quality, "semantic": semantic, "total": total}
    path = HERE / "reference_scores.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
