"""Bad input: one line on stderr naming the file or flag and what to do, exit status 2, no traceback,
and nothing generated or written (the check comes before any work)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from run_files import one_line_error


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def digits(folder: Path, names: list[str], size: int = 8) -> Path:
    """Grey toy-sized images under benchkit's own naming ({prompt_id}_{seed}.png)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(folder / name)
    return folder


# -- eval: recipe numbers and seeds, refused before the model loads --------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--guidance", "nan"], "--guidance must be a finite number"),
    (["--guidance", "inf"], "--guidance must be a finite number"),
    (["--guidance", "-1"], "--guidance must be a finite number"),
    (["--eta", "2"], "--eta must be a number from 0 to 1"),
    (["--steps", "0"], "--steps must be a positive integer"),
    (["--timesteps", "249,499"], "--timesteps must be decreasing numbers"),
    (["--timesteps", "999,-1"], "--timesteps must be decreasing numbers"),
    (["--seeds=-1"], "negative seeds are not accepted"),
    (["--seeds", "0-99999999999"], "more than 100000 seeds per prompt"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--warmup", "-1"], "--warmup must be 0 or more"),
    (["--metrics", ""], "--metrics is empty"),
])
def test_eval_recipe_and_seed_values(cli, tmp_path, argv, message):
    out = tmp_path / "run"
    code, _, err = cli("eval", "--limit", "1", "--quiet", "--out", str(out), "--cache-dir", str(tmp_path / "c"), *argv)
    one_line_error(code, err, message)
    assert not out.exists()


@pytest.mark.parametrize("body, message", [
    ('extends = "toy-digits"\n[recipe]\nheight = -8\n', "field 'recipe.height' must be a positive integer"),
    ('extends = "toy-digits"\n[recipe]\nwidth = 0\n', "field 'recipe.width' must be a positive integer"),
    ('extends = "toy-digits"\n[recipe]\nguidance_scale = nan\n', "field 'recipe.guidance_scale' must be a finite number"),
    ('extends = "toy-digits"\n[recipe]\nguidance_scale = inf\n', "field 'recipe.guidance_scale' must be a finite number"),
    ('extends = "toy-digits"\n[recipe]\neta = -0.5\n', "field 'recipe.eta' must be a number from 0 to 1"),
    ('extends = "toy-digits"\n[recipe]\nnum_frames = 0\n', "field 'recipe.num_frames' must be a positive integer"),
    ('extends = "toy-digits"\n[recipe]\nfps = -24\n', "field 'recipe.fps' must be a positive integer"),
    ('extends = "toy-digits"\n[recipe]\nsigmas = [1.0, nan]\n', "field 'recipe.sigmas' must be a non-empty list"),
    ('extends = "toy-digits"\n[recipe]\nscheduler_kwargs = { shift = inf }\n', "recipe.scheduler_kwargs.shift' must be finite"),
    ('extends = "toy-digits"\n[recipe]\ntimesteps = [999, 999]\n', "field 'recipe.timesteps' must be decreasing"),
    (b'name = "caf\xe9"\nbase = "builtin:toy-digits"\n', "not UTF-8 text (byte 11); save the spec file as UTF-8"),
])
def test_spec_file_values(cli, tmp_path, body, message):
    spec = write(tmp_path / "m.toml", body)
    out = tmp_path / "run"
    code, _, err = cli("eval", "-m", str(spec), "--quiet", "--out", str(out), "--cache-dir", str(tmp_path / "c"))
    one_line_error(code, err, message)
    assert str(spec) in err
    assert not out.exists()


def test_image_size_checked_after_loading_before_generating(cli, tmp_path):
    """The image size is known once the model is loaded: toy metrics refuse 16x8 images then,
    before the first image; without --metrics the toy defaults are left out with a note."""
    spec = write(tmp_path / "m.toml", 'extends = "toy-digits"\n[recipe]\nheight = 16\nsteps = 1\n')
    out = tmp_path / "run"
    code, _, err = cli("eval", "-m", str(spec), "--limit", "1", "--quiet", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                       "--metrics", "toy-fid,latency")
    one_line_error(code, err, "toy-fid scores only the toy world's 8x8 digits, these images are 16x8")
    assert not out.exists()
    code, stdout, err = cli("eval", "-m", str(spec), "--limit", "1", "--seeds", "0", "--quiet", "--out", str(out),
                            "--cache-dir", str(tmp_path / "c"))
    assert code == 0 and "latency_image_p50" in stdout and "toy-fid" not in stdout
    assert "note: default metric toy-fid left out: toy-fid scores only the toy world's 8x8 digits" in err
    left_out = json.loads((out / "results.json").read_text())["run"]["metrics_left_out"]
    assert sorted(left_out) == ["toy-alignment", "toy-diversity", "toy-fid"]


# -- metrics' preconditions, before the first image ------------------------------------------------------

@pytest.mark.parametrize("argv, prompts, message", [
    (["--metrics", "toy-diversity", "--seeds", "0"], None, "toy-diversity compares the seeds of each prompt"),
    (["--metrics", "toy-fid,lpips-diversity", "--seeds", "0"], None, "lpips-diversity compares the seeds of each prompt"),
    (["--metrics", "toy-alignment"], "a cat on a mat\n", "toy-alignment: prompt 'a cat on a mat' (00000) names no single digit"),
    (["--metrics", "toy-alignment"], '{"prompt": "the digit 1", "digit": 12}\n', "has digit=12; the digit field must be one of 0-9"),
    (["--metrics", "toy-alignment"], '{"prompt": "the digit 1", "digit": "x"}\n', "has digit='x'"),
    (["--metrics", "clip-score"], None, "weights 'clip-vit-g-14-laion2b-s12b-b42k' not found"),
    (["--metrics", "fid"], None, "not found"),
])
def test_metric_preconditions_before_generation(cli, tmp_path, monkeypatch, argv, prompts, message):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path / "no-weights"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch"))
    extra = ["-p", str(write(tmp_path / ("p.jsonl" if prompts.startswith("{") else "p.txt"), prompts))] if prompts else ["--limit", "2"]
    out = tmp_path / "run"
    code, _, err = cli("eval", "--quiet", "--out", str(out), "--cache-dir", str(tmp_path / "c"), *extra, *argv)
    one_line_error(code, err, message)
    assert not out.exists(), "a metric that cannot run must fail before anything is generated"


def test_fid_without_reference_fails_before_generation(cli, tmp_path, monkeypatch):
    """With the Inception weights present, a missing reference is the next precondition."""
    from metric_models import save_random_inception

    weights = save_random_inception(tmp_path / "w")
    out = tmp_path / "run"
    code, _, err = cli("eval", "--limit", "2", "--metrics", "fid", "--quiet", "--out", str(out), "--cache-dir",
                       str(tmp_path / "c"), "--weights", f"fid-inception={weights}")
    one_line_error(code, err, "fid: no reference statistics for protocol clean-fid")
    assert "benchkit reference coco" in err and not out.exists()


@pytest.mark.parametrize("line", ['{"prompt_id": "a\\n", "prompt": "the digit 1"}', '{"prompt_id": "a\\u0007b", "prompt": "x"}',
                                  '{"prompt_id": "-a", "prompt": "x"}', '{"prompt_id": "a/b", "prompt": "x"}'])
def test_prompt_ids_are_matched_whole(cli, tmp_path, line):
    prompts = write(tmp_path / "p.jsonl", line + "\n")
    code, _, err = cli("eval", "-p", str(prompts), "--quiet", "--out", str(tmp_path / "run"))
    one_line_error(code, err, "must start with a letter or digit and use only letters, digits")


def test_toy_metrics_refuse_real_images(tmp_path):
    """The toy extractor reads 8x8 digits only: a 64x64 image is not shrunk and scored as one."""
    from benchkit.core.errors import BenchkitError
    from benchkit.toy.metrics import ToyDigitsExtractor

    with pytest.raises(BenchkitError, match="reads only 8x8 digits, got an image of 64x64"):
        ToyDigitsExtractor()([np.zeros((64, 64, 3), np.uint8)])


# -- score: folders, seeds, files -------------------------------------------------------------------------

def test_score_mixed_sizes_with_toy_metrics(cli, tmp_path):
    images = digits(tmp_path / "imgs", ["digit0-a_0.png"])
    digits(images, ["digit1-a_0.png"], size=16)
    code, _, err = cli("score", str(images), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet", "-o", str(tmp_path / "s"))
    one_line_error(code, err, "toy-fid scores only the toy world's 8x8 digits, these images are 16x16")


def test_score_real_images_get_no_toy_default(cli, tmp_path, monkeypatch):
    """Without --metrics, 64x64 images get the image metrics whose weights are present: here none."""
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path / "no-weights"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch"))
    images = digits(tmp_path / "imgs", ["digit0-a_0.png", "digit0-a_1.png"], size=64)
    code, _, err = cli("score", str(images), "-p", "toy-digits", "--quiet", "-o", str(tmp_path / "s"))
    one_line_error(code, err, "none of the default metrics can run here")
    assert "toy" not in err.split("(")[0]


@pytest.mark.parametrize("seed, message", [("abc", "seed 'abc' of prompt digit0-a is not a non-negative integer"),
                                           ("-1", "seed '-1' of prompt digit0-a is not a non-negative integer"),
                                           ("1.5", "seed '1.5'")])
def test_score_seed_column(cli, tmp_path, seed, message):
    images = digits(tmp_path / "imgs", ["a.png"])
    prompts = write(tmp_path / "p.csv", f"prompt_id,prompt,seed,file\ndigit0-a,the digit 0,{seed},a.png\n")
    code, _, err = cli("score", str(images), "-p", str(prompts), "--metrics", "toy-fid", "--quiet", "-o", str(tmp_path / "s"))
    one_line_error(code, err, message)


def test_score_dangling_symlink(cli, tmp_path):
    images = digits(tmp_path / "imgs", ["digit0-a_0.png"])
    os.symlink(tmp_path / "gone.png", images / "digit1-a_0.png")
    code, _, err = cli("score", str(images), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet", "-o", str(tmp_path / "s"))
    one_line_error(code, err, "cannot read image")
    assert "digit1-a_0.png" in err


def test_score_listed_file_missing(cli, tmp_path):
    images = digits(tmp_path / "imgs", ["a.png"])
    prompts = write(tmp_path / "p.csv", "prompt_id,prompt,file\ndigit0-a,the digit 0,b.png\n")
    code, _, err = cli("score", str(images), "-p", str(prompts), "--metrics", "toy-fid", "--quiet", "-o", str(tmp_path / "s"))
    one_line_error(code, err, "b.png listed in")


def test_score_unwritable_out(cli, tmp_path):
    images = digits(tmp_path / "imgs", ["digit0-a_0.png", "digit1-a_0.png"])
    blocker = write(tmp_path / "file", "not a folder")
    code, _, err = cli("score", str(images), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet", "-o", str(blocker / "s"))
    one_line_error(code, err, str(blocker / "s"))


def test_score_negative_seed_file_name(cli, tmp_path):
    """`eval` never writes a negative seed, so `score` reads '_-1' as part of an unknown prompt id."""
    images = digits(tmp_path / "imgs", ["digit0-a_-1.png"])
    code, _, err = cli("score", str(images), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet", "-o", str(tmp_path / "s"))
    one_line_error(code, err, "no prompt with id 'digit0-a_-1'")


def test_score_two_files_for_one_item(cli, tmp_path):
    images = digits(tmp_path / "imgs", ["digit0-a_0.png", "digit0-a.png"])
    code, _, err = cli("score", str(images), "-p", "toy-digits", "--metrics", "toy-fid", "--quiet", "-o", str(tmp_path / "s"))
    one_line_error(code, err, "are both prompt digit0-a seed 0")


def test_score_latency_refused(cli, tmp_path):
    images = digits(tmp_path / "imgs", ["digit0-a_0.png"])
    code, _, err = cli("score", str(images), "-p", "toy-digits", "--metrics", "latency", "--quiet", "-o", str(tmp_path / "s"))
    one_line_error(code, err, "latency cannot be measured on existing images")


# -- outputs that would replace a user's file --------------------------------------------------------------

def test_prompts_export_keeps_an_existing_file(cli, tmp_path):
    mine = write(tmp_path / "mine.txt", "my notes\n")
    code, _, err = cli("prompts", "export", "toy-digits", "--out", str(mine))
    one_line_error(code, err, "exists; choose a new file name, or pass --overwrite")
    assert mine.read_text() == "my notes\n"
    code, _, _ = cli("prompts", "export", "toy-digits", "--out", str(mine), "--overwrite")
    assert code == 0 and mine.read_text().startswith("a handwritten digit zero")


def test_pairs_out_keeps_a_foreign_file(cli, tmp_path):
    mine = write(tmp_path / "pairs.safetensors", b"my own bytes")
    code, _, err = cli("pairs", "--teacher", "toy-digits", "--count", "2", "--steps", "1", "--out", str(mine), "--quiet")
    one_line_error(code, err, "exists and is not a benchkit pairs file")
    assert mine.read_bytes() == b"my own bytes"


def test_distill_out_with_user_files(cli, tmp_path):
    out = tmp_path / "student"
    write(out / "model" / "notes.txt", "mine")
    code, _, err = cli("distill", "--method", "dmd2", "--teacher", "toy-digits", "--steps", "1", "--out", str(out), "--quiet")
    one_line_error(code, err, "is not a benchkit distill folder")
    assert (out / "model" / "notes.txt").read_text() == "mine"


def test_report_out_with_user_files(cli, tmp_path):
    out = tmp_path / "rep"
    write(out / "thesis.tex", "mine")
    run = tmp_path / "run"
    write(run / "manifest.json", json.dumps({"benchkit_run": 1}))
    code, _, err = cli("report", str(run), "-o", str(out))
    one_line_error(code, err, "holds thesis.tex; a report only replaces an earlier benchkit report")
    assert (out / "thesis.tex").read_text() == "mine"
