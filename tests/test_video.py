"""Video models: a clip per (prompt, seed) with every frame, independent of the batch it was in."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipelines import tiny  # noqa: F401  (session fixture)

from benchkit.core.items import Item
from benchkit.evaluate import run_eval
from benchkit.models.loading import load_model
from benchkit.models.presets import resolve_spec
from benchkit.models.sampling import make_generator
from benchkit.models.spec import ModelSpec, Recipe
from benchkit.models.video import write_video
from prompts import load_prompt_set


def read_apng(path):
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
        return np.stack(frames), im.info.get("duration")


def test_apng_round_trips_every_frame(tmp_path, monkeypatch):
    import benchkit.models.video as video

    monkeypatch.setattr(video, "mp4_encoder", lambda: None)  # a machine without PyAV or imageio-ffmpeg
    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 12, 3), dtype=np.uint8)
    fields = write_video(tmp_path, "p_0", frames, fps=8)
    assert fields == {"video": "videos/p_0.png", "video_format": "apng", "fps": "8", "frames": "5"}
    back, duration = read_apng(tmp_path / fields["video"])
    assert np.array_equal(back, frames) and duration == 125  # 1000 ms / 8 fps
    # a still clip keeps every frame (Pillow would merge equal frames into one longer one)
    still = np.stack([frames[0]] * 4 + [frames[1]] + [frames[1]])
    back, duration = read_apng(tmp_path / write_video(tmp_path, "still_0", still, fps=8)["video"])
    assert np.array_equal(back, still) and duration == 125


def test_cogvideox_clips_are_batch_independent_and_written_per_item(tiny, tmp_path):
    recipe = Recipe("cogvideox-ddim", {"timestep_spacing": "trailing"}, steps=2, guidance_scale=2.0, height=32, width=32,
                    num_frames=9, fps=8)
    model = load_model(ModelSpec("v", str(tiny["cogvideox"]), recipe), torch.device("cpu"), torch.float32)
    gen = make_generator(model, recipe)
    items = [Item("a", "one", 0), Item("b", "two", 1)]
    out = gen.generate(items)
    firsts, clips = out.images, out.videos
    assert [c.shape for c in clips] == [(9, 32, 32, 3)] * 2
    assert all(np.array_equal(f, c[0]) for f, c in zip(firsts, clips))  # the item's image is its first frame
    assert np.array_equal(gen.generate(items[1:]).videos[0], clips[1])
    assert not np.array_equal(clips[0][0], clips[0][-1])  # frames differ: a clip, not a still


def test_video_eval_writes_clips_next_to_first_frames(tiny, tmp_path, every_clip_static):  # 32 px: no RAFT
    spec_file = tmp_path / "v.toml"
    spec_file.write_text(f'extends = "cogvideox-2b"\nbase = "{tiny["cogvideox"]}"\n'
                         "[recipe]\nheight = 32\nwidth = 32\nnum_frames = 9\nsteps = 2\nfps = 4\n")
    results = run_eval(resolve_spec(str(spec_file)), load_prompt_set("toy-digits").limit(2), [0], tmp_path / "run",
                       metrics=["latency", "vbench-temporal-flickering"], device="cpu", batch_size=2, warmup_batches=0,
                       cache_dir=tmp_path / "c", show_progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2
    # a VBench dimension scored the clips themselves, end to end: VBench's flickering score of each clip, averaged
    from metrics.clips import read_clip
    from metrics.vbench_dimensions import flicker_score

    (flicker,) = [m for m in results["metrics"] if m["name"] == "vbench-temporal-flickering"]
    expected = np.mean([flicker_score(read_clip(tmp_path / "run" / r["video"])) for r in records])
    assert flicker["value"] == pytest.approx(expected, rel=1e-12) and flicker["n"] == 2 and 0 < flicker["value"] < 1
    # beside it, VBench's normalisation (constant.py's bounds) and the aggregates it allows: partial, naming the rest
    from metrics.vbench_scores import BY_NAME

    got = {m["name"]: m for m in results["metrics"]}
    dim = BY_NAME["temporal_flickering"]
    assert got["vbench-temporal-flickering-normalized"]["value"] == pytest.approx((flicker["value"] - dim.low) / (dim.high - dim.low))
    quality = got["vbench-quality-partial"]
    assert quality["value"] == got["vbench-temporal-flickering-normalized"]["value"]  # the one dimension present
    assert "motion_smoothness" in quality["extra"]["missing"] and "vbench-quality" not in got and "vbench-semantic-partial" not in got
    assert set(got["vbench-total-partial"]["variant"]["missing"]) == {d for d in BY_NAME if d != "temporal_flickering"}
    for rec in records:
        clip = tmp_path / "run" / rec["video"]
        assert clip.exists() and rec["frames"] == "9" and rec["fps"] == "4"
        if rec["video_format"] == "apng":
            frames, duration = read_apng(clip)
            first = np.asarray(Image.open(tmp_path / "run" / rec["file"]).convert("RGB"))
            assert frames.shape == (9, 32, 32, 3) and duration == 250 and np.array_equal(frames[0], first)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"]["num_frames"] == 9 and manifest["model"]["fps"] == 4
    # clip latency as video papers quote it, from the recorded seconds: 9 frames at 4 fps are 2.25 s of video
    seconds = np.array([r["seconds"] for r in records])
    assert got["latency_clip_p50"]["value"] == pytest.approx(np.percentile(seconds, 50))
    assert got["compute_per_video_second"]["value"] == pytest.approx(np.percentile(seconds / 2.25, 50))
    assert got["generated_fps"]["value"] == pytest.approx(18 / seconds.sum()) and got["generated_fps"]["higher_is_better"]
    # one batch of two: each clip's first frame exists when the batch ends, not after its half of it
    assert got["time_to_first_frame"]["value"] == pytest.approx(records[0]["batch_seconds"])
    assert got["time_to_first_frame"]["value"] == pytest.approx(2 * got["latency_clip_p50"]["value"])
    assert got["latency_denoise_step"]["variant"]["per"] == "clip and step" and got["latency_vae_decode"]["value"] > 0


def test_nan_latents_are_an_error_not_black_frames(tiny):
    from benchkit.core.errors import BenchkitError

    # epsilon prediction is undefined at t=999 on CogVideoX's zero-terminal-SNR schedule
    recipe = Recipe("cogvideox-ddim", {"timestep_spacing": "trailing", "prediction_type": "epsilon"}, steps=2,
                    height=32, width=32, num_frames=9)
    model = load_model(ModelSpec("v", str(tiny["cogvideox"]), recipe), torch.device("cpu"), torch.float32)
    with pytest.raises(BenchkitError, match="NaN/inf latents .*prediction_type epsilon"):
        make_generator(model, recipe).generate([Item("a", "one", 0)])
