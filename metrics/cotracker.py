"""CoTracker2 (facebookresearch/co-tracker) and its offline predictor, as VBench-I2V's camera motion calls them.

License: this file is a port of co-tracker's code, Copyright (c) Meta Platforms, Inc. and affiliates, licensed under
CC BY-NC 4.0 (https://creativecommons.org/licenses/by-nc/4.0/), and is distributed under that license, not under
benchkit's Apache-2.0 (as VBench ships its copy, vbench2_beta_i2v/third_party/cotracker). benchkit imports it only
when the ``vbench-camera-motion`` metric is built.

VBench-I2V (vbench2_beta_i2v/camera_motion.py:40-47) builds ``torch.hub.load("facebookresearch/co-tracker",
"cotracker2")``: hubconf.py's ``_make_cotracker_predictor(version="2")`` (co-tracker @ 82e02e8, hubconf.py:23-69, 72-76),
which is ``CoTrackerPredictor(window_len=8, v2=True)`` = ``CoTracker2(stride=4, window_len=8)`` with
``add_space_attn=True``, 64 virtual tracks and a 384x512 model resolution, and ``cotracker2.pth`` loaded into it
strictly. VBench vendors the same code at vbench2_beta_i2v/third_party/cotracker/ (the files cited below as
``cotracker.py``, ``blocks.py``, ``model_utils.py``, ``embeddings.py``, ``predictor.py``); the hub's current copy
differs from it only in formatting, CoTracker3 options the v2 path leaves off, and the video padding written as
a concatenation of the last frame instead of ``F.pad(..., "replicate")`` (the same numbers).

Hand-ported because CoTracker is not in a maintained library (no PyPI package, not in timm or transformers) and
torch.hub would run the repository's code from the network. Parameter and buffer names are the original's, so the
published checkpoint loads with ``strict=True`` from a weights-only read. Only what the offline predictor's
grid-query path runs is here (no online mode, no training outputs, no dense or backward tracking, no support grid:
VBench asks for ``grid_size=10`` with no segmentation mask, predictor.py:39-55). The operations are the original's in
its order, so the same weights give the same floats on the same device. The code is CC-BY-NC 4.0, as co-tracker is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ITERS = 6  # refinement updates per window (predictor.py:133)
VISIBILITY_THRESHOLD = 0.9  # predictor.py:144


# ---- embeddings.py --------------------------------------------------------------------------------------------

def get_1d_sincos_pos_embed_from_grid(embed_dim: int, pos: torch.Tensor) -> torch.Tensor:
    """embeddings.py:59-84 (float64 frequencies, float32 result)."""
    omega = torch.arange(embed_dim // 2, dtype=torch.double)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    out = torch.einsum("m,d->md", pos.reshape(-1), omega)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)[None].float()


def get_2d_sincos_pos_embed(embed_dim: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """embeddings.py:11-33 and 36-56: (1, embed_dim, H, W)."""
    grid_size_h, grid_size_w = grid_size
    grid = torch.meshgrid(torch.arange(grid_size_w, dtype=torch.float), torch.arange(grid_size_h, dtype=torch.float),
                          indexing="xy")
    grid = torch.stack(grid, dim=0).reshape([2, 1, grid_size_h, grid_size_w])
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    emb = torch.cat([emb_h, emb_w], dim=2)
    return emb.reshape(1, grid_size_h, grid_size_w, -1).permute(0, 3, 1, 2)


def get_2d_embedding(xy: torch.Tensor, C: int) -> torch.Tensor:
    """embeddings.py:87-120 with ``cat_coords=True``: (B, N, 2) -> (B, N, 2 + 2C)."""
    B, N, _ = xy.shape
    x, y = xy[:, :, 0:1], xy[:, :, 1:2]
    div_term = (torch.arange(0, C, 2, device=xy.device, dtype=torch.float32) * (1000.0 / C)).reshape(1, 1, int(C / 2))
    pe_x = torch.zeros(B, N, C, device=xy.device, dtype=torch.float32)
    pe_y = torch.zeros(B, N, C, device=xy.device, dtype=torch.float32)
    pe_x[:, :, 0::2] = torch.sin(x * div_term)
    pe_x[:, :, 1::2] = torch.cos(x * div_term)
    pe_y[:, :, 0::2] = torch.sin(y * div_term)
    pe_y[:, :, 1::2] = torch.cos(y * div_term)
    return torch.cat([xy, torch.cat([pe_x, pe_y], dim=2)], dim=2)


# ---- model_utils.py -------------------------------------------------------------------------------------------

def get_points_on_a_grid(size: int, extent: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """model_utils.py:20-76 without a centre: ``size`` x ``size`` (x, y) points, row-major, a margin of W/64."""
    if size == 1:
        return torch.tensor([extent[1] / 2, extent[0] / 2], device=device)[None, None]
    center = [extent[0] / 2, extent[1] / 2]
    margin = extent[1] / 64
    range_y = (margin - extent[0] / 2 + center[0], extent[0] / 2 + center[0] - margin)
    range_x = (margin - extent[1] / 2 + center[1], extent[1] / 2 + center[1] - margin)
    grid_y, grid_x = torch.meshgrid(torch.linspace(*range_y, size, device=device),
                                    torch.linspace(*range_x, size, device=device), indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).reshape(1, -1, 2)


def bilinear_sampler(input: torch.Tensor, coords: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """model_utils.py:128-188 with ``align_corners=True``: ``grid_sample`` at pixel coordinates (x, y) or (t, x, y)."""
    sizes = input.shape[2:]
    if len(sizes) == 3:
        coords = coords[..., [1, 2, 0]]
    coords = coords * torch.tensor([2 / max(size - 1, 1) for size in reversed(sizes)], device=coords.device)
    coords -= 1
    return F.grid_sample(input, coords, align_corners=True, padding_mode=padding_mode)


def sample_features4d(input: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """model_utils.py:191-223: (B, C, H, W) at (B, R, 2) -> (B, R, C)."""
    B = input.shape[0]
    feats = bilinear_sampler(input, coords.unsqueeze(2))
    return feats.permute(0, 2, 1, 3).view(B, -1, feats.shape[1] * feats.shape[3])


def sample_features5d(input: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """model_utils.py:226-256: (B, T, C, H, W) at (B, R1, R2, 3) -> (B, R1, R2, C)."""
    B = input.shape[0]
    feats = bilinear_sampler(input.permute(0, 2, 1, 3, 4), coords.unsqueeze(3))
    return feats.permute(0, 2, 3, 1, 4).view(B, feats.shape[2], feats.shape[3], feats.shape[1])


# ---- blocks.py --------------------------------------------------------------------------------------------------

class Mlp(nn.Module):
    """blocks.py:40-74 as the update former uses it: fc1, tanh-approximated GELU, fc2 (its dropouts are 0 and its
    norm an identity). Written out rather than taken from timm (whose Mlp it copies): importing timm costs seconds,
    and these are two linear layers."""

    def __init__(self, in_features: int, hidden_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ResidualBlock(nn.Module):
    """blocks.py:77-134 with ``norm_fn="instance"`` (BasicEncoder's: InstanceNorm2d without affine parameters)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, stride=stride, padding_mode="zeros")
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, padding_mode="zeros")
        self.relu = nn.ReLU(inplace=True)
        self.norm1 = nn.InstanceNorm2d(planes)
        self.norm2 = nn.InstanceNorm2d(planes)
        if stride == 1:
            self.downsample = None
        else:
            self.norm3 = nn.InstanceNorm2d(planes)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class BasicEncoder(nn.Module):
    """blocks.py:137-216: the feature network, four stages upsampled to 1/stride and fused."""

    def __init__(self, input_dim: int = 3, output_dim: int = 128, stride: int = 4):
        super().__init__()
        self.stride = stride
        self.in_planes = output_dim // 2
        self.norm1 = nn.InstanceNorm2d(self.in_planes)
        self.norm2 = nn.InstanceNorm2d(output_dim * 2)
        self.conv1 = nn.Conv2d(input_dim, self.in_planes, kernel_size=7, stride=2, padding=3, padding_mode="zeros")
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(output_dim // 2, stride=1)
        self.layer2 = self._make_layer(output_dim // 4 * 3, stride=2)
        self.layer3 = self._make_layer(output_dim, stride=2)
        self.layer4 = self._make_layer(output_dim, stride=2)
        self.conv2 = nn.Conv2d(output_dim * 3 + output_dim // 4, output_dim * 2, kernel_size=3, padding=1,
                               padding_mode="zeros")
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(output_dim * 2, output_dim, kernel_size=1)

    def _make_layer(self, dim: int, stride: int = 1) -> nn.Sequential:
        layers = (ResidualBlock(self.in_planes, dim, stride=stride), ResidualBlock(dim, dim, stride=1))
        self.in_planes = dim
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, H, W = x.shape
        x = self.relu1(self.norm1(self.conv1(x)))
        a = self.layer1(x)
        b = self.layer2(a)
        c = self.layer3(b)
        d = self.layer4(c)
        size = (H // self.stride, W // self.stride)
        a, b, c, d = (F.interpolate(t, size, mode="bilinear", align_corners=True) for t in (a, b, c, d))
        x = self.relu2(self.norm2(self.conv2(torch.cat([a, b, c, d], dim=1))))
        return self.conv3(x)


class CorrBlock:
    """blocks.py:219-295 (one track feature per level): correlations of the track features with a 4-level pyramid
    of the feature maps, sampled in a (2r+1)^2 window around each point."""

    def __init__(self, fmaps: torch.Tensor, num_levels: int = 4, radius: int = 3, padding_mode: str = "border"):
        B, S, C, H, W = fmaps.shape
        self.S, self.C, self.H, self.W = S, C, H, W
        self.padding_mode, self.num_levels, self.radius = padding_mode, num_levels, radius
        self.fmaps_pyramid = [fmaps]
        for _ in range(num_levels - 1):
            fmaps_ = F.avg_pool2d(fmaps.reshape(B * S, C, H, W), 2, stride=2)
            _, _, H, W = fmaps_.shape
            fmaps = fmaps_.reshape(B, S, C, H, W)
            self.fmaps_pyramid.append(fmaps)

    def sample(self, coords: torch.Tensor) -> torch.Tensor:
        r = self.radius
        B, S, N, _ = coords.shape
        out_pyramid = []
        for i in range(self.num_levels):
            corrs = self.corrs_pyramid[i]
            *_, H, W = corrs.shape
            dx = torch.linspace(-r, r, 2 * r + 1)
            dy = torch.linspace(-r, r, 2 * r + 1)
            delta = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), axis=-1).to(coords.device)
            coords_lvl = coords.reshape(B * S * N, 1, 1, 2) / 2**i + delta.view(1, 2 * r + 1, 2 * r + 1, 2)
            corrs = bilinear_sampler(corrs.reshape(B * S * N, 1, H, W), coords_lvl, padding_mode=self.padding_mode)
            out_pyramid.append(corrs.view(B, S, N, -1))
        out = torch.cat(out_pyramid, dim=-1)
        return out.permute(0, 2, 1, 3).contiguous().view(B * N, S, -1).float()

    def corr(self, targets: torch.Tensor) -> None:
        B, S, N, C = targets.shape
        assert C == self.C and S == self.S
        self.corrs_pyramid = []
        for fmaps in self.fmaps_pyramid:
            *_, H, W = fmaps.shape
            corrs = torch.matmul(targets, fmaps.view(B, S, C, H * W)).view(B, S, N, H, W)
            self.corrs_pyramid.append(corrs / torch.sqrt(torch.tensor(C).float()))


class Attention(nn.Module):
    """blocks.py:298-329: multi-head attention with a fused key/value projection (to_q, to_kv, to_out)."""

    def __init__(self, query_dim: int, context_dim: int | None = None, num_heads: int = 8, dim_head: int = 48,
                 qkv_bias: bool = False):
        super().__init__()
        inner_dim = dim_head * num_heads
        context_dim = query_dim if context_dim is None else context_dim
        self.scale = dim_head**-0.5
        self.heads = num_heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=qkv_bias)
        self.to_kv = nn.Linear(context_dim, inner_dim * 2, bias=qkv_bias)
        self.to_out = nn.Linear(inner_dim, query_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        B, N1, C = x.shape
        h = self.heads
        q = self.to_q(x).reshape(B, N1, h, C // h).permute(0, 2, 1, 3)
        context = x if context is None else context
        k, v = self.to_kv(context).chunk(2, dim=-1)
        N2 = context.shape[1]
        k = k.reshape(B, N2, h, C // h).permute(0, 2, 1, 3)
        v = v.reshape(B, N2, h, C // h).permute(0, 2, 1, 3)
        sim = (q @ k.transpose(-2, -1)) * self.scale
        if attn_bias is not None:
            sim = sim + attn_bias
        attn = sim.softmax(dim=-1)
        return self.to_out((attn @ v).transpose(1, 2).reshape(B, N1, C))


class AttnBlock(nn.Module):
    """blocks.py:332-367: pre-norm self-attention and MLP; the update former calls it without a mask."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_bias=None)
        return x + self.mlp(self.norm2(x))


class CrossAttnBlock(nn.Module):
    """cotracker.py:469-503: pre-norm cross-attention (the context normed with affine parameters) and MLP."""

    def __init__(self, hidden_size: int, context_dim: int, num_heads: int = 1, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.norm_context = nn.LayerNorm(hidden_size)
        self.cross_attn = Attention(hidden_size, context_dim=context_dim, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # the mask's orientation is told from its length, as the original does (cotracker.py:489-495)
        if mask.shape[1] == x.shape[1]:
            mask = mask[:, None, :, None].expand(-1, self.cross_attn.heads, -1, context.shape[1])
        else:
            mask = mask[:, None, None].expand(-1, self.cross_attn.heads, x.shape[1], -1)
        attn_bias = (~mask) * -torch.finfo(x.dtype).max
        x = x + self.cross_attn(self.norm1(x), context=self.norm_context(context), attn_bias=attn_bias)
        return x + self.mlp(self.norm2(x))


class EfficientUpdateFormer(nn.Module):
    """cotracker.py:358-466: time attention along each track, and space attention through virtual tracks."""

    def __init__(self, space_depth: int = 6, time_depth: int = 6, input_dim: int = 456, hidden_size: int = 384,
                 num_heads: int = 8, output_dim: int = 130, mlp_ratio: float = 4.0, num_virtual_tracks: int = 64):
        super().__init__()
        self.num_virtual_tracks = num_virtual_tracks
        self.input_transform = nn.Linear(input_dim, hidden_size, bias=True)
        self.flow_head = nn.Linear(hidden_size, output_dim, bias=True)
        self.virual_tracks = nn.Parameter(torch.zeros(1, num_virtual_tracks, 1, hidden_size))  # sic: the checkpoint's name
        self.time_blocks = nn.ModuleList([AttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(time_depth)])
        self.space_virtual_blocks = nn.ModuleList([AttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)])
        self.space_point2virtual_blocks = nn.ModuleList(
            [CrossAttnBlock(hidden_size, hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)])
        self.space_virtual2point_blocks = nn.ModuleList(
            [CrossAttnBlock(hidden_size, hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)])
        assert len(self.time_blocks) >= len(self.space_virtual2point_blocks)

    def forward(self, input_tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        tokens = self.input_transform(input_tensor)
        B, _, T, _ = tokens.shape
        tokens = torch.cat([tokens, self.virual_tracks.repeat(B, 1, T, 1)], dim=1)
        _, N, _, _ = tokens.shape
        every = len(self.time_blocks) // len(self.space_virtual_blocks)
        j = 0
        for i in range(len(self.time_blocks)):
            time_tokens = self.time_blocks[i](tokens.contiguous().view(B * N, T, -1))
            tokens = time_tokens.view(B, N, T, -1)
            if i % every == 0:
                space_tokens = tokens.permute(0, 2, 1, 3).contiguous().view(B * T, N, -1)
                point_tokens = space_tokens[:, : N - self.num_virtual_tracks]
                virtual_tokens = space_tokens[:, N - self.num_virtual_tracks :]
                virtual_tokens = self.space_virtual2point_blocks[j](virtual_tokens, point_tokens, mask=mask)
                virtual_tokens = self.space_virtual_blocks[j](virtual_tokens)
                point_tokens = self.space_point2virtual_blocks[j](point_tokens, virtual_tokens, mask=mask)
                space_tokens = torch.cat([point_tokens, virtual_tokens], dim=1)
                tokens = space_tokens.view(B, T, N, -1).permute(0, 2, 1, 3)
                j += 1
        return self.flow_head(tokens[:, : N - self.num_virtual_tracks])


# ---- cotracker.py -----------------------------------------------------------------------------------------------

def sincos_buffers(input_dim: int, window_len: int, stride: int, model_resolution: tuple[int, int]) -> dict[str, torch.Tensor]:
    """CoTracker2's fixed sin/cos embeddings of the frame in the window and of the position on the feature grid
    (cotracker.py:59-74), saved in the checkpoint as buffers."""
    time_grid = torch.linspace(0, window_len - 1, window_len).reshape(1, window_len, 1)
    return {"time_emb": get_1d_sincos_pos_embed_from_grid(input_dim, time_grid[0]),
            "pos_emb": get_2d_sincos_pos_embed(input_dim, (model_resolution[0] // stride, model_resolution[1] // stride))}


class CoTracker2(nn.Module):
    """cotracker.py:29-355, offline: sliding windows of ``window_len`` frames moved by half a window; in each,
    ``iters`` updates of every track's coordinates and features from correlation, flow and time/space attention.

    ``space_depth``, ``time_depth`` and ``num_virtual_tracks`` are the published model's (6, 6, 64) unless a test
    asks for a smaller one; ``model_resolution`` is the size every clip is resized to (384x512 for cotracker2.pth,
    whose ``pos_emb`` has that grid / ``stride``)."""

    def __init__(self, window_len: int = 8, stride: int = 4, num_virtual_tracks: int = 64,
                 model_resolution: tuple[int, int] = (384, 512), space_depth: int = 6, time_depth: int = 6):
        super().__init__()
        self.window_len = window_len
        self.stride = stride
        self.latent_dim = 128
        self.fnet = BasicEncoder(output_dim=self.latent_dim)
        self.model_resolution = tuple(model_resolution)
        self.input_dim = 456
        self.updateformer = EfficientUpdateFormer(space_depth=space_depth, time_depth=time_depth, input_dim=self.input_dim,
                                                  hidden_size=384, output_dim=self.latent_dim + 2, mlp_ratio=4.0,
                                                  num_virtual_tracks=num_virtual_tracks)
        for name, value in sincos_buffers(self.input_dim, window_len, stride, model_resolution).items():
            self.register_buffer(name, value)
        self.norm = nn.GroupNorm(1, self.latent_dim)
        self.track_feat_updater = nn.Sequential(nn.Linear(self.latent_dim, self.latent_dim), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(self.latent_dim, 1))

    def forward_window(self, fmaps, coords, track_feat, vis, track_mask, attention_mask, iters):
        """cotracker.py:84-163."""
        B, S_init, N, _ = track_mask.shape
        B, S, *_ = fmaps.shape
        track_mask = F.pad(track_mask, (0, 0, 0, 0, 0, S - S_init), "constant")
        track_mask_vis = torch.cat([track_mask, vis], dim=-1).permute(0, 2, 1, 3).reshape(B * N, S, 2)
        corr_block = CorrBlock(fmaps, num_levels=4, radius=3, padding_mode="border")
        sampled_pos_emb = sample_features4d(self.pos_emb.repeat(B, 1, 1, 1), coords[:, 0]).reshape(
            B * N, self.input_dim).unsqueeze(1)
        coord_preds = []
        for _ in range(iters):
            coords = coords.detach()
            corr_block.corr(track_feat)
            fcorrs = corr_block.sample(coords)
            flows = (coords - coords[:, 0:1]).permute(0, 2, 1, 3).reshape(B * N, S, 2)
            flow_emb = get_2d_embedding(flows, 64)
            track_feat_ = track_feat.permute(0, 2, 1, 3).reshape(B * N, S, self.latent_dim)
            transformer_input = torch.cat([flow_emb, fcorrs, track_feat_, track_mask_vis], dim=2)
            x = transformer_input + sampled_pos_emb + self.time_emb
            x = x.view(B, N, S, -1)
            delta = self.updateformer(x, attention_mask.reshape(B * S, N))
            coords = coords + delta[..., :2].permute(0, 2, 1, 3)
            coord_preds.append(coords * self.stride)
            delta_feats_ = delta[..., 2:].reshape(B * N * S, self.latent_dim)
            track_feat_ = track_feat.permute(0, 2, 1, 3).reshape(B * N * S, self.latent_dim)
            track_feat_ = self.track_feat_updater(self.norm(delta_feats_)) + track_feat_
            track_feat = track_feat_.reshape(B, N, S, self.latent_dim).permute(0, 2, 1, 3)
        vis_pred = self.vis_predictor(track_feat).reshape(B, S, N)
        return coord_preds, vis_pred

    def forward(self, video: torch.Tensor, queries: torch.Tensor, iters: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """cotracker.py:183-355 offline (``is_online=False``, ``is_train=False``): video (B, T, 3, H, W) in 0-255 at
        the model resolution, queries (B, N, 3) as (frame, x, y) -> tracks (B, T, N, 2), visibility (B, T, N) in 0-1."""
        B, T, C, H, W = video.shape
        B, N, _ = queries.shape
        S = self.window_len
        device = queries.device
        step = S // 2
        video = 2 * (video / 255.0) - 1.0
        queried_frames = queries[:, :, 0].long()
        queried_coords = queries[..., 1:] / self.stride
        coords_predicted = torch.zeros((B, T, N, 2), device=device)
        vis_predicted = torch.zeros((B, T, N), device=device)
        pad = (S - T % S) % S
        video = F.pad(video.reshape(B, 1, T, C * H * W), (0, 0, 0, pad), "replicate").reshape(B, -1, C, H, W)
        fmaps = self.fnet(video.reshape(-1, C, H, W)).reshape(B, -1, self.latent_dim, H // self.stride, W // self.stride)
        track_feat = sample_features5d(fmaps, torch.cat([queried_frames[:, None, :, None], queried_coords[:, None]],
                                                        dim=-1)).repeat(1, S, 1, 1)  # get_track_feat, cotracker.py:165-175
        num_windows = (T - S + step - 1) // step + 1
        coords_init = queried_coords.reshape(B, 1, N, 2).expand(B, S, N, 2).float()
        vis_init = torch.ones((B, S, N, 1), device=device).float() * 10
        for ind in range(0, step * num_windows, step):
            if ind > 0:
                overlap = S - step
                copy_over = (queried_frames < ind + overlap)[:, None, :, None]
                coords_prev = F.pad(coords_predicted[:, ind : ind + overlap] / self.stride, (0, 0, 0, 0, 0, step), "replicate")
                vis_prev = F.pad(vis_predicted[:, ind : ind + overlap, :, None].clone(), (0, 0, 0, 0, 0, step), "replicate")
                coords_init = torch.where(copy_over.expand_as(coords_init), coords_prev, coords_init)
                vis_init = torch.where(copy_over.expand_as(vis_init), vis_prev, vis_init)
            attention_mask = (queried_frames < ind + S).reshape(B, 1, N).repeat(1, S, 1)
            track_mask = (queried_frames[:, None, :, None]
                          <= torch.arange(ind, ind + S, device=device)[None, :, None, None]).contiguous()
            if ind > 0:
                track_mask[:, :overlap, :, :] = False
            coords, vis = self.forward_window(fmaps=fmaps[:, ind : ind + S], coords=coords_init,
                                              track_feat=attention_mask.unsqueeze(-1) * track_feat, vis=vis_init,
                                              track_mask=track_mask, attention_mask=attention_mask, iters=iters)
            S_trimmed = min(T - ind, S)
            coords_predicted[:, ind : ind + S] = coords[-1][:, :S_trimmed]
            vis_predicted[:, ind : ind + S] = vis[:, :S_trimmed]
        return coords_predicted, torch.sigmoid(vis_predicted)


# ---- predictor.py -----------------------------------------------------------------------------------------------

@torch.no_grad()
def track_grid(model: CoTracker2, video: torch.Tensor, grid_size: int,
               grid_query_frame: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``CoTrackerPredictor(video, grid_size=grid_size)`` (predictor.py:24-56, ``_compute_sparse_tracks`` :84-164
    with no queries, mask or support grid): the clip resized to the model resolution (bilinear, corners aligned), a
    ``grid_size`` x ``grid_size`` grid of points on frame ``grid_query_frame`` tracked through it, each track's query
    frame set to its query point, and the tracks scaled back to the clip's pixels. video (B, T, 3, H, W) float in
    0-255 -> tracks (B, T, N, 2) as (x, y), visibility (B, T, N) bool."""
    B, T, C, H, W = video.shape
    interp_shape = model.model_resolution
    video = F.interpolate(video.reshape(B * T, C, H, W), tuple(interp_shape), mode="bilinear", align_corners=True)
    video = video.reshape(B, T, 3, interp_shape[0], interp_shape[1])
    grid_pts = get_points_on_a_grid(grid_size, interp_shape, device=video.device)
    queries = torch.cat([torch.ones_like(grid_pts[:, :, :1]) * grid_query_frame, grid_pts], dim=2).repeat(B, 1, 1)
    tracks, visibilities = model(video=video, queries=queries, iters=ITERS)
    visibilities = visibilities > VISIBILITY_THRESHOLD
    for i in range(len(queries)):  # the query points themselves, as given (co-tracker issue 28)
        queries_t = queries[i, : tracks.size(2), 0].to(torch.int64)
        arange = torch.arange(0, len(queries_t))
        tracks[i, queries_t, arange] = queries[i, : tracks.size(2), 1:]
        visibilities[i, queries_t, arange] = True
    tracks *= tracks.new_tensor([(W - 1) / (interp_shape[1] - 1), (H - 1) / (interp_shape[0] - 1)])
    return tracks, visibilities
