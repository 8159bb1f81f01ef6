"""Runs of one model on two devices/dtypes merge into one hardware table."""

import json

from benchkit.evaluate import run_eval
from benchkit.models.presets import PRESETS
from prompts import load_prompt_set
from reports import write_report
from reports.render import hardware_tables
from reports.runs import load_runs


def test_two_dtypes_merge_into_one_hardware_table(tmp_path):
    spec = PRESETS["toy-digits"].with_recipe(steps=2)
    other = PRESETS["toy-digits"].with_recipe(steps=4)  # measured in one place only: not in the table
    paths = []
    for name, s, dtype in (("fp32", spec, "float32"), ("bf16", spec, "bfloat16"), ("other", other, "float32")):
        paths.append(tmp_path / name)
        run_eval(s, load_prompt_set("toy-digits").limit(2), [0, 1], paths[-1], metrics=["latency"], device="cpu",
                 dtype=dtype, batch_size=4, cache_dir=tmp_path / "c", show_progress=False)
    runs = load_runs(paths)
    tables = dict(hardware_tables(runs))
    assert sorted(tables) == ["latency_image_p50 (s) by hardware", "peak_memory (MB) by hardware",
                              "throughput (images/s) by hardware"]
    headers, rows = tables["throughput (images/s) by hardware"]
    assert len(headers) == 3 and any("bfloat16" in h for h in headers) and any("float32" in h for h in headers)
    assert [r[0].text for r in rows] == [runs[0].results["run"]["label"]]
    for path, header in ((paths[0], next(h for h in headers if "float32" in h)), (paths[1], next(h for h in headers if "bfloat16" in h))):
        value = next(m["value"] for m in json.loads((path / "results.json").read_text())["metrics"] if m["name"] == "throughput")
        assert rows[0][headers.index(header)].text == f"{value:.4g}"
    assert "## Hardware" in write_report(paths, tmp_path / "report")["markdown"].read_text()
