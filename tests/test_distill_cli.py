"""`benchkit pairs` and `benchkit distill` on the toy teacher: the output folder is a spec that
`benchkit eval` runs with the method's recipe; a rerun resumes; bad input is one line."""

from __future__ import annotations

import json

import pytest
import tomllib


@pytest.fixture(scope="module")
def toy_pairs(tmp_path_factory):
    from distillers.run import pairs_command

    path = tmp_path_factory.mktemp("pairs") / "pairs.safetensors"
    pairs = pairs_command("toy-digits", path, count=8, steps=2, guidance=2.0, seed=0, device="cpu", show_progress=False)
    return path, pairs


def test_pairs_are_the_teachers_ddim_samples(toy_pairs):
    import torch

    from benchkit.models.loading import load_model
    from benchkit.models.presets import resolve_spec
    from distillers.adapter import teacher_from_parts
    from distillers.data import Pairs, toy_data
    from distillers.pairs import ode_sample

    path, pairs = toy_pairs
    loaded = Pairs.load(path)
    assert loaded.x0.shape == (8, 1, 8, 8) and loaded.meta["steps"] == 2 and len(loaded.prompts) == 60
    model = load_model(resolve_spec("toy-digits"), torch.device("cpu"), torch.float32)
    teacher = teacher_from_parts(model.unet, model.scheduler_config)
    data = toy_data(model.tokenizer, model.text_encoder, torch.device("cpu"))
    again = ode_sample(teacher, loaded.noise[:2], data.cond.select(loaded.prompt_index[:2]), 2, 2.0, data.uncond(2))
    assert torch.allclose(again, loaded.x0[:2], atol=1e-5)


@pytest.mark.parametrize("method,extra", [
    ("dmd2", ["--set", "ttur=1", "--set", "ode_pretrain_steps=1"]),
    ("lightning", ["--set", "stages=1", "--set", "teacher_substeps=1"]),
])
def test_distill_writes_a_spec_that_eval_runs_and_resumes(cli, tmp_path, toy_pairs, method, extra):
    out = tmp_path / method
    base = ["distill", "--method", method, "--teacher", "toy-digits", "--pairs", str(toy_pairs[0]), "--student-steps", "1",
            "--batch-size", "2", "--checkpoint-every", "1", "--device", "cpu", "-q", "--out", str(out), *extra]
    code, stdout, err = cli(*base, "--steps", "2")
    assert code == 0, err
    spec = tomllib.loads((out / "spec.toml").read_text())
    assert spec["base"] == "model" and spec["recipe"]["guidance_scale"] == 1.0
    assert (out / "model" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert json.loads((out / "distill.json").read_text())["method"] == method
    code, stdout, err = cli(*base, "--steps", "3")  # same command, more steps: resumes at step 2
    assert code == 0, err
    assert "resume at step 2 of 3" in (out / "train.log").read_text()
    code, stdout, err = cli("eval", "-m", str(out / "spec.toml"), "--seeds", "0", "--limit", "2", "--metrics", "toy-alignment",
                            "--device", "cpu", "--out", str(tmp_path / "run"))
    assert code == 0, err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert json.dumps(manifest).count("LCMScheduler" if method == "dmd2" else "EulerDiscreteScheduler") >= 1


def test_distill_errors_are_one_line(cli, tmp_path):
    code, _, err = cli("distill", "--method", "nope", "--teacher", "toy-digits", "--out", str(tmp_path / "x"))
    assert code == 2 and "unknown --method 'nope'" in err
    code, _, err = cli("distill", "--method", "dmd2", "--teacher", "toy-digits", "--set", "bogus=1", "--out", str(tmp_path / "x"))
    assert code == 2 and "no field 'bogus'" in err
    code, _, err = cli("distill", "--method", "adm", "--from-release")
    assert code == 2 and "no released weights" in err
    code, _, err = cli("distill", "--method", "adm", "--teacher", "toy-digits", "--steps", "2", "--set", "adp_steps=1",
                       "--out", str(tmp_path / "y"), "-q")
    assert code == 2 and "benchkit pairs" in err and "Traceback" not in err


def test_from_release_names_the_released_student(cli):
    code, out, err = cli("distill", "--method", "lightning", "--from-release", "--student-steps", "2")
    assert code == 0, err
    assert "sdxl-lightning-2step" in out
    code, _, err = cli("distill", "--method", "dmd2", "--from-release", "--student-steps", "3")
    assert code == 2 and "1, 4 steps" in err
