"""VBench's static-video filter for temporal flickering (Vchitect/VBench ``static_filter.py``, a script of the
repository that is not in the ``vbench`` package), step by step, for ``vbench-temporal-flickering``.

VBench scores temporal flickering only on clips whose scene stands still: its protocol samples 25 clips per
temporal-flickering prompt, runs ``static_filter.py`` over them and scores the first 5 it calls static
(``--filter_scope temporal_flickering``, the default); for a folder of other prompts (``--filter_scope all``)
every static clip. What the script does, by line, and benchkit with it:

- frames: every frame of the clip, decoded with OpenCV as RGB (``get_frames``, :93-107; benchkit's PyAV decode
  gives the same frames), float32 0-255.
- thresholds (``set_params``, :75-77): ``thres = 3 * min(H, W) / 256`` and ``count_num = round(2 * frames / 16)``
  (Python's round, half to even: 5-7 frames -> 1, 8-11 -> 2... 4 frames -> 0).
- pairs (``infer``, :80-90): each consecutive pair, then (first, last) and (last, first); both frames padded by
  ``InputPadder`` ('sintel': replicate, to multiples of 8), RAFT with 20 updates, and the score (``get_score``,
  :42-56): the mean of the largest 2% (``int(h * w * 0.02)``, h and w padded) of the flow magnitudes.
- decision (``check_static``, :59-72): over the consecutive pairs, a clip stops being static once more than
  ``count_num`` of them exceed ``thres``; then either wrap pair above ``thres * count_num * 2`` makes it moving
  (with ``count_num`` 0 that bound is 0: any flow at all).
- selection (``static_filter``, :128-151): clips in sorted file-name order, ``{prompt}-{index}.mp4``: index 0, 1,
  10, 11, ... 19, 2, 20 ... when a prompt has more than ten; per prompt the first 5 static ones
  (``static_count < 5``) under the temporal-flickering scope, every static one otherwise.

benchkit runs the filter inside the metric on every clip (in the scoring workers' order, each clip on its own),
then applies the selection to the per-clip decisions, ordering each prompt's clips by ascending seed as
``benchkit export vbench`` numbers them. A prompt of VBench's prompt sets (a ``dimension`` field) takes the
temporal-flickering scope, any other prompt the ``all`` scope. RAFT on frames 57-127 px gives NaN flow on a CPU
(see metrics/vbench_dynamic_degree.py): no score exceeds a bound and the clip is static, as in VBench.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from metrics.raft_flow import pair_flow_scores, top_flow_score

TOP_SHARE = 0.02  # static_filter.py:51: cut_index = int(h*w*0.02)
CLIPS_PER_PROMPT = 5  # static_filter.py:145: static_count < 5 under the temporal_flickering scope


def static_thresholds(height: int, width: int, count: int) -> tuple[float, int]:
    """``set_params`` (static_filter.py:75-77): (3 * min(H, W) / 256, round(2 * count / 16)), ``count`` every frame."""
    return 3.0 * (min(height, width) / 256.0), round(2 * (count / 16.0))


def filter_pairs(video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``infer``'s pairs (static_filter.py:83): consecutive frames, then (first, last) and (last, first)."""
    first = torch.cat([video[:-1], video[:1], video[-1:]])
    second = torch.cat([video[1:], video[-1:], video[:1]])
    return first, second


def is_static(scores: list[float], thres: float, count_num: int) -> bool:
    """``check_static`` (static_filter.py:59-72) of the pair scores in :func:`filter_pairs`' order."""
    count = 0
    for score in scores[:-2]:
        if score > thres:
            count += 1
        if count > count_num:
            return False
    return all(not score > thres * count_num * 2 for score in scores[-2:])


def static_pair_scores(model: torch.nn.Module, frames: np.ndarray, device: torch.device,
                       pairs_per_call: int = 4) -> list[float]:
    """``get_score`` (top 2% of flow magnitudes) of RAFT's flow for each of :func:`filter_pairs`' pairs of
    ``frames`` (T, H, W, 3 uint8)."""
    video = torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2)
    first, second = filter_pairs(video)
    return pair_flow_scores(model, first, second, device, lambda flow: top_flow_score(flow, TOP_SHARE), pairs_per_call)


def file_order(index: int) -> str:
    """Where VBench's ``sorted(glob('*.mp4'))`` puts clip ``{prompt}-{index}.mp4`` among its prompt's clips: by
    the text after the dash ('.' sorts before the digits: 1.mp4 < 10.mp4 < 2.mp4)."""
    return f"{index}.mp4"


def select_static(clips: dict[str, tuple[bool, bool]]) -> tuple[list[str], dict[str, Any]]:
    """The clips VBench scores: ``clips`` maps an item key ``prompt_id\\x1fseed`` to (static, temporal-flickering
    scope); returns the kept keys and how many each stage kept."""
    by_prompt: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for key in clips:
        prompt_id, seed = key.split("\x1f")
        by_prompt[prompt_id].append((int(seed), key))
    kept: list[str] = []
    short = 0
    for prompt_id in sorted(by_prompt):
        by_seed = [key for _, key in sorted(by_prompt[prompt_id])]
        ordered = [key for _, key in sorted((file_order(i), key) for i, key in enumerate(by_seed))]
        capped = clips[ordered[0]][1]
        static = [key for key in ordered if clips[key][0]]
        if capped:
            short += len(static) < CLIPS_PER_PROMPT  # VBench warns: fewer than 5 filter results
            static = static[:CLIPS_PER_PROMPT]
        kept += static
    info = {"clips_before_filter": len(clips), "static_clips": sum(1 for s, _ in clips.values() if s),
            "clips_kept": len(kept), "prompts": len(by_prompt), "prompts_with_fewer_than_5_static": short}
    return sorted(kept), info
