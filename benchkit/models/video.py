"""Writing a generated clip per (prompt, seed): mp4 when an encoder is installed, else APNG.

mp4 needs an ffmpeg binding (PyAV or imageio-ffmpeg), which benchkit does not require; without
one the clip is written as a lossless animated PNG (every frame, the same fps), which Pillow
writes and every browser plays. The run records which format each clip has.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

VIDEOS = "videos"


def mp4_encoder() -> str | None:
    for module in ("av", "imageio_ffmpeg"):
        if importlib.util.find_spec(module) is not None:
            return module
    return None


def write_video(run_path: Path, key: str, frames: np.ndarray, fps: int) -> dict[str, str]:
    """Write ``frames`` (F, H, W, 3 uint8) under ``run_path/videos``; returns the record fields."""
    folder = Path(run_path) / VIDEOS
    folder.mkdir(exist_ok=True)
    encoder = mp4_encoder()
    suffix = ".mp4" if encoder else ".png"
    final = folder / f"{key}{suffix}"
    tmp = final.with_name(f".{final.name}.tmp{suffix}")
    if encoder == "av":
        _write_mp4_av(tmp, frames, fps)
    elif encoder == "imageio_ffmpeg":
        _write_mp4_imageio(tmp, frames, fps)
    else:
        _write_apng(tmp, frames, fps)
    os.replace(tmp, final)
    return {"video": f"{VIDEOS}/{final.name}", "video_format": "mp4" if encoder else "apng", "fps": str(fps),
            "frames": str(len(frames))}


def _write_apng(path: Path, frames: np.ndarray, fps: int) -> None:
    from PIL import Image

    from PIL.PngImagePlugin import Blend

    images = [Image.fromarray(f) for f in frames]
    # Pillow merges a frame equal to the one before into it (one frame, twice the duration), so a still clip would
    # lose frames; alternating the blend op, which does nothing on opaque RGB frames, keeps every frame.
    blend = [Blend.OP_SOURCE if i % 2 == 0 else Blend.OP_OVER for i in range(len(images))]
    images[0].save(path, format="PNG", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0,
                   blend=blend)


def _write_mp4_av(path: Path, frames: np.ndarray, fps: int) -> None:  # pragma: no cover - optional dependency
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
        stream.pix_fmt = "yuv420p"
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: stream.height, : stream.width]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_mp4_imageio(path: Path, frames: np.ndarray, fps: int) -> None:  # pragma: no cover - optional dependency
    import imageio_ffmpeg

    h, w = frames.shape[1], frames.shape[2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", macro_block_size=1)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
