"""Discriminators built from a denoiser's own features: forward hooks and small conv heads.

DMD2 puts its GAN classifier on the fake score network's bottleneck, Lightning uses a copy of
the teacher's encoder + mid block, ADM a frozen teacher with heads on several levels. All of
them read intermediate activations of a diffusers network. They are taken with forward hooks
(``register_forward_hook``) and the forward pass stops right after the last module needed
(an exception raised by the hook and caught here): the network's ``forward`` is never
replaced, so the same code works on any UNet2DConditionModel, SD3 or FLUX transformer.

A transformer block's image tokens are laid back on the latent grid they came from: SD3 patches
it in ``patch_size`` squares, FLUX's pipeline packs it in 2x2 patches, both row-major.
FLUX's stack is its double-stream ``transformer_blocks`` followed by its single-stream
``single_transformer_blocks``; the levels are picked over the two as one stack.

Wan's video DiT (``blocks``) returns (B, N, C) tokens over a (F / p_t, H / p_h, W / p_w) grid (patch
(1, 2, 2)), flattened frame by frame, row-major. They are laid out as one 2-D map (B, C, F*H/2, W/2):
the frames' token grids stacked along the rows, frame 0 on top, which is the tokens' own order read
as a (rows, columns) grid. The conv heads then see every frame, and their receptive field crosses
frame borders only where two frames' grids meet; they take maps of any (rows, columns), square or not.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from distillers.adapter import Conditioning, Denoiser, _times, denoiser_kind


class _StopForward(Exception):
    """Raised by the last hook to skip the rest of the network (the decoder is not needed)."""


def _unwrap(model):
    return getattr(model, "module", model)


def feature_modules(model, levels: str = "mid") -> list[str]:
    """Names of the modules whose outputs feed the heads: the bottleneck, or every encoder level too (a
    transformer: the middle block, or blocks at a quarter, half and the end of its whole stack)."""
    base = _unwrap(model)
    if getattr(base, "generic_denoiser", False):
        return list(base.feature_modules)
    if type(base).__name__ == "UNet2DConditionModel":
        names = ["mid_block"]
        if levels == "multi":
            names = [f"down_blocks.{i}" for i in range(len(base.down_blocks))] + names
        return names
    if denoiser_kind(base) == "wan":
        stack = [f"blocks.{i}" for i in range(len(base.blocks))]
    else:
        stack = [f"transformer_blocks.{i}" for i in range(len(base.transformer_blocks))]
        stack += [f"single_transformer_blocks.{i}" for i in range(len(getattr(base, "single_transformer_blocks", ())))]
    blocks = len(stack)
    if levels == "multi":
        return [stack[i] for i in sorted({blocks // 4, blocks // 2, blocks - 1})]
    return [stack[blocks // 2]]


def token_grid(model, x: torch.Tensor) -> tuple[int, int] | None:
    """The (rows, columns) of a transformer's image tokens for latents ``x`` (None: not a transformer); a video
    transformer's (Wan's) are its frames' token grids stacked along the rows: (F/p_t * H/p_h, W/p_w)."""
    kind = denoiser_kind(_unwrap(model))
    if kind in ("unet", "generic"):
        return None
    if kind == "wan":
        p_t, p_h, p_w = _unwrap(model).config.patch_size
        return (x.shape[-3] // p_t) * (x.shape[-2] // p_h), x.shape[-1] // p_w
    if kind == "flux":
        patch = 2  # the pipeline's 2x2 packing (the transformer's own patch_size is 1)
    else:  # SD3's MMDiT patches the latents itself
        patch = _unwrap(model).config.patch_size
    return x.shape[-2] // patch, x.shape[-1] // patch


def _as_map(output, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """A module output as a (B, C, H, W) map: UNet down blocks return (hidden, skips); SD3's and FLUX's
    blocks (double- and single-stream alike, diffusers 0.42) return (text tokens, image tokens), image
    tokens (B, N, C) row-major on ``grid``; Wan's blocks return the video tokens alone (B, N, C), frame by
    frame, which ``grid`` (see ``token_grid``) lays out with the frames stacked along the rows. A block that returns text and image tokens concatenated
    (FLUX's single blocks in older diffusers) has its image tokens last: those are kept."""
    if isinstance(output, tuple):
        output = output[0] if output[0] is not None and output[0].ndim == 4 else output[-1]  # SD3's last block: (None, image)
    if output.ndim == 2:  # an MLP's hidden vector, as a 1x1 map
        return output[:, :, None, None]
    if output.ndim == 3:
        b, n, c = output.shape
        if grid is not None:
            rows, cols = grid
            output = output[:, n - rows * cols:]
        else:  # a square grid
            rows = math.isqrt(n)
            cols = n // rows
        output = output.transpose(1, 2).reshape(b, c, rows, cols)
    return output


def tapped_features(denoiser: Denoiser, x_t: torch.Tensor, t, cond: Conditioning, names: Sequence[str]) -> list[torch.Tensor]:
    """Outputs of ``names`` for one forward, stopping after the last of them."""
    model = _unwrap(denoiser.model)
    modules = dict(model.named_modules())
    found: dict[str, torch.Tensor] = {}
    order = list(names)
    grid = token_grid(model, x_t)

    def hook_for(name):
        def hook(_module, _inputs, output):
            found[name] = _as_map(output, grid)
            if len(found) == len(order):
                raise _StopForward
        return hook

    handles = [modules[n].register_forward_hook(hook_for(n)) for n in order]
    try:
        denoiser.raw(x_t, t, cond)
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    return [found[n] for n in order]


def _groups(channels: int) -> int:
    g = min(32, channels)
    while channels % g:
        g -= 1
    return g


class ConvHead(nn.Module):
    """DMD2's classifier head: 4x4 stride-2 conv + GroupNorm + SiLU blocks down to 4x4 or less,
    a conv over the remaining map, then a 1x1 conv to one logit (sized from the feature map).

    ``spatial``: the map's side, or its (rows, columns) where it is not square (Wan's stacked frames):
    a side that is already 4 or less is kept (kernel 1, stride 1) while the other is halved. A square
    map gets exactly the layers it always had."""

    def __init__(self, channels: int, spatial: int | Sequence[int], width: int | None = None):
        super().__init__()
        width = width or channels
        layers: list[nn.Module] = []
        rows, cols = (spatial, spatial) if isinstance(spatial, int) else (int(spatial[0]), int(spatial[1]))
        c = channels
        while max(rows, cols) > 4:
            halve = (rows > 4, cols > 4)
            layers += [nn.Conv2d(c, width, tuple(4 if h else 1 for h in halve), tuple(2 if h else 1 for h in halve),
                                 tuple(1 if h else 0 for h in halve)),
                       nn.GroupNorm(_groups(width), width), nn.SiLU()]
            c, rows, cols = width, rows // 2 if halve[0] else rows, cols // 2 if halve[1] else cols
        layers += [nn.Conv2d(c, width, (rows, cols), (rows, cols)), nn.GroupNorm(_groups(width), width), nn.SiLU(),
                   nn.Conv2d(width, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat.float()).flatten(1).mean(1)


def probe_shapes(denoiser: Denoiser, shape: Sequence[int], cond: Conditioning,
                 names: Sequence[str]) -> list[tuple[int, int | tuple[int, int]]]:
    """(channels, spatial) of each tapped feature map, from one no-grad forward on zeros: spatial is the side of
    a square map, else its (rows, columns)."""
    device = next(denoiser.model.parameters()).device
    with torch.no_grad():
        x = torch.zeros(1, *shape, device=device)
        feats = tapped_features(denoiser, x, torch.tensor([500.0]), cond.select(slice(0, 1)), names)
    return [(f.shape[1], f.shape[2] if f.shape[2] == f.shape[3] else (f.shape[2], f.shape[3])) for f in feats]


class FeatureDiscriminator(nn.Module):
    """Heads on tapped features of a backbone denoiser; the logit is the mean over levels.

    ``backbone`` may be trainable (DMD2's fake score, Lightning's encoder copy) or frozen
    (ADM): either way gradients flow back to the input, which is what the generator needs.
    ``pairs=True`` builds Lightning's conditional discriminator, whose head sees the
    features of (x', t') and of the starting point (x_t, t) concatenated along channels.
    """

    def __init__(self, backbone: Denoiser, names: Sequence[str], shape: Sequence[int], cond: Conditioning, pairs: bool = False):
        super().__init__()
        self.backbone = backbone
        self.names = list(names)
        self.pairs = pairs
        shapes = probe_shapes(backbone, shape, cond, self.names)
        self.heads = nn.ModuleList(ConvHead(c * (2 if pairs else 1), s, width=c) for c, s in shapes)

    def forward(self, x: torch.Tensor, t, cond: Conditioning, x_start: torch.Tensor | None = None, t_start=None) -> torch.Tensor:
        feats = tapped_features(self.backbone, x, _times(t, len(x)), cond, self.names)
        if self.pairs:
            start = tapped_features(self.backbone, x_start, _times(t_start, len(x)), cond, self.names)
            feats = [torch.cat([f, g], 1) for f, g in zip(feats, start)]
        return torch.stack([h(f) for h, f in zip(self.heads, feats)]).mean(0)


class PixelDiscriminator(nn.Module):
    """A small trainable CNN on decoded images: ADP's pixel-space discriminator.

    DMDX uses a frozen SAM encoder with heads; SAM cannot be downloaded on the machines this is
    built on, so the default is this small network; pass ``encoder`` (a frozen image encoder
    returning a (B, C, H, W) map) to use a pretrained one. A channels-first video (B, C, F, H, W)
    is judged frame by frame (frames folded into the batch) and its logit is the mean over its frames.
    ``size``: the frames' side, or their (height, width).
    """

    def __init__(self, channels: int, size: int | Sequence[int], width: int = 32, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        if encoder is None:
            self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1), nn.SiLU(), nn.Conv2d(width, width, 3, 1, 1), nn.SiLU())
            feat_c, feat_s = width, size
        else:
            encoder.requires_grad_(False)
            side = (size, size) if isinstance(size, int) else tuple(size)
            with torch.no_grad():
                probe = encoder(torch.zeros(1, channels, *side))
            feat_c = probe.shape[1]
            feat_s = probe.shape[-1] if probe.shape[-2] == probe.shape[-1] else tuple(probe.shape[-2:])
            self.stem = nn.Identity()
        self.head = ConvHead(feat_c, feat_s, width=width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        clips = None
        if images.ndim == 5:  # (B, C, F, H, W): every frame an image of the batch
            clips, frames = images.shape[0], images.shape[2]
            images = images.transpose(1, 2).reshape(clips * frames, *images.shape[1:2], *images.shape[3:])
        feats = self.encoder(images) if self.encoder is not None else images
        logits = self.head(self.stem(feats))
        return logits if clips is None else logits.reshape(clips, frames).mean(1)
