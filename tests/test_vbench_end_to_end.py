"""`benchkit eval --metrics vbench` on a tiny CogVideoX, end to end: clips generated, every VBench dimension benchkit
computes scored on them in one pass (each clip decoded once), VBench's normalisation and partial aggregates beside
them, clip latency; then `benchkit export vbench` and the vbench package's custom-input loader reading the export.

The dimensions' numbers are checked against VBench's own functions in their own test files; here the point is
that the whole path runs from the CLI with real-format weight files (the tests' tiny random ones).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import pytest
from metric_models import (TINY_MUSIQ, TINY_OPENAI_B32, TINY_OPENAI_L14, openai_clip_state, save_aesthetic_linear_head,  # noqa: F401
                           save_openai_clip_as_hf, save_tiny_dino, save_tiny_musiq)
from tiny_pipelines import tiny  # noqa: F401  (session fixture)

from metrics import REGISTRY, metric_groups
from metrics import weights as W
from metrics.vbench_scores import BY_NAME

STYLE = {"appearance_style": {"appearance_style": "oil painting"}}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Every VBench dimension's weights at the tests' tiny sizes, in the real file formats."""
    for module in ("av", "vbench", "easydict", "einops"):
        pytest.importorskip(module)
    from test_vbench_dynamic_degree import _save_princeton, _vbench_raft
    from test_vbench_human_action import save_tiny_umt
    from test_vbench_motion_smoothness import amt_state
    from test_vbench_text_dimensions import save_tiny_viclip

    import torch

    w = tmp_path_factory.mktemp("vbench-weights")
    amt = w / "amt-s.pth"
    torch.save({"state_dict": amt_state(0)}, amt)
    return {
        "dino-vitb16": str(save_tiny_dino(w / "dino", seed=1)),
        "clip-vit-base-patch32": str(save_openai_clip_as_hf(w / "b32", openai_clip_state(2, TINY_OPENAI_B32), TINY_OPENAI_B32)),
        "clip-vit-large-patch14": str(save_openai_clip_as_hf(w / "l14", openai_clip_state(3, TINY_OPENAI_L14), TINY_OPENAI_L14,
                                                             with_processor=True)),
        "laion-aesthetic-linear-l14": str(save_aesthetic_linear_head(w / "sa_0_4_vit_l_14_linear.pth", seed=4)),
        "musiq-spaq": str(save_tiny_musiq(w / "musiq_spaq_ckpt-358bb6af.pth", seed=5)),
        "amt-s": str(amt),
        "raft-things": _save_princeton(_vbench_raft(seed=6), w / "raft-things.pth"),
        "viclip-internvid-10m-flt": str(save_tiny_viclip(w / "ViClip-InternVid-10M-FLT.pth", seed=7)),
        "umt-l16-k400": str(save_tiny_umt(w / "l16_ptk710_ftk710_ftk400_f16_res224.pth", seed=8)),
    }


def test_eval_metrics_vbench_runs_end_to_end_and_exports_for_the_toolkit(cli, tiny, weights, tmp_path, monkeypatch):  # noqa: F811
    head = W.REGISTRY["laion-aesthetic-linear-l14"]  # the registry knows LAION's file; this head is random
    monkeypatch.setitem(W.REGISTRY, head.name, dataclasses.replace(head, sha256=None))
    # 128 px: motion smoothness needs 113+ px, dynamic degree's RAFT 128+ for finite flow; at 24 fps dynamic degree
    # keeps every third frame (1 RAFT pair a clip; the static filter runs 6)
    spec = tmp_path / "v.toml"
    spec.write_text(f'extends = "cogvideox-2b"\nbase = "{tiny["cogvideox"]}"\n'
                    "[recipe]\nheight = 128\nwidth = 128\nnum_frames = 5\nsteps = 2\nfps = 24\n")
    # custom prompts: every dimension applies; one names an appearance style, the other a Kinetics-400 action
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt_id": "cat", "prompt": "a cat walking", "auxiliary_info": STYLE}) + "\n"
                       + json.dumps({"prompt_id": "walk", "prompt": "A person is walking the dog"}) + "\n")
    run = tmp_path / "run"
    args = [arg for name, path in weights.items() for arg in ("--weights", f"{name}={path}")]
    code, out, err = cli("eval", "-m", str(spec), "-p", str(prompts), "--seeds", "0", "--metrics", "latency,vbench",
                         "-o", str(run), "--device", "cpu", "--batch-size", "2", "--warmup", "0", "-q", *args)
    assert code == 0, err
    results = json.loads((run / "results.json").read_text())
    got = {m["name"]: m for m in results["metrics"]}
    # scene (Tag2Text captions, tests/test_vbench_scene.py) needs prompts naming a VBench scene: left out, with a note
    manifest = json.loads((run / "manifest.json").read_text())
    assert "names one" in manifest["metrics_left_out"]["vbench-scene"] and "vbench-scene" not in got
    # temporal flickering's static filter (RAFT on every frame pair) finds the random model's clips moving: VBench
    # would score none of them, so the dimension is left out with why, not averaged over moving clips
    assert "none of the 2 clips is static" in results["run"]["metrics_left_out"]["vbench-temporal-flickering"]
    assert "vbench-temporal-flickering" not in got
    dims = [name for name in metric_groups()["vbench"] if name not in ("vbench-scene", "vbench-temporal-flickering")]
    assert set(weights) >= {w for name in dims for w in REGISTRY[name].weights}  # every other dimension's weights given
    for name in dims:
        value = got[name]
        dim = BY_NAME[REGISTRY[name].dimension]
        n = 1 if name in ("vbench-appearance-style", "vbench-human-action") else 2  # one prompt names each
        assert value["n"] == n and math.isfinite(value["value"]), name
        normalized = got[f"{name}-normalized"]["value"]
        assert normalized == pytest.approx((value["value"] - dim.low) / (dim.high - dim.low)), name
    missing = set(BY_NAME) - {REGISTRY[n].dimension for n in dims}
    total = got["vbench-total-partial" if missing else "vbench-total"]
    assert set(total["variant"].get("missing", [])) == missing
    assert got["time_to_first_frame"]["value"] > 0 and got["compute_per_video_second"]["value"] > 0

    # the export, read by the vbench package's own custom-input loader: each file's prompt from its name
    dest = tmp_path / "export"
    code, _, err = cli("export", "vbench", str(run), str(dest), "--allow-fewer")
    assert code == 0, err
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from vbench import VBench
    finally:  # vbench.utils calls logging.basicConfig at import
        root.handlers[:] = handlers
        root.setLevel(level)
    bench = VBench("cpu", str(tmp_path / "unused_full_info.json"), str(tmp_path / "vbench_out"))
    info = json.loads(open(bench.build_full_info_json(str(dest), "e2e", ["subject_consistency", "dynamic_degree"],
                                                      mode="custom_input")).read())
    loaded = sorted((entry["prompt_en"], path.rsplit("/", 1)[-1]) for entry in info for path in entry["video_list"])
    assert loaded == [("A person is walking the dog", "A person is walking the dog-0.mp4"),
                      ("a cat walking", "a cat walking-0.mp4")]
