"""CLI: one-line errors with exit status 2, and the commands that need no model."""

import json

import pytest


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "-m", "no-such-model"], "unknown model 'no-such-model'"),
        (["eval", "--metrics", "toy-fid,bogus"], "unknown metric 'bogus'"),
        (["eval", "-p", "/no/such/prompts.txt"], "cannot read prompt file /no/such/prompts.txt"),
        (["eval", "-p", "nope-set"], "unknown prompt set 'nope-set'"),
        (["eval", "--seeds", "3-1"], "--seeds '3-1'"),
        (["eval", "--device", "cuda"], "--device cuda: no CUDA device"),
        (["eval", "--dtype", "fp8"], "--dtype fp8: unknown dtype"),
        (["eval", "--timesteps", "999,x"], "--timesteps '999,x'"),
        (["eval", "--scheduler", "ddim", "--timesteps", "999"], "does not accept explicit timesteps"),
    ],
)
def test_errors_are_one_line(cli, tmp_path, argv, message):
    code, _, err = cli(*argv, "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--quiet")
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_spec_file(cli, tmp_path):
    spec = tmp_path / "m.toml"
    spec.write_text('extends = "toy-digits"\n[recipe]\nsteps = "four"\n')
    code, _, err = cli("eval", "-m", str(spec), "--out", str(tmp_path / "r"))
    assert code == 2 and "m.toml: field 'recipe.steps' must be int" in err


def test_env_json(cli):
    code, out, _ = cli("env", "--json")
    fp = json.loads(out)
    assert code == 0
    assert fp["cpu_count"] >= 1 and fp["versions"]["torch"] and "float32" in fp["dtype_support"]["cpu"]


def test_models_and_prompts_json(cli):
    code, out, _ = cli("models", "--json")
    rows = json.loads(out)
    toy = next(r for r in rows if r["name"] == "toy-digits")
    assert code == 0 and toy["present"] is True and toy["recipe"]["scheduler"] == "DDIMScheduler"
    code, out, _ = cli("prompts", "list", "--json")
    assert code == 0 and {"name": "toy-digits", "count": 20}.items() <= json.loads(out)[0].items()


def test_usage_errors_have_no_traceback(cli):
    code, _, err = cli("env", "--bogus")
    assert code == 2 and "No such option: --bogus" in err and "Traceback" not in err


def test_metrics_lists_every_metric_and_its_needs(cli, tmp_path, monkeypatch):
    from metric_models import save_torchvision_backbone

    from metrics import REGISTRY

    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "none"))
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", "{}")  # set, not deleted: teardown then removes what --weights adds
    alex = save_torchvision_backbone(tmp_path / "alex", "alex")
    code, out, err = cli("metrics", "--json", "--weights", f"lpips-alexnet={alex}")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(REGISTRY)
    assert rows["lpips-diversity"]["weights"] == {"lpips-alexnet": "present"} and rows["lpips-diversity"]["ready"]
    assert rows["lpips-diversity"]["needs"] == ["2+ seeds per prompt"]
    assert rows["lpips-diversity-vgg"]["weights"] == {"lpips-vgg16": "missing"} and not rows["lpips-diversity-vgg"]["ready"]
    assert "benchkit reference coco --protocol dmd2-sd15-coco30k" in rows["fid-dmd2-sd15"]["needs"][1]
    takes = "takes --reference RUN|FOLDER (else its default reference)"
    assert rows["toy-fid"]["weights"] == {} and rows["toy-fid"]["needs"] == [takes, "the toy world's 8x8 digits"]
    assert rows["fid-dmd2-sd15"]["takes_reference"] and rows["prdc"]["needs"][0] == takes
    assert not rows["clip-score"]["takes_reference"] and takes not in rows["clip-score"]["needs"]
    assert (rows["toy-fid"]["better"], rows["clip-score"]["better"], rows["latency"]["better"]) == ("lower", "higher", None)
    assert rows["clip-score"]["scale"] == "cosine (x1)" and rows["latency"]["values"][0] == "latency_image_p50"
    assert all(r["scale"] for r in rows.values()), [n for n, r in rows.items() if not r["scale"]]
    assert all(r["protocol"] for r in rows.values()), [n for n, r in rows.items() if not r["protocol"]]
    code, out, _ = cli("metrics")
    assert code == 0 and "lpips-diversity" in out
