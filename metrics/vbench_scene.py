"""VBench's scene dimension (``vbench/scene.py``, vbench 0.1.5) as the benchkit metric ``vbench-scene``.

For each clip of a prompt that names a scene (VBench's ``auxiliary_info['scene']['scene']``, e.g. "alley" or
"amusement park"): 16 frames picked as ``load_video(num_frames=16)`` picks them (the middle of 16 equal runs;
a shorter clip's last frame repeated), decoded at 384 x 384 as decord decodes them for VBench (libswscale's
bilinear scaling in the conversion from the video's YUV to RGB: benchkit runs the same libavfilter
``scale=384:384:flags=bilinear`` graph through PyAV, which gives decord's pixels exactly), /255 and normalised
with the ImageNet mean and std (``tag2text_transform(384)``), then captioned together by Tag2Text
(:mod:`metrics.tag2text`). A frame scores when every space-separated word of the scene occurs in its caption as a
substring (``check_generate``: "park" matches "parking"). A clip's result is its share of the 16 frames; the
value is the number of frames that score over the number of frames, over all clips (``success_frame_count /
frame_count``; every clip gives 16, so it is also the mean over clips).

An animated PNG or GIF clip (benchkit's lossless fallback) is read whole by Pillow, as VBench reads a GIF: its
frames are resized to 384 x 384 by PIL's bilinear filter in ``tag2text_transform``'s ``Resize``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from metrics import register_metric
from metrics.base import MetricContext, item_key
from metrics.clips import clip_path
from metrics.model_cache import cached_model
from metrics.tag2text import IMAGE_SIZE, TAGS, load_tag2text
from metrics.vbench_dimensions import IMAGENET_MEAN, IMAGENET_STD, VBenchDimension
from metrics.vbench_text_dimensions import middle_frame_indices
from metrics.weights import library_versions, resolve

SCENE_FRAMES = 16  # scene.py:47 load_video(video_path, num_frames=16, width=384, height=384)
TAG2TEXT_WEIGHT = "tag2text-swin-14m"
TOKENIZER_WEIGHT = "bert-base-uncased-tokenizer"


def scene_text(record: dict[str, Any]) -> str | None:
    """VBench's ``auxiliary_info['scene']['scene']`` from the record's prompt meta (the full-info json nests it once
    more: ``{'scene': {'scene': {'scene': 'alley'}}}``, of which ``load_dimension_info`` hands on the inner part);
    None when the prompt names no scene."""
    meta = record.get("meta") or {}
    scene = meta.get("auxiliary_info") if isinstance(meta, dict) else None
    for _ in range(3):
        if not isinstance(scene, dict):
            break
        scene = scene.get("scene")
    return scene if isinstance(scene, str) and scene.strip() else None


def scene_matches(scene: str, caption: str) -> bool:
    """``check_generate`` (scene.py:29-36) for one caption: every word of ``scene.split(' ')`` is in the caption."""
    return all(word in caption for word in scene.split(" "))


def decord_frames(path: Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """Every frame of an mp4 as ``decord.VideoReader(path, width=size, height=size)`` gives it: decord's filter graph
    is ``scale=W:H`` into an rgb24 sink with libswscale's default (bilinear) scaler, in one conversion from the
    decoded YUV frame. The same graph through PyAV's libavfilter gives the same bytes (tests/test_vbench_scene.py)."""
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            graph = av.filter.Graph()
            source = graph.add_buffer(template=stream)
            scale = graph.add("scale", f"{size}:{size}:flags=bilinear")
            rgb = graph.add("format", "rgb24")
            sink = graph.add("buffersink")
            source.link_to(scale)
            scale.link_to(rgb)
            rgb.link_to(sink)
            graph.configure()
            for frame in container.decode(stream):
                graph.push(frame)
                frames.append(graph.pull().to_ndarray())
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise BenchkitError(f"cannot decode {path} at {size}x{size} ({str(exc).splitlines()[0][:200]}); is it a "
                            "complete mp4?") from None
    if not frames:
        raise BenchkitError(f"{path} has no video frames")
    return np.stack(frames)


def scene_pixels(path: Path, frames: np.ndarray) -> torch.Tensor:
    """The (16, 3, 384, 384) input VBench makes of a clip (scene.py:44-52 with utils.py:63-66 and 108-176)."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    if path.suffix.lower() == ".mp4":
        video = decord_frames(path)
        picked = [video[i] for i in middle_frame_indices(SCENE_FRAMES, len(video))]
    else:  # Pillow's frames, resized by ToPILImage + Resize((384, 384)) (PIL bilinear, which antialiases)
        picked = [np.asarray(Image.fromarray(np.ascontiguousarray(frames[i])).resize((IMAGE_SIZE, IMAGE_SIZE),
                                                                                      Image.BILINEAR))
                  for i in middle_frame_indices(SCENE_FRAMES, len(frames))]
    return torch.stack([TF.normalize(TF.to_tensor(np.ascontiguousarray(f)), IMAGENET_MEAN, IMAGENET_STD)
                        for f in picked])


@register_metric()
class VBenchScene(VBenchDimension):
    name = "vbench-scene"
    dimension = "scene"
    weights = (TAG2TEXT_WEIGHT, TOKENIZER_WEIGHT)
    description = ("VBench scene: share of 16 frames per clip whose Tag2Text caption contains every word of the "
                   "prompt's scene, over all clips")
    scale = "fraction of frames, 0-1 (VBench's raw value, before its normalisation)"

    prompt_need = ("looks for each prompt's VBench scene in the clip's captions, and none of these prompts names one; "
                   "use VBench's scene prompts: -p vbench --dimension scene")

    @classmethod
    def names_what_it_checks(cls, record: dict[str, Any]) -> bool:
        return bool(scene_text(record))

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), "prompts with VBench's scene (-p vbench --dimension scene); clips whose prompt "
                                  "names none are left out"]

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        weight, tokenizer = resolve(TAG2TEXT_WEIGHT), resolve(TOKENIZER_WEIGHT)
        self.model = cached_model(("tag2text", str(weight.hashed_file), weight.sha256, tokenizer.sha256, str(ctx.device)),
                                  lambda: load_tag2text(weight.hashed_file, tokenizer.path, ctx.device, TAGS, weight.name))
        self.weights_sha256 = {w.name: w.sha256 for w in (weight, tokenizer)}
        self.add_state("captions", {}, merge="update")  # item key -> the 16 captions (for inspection)

    def score_item(self, record: dict[str, Any], frames: np.ndarray) -> list[float]:
        scene = scene_text(record)
        pixels = scene_pixels(clip_path(record, self.ctx.run_dir), frames)
        captions, _ = self.model.captions(pixels.to(self.ctx.device))
        self.captions[item_key(record)] = captions
        matched = sum(scene_matches(scene, c) for c in captions)
        return [float(matched), float(len(captions))]

    def reduce(self, results: list[list[float]]) -> tuple[float, dict[str, Any]]:
        """VBench's ``success_frame_count / frame_count`` over all clips."""
        matched, frames = sum(r[0] for r in results), sum(r[1] for r in results)
        per_clip = np.array([r[0] / r[1] for r in results])
        spread = float(per_clip.std(ddof=1)) if len(per_clip) > 1 else 0.0
        return matched / frames, {"frames_scored": int(frames), "frames_matched": int(matched), "std_over_clips": spread}

    def describe(self) -> dict[str, Any]:
        return {"model": "Tag2Text (recognize-anything tag2text_swin_14m: Swin-B 384 image encoder, query2label tag "
                         "head, BERT tag encoder and caption decoder); captions by beam search (3 beams, 10-30 tokens) "
                         "after 'a picture of', as VBench's Tag2Text_Caption.generate under transformers 4.33.2",
                "image": "16 'middle' frames; mp4 decoded at 384x384 by libavfilter scale (bilinear) into rgb24, as "
                         "decord does for VBench (other clips: PIL bilinear resize); /255; ImageNet mean/std",
                "reduction": "a frame matches when every word of the prompt's scene is a substring of its caption; "
                             "matched frames over frames, over all clips",
                "dtype": "float32", "libraries": library_versions("timm", "torch", "transformers", "av")}
