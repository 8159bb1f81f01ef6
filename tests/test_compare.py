"""`benchkit compare`: noise bands, verdicts, refusal of incomparable numbers, CI exit codes."""

import json
import math

import pytest

from benchkit.core.errors import BenchkitError
from benchkit.evaluate import run_eval
from benchkit.models.presets import PRESETS
from prompts import load_prompt_set
from reports.compare import compare_runs, exit_code, parse_tolerances, seed_noise_band
from reports.runs import load_run

QUALITY = "toy-fid,toy-alignment,toy-diversity"


def test_seed_noise_band_by_hand():
    # per-seed values 1,2,3 and 2,4: variances 1 and 2, pooled (2*1 + 1*2)/3 = 4/3
    expected = 2.0 * math.sqrt(4 / 3) * math.sqrt(1 / 3 + 1 / 2)
    assert seed_noise_band([1, 2, 3], [2, 4], sigma=2.0) == pytest.approx(expected)
    assert seed_noise_band([1.0], [2.0, 3.0], 2.0) is None


def test_parse_tolerances():
    t = parse_tolerances(["toy-fid=0.5", "throughput=10%"])
    assert t["toy-fid"].band(20.0) == 0.5 and t["throughput"].band(200.0) == pytest.approx(20.0)
    for bad in ("toy-fid", "=1", "x=abc", "x=-1"):
        with pytest.raises(BenchkitError, match="--tolerance"):
            parse_tolerances([bad])


def fake_run(root, name, metrics, seeds=None):
    run = root / name
    (run / "images").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"spec": {"name": name}}))
    (run / "samples.jsonl").write_text("")
    breakdowns = [{"field": "seed", "value": str(s), "n": 10, "skipped": {},
                   "metrics": [{"name": n, "value": v, "unit": "", "higher_is_better": False, "n": 10, "variant": {}}
                               for n, v in per_seed.items()]}
                  for s, per_seed in enumerate(seeds or [])]
    (run / "results.json").write_text(json.dumps({"run": {"label": name}, "metrics": metrics, "breakdowns": breakdowns}))
    return load_run(run)


def m(name, value, higher=False, **variant):
    return {"name": name, "value": value, "unit": "", "higher_is_better": higher, "n": 10, "variant": variant}


def test_verdicts_and_exit_codes(tmp_path):
    base = fake_run(tmp_path, "base", [m("fid", 10.0, protocol="a"), m("latency_image_p50", 1.0, device="cpu"),
                                       m("acc", 0.9, True)], seeds=[{"fid": 9.0}, {"fid": 11.0}])
    cand = fake_run(tmp_path, "cand", [m("fid", 11.0, protocol="a"), m("latency_image_p50", 1.5, device="cpu"),
                                       m("acc", 0.95, True)], seeds=[{"fid": 10.0}, {"fid": 12.0}])
    by_name = {c.name: c for c in compare_runs(base, cand)}
    # fid: per-seed sd sqrt(2) on both sides -> band 2*sqrt(2)*sqrt(1) = 2.83 > delta 1
    assert by_name["fid"].verdict == "within noise" and by_name["fid"].band == pytest.approx(2 * math.sqrt(2))
    assert by_name["latency_image_p50"].verdict == "worse" and by_name["latency_image_p50"].band == pytest.approx(0.1)
    assert by_name["acc"].verdict == "better" and by_name["acc"].band_source.startswith("none")
    assert exit_code(list(by_name.values())) == 1
    tight = {c.name: c for c in compare_runs(base, cand, parse_tolerances(["fid=0.5", "latency_image_p50=60%"]))}
    assert tight["fid"].verdict == "worse" and tight["latency_image_p50"].verdict == "within noise"


def test_incomparable_variants_are_refused(tmp_path):
    base = fake_run(tmp_path, "base", [m("fid", 10.0, protocol="clean", device="cpu"), m("throughput", 5.0, True, device="cpu")])
    other_device = fake_run(tmp_path, "gpu", [m("fid", 10.0, protocol="clean", device="cuda"), m("throughput", 50.0, True, device="cuda")])
    comps = {c.name: c for c in compare_runs(base, other_device)}
    assert comps["fid"].verdict == "within noise"  # quality does not depend on where it ran
    assert comps["throughput"].verdict == "not comparable" and "device" in comps["throughput"].reason
    assert exit_code(list(comps.values())) == 3
    other_protocol = fake_run(tmp_path, "legacy", [m("fid", 10.0, protocol="legacy", device="cpu")])
    (fid,) = compare_runs(base, other_protocol)
    assert fid.verdict == "not comparable" and fid.reason == "variant differs in protocol"


def test_gate_on_real_toy_runs(tmp_path, cli):
    # 20 prompts, two of each digit: the intervals resample prompts within each digit (6 prompts of 6 digits
    # would resample the digits themselves, and a toy FID over other digits is another FID)
    def run(name, steps, seeds=(0, 1)):
        run_eval(PRESETS["toy-digits"].with_recipe(steps=steps), load_prompt_set("toy-digits").limit(20), list(seeds),
                 tmp_path / name, device="cpu", batch_size=12, cache_dir=tmp_path / "cache", show_progress=False)
        return str(tmp_path / name)

    base, rerun, worse, reseeded = run("base", 8), run("rerun", 8), run("worse", 1), run("reseeded", 8, (2, 3))
    code, out, _ = cli("compare", base, rerun, "--metrics", QUALITY, "--json")
    assert code == 0
    verdicts = {c["name"]: c["verdict"] for c in json.loads(out)[0]["metrics"]}
    assert verdicts == {"toy-fid": "within noise", "toy-alignment": "within noise", "toy-diversity": "within noise"}
    # issue 18: the same model on other seeds is compared (the intervals resample seeds) and is within noise
    code, out, _ = cli("compare", base, reseeded, "--metrics", QUALITY, "--json")
    got = json.loads(out)[0]["metrics"]
    assert code == 0 and {c["name"]: c["verdict"] for c in got} == verdicts, got
    assert all(c["band_source"] == "bootstrap 95% intervals" and "the intervals resample seeds" in c["reason"] for c in got)
    code, out, _ = cli("compare", base, worse, "--metrics", QUALITY, "--json")
    fid = next(c for c in json.loads(out)[0]["metrics"] if c["name"] == "toy-fid")
    assert code == 1 and fid["verdict"] == "worse" and fid["band_source"] == "bootstrap 95% intervals"
