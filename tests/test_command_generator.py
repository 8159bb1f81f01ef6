"""Outside generators: a spec's `command` runs once per batch (JSON request on stdin, one image per item in
the folder it names), through the same run directory, resume, latency and metrics as benchkit's own models,
and every failure of the program is one line, exit 2, with nothing left behind and no user file touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from benchkit.core.errors import BenchkitError
from benchkit.core.items import Item, item_seed
from benchkit.evaluate import make_items, run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import load_spec_file, spec_hash
from prompts import load_prompt_set
from tiny_pipelines import build_sd15

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "diffusers_command_generator.py"

# A stand-in for a paper's script (numpy and PIL only, so it starts fast): logs each request it gets to LOG,
# writes each item's image from its noise seed and a stages.json; --mode makes it fail in one way.
FAKE = r'''
import json, os, subprocess, sys, time
import numpy as np
from PIL import Image

log, mode = sys.argv[1], sys.argv[sys.argv.index("--mode") + 1] if "--mode" in sys.argv else "ok"
request = json.load(sys.stdin)
with open(log, "a") as f:
    f.write(json.dumps(request) + "\n")
out = request["output_dir"]
if mode == "crash":
    print("loading the model", file=sys.stderr)
    print("RuntimeError: fake out of memory", file=sys.stderr)
    sys.exit(3)
if mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(log + ".child", "w") as f:
        f.write(str(child.pid))
    time.sleep(120)
if mode == "nothing":
    sys.exit(0)
time.sleep(0.3)
for item in request["items"]:
    path = os.path.join(out, item["file"])
    if mode == "garbage":
        with open(path, "wb") as f:
            f.write(b"these are not the pixels you are looking for")
        continue
    height = item["height"] * (2 if mode == "wrong-size" else 1)
    rng = np.random.default_rng(item["noise_seed"])
    Image.fromarray(rng.integers(0, 256, (height, item["width"], 3), dtype=np.uint8)).save(path)
stages = {"text_encoding_s": 0.125, "denoising_s": 0.5, "vae_decode_s": 0.25, "load_s": 2.0}
with open(os.path.join(out, "stages.json"), "w") as f:
    json.dump({"denoising_s": 0.5} if mode == "partial-stages" else stages, f)
'''

RECIPE = "[recipe]\nsteps = 2\nheight = 16\nwidth = 16\n"
# the tiny SD1.5 recipe both paths sample: DDIM trailing, 2 steps, CFG 2 (two denoiser rows per item)
SD_RECIPE = ('[recipe]\nscheduler = "ddim"\nscheduler_kwargs = { timestep_spacing = "trailing" }\nsteps = 2\n'
             'guidance_scale = 2.0\nheight = 16\nwidth = 16\n')


def fake_image(noise_seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(noise_seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def write_spec(folder: Path, command: list[str], extra: str = "", recipe: str = RECIPE, name: str = "fake") -> Path:
    spec = folder / f"{name}.toml"
    spec.write_text(f'name = "{name}"\ncommand = {json.dumps(command)}\n{extra}{recipe}')
    return spec


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (the user's) by content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def scratch_folders(run: Path) -> list[str]:
    return [p.name for p in run.iterdir() if p.name.startswith(".benchkit-command-")] if run.exists() else []


def requests(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped has ended too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture()
def user(tmp_path):
    """A user's folder: the fake script, a notes file, and where its request log goes."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "fake.py").write_text(FAKE)
    (folder / "notes.txt").write_text("my notes\n")
    return folder


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    """The tiny SD1.5 folder, the example script beside it (as a user would copy it) and a spec for each path."""
    folder = tmp_path_factory.mktemp("outside")
    build_sd15(folder / "model")
    shutil.copy(EXAMPLE, folder / "gen.py")
    command_spec = write_spec(folder, [sys.executable, "gen.py", "model"], "timeout_s = 300\n", SD_RECIPE, "sd-command")
    pipeline_spec = folder / "sd-pipeline.toml"
    pipeline_spec.write_text('name = "sd-pipeline"\nbase = "model"\n' + SD_RECIPE)
    return folder, command_spec, pipeline_spec


# ---- the spec --------------------------------------------------------------------------------------------

def test_a_command_spec_resolves_paths_next_to_it_and_names_no_weights(user):
    (user / "model").mkdir()
    spec = load_spec_file(write_spec(user, ["python", "fake.py", "model", "./log.jsonl", "--steps", "4", "a cat"],
                                     "timeout_s = 30\n"))
    assert spec.command == ("python", str(user / "fake.py"), str(user / "model"), str(user / "log.jsonl"),
                            "--steps", "4", "a cat")
    assert (spec.family, spec.base, spec.weights, spec.timeout_s) == ("command", "", None, 30.0)
    assert spec.recipe.scheduler == "model-default"  # the program's own sampler unless the recipe names one
    assert str(user / "fake.py") in spec.local_paths() and str(user / "model") in spec.local_paths()
    # the timeout changes no image: not part of the run's identity; the command is
    assert "timeout_s" not in spec.identity() and spec.identity()["command"][1] == str(user / "fake.py")
    plain = resolve_spec("toy-digits")
    assert "command" not in plain.identity() and "timeout_s" not in plain.identity()
    longer = load_spec_file(write_spec(user, ["python", "fake.py", "model", "./log.jsonl", "--steps", "4", "a cat"],
                                       "timeout_s = 60\n"))
    assert spec_hash(longer, "w") == spec_hash(spec, "w")


@pytest.mark.parametrize("body, message", [
    ('name = "m"\ncommand = []\n', "field 'command' must be a non-empty list of non-empty strings"),
    ('name = "m"\ncommand = "python gen.py"\n', "field 'command' must be a list of strings"),
    ('name = "m"\ncommand = ["python", 4]\n', "field 'command' must be a non-empty list of non-empty strings"),
    ('name = "m"\ncommand = ["python"]\nbase = "model"\n', "field 'base' does not go with 'command'"),
    ('name = "m"\ncommand = ["python"]\nfamily = "sd15"\n', "field 'family' does not go with 'command'"),
    ('name = "m"\ncommand = ["python"]\ntimeout_s = 0\n', "field 'timeout_s' must be a positive number of seconds"),
    ('name = "m"\ncommand = ["python"]\ntimeout_s = nan\n', "field 'timeout_s' must be a positive number of seconds"),
    ('name = "m"\nbase = "builtin:toy-digits"\ntimeout_s = 5\n', "field 'timeout_s' applies to an outside generator"),
])
def test_bad_command_fields_are_one_line(tmp_path, body, message):
    spec = tmp_path / "m.toml"
    spec.write_text(body)
    with pytest.raises(BenchkitError, match=message):
        load_spec_file(spec)


# ---- a missing program: refused when the model loads, before the run folder exists ----------------------

@pytest.mark.parametrize("command, message", [
    (["no-such-program-3f9a"], "command 'no-such-program-3f9a' not found on PATH"),
    (["./not-there.sh"], "not-there.sh not found"),
    (["./notes.txt"], "notes.txt is not executable: chmod +x it"),
    ([sys.executable, "missing.py"], "the command names missing.py, which does not exist"),
])
def test_a_missing_or_unrunnable_program_is_refused_before_any_work(cli, user, tmp_path, command, message):
    spec = write_spec(user, command)
    before = snapshot(user)
    out = tmp_path / "run"
    code, _, err = cli("eval", "-m", str(spec), "--limit", "1", "--seeds", "0", "--metrics", "latency", "--device", "cpu",
                       "--warmup", "0", "--quiet", "--out", str(out), "--cache-dir", str(tmp_path / "c"))
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert message in err and "model 'fake'" in err, err
    assert not out.exists()
    assert snapshot(user) == before


# ---- a run through the fake script: request, images, stages, latency, resume ------------------------------

def test_eval_runs_the_command_per_batch_and_resumes_only_what_is_missing(user, tmp_path):
    log = user / "log.jsonl"
    spec = resolve_spec(str(write_spec(user, [sys.executable, "fake.py", "./log.jsonl"], "timeout_s = 60\n")))
    prompt_set = load_prompt_set("toy-digits").limit(2)
    out = tmp_path / "run"
    results = run_eval(spec, prompt_set, [0, 1], out, metrics=["latency"], device="cpu", batch_size=3, warmup_batches=0,
                       cache_dir=tmp_path / "c", show_progress=False)

    # one request per batch, items in order with both seeds, the recipe's numbers and no input image
    sent = requests(log)
    items = make_items(prompt_set, [0, 1])
    assert [len(r["items"]) for r in sent] == [3, 1]
    got = [i for r in sent for i in r["items"]]
    assert [(i["prompt_id"], i["prompt"], i["seed"]) for i in got] == [(it.prompt_id, it.prompt, it.seed) for it in items]
    assert [i["noise_seed"] for i in got] == [item_seed(it.prompt_id, it.seed) for it in items]
    assert {(i["height"], i["width"], i["steps"], i["guidance_scale"], i["num_frames"], i["image"]) for i in got} == \
        {(16, 16, 2, 1.0, None, None)}
    assert [i["file"] for i in got] == [f"{it.key}.png" for it in items]
    assert sent[0]["device"] == "cpu" and sent[0]["dtype"] == "float32" and sent[0]["recipe"]["steps"] == 2
    # a fresh folder inside the run per batch, removed afterwards
    folders = [Path(r["output_dir"]) for r in sent]
    assert len(set(folders)) == 2 and all(f.parent == out and f.name.startswith(".benchkit-command-") for f in folders)
    assert not any(f.exists() for f in folders) and scratch_folders(out) == []

    # the program's images are the run's images, pixel for pixel
    recs = records(out)
    assert len(recs) == 4
    for rec in recs:
        with Image.open(out / rec["file"]) as im:
            assert np.array_equal(np.asarray(im), fake_image(item_seed(rec["prompt_id"], rec["seed"])))

    # latency: the command's wall time per batch, and the stages it reported (seconds for its batch)
    for rec in recs:
        stages = rec["stages"]
        assert {k: stages[k] for k in ("text_encoding_s", "denoising_s", "vae_decode_s", "load_s")} == \
            {"text_encoding_s": 0.125, "denoising_s": 0.5, "vae_decode_s": 0.25, "load_s": 2.0}
        assert stages["denoise_step_s"] == 0.25 and stages["steps"] == 2
        assert rec["batch_seconds"] >= stages["command_s"] >= 0.3  # it sleeps 0.3 s
        assert rec["batch_seconds"] - stages["command_s"] < 1.0
    values = {m["name"]: m["value"] for m in results["metrics"]}
    batch = sorted({r["batch_id"]: r["batch_seconds"] for r in recs}.values())
    assert values["latency_batch_p50"] == pytest.approx(float(np.median(batch)))
    assert values["latency_denoising"] == pytest.approx(float(np.median([0.5 / 3, 0.5 / 1])))
    assert values["latency_vae_decode"] == pytest.approx(float(np.median([0.25 / 3, 0.25 / 1])))
    assert values["nfe"] == 2  # from the recipe: the program's denoiser calls are not measured

    # provenance: the command, the script's sha256, the timeout
    manifest = json.loads((out / "manifest.json").read_text())
    script_sha = hashlib.sha256((user / "fake.py").read_bytes()).hexdigest()
    assert manifest["model"]["family"] == "command"
    assert manifest["model"]["command"]["scripts"] == {str(user / "fake.py"): script_sha}
    assert manifest["model"]["command"]["timeout_s"] == 60.0
    assert manifest["model"]["command"]["argv"] == [sys.executable, str(user / "fake.py"), str(user / "log.jsonl")]
    assert manifest["model"]["files"] == {"script:fake.py": script_sha}  # in the run's identity
    assert manifest["spec"]["command"] == manifest["model"]["command"]["argv"]

    # killed after its first batch: the last image written but not committed; a rerun makes only that one.
    # The killed session left its scratch folder (marked as benchkit's): the rerun removes it, and keeps a
    # folder of the same name pattern that does not carry benchkit's mark
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    (out / "samples.jsonl").write_text("".join(lines[:3]))
    leftover, unmarked = out / ".benchkit-command-killed", out / ".benchkit-command-not-ours"
    for folder in (leftover, unmarked):
        folder.mkdir()
        (folder / "p0_0.png").write_bytes(b"half-written")
    (leftover / ".made-by-benchkit").write_text("")
    kept = {r["file"]: r["sha256"] for r in recs[:3]}
    run_eval(spec, prompt_set, [0, 1], out, metrics=["latency"], device="cpu", batch_size=3, warmup_batches=0,
             cache_dir=tmp_path / "c", show_progress=False)
    sent = requests(log)
    assert len(sent) == 3 and [i["prompt_id"] + f"_{i['seed']}" for i in sent[2]["items"]] == [items[3].key]
    assert not leftover.exists() and (unmarked / "p0_0.png").read_bytes() == b"half-written"
    again = records(out)
    assert len(again) == 4 and {r["file"]: r["sha256"] for r in again[:3]} == kept
    assert again[3]["sha256"] == recs[3]["sha256"] and again[3]["batch_id"] == "s2-b0"
    assert [s["generated"] for s in json.loads((out / "manifest.json").read_text())["sessions"]] == [4, 1]
    assert scratch_folders(out) == [unmarked.name]  # this session's own are gone; the unmarked one was never ours


def test_an_image_column_is_sent_as_a_path(user, tmp_path):
    picture = tmp_path / "cond.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(picture)
    prompts_file = tmp_path / "p.jsonl"
    prompts_file.write_text(json.dumps({"prompt_id": "a", "prompt": "a cat", "image": str(picture)}) + "\n"
                            + json.dumps({"prompt_id": "b", "prompt": "a dog", "image": ""}) + "\n")
    spec = resolve_spec(str(write_spec(user, [sys.executable, "fake.py", "./log.jsonl"])))
    gen = make_generator(load_model(spec, torch.device("cpu"), torch.float32), spec.recipe)
    items = make_items(load_prompt_set(str(prompts_file)), [0])
    out = gen.generate(items)
    assert [i["image"] for i in requests(user / "log.jsonl")[0]["items"]] == [str(picture), None]
    assert np.array_equal(out.images[0], fake_image(item_seed("a", 0)))
    missing = [Item("c", "a bird", 0, (("image", str(tmp_path / "nope.png")),))]
    with pytest.raises(BenchkitError, match="prompt 'c': its image .*nope.png is not a file"):
        gen.generate(missing)
    assert len(requests(user / "log.jsonl")) == 1  # refused before the program ran


# ---- the example script around a diffusers pipeline: benchkit's own images ---------------------------------

def test_the_diffusers_example_makes_benchkits_own_images(tiny_sd, tmp_path):
    folder, command_spec, pipeline_spec = tiny_sd
    before = snapshot(folder)
    spec = resolve_spec(str(command_spec))
    prompt_set = load_prompt_set("toy-digits").limit(2)
    out = tmp_path / "run"
    run_eval(spec, prompt_set, [0, 1], out, metrics=["latency"], device="cpu", batch_size=4, warmup_batches=0,
             cache_dir=tmp_path / "c", show_progress=False)
    recs = records(out)
    assert len(recs) == 4 and len({r["sha256"] for r in recs}) == 4
    stages = recs[0]["stages"]
    assert stages["timesteps"] == [999.0, 499.0] and stages["steps"] == 2  # DDIM trailing, 2 steps, reached the UNet
    assert all(stages[k] > 0 for k in ("text_encoding_s", "denoising_s", "vae_decode_s", "load_s"))
    assert recs[0]["batch_seconds"] >= stages["command_s"] > stages["load_s"] + stages["denoising_s"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["command"]["scripts"][str(folder / "gen.py")] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert scratch_folders(out) == [] and snapshot(folder) == before

    # benchkit's own pipeline path on the same folder and recipe, for the same items
    ours = load_spec_file(pipeline_spec)
    generator = make_generator(load_model(ours, torch.device("cpu"), torch.float32), ours.recipe)
    items = make_items(prompt_set, [0, 1])
    reference = generator.generate(items).images
    for rec, ref in zip(recs, reference):
        with Image.open(out / rec["file"]) as im:
            theirs = np.asarray(im.convert("RGB")).astype(np.int16)
        assert theirs.shape == ref.shape == (16, 16, 3)
        assert np.abs(theirs - ref.astype(np.int16)).max() <= 1  # equal up to the uint8 rounding
    assert np.abs(reference[0].astype(np.int16) - reference[1].astype(np.int16)).max() > 1  # seeds do differ


# ---- every way the program can fail: one line, exit 2, nothing left behind -------------------------------

FAILURES = [
    ("crash", "", "the command exited with status 3: RuntimeError: fake out of memory"),
    ("hang", "timeout_s = 2\n", "the command ran past its timeout of 2 s on a batch of 2 and was stopped"),
    ("wrong-size", "", "is 32x16 (height x width), expected 16x16 (the recipe's size)"),
    ("nothing", "", "the command wrote no image for digit0-a_0: expected digit0-a_0.png in the request's output_dir "
                    "(it wrote nothing)"),
    ("garbage", "", "the command's image digit0-a_0.png is unreadable: cannot identify image file"),
    ("partial-stages", "", "the command's stages.json has no 'text_encoding_s': give text_encoding_s, denoising_s, "
                           "vae_decode_s (seconds for the whole batch)"),
]


@pytest.mark.parametrize("mode, extra, message", FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failing_command_is_one_line_and_leaves_nothing(cli, user, tmp_path, mode, extra, message):
    spec = write_spec(user, [sys.executable, "fake.py", "./log.jsonl", "--mode", mode], extra)
    before = snapshot(user)
    out = tmp_path / "run"
    start = time.monotonic()
    code, _, err = cli("eval", "-m", str(spec), "--limit", "1", "--seeds", "0-1", "--metrics", "latency", "--device", "cpu",
                       "--warmup", "0", "--batch-size", "2", "--quiet", "--out", str(out), "--cache-dir", str(tmp_path / "c"))
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert message in err and "model 'fake'" in err, err
    assert len(requests(user / "log.jsonl")) == 1  # the program did run, once
    assert scratch_folders(out) == [] and not any((out / "images").iterdir())
    assert {k: v for k, v in snapshot(user).items() if not k.startswith("log.jsonl")} == before
    if mode == "hang":  # the whole process group was stopped, the program's own child too
        assert time.monotonic() - start < 20
        child = int((user / "log.jsonl.child").read_text())
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child)


def test_the_cli_in_its_own_process_exits_2_with_one_line(user, tmp_path):
    spec = write_spec(user, [sys.executable, "fake.py", "./log.jsonl", "--mode", "crash"])
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "benchkit", "eval", "-m", str(spec), "--limit", "1", "--seeds", "0",
                           "--metrics", "latency", "--device", "cpu", "--warmup", "0", "--quiet", "--out", str(out),
                           "--cache-dir", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "COLUMNS": "400"})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "the command exited with status 3: RuntimeError: fake out of memory" in done.stderr
    assert scratch_folders(out) == []


def test_an_outside_command_is_refused_as_a_distillation_teacher_before_any_work(user, tmp_path):
    spec = write_spec(user, [sys.executable, "fake.py"])
    out = tmp_path / "student"
    for args in (["distill", "--method", "dmd2", "--teacher", str(spec), "--steps", "1", "--out", str(out)],
                 ["pairs", "--teacher", str(spec), "--count", "1", "--out", str(tmp_path / "pairs.safetensors")]):
        proc = subprocess.run([sys.executable, "-m", "benchkit", *args], capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == (f"error: teacher '{spec}': a command model (an outside "
                                                        "generator) has no denoiser benchkit can distill from; give "
                                                        "a diffusers teacher")
    assert not out.exists() and not (tmp_path / "pairs.safetensors").exists()


# ---- a video program: clips ----------------------------------------------------------------------------------

# Writes each item's clip from its noise seed, as .npy (uint8 frames) or an animated .png; --mode breaks it
CLIPS = r'''
import json, os, sys
import numpy as np
from PIL import Image

fmt, mode = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ok"
request = json.load(sys.stdin)
for item in request["items"]:
    frames = item["num_frames"] - (1 if mode == "short" else 0)
    clip = np.random.default_rng(item["noise_seed"]).integers(0, 256, (frames, item["height"], item["width"], 3), dtype=np.uint8)
    stem = os.path.join(request["output_dir"], item["prompt_id"] + "_" + str(item["seed"]))
    if mode == "object":  # an array only unpickling could read
        np.save(stem + ".npy", np.array([{"frames": 1}], dtype=object), allow_pickle=True)
    elif fmt == "npy":
        np.save(stem + ".npy", clip)
    else:
        images = [Image.fromarray(f) for f in clip]
        images[0].save(stem + ".png", save_all=True, append_images=images[1:], duration=125, loop=0)
'''


def fake_clip(noise_seed: int, frames: int = 5, size: int = 16) -> np.ndarray:
    return np.random.default_rng(noise_seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["npy", "apng"])
def test_a_video_program_returns_clips(user, tmp_path, fmt, monkeypatch):
    import benchkit.models.video as video

    monkeypatch.setattr(video, "mp4_encoder", lambda: None)  # lossless APNG, so the frames compare exactly
    (user / "clips.py").write_text(CLIPS)
    spec = write_spec(user, [sys.executable, "clips.py", fmt], recipe=RECIPE + "num_frames = 5\nfps = 8\n", name="clips")
    results = run_eval(resolve_spec(str(spec)), load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run",
                       metrics=["latency"], device="cpu", batch_size=2, warmup_batches=0, cache_dir=tmp_path / "c",
                       show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["num_frames"] == 5 and manifest["model"]["fps"] == 8
    for rec in records(tmp_path / "run"):
        expected = fake_clip(item_seed(rec["prompt_id"], rec["seed"]))
        assert rec["frames"] == "5"
        with Image.open(tmp_path / "run" / rec["video"]) as clip:  # written as an APNG (no mp4 encoder, above)
            frames = [np.array(f.convert("RGB")) for f in ImageSequence.Iterator(clip)]
        assert np.array_equal(np.stack(frames), expected)  # lossless through the program's file and benchkit's
        assert np.array_equal(np.array(Image.open(tmp_path / "run" / rec["file"])), expected[0])  # first frame scored
    metrics = {m["name"]: m["value"] for m in results["metrics"]}
    assert metrics["latency_image_p50"] > 0 and metrics["nfe"] == 2  # the program's wall time; the recipe's steps


@pytest.mark.parametrize("mode, message", [
    ("short", "the command's clip digit0-a_0.npy has 4 frames, expected 5 (recipe.num_frames)"),
    ("object", "the command's clip digit0-a_0.npy is unreadable: Object arrays cannot be loaded when allow_pickle=False"),
])
def test_a_bad_clip_is_one_line(cli, user, tmp_path, mode, message):
    (user / "clips.py").write_text(CLIPS)
    spec = write_spec(user, [sys.executable, "clips.py", "npy", mode], recipe=RECIPE + "num_frames = 5\n", name="clips")
    code, _, err = cli("eval", "-m", str(spec), "--limit", "1", "--seeds", "0", "--metrics", "latency", "--device", "cpu",
                       "--warmup", "0", "--quiet", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert message in err and "model 'clips'" in err, err
    assert scratch_folders(tmp_path / "run") == []


def test_a_text_to_image_run_feeds_an_image_to_video_run(cli, user, tmp_path):
    """--images-from RUN: each (prompt, seed) of the second run gets the first run's image of the same
    (prompt, seed) as its input (Magic 1-For-1's way of making image-to-video inputs); the run's identity
    holds a hash of those images, so other inputs are another run; a missing input is one line first."""
    t2i = tmp_path / "t2i"
    run_eval(resolve_spec(str(write_spec(user, [sys.executable, "fake.py", "./t2i.jsonl"]))), load_prompt_set("toy-digits").limit(2),
             [0, 1], t2i, metrics=["latency"], device="cpu", batch_size=4, warmup_batches=0, cache_dir=tmp_path / "c",
             show_progress=False)
    (user / "clips.py").write_text(CLIPS)
    i2v_spec = write_spec(user, [sys.executable, "fake.py", "./i2v.jsonl"], recipe=RECIPE, name="i2v")
    i2v = tmp_path / "i2v"
    args = ("eval", "-m", str(i2v_spec), "--prompts", "toy-digits", "--limit", "2", "--metrics", "latency", "--device",
            "cpu", "--warmup", "0", "--quiet", "--cache-dir", str(tmp_path / "c"), "--images-from", str(t2i))
    code, _, err = cli(*args, "--seeds", "0-2", "--out", str(i2v))  # seed 2 was never made
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--images-from {t2i}: it has no image for prompt 'digit0-a' seed 2" in err and not i2v.exists()
    code, _, err = cli(*args, "--seeds", "0-1", "--out", str(i2v))
    assert code == 0, err
    made = {f"{r['prompt_id']}_{r['seed']}": r for r in records(t2i)}
    sent = [item for request in requests(user / "i2v.jsonl") for item in request["items"]]
    assert {f"{i['prompt_id']}_{i['seed']}": i["image"] for i in sent} == {k: str((t2i / r["file"]).resolve())
                                                                           for k, r in made.items()}
    for rec in records(i2v):
        assert rec["input_image_sha256"] == made[f"{rec['prompt_id']}_{rec['seed']}"]["sha256"]
    manifest = json.loads((i2v / "manifest.json").read_text())
    assert manifest["input_images"]["run"] == str(t2i.resolve()) and manifest["input_images"]["images"] == 4
