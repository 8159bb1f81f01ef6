"""vbench-temporal-flickering's static filter against VBench's own static_filter.py: each clip's pair scores,
thresholds and decision, which clips each prompt keeps (the first 5 static in VBench's file-name order), and the
temporal flickering over them.

static_filter.py is a script of the Vchitect/VBench repository, not of the ``vbench`` package, and CI cannot clone
the repository: tests/data/vbench/make_static_reference.py ran it on the clips in tests/data/vbench/static/ (with
``raft_state(SEED, HEAD)`` as raft-things.pth) and recorded what it decided in static/reference.json. Here benchkit
runs its RAFT on the same mp4 files with the same weights. The 12 samples of one prompt put the files -10 and -11
before -2 in VBench's order, and the other prompt has one static clip of 5 wanted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_pipelines import tiny  # noqa: F401  (session fixture)

from benchkit.core.errors import BenchkitError
from metrics import NotApplicable, build_metrics
from metrics import vbench_dimensions as V
from metrics import vbench_static_filter as S
from metrics.base import MetricContext, SampleBatch
from metrics.clips import read_clip
from run_files import score_in_two_chunks

DATA = Path(__file__).resolve().parent / "data" / "vbench" / "static"
REF = json.loads((DATA / "reference.json").read_text())
NAME = "vbench-temporal-flickering"
# pair scores (px): float32 RAFT on both sides, pairs batched by 4 here and one at a time in VBench (as dynamic degree)
TOL = 2e-4

for _module in ("av", "easydict", "vbench"):  # mp4 clips; VBench's RAFT class names raft_state's tensors
    pytest.importorskip(_module)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    from metric_models import raft_state

    path = tmp_path_factory.mktemp("raft") / "raft-things.pth"
    torch.save({f"module.{k}": v for k, v in raft_state(REF["raft"]["seed"], REF["raft"]["head"]).items()}, path)
    return str(path)


def _context(weights, monkeypatch) -> MetricContext:
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({"raft-things": weights}))
    ctx = MetricContext(cache_dir=Path(weights).parent / "cache")
    ctx.run_dir = DATA
    return ctx


def _clip(name: str) -> str:
    return f"videos/{name}_0.mp4"


@pytest.fixture(scope="module")
def decided(weights) -> dict[str, list[float]]:
    """benchkit's per-clip state for each of the three clips (RAFT run here, once)."""
    with pytest.MonkeyPatch.context() as m:
        ctx = _context(weights, m)
        metric = build_metrics([NAME], ctx)[0]
        records = [{"prompt_id": name, "seed": 0, "prompt": f"a {name} clip", "meta": {}, "video": _clip(name)}
                   for name in REF["clips"]]
        metric.update(SampleBatch([], records))
        return {name: metric.videos[f"{name}\x1f0"] for name in REF["clips"]}


def test_each_clip_is_decided_as_vbench_decides(decided):
    for name, want in REF["clips"].items():
        state = decided[name]
        scores = state[V.STATIC_HEADER:]
        worst = max(abs(a - b) for a, b in zip(scores, want["scores"]))
        print(f"{name}: static {bool(state[1])} (vbench {want['static']}), thres {state[2]}, count_num {state[3]}, "
              f"scores {np.round(scores, 4).tolist()}, per pair |diff| max {worst:.1e}")
        assert len(scores) == len(want["scores"]) and worst < TOL, name
        assert (state[2], int(state[3]), bool(state[1])) == (want["thres"], want["count_num"], want["static"]), name
        assert state[0] == V.flicker_score(read_clip(DATA / _clip(name)))
    # the clips see the rules: each plausible mistake flips one decision
    still, short = (REF["clips"][n] for n in ("still", "short"))
    assert S.is_static(still["scores"], 1.5, 1) and not S.is_static(still["scores"], 1.5, 0)  # "at most count_num"
    assert sum(s > 1.5 for s in still["scores"][:-2]) == 1 and all(1.5 < s < 3.0 for s in still["scores"][-2:])
    assert not S.is_static(short["scores"], 1.5, 0) and S.is_static(short["scores"][:-2] + [0.0, 0.0], 1.5, 0)  # wraps


def _layout_records(meta: dict) -> list[dict]:
    records = []
    for p, (prompt, names) in enumerate(REF["layout"].items()):
        records += [{"prompt_id": f"p{p}", "seed": i, "prompt": prompt, "meta": meta, "video": _clip(name)}
                    for i, name in enumerate(names)]
    return records


def _score_layout(weights, decided, monkeypatch, meta) -> V.VBenchTemporalFlickering:
    """The metric over the layout's 15 samples, RAFT's scores looked up from ``decided`` by clip (no RAFT run again)."""
    by_frames = {read_clip(DATA / _clip(name)).tobytes(): state[V.STATIC_HEADER:] for name, state in decided.items()}
    monkeypatch.setattr(V, "static_pair_scores", lambda model, frames, device, pairs_per_call=4: by_frames[frames.tobytes()])
    metric = build_metrics([NAME], _context(weights, monkeypatch))[0]
    records = _layout_records(meta)
    score_in_two_chunks(metric, records, 7)  # merged as the scorer merges chunks
    return metric


def _vbench_kept() -> set[tuple[str, int]]:
    prompts = list(REF["layout"])
    return {(f"p{prompts.index(prompt)}", int(Path(f).stem.rsplit("-", 1)[1]))
            for prompt, v in REF["kept"].items() for f in v["static_path"]}


def test_vbench_prompts_keep_their_first_5_static_clips_in_vbenchs_file_order(weights, decided, monkeypatch):
    metric = _score_layout(weights, decided, monkeypatch, {"dimension": ["temporal_flickering"]})
    (value,) = metric.compute()
    kept = {(k.split("\x1f")[0], int(k.split("\x1f")[1])) for k in metric.kept_keys(sorted(metric.videos))}
    print(f"kept {sorted(kept)}; vbench {sorted(_vbench_kept())}; value {value.value!r} vbench {REF['temporal_flickering']!r}")
    assert kept == _vbench_kept() and value.n == REF["temporal_flickering_clips"] == 6
    assert abs(value.value - REF["temporal_flickering"]) < 1e-7
    assert value.extra | {"unfiltered_mean": 0} == value.extra | {
        "clips_before_filter": 15, "static_clips": 8, "clips_kept": 6, "prompts": 2, "prompts_with_fewer_than_5_static": 1,
        "clips_without_flow": 0, "unfiltered_mean": 0}
    assert abs(value.extra["unfiltered_mean"] - value.value) > 0.01  # the filter changes the number
    assert "static_filter" in value.variant and value.variant["weights_sha256"]["raft-things"]
    # taking seeds in numeric order (-2 before -10) keeps other clips
    monkeypatch.setattr(S, "file_order", lambda index: index)
    assert {(k.split("\x1f")[0], int(k.split("\x1f")[1])) for k in metric.kept_keys(sorted(metric.videos))} != kept


def test_other_prompts_keep_every_static_clip(weights, decided, monkeypatch):
    """A prompt from outside VBench's sets takes static_filter.py's ``--filter_scope all``: no cap of 5."""
    metric = _score_layout(weights, decided, monkeypatch, {})
    (value,) = metric.compute()
    assert value.n == value.extra["static_clips"] == 8 and value.extra["prompts_with_fewer_than_5_static"] == 0
    assert value.value == pytest.approx(V.flicker_score(read_clip(DATA / _clip("still"))), abs=1e-12)


def test_no_static_clip_leaves_the_dimension_out_with_why(weights, decided, monkeypatch):
    from benchkit import scoring

    metric = _score_layout(weights, decided, monkeypatch, {})
    metric.videos = {k: v for k, v in metric.videos.items() if not v[1]}
    with pytest.raises(NotApplicable) as err:
        metric.compute()
    assert "none of the 7 clips is static" in str(err.value) and "\n" not in str(err.value)
    # the scorer writes it under the run's metrics_left_out, beside the metrics that did compute
    monkeypatch.setattr(scoring, "score_records", lambda *args, **kwargs: None)
    monkeypatch.setattr(scoring, "build_metrics", lambda names, ctx: [metric])
    written = {}

    class Run:
        path = DATA

        def manifest(self):
            return {}

        def records(self):
            return [{"prompt_id": "p", "seed": 0}]

        def write_results(self, results):
            written.update(results)

    scoring.score_run(Run(), [NAME], Path(weights).parent / "cache", torch.device("cpu"), show_progress=False, workers=0)
    assert written["metrics"] == [] and "none of the 7 clips is static" in written["run"]["metrics_left_out"][NAME]


def test_under_57_px_is_one_line(weights, monkeypatch, tmp_path):
    from benchkit.models import video

    monkeypatch.setattr(video, "mp4_encoder", lambda: None)
    record = {"prompt_id": "p", "seed": 0, **video.write_video(tmp_path, "p_0", np.zeros((4, 48, 80, 3), np.uint8), 8)}
    ctx = _context(weights, monkeypatch)
    ctx.run_dir = tmp_path
    with pytest.raises(BenchkitError) as err:
        build_metrics([NAME], ctx)[0].update(SampleBatch([], [record]))
    assert "57x57" in str(err.value) and "p_0" in str(err.value) and "\n" not in str(err.value)


def test_frames_too_small_for_the_networks_are_caught_before_work(tmp_path):
    """Frame sizes the RAFT and AMT-S dimensions cannot score: a `--metrics vbench` group leaves them out with why
    once the model's size is known; named alone, each is one line. Both before any clip is generated."""
    from metrics import check_metrics, grouped_only, parse_metric_names
    from metrics.base import ScorePlan

    probes = ["temporal_flickering", "dynamic_degree", "motion_smoothness", "subject_consistency"]
    plan = ScorePlan(records=[{"prompt_id": "0", "meta": {"dimension": probes}}], seeds_per_prompt=5, family="cogvideox",
                     media="video", image_sizes={(48, 80)})
    ctx = MetricContext(cache_dir=tmp_path)
    with pytest.MonkeyPatch.context() as m:  # subject consistency's weights are present (a file, not read here)
        (tmp_path / "dino.pth").write_bytes(b"x")
        m.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({"dino-vitb16": str(tmp_path / "dino.pth")}))
        left = check_metrics(parse_metric_names("latency,vbench"), plan, ctx, optional=grouped_only("latency,vbench"))
    sized = {name: why for name, why in left.items() if "px" in why}
    assert set(sized) == {"vbench-temporal-flickering", "vbench-dynamic-degree", "vbench-motion-smoothness"}
    assert "57x57" in sized["vbench-dynamic-degree"] and "113x113" in sized["vbench-motion-smoothness"]
    assert "vbench-subject-consistency" not in left and "48x80" in sized["vbench-temporal-flickering"]
    for name in sized:
        with pytest.raises(BenchkitError) as err:
            check_metrics([name], plan, ctx, optional=grouped_only(name))
        assert "generate larger clips" in str(err.value) and "\n" not in str(err.value)


def test_eval_refuses_a_too_small_clip_metric_before_generating(cli, tiny, weights, tmp_path):  # noqa: F811
    spec = tmp_path / "v.toml"
    spec.write_text(f'extends = "cogvideox-2b"\nbase = "{tiny["cogvideox"]}"\n'
                    "[recipe]\nheight = 32\nwidth = 32\nnum_frames = 5\nsteps = 1\nfps = 8\n")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n")
    code, _, err = cli("eval", "-m", str(spec), "-p", str(prompts), "--seeds", "0", "--metrics", "vbench-temporal-flickering",
                       "-o", str(tmp_path / "run"), "--device", "cpu", "-q", "--weights", f"raft-things={weights}")
    assert code == 2 and "at least 57x57 px" in err and "32x32" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "samples.jsonl").exists()
