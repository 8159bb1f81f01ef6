"""Scoring in chunks: any chunk size gives the scores of one pass over all images.

score_run starts every chunk from an empty metric state and merges the chunks in order; a
state that shared objects with the running totals once made every chunk after the first count
the earlier images again (an eval over 256 images reported n = 256 + 512 + ...).
"""

import numpy as np
import pytest
import torch

from benchkit.core.rundir import RunDir, encode_png
from benchkit.folder_scoring import score_folder
from benchkit.scoring import score_run
from benchkit.toy.data import load_digits_uint8
from prompts import load_prompt_set

METRICS = ["toy-fid", "toy-alignment", "toy-diversity"]


def test_chunk_size_does_not_change_scores(tmp_path):
    prompts = load_prompt_set("toy-digits")
    images, labels = load_digits_uint8()
    folder = tmp_path / "images"
    folder.mkdir()
    for i, rec in enumerate(prompts.records):  # 20 prompts x 3 seeds, each an image of its digit
        digit = int(rec.meta["digit"])
        picks = np.flatnonzero(labels == digit)[(i // 10) * 3:(i // 10) * 3 + 3]
        for seed, index in enumerate(picks):
            (folder / f"{rec.prompt_id}_{seed}.png").write_bytes(encode_png(images[index]))
    out = tmp_path / "scored"
    cache = tmp_path / "cache"
    whole = score_folder(folder, prompts, METRICS, out, cache, torch.device("cpu"), show_progress=False)
    chunked = score_run(RunDir(out), METRICS, cache, torch.device("cpu"), show_progress=False, batch_size=7)
    by_name = lambda res: {m["name"]: m for m in res["metrics"]}  # noqa: E731
    a, b = by_name(whole), by_name(chunked)
    assert sorted(a) == sorted(b)
    for name in a:
        assert b[name]["n"] == a[name]["n"] == 60, name
        assert b[name]["value"] == pytest.approx(a[name]["value"], rel=1e-9, abs=1e-9), name
    groups = lambda res: {(g["field"], g["value"]): g["n"] for g in res["breakdowns"]}  # noqa: E731
    assert groups(chunked) == groups(whole)
