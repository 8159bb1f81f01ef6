"""RAFT optical flow as VBench's dynamic degree runs it, on torchvision's RAFT.

VBench 0.1.5 vendors princeton-vl/RAFT (``vbench/third_party/RAFT/core``) and loads ``raft-things.pth``
into it (dynamic_degree.py:33-39: the ``module.`` prefix of nn.DataParallel stripped, ``small=False``,
``mixed_precision=False``, ``alternate_corr=False``). torchvision's ``raft_large`` is the same network
(its ``Raft_Large_Weights.C_T_V1`` are these weights, ported), so benchkit builds it and loads the
princeton-vl file into it under torchvision's parameter names (:func:`torchvision_state`), with one
change: the correlation lookup.

- princeton-vl's ``bilinear_sampler`` (core/utils_core/utils.py:57-71) turns pixel coordinates into
  grid_sample's [-1, 1] by ``2 * y / (H - 1) - 1`` whatever H is; torchvision's ``grid_sample``
  (torchvision/models/optical_flow/_utils.py:8-19) skips that for a one-row level (``if h > 1``), and its
  ``CorrBlock.build_pyramid`` (raft.py:360-392) refuses feature maps under 16 (frames under 128 px).
  The coarsest of the four correlation levels has one row when the padded frame is 64 to 127 px high,
  where the two give other flows. :class:`PrincetonCorrBlock` is torchvision's block with princeton-vl's
  lookup (corr.py:12-50): any size, the same arithmetic.

Everything else is torchvision's code, and computes what princeton-vl's does (checked on random
weights in tests/test_vbench_dynamic_degree.py): the encoders (extractor.py BasicEncoder, instance norm
for the features, batch norm for the context), the motion encoder, separable ConvGRU, flow head and
0.25-scaled mask (update.py:79-136), the convex 8x upsampling (raft.py:72-83) and the update loop
(raft.py:86-144). Inputs are 0-255 frames: :func:`raft_flow` applies RAFT's ``2 * (x / 255) - 1``
(raft.py:89-90), which torchvision's model leaves to its caller.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchkit.core.errors import BenchkitError

ITERS = 20  # dynamic_degree.py:77 and static_filter.py:84: self.model(image1, image2, iters=20, test_mode=True)
RAFT_MIN_SIDE = 57  # padded to 64: the coarsest of RAFT's four correlation levels has one row (see raft_flow)
CORR_BYTES = 2 << 30  # correlation pyramids held per RAFT call (one pair of 480x832 frames: 210 MB)


def _corr_block_class():
    from torchvision.models.optical_flow.raft import CorrBlock

    class PrincetonCorrBlock(CorrBlock):
        """torchvision's CorrBlock with princeton-vl's pyramid and lookup (corr.py:12-50, utils.py:57-71)."""

        def build_pyramid(self, fmap1, fmap2):  # corr.py:13-27, without torchvision's minimum size
            corr = self._compute_corr_volume(fmap1, fmap2)
            batch, h, w, dim, h2, w2 = corr.shape
            corr = corr.reshape(batch * h * w, dim, h2, w2)
            self.corr_pyramid = [corr]
            for _ in range(self.num_levels - 1):
                corr = F.avg_pool2d(corr, 2, stride=2)
                self.corr_pyramid.append(corr)

        def index_pyramid(self, centroids_coords):  # corr.py:29-50
            r = self.radius
            coords = centroids_coords.permute(0, 2, 3, 1)
            batch, h1, w1, _ = coords.shape
            d = torch.linspace(-r, r, 2 * r + 1, device=coords.device)
            delta = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
            out = []
            for i, corr in enumerate(self.corr_pyramid):
                grid = coords.reshape(batch * h1 * w1, 1, 1, 2) / 2**i + delta
                height, width = corr.shape[-2:]
                x, y = grid.split([1, 1], dim=-1)
                grid = torch.cat([2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1], dim=-1)  # utils.py:61-62
                out.append(F.grid_sample(corr, grid, align_corners=True).view(batch, h1, w1, -1))
            return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous().float()

    return PrincetonCorrBlock


def build_raft() -> torch.nn.Module:
    """torchvision's ``raft_large`` architecture (random weights) with :class:`PrincetonCorrBlock`."""
    from torchvision.models.optical_flow import raft_large

    model = raft_large(weights=None, progress=False)
    model.corr_block = _corr_block_class()(num_levels=4, radius=4)  # raft.py:36-39: corr_levels 4, radius 4
    return model


# princeton-vl's names (extractor.py, update.py) -> torchvision's (raft.py)
_RENAMES = (
    (r"^(fnet|cnet)\.conv1\.", r"\1.convnormrelu.0."),
    (r"^(fnet|cnet)\.norm1\.", r"\1.convnormrelu.1."),
    (r"^(fnet|cnet)\.conv2\.", r"\1.conv."),
    (r"^(fnet|cnet)\.(layer\d\.\d)\.conv1\.", r"\1.\2.convnormrelu1.0."),
    (r"^(fnet|cnet)\.(layer\d\.\d)\.norm1\.", r"\1.\2.convnormrelu1.1."),
    (r"^(fnet|cnet)\.(layer\d\.\d)\.conv2\.", r"\1.\2.convnormrelu2.0."),
    (r"^(fnet|cnet)\.(layer\d\.\d)\.norm2\.", r"\1.\2.convnormrelu2.1."),
    (r"^fnet\.", "feature_encoder."),
    (r"^cnet\.", "context_encoder."),
    (r"^update_block\.encoder\.convc(\d)\.", r"update_block.motion_encoder.convcorr\1.0."),
    (r"^update_block\.encoder\.convf(\d)\.", r"update_block.motion_encoder.convflow\1.0."),
    (r"^update_block\.encoder\.conv\.", "update_block.motion_encoder.conv.0."),
    (r"^update_block\.gru\.conv([zrq])(\d)\.", r"update_block.recurrent_block.convgru\2.conv\1."),
    (r"^update_block\.mask\.0\.", "mask_predictor.convrelu.0."),
    (r"^update_block\.mask\.2\.", "mask_predictor.conv."),
)
_NORM3 = re.compile(r"^cnet\.(layer\d\.0)\.norm3\.(.+)$")  # the downsample's norm, listed twice (extractor.py:45)


def torchvision_state(state: dict, where: str) -> dict[str, torch.Tensor]:
    """princeton-vl's RAFT state dict (``module.``-prefixed or not) under torchvision's names; one line when
    ``state`` is not the full-size RAFT (raft-small.pth, torchvision's own file, another network)."""
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith(("feature_encoder.", "context_encoder.")) for k in state):
        raise BenchkitError(f"{where}: torchvision's RAFT file, not princeton-vl's raft-things.pth (VBench's); use "
                            "raft-things.pth from princeton-vl/RAFT's models.zip (`benchkit weights fetch raft-things`)")
    if not all(any(k.startswith(p) for k in state) for p in ("fnet.", "cnet.", "update_block.")):
        raise BenchkitError(f"{where}: not a RAFT state dict (no fnet / cnet / update_block tensors); use raft-things.pth "
                            "from princeton-vl/RAFT's models.zip")
    if "update_block.mask.0.weight" not in state or "update_block.gru.convz1.weight" not in state:
        raise BenchkitError(f"{where}: RAFT-small (raft-small.pth: no upsampling mask, one ConvGRU); VBench's dynamic "
                            "degree runs the full RAFT: use raft-things.pth")
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise BenchkitError(f"{where}: {key} is a {type(value).__name__}, not a tensor; not a RAFT state dict")
        norm3 = _NORM3.match(key)
        if norm3:  # the same tensor as <layer>.downsample.1.<name>
            twin = state.get(f"cnet.{norm3.group(1)}.downsample.1.{norm3.group(2)}")
            if twin is not None and not torch.equal(twin, value):
                raise BenchkitError(f"{where}: {key} differs from the downsample norm it is in RAFT; a damaged file")
            continue
        for pattern, repl in _RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def load_raft(weight, device: torch.device) -> torch.nn.Module:
    """RAFT from princeton-vl's state dict at ``weight.hashed_file`` (a ResolvedWeight), float32, eval mode."""
    from benchkit.core.safe_load import load_state_dict_file

    where = f"weights '{weight.name}' at {weight.hashed_file}"
    state = torchvision_state(load_state_dict_file(weight.hashed_file), where)
    model = build_raft()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise BenchkitError(f"{where}: does not fit RAFT ({detail[:200]})") from None
    return model.float().eval().to(device)


def pad_to_8(frames: torch.Tensor) -> torch.Tensor:
    """``InputPadder(frames.shape).pad`` in its default 'sintel' mode (utils.py:7-19): replicate-pad H and W up to
    multiples of 8, split evenly with the odd pixel at the bottom / right."""
    ht, wd = frames.shape[-2:]
    pad_ht, pad_wd = (((ht // 8) + 1) * 8 - ht) % 8, (((wd // 8) + 1) * 8 - wd) % 8
    return F.pad(frames, [pad_wd // 2, pad_wd - pad_wd // 2, pad_ht // 2, pad_ht - pad_ht // 2], mode="replicate")


@torch.no_grad()
def raft_flow(model: torch.nn.Module, image1: torch.Tensor, image2: torch.Tensor, iters: int = ITERS) -> torch.Tensor:
    """The upsampled flow after ``iters`` updates (RAFT's ``test_mode`` ``flow_up``) for (N, 3, H, W) float frames
    in 0-255 whose H and W are multiples of 8 (:func:`pad_to_8`)."""
    if image1.shape[-2] < 64 or image1.shape[-1] < 64:
        raise BenchkitError(f"RAFT needs frames of at least {RAFT_MIN_SIDE}x{RAFT_MIN_SIDE} pixels (64 after padding) for its four correlation "
                            f"levels; got {image1.shape[-2]}x{image1.shape[-1]} after padding")
    image1 = 2 * (image1 / 255.0) - 1.0  # raft.py:89-90
    image2 = 2 * (image2 / 255.0) - 1.0
    try:
        return model(image1.contiguous(), image2.contiguous(), num_flow_updates=iters)[-1]
    finally:  # torchvision's block keeps the last pyramid (GBs for large frames) on the cached model: let it go
        model.corr_block.corr_pyramid = []


def raft_for(ctx) -> tuple[torch.nn.Module, dict[str, str]]:
    """The registry's raft-things on ``ctx``'s device, from the one model cache (dynamic degree and temporal
    flickering's static filter share it), and {weight name: sha256}."""
    from metrics.model_cache import cached_model
    from metrics.weights import resolve

    weight = resolve("raft-things")
    model = cached_model(("raft", str(weight.hashed_file), weight.sha256, str(ctx.device)),
                         lambda: load_raft(weight, ctx.device))
    return model, {weight.name: weight.sha256}


def top_flow_score(flow: np.ndarray, share: float) -> float:
    """VBench's ``get_score`` of one (2, H, W) float32 flow: the mean of its largest ``int(H * W * share)``
    magnitudes (dynamic_degree.py:42-56 with 0.05, static_filter.py:42-56 with 0.02), in VBench's float32 numpy
    steps (NaN when the flow is NaN)."""
    u, v = flow[0], flow[1]
    rad = np.sqrt(np.square(u) + np.square(v))
    h, w = rad.shape
    cut = int(h * w * share)
    return float(np.mean(abs(np.sort(-rad.flatten()))[:cut]).item())


@torch.no_grad()
def pair_flow_scores(model: torch.nn.Module, first: torch.Tensor, second: torch.Tensor, device: torch.device,
                     score: Callable[[np.ndarray], float], pairs_per_call: int = 4) -> list[float]:
    """``score`` of RAFT's flow from each frame of ``first`` to the same-index frame of ``second`` ((N, 3, H, W)
    float32, 0-255, unpadded): both padded as VBench's InputPadder pads them, several pairs a call (fewer when
    their correlation pyramids would pass CORR_BYTES; the flows do not depend on it beyond float rounding)."""
    first, second = pad_to_8(first), pad_to_8(second)
    h8, w8 = first.shape[-2] // 8, first.shape[-1] // 8
    pyramid = (h8 * w8) ** 2 * 4 * 4 // 3  # float32 correlation volume and its 3 pooled levels, per pair
    step = max(1, min(pairs_per_call, CORR_BYTES // max(1, pyramid)))
    scores: list[float] = []
    for s in range(0, len(first), step):
        flow = raft_flow(model, first[s : s + step].to(device), second[s : s + step].to(device), ITERS)
        scores += [score(f) for f in flow.float().cpu().numpy()]
    return scores
