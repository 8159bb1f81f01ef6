"""A generated clip's frames, for the video metrics (the VBench dimensions).

A video run's record names its clip (``video``: ``videos/{prompt_id}_{seed}.mp4`` or ``.png``,
relative to the run folder; absolute paths are taken as they are). The scorer hands metrics
decoded first-frame images only, so a video metric reads the clip itself, here: mp4 through
PyAV (libavcodec's H.264 decoder, converted to rgb24 by libswscale, as decord and OpenCV, which
VBench reads with, also do), an animated PNG (benchkit's lossless fallback) or GIF through Pillow.

The scorer decodes a chunk's clips in its DataLoader workers, ahead of the networks, once for
every clip metric of the pass (:func:`attach_decoded`); a metric used on its own reads its
clips here. Clips decoded here are kept in the batch's ``memo`` up to :data:`CACHE_BYTES`, so
the several VBench metrics of one scoring pass (and their breakdown groups, which score subsets
of the same batch) decode each clip once; past the budget a clip is decoded again, which gives
the same frames. Frames are (T, H, W, 3) uint8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchkit.core.errors import BenchkitError

CACHE_BYTES = 2 << 30  # decoded frames kept per batch (81 frames of 480x832 are 97 MB)
CLIP_CHUNK = 8  # clips per scoring chunk: workers hold about two chunks of decoded frames (8 x 97 MB each)
_MEMO = "clips:frames"
_DECODED = "clips:decoded"


def clip_path(record: dict[str, Any], root: Path | None) -> Path:
    """The clip file of ``record``: its ``video`` field, relative to ``root`` (the run folder) unless absolute."""
    video = record.get("video")
    if not video:
        raise BenchkitError(f"item {record.get('prompt_id')}_{record.get('seed')} has no clip (no 'video' in its record): "
                            "the VBench metrics score a video model's runs")
    path = Path(video)
    if path.is_absolute():
        return path
    if root is None:
        raise BenchkitError(f"clip {video} is relative to its run folder, which this scoring pass does not know")
    return Path(root) / path


def decoder_name(path: Path) -> str:
    """What decodes ``path`` (recorded in the metrics' variants)."""
    if Path(path).suffix.lower() in (".png", ".apng", ".gif"):
        return f"Pillow {_version('pillow')} (every frame, RGB)"
    return f"PyAV {_version('av')} (every frame, rgb24)"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def read_clip(path: Path) -> np.ndarray:
    """Every frame of the clip at ``path`` as (T, H, W, 3) uint8; one line when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise BenchkitError(f"clip {path} not found: was the run folder moved or the clip deleted?")
    frames = _read_pillow(path) if path.suffix.lower() in (".png", ".apng", ".gif") else _read_av(path)
    if not frames:
        raise BenchkitError(f"clip {path} has no frames; generate it again")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise BenchkitError(f"clip {path}: its frames change size ({sorted(shapes)[:2]}); not a clip benchkit wrote")
    return np.stack(frames)


def _read_pillow(path: Path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(im)]
    except (OSError, UnidentifiedImageError) as exc:
        raise BenchkitError(f"cannot read clip {path}: {exc}") from None


def _read_av(path: Path) -> list[np.ndarray]:
    try:
        import av
    except ImportError:
        raise BenchkitError(f"reading {path.name} needs PyAV: pip install av") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BenchkitError(f"clip {path} has no video stream")
            return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except av.error.FFmpegError as exc:
        raise BenchkitError(f"cannot read clip {path}: {exc}") from None


def batch_clip(batch: Any, i: int, root: Path | None) -> np.ndarray:
    """The frames of item ``i`` of ``batch`` (a :class:`~metrics.base.SampleBatch`), decoded once per batch
    while the batch's decoded clips fit :data:`CACHE_BYTES`."""
    path = clip_path(batch.records[i], root)
    key = str(path)
    decoded = batch.memo.get(_DECODED)
    if decoded is not None and key in decoded[0]:
        frames = decoded[1][decoded[0][key]]  # waits for the worker decoding it; its decode error is raised here
        frames.flags.writeable = False
        return frames
    kept = batch.memo.setdefault(_MEMO, {})
    if key in kept:
        return kept[key]
    frames = read_clip(path)
    if sum(f.nbytes for f in kept.values()) + frames.nbytes <= CACHE_BYTES:
        frames.flags.writeable = False  # shared by every metric of the batch
        kept[key] = frames
    return frames


def attach_decoded(batch: Any, paths: list[Path], frames: Any) -> None:
    """Hand ``batch`` the frames of ``paths`` decoded by the scorer's workers (``frames[i]`` is ``paths[i]``'s; a
    lazy sequence that waits for the workers), so every clip metric of the batch reads them instead of decoding."""
    batch.memo[_DECODED] = ({str(p): i for i, p in enumerate(paths)}, frames)
