"""AMT-S, the frame interpolation network (MCG-NKU/AMT, CVPR 2023) that VBench's motion smoothness runs.

A transcription of the copy vbench 0.1.5 vendors (``vbench/third_party/amt``): ``networks/AMT-S.py`` with the
blocks it uses from ``networks/blocks/{raft,feat_enc,ifrnet,multi_flow}.py`` and ``utils/flow_utils.py``'s
``warp``, at ``cfgs/AMT-S.yaml``'s settings (corr_radius 3, corr_lvls 4, num_flows 3). AMT exists only inside
the AMT and VBench repositories (no installable library; importing ``vbench`` pulls decord and more), so it
lives here. Module and parameter names are the original's, so ``amt-s.pth``'s ``state_dict`` loads with
``strict=True``; the operations are the original's in the original order, so the outputs are the same floats.

Left out: what the evaluation path never runs: the batch/group/none norms (AMT-S's feature encoder uses
instance norm, which has no parameters), dropout (0 in AMT-S), the training outputs, and ``scale_factor != 1``
(VBench's VRAM rule, which its own launchers never reach: see metrics/vbench_motion_smoothness.py).
Citations are file:line in ``vbench/third_party/amt``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchkit.core.errors import BenchkitError


def resize(x: torch.Tensor, scale_factor: float) -> torch.Tensor:  # networks/blocks/ifrnet.py:7-8, raft.py:6-7
    return F.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=False)


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:  # utils/flow_utils.py:8-16
    b, _, h, w = flow.shape
    xx = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(b, -1, h, -1)
    yy = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(b, -1, -1, w)
    grid = torch.cat([xx, yy], 1).to(img)
    flow_ = torch.cat([flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], 1)
    return F.grid_sample(input=img, grid=(grid + flow_).permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def bilinear_sampler(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:  # networks/blocks/raft.py:10-24
    h, w = img.shape[-2:]
    xgrid, ygrid = coords.split([1, 1], dim=-1)
    grid = torch.cat([2 * xgrid / (w - 1) - 1, 2 * ygrid / (h - 1) - 1], dim=-1)
    return F.grid_sample(img, grid, align_corners=True)


def coords_grid(batch: int, ht: int, wd: int, device) -> torch.Tensor:  # networks/blocks/raft.py:27-32
    coords = torch.meshgrid(torch.arange(ht, device=device), torch.arange(wd, device=device), indexing="ij")
    return torch.stack(coords[::-1], dim=0).float()[None].repeat(batch, 1, 1, 1)


class BidirCorrBlock:
    """All-pairs correlation of two feature maps, both ways, as a ``num_levels`` pyramid (raft.py:142-206)."""

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, num_levels: int = 4, radius: int = 4):
        self.num_levels, self.radius = num_levels, radius
        batch, dim, ht, wd = fmap1.shape
        corr = torch.matmul(fmap1.view(batch, dim, ht * wd).transpose(1, 2), fmap2.view(batch, dim, ht * wd))
        corr = corr.view(batch, ht, wd, 1, ht, wd) / torch.sqrt(torch.tensor(dim).float())  # :199-206
        corr_t = corr.clone().permute(0, 4, 5, 3, 1, 2)
        corr, corr_t = corr.reshape(batch * ht * wd, 1, ht, wd), corr_t.reshape(batch * ht * wd, 1, ht, wd)
        self.pyramid, self.pyramid_t = [corr], [corr_t]
        for _ in range(num_levels - 1):
            corr, corr_t = F.avg_pool2d(corr, 2, stride=2), F.avg_pool2d(corr_t, 2, stride=2)
            self.pyramid.append(corr)
            self.pyramid_t.append(corr_t)

    def __call__(self, coords0: torch.Tensor, coords1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # :165-197
        r = self.radius
        coords0, coords1 = coords0.permute(0, 2, 3, 1), coords1.permute(0, 2, 3, 1)
        batch, h1, w1, _ = coords0.shape
        out, out_t = [], []
        for i in range(self.num_levels):
            dx = torch.linspace(-r, r, 2 * r + 1, device=coords0.device)
            dy = torch.linspace(-r, r, 2 * r + 1, device=coords0.device)
            delta = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), axis=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
            lvl0 = coords0.reshape(batch * h1 * w1, 1, 1, 2) / 2**i + delta
            lvl1 = coords1.reshape(batch * h1 * w1, 1, 1, 2) / 2**i + delta
            out.append(bilinear_sampler(self.pyramid[i], lvl0).view(batch, h1, w1, -1))
            out_t.append(bilinear_sampler(self.pyramid_t[i], lvl1).view(batch, h1, w1, -1))
        return (torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous().float(),
                torch.cat(out_t, dim=-1).permute(0, 3, 1, 2).contiguous().float())


class SmallUpdateBlock(nn.Module):  # networks/blocks/raft.py:35-85
    def __init__(self, cdim, hidden_dim, flow_dim, corr_dim, fc_dim, corr_levels=4, radius=3, scale_factor=None):
        super().__init__()
        cor_planes = corr_levels * (2 * radius + 1) ** 2
        self.scale_factor = scale_factor
        self.convc1 = nn.Conv2d(2 * cor_planes, corr_dim, 1, padding=0)
        self.convf1 = nn.Conv2d(4, flow_dim * 2, 7, padding=3)
        self.convf2 = nn.Conv2d(flow_dim * 2, flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(corr_dim + flow_dim, fc_dim, 3, padding=1)

        def head(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, hidden_dim, 3, padding=1), nn.LeakyReLU(negative_slope=0.1, inplace=True),
                                 nn.Conv2d(hidden_dim, cout, 3, padding=1))

        self.gru, self.feat_head, self.flow_head = head(fc_dim + 4 + cdim, hidden_dim), head(hidden_dim, cdim), head(hidden_dim, 4)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def forward(self, net, flow, corr):
        net = resize(net, 1 / self.scale_factor) if self.scale_factor is not None else net
        cor = self.lrelu(self.convc1(corr))
        flo = self.lrelu(self.convf2(self.lrelu(self.convf1(flow))))
        inp = self.lrelu(self.conv(torch.cat([cor, flo], dim=1)))
        out = self.gru(torch.cat([inp, flow, net], dim=1))
        delta_net, delta_flow = self.feat_head(out), self.flow_head(out)
        if self.scale_factor is not None:
            delta_net = resize(delta_net, scale_factor=self.scale_factor)
            delta_flow = self.scale_factor * resize(delta_flow, scale_factor=self.scale_factor)
        return delta_net, delta_flow


class BottleneckBlock(nn.Module):  # networks/blocks/feat_enc.py:5-61, norm_fn='instance'
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes // 4, kernel_size=1, padding=0)
        self.conv2 = nn.Conv2d(planes // 4, planes // 4, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(planes // 4, planes, kernel_size=1, padding=0)
        self.relu = nn.ReLU(inplace=True)
        self.norm1, self.norm2, self.norm3 = nn.InstanceNorm2d(planes // 4), nn.InstanceNorm2d(planes // 4), nn.InstanceNorm2d(planes)
        self.downsample = (None if stride == 1 else
                           nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride), nn.InstanceNorm2d(planes)))

    def forward(self, x):
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        y = self.relu(self.norm3(self.conv3(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class SmallEncoder(nn.Module):  # networks/blocks/feat_enc.py:117-189, norm_fn='instance', dropout=0
    def __init__(self, output_dim=84):
        super().__init__()
        self.norm1 = nn.InstanceNorm2d(32)
        self.conv1 = nn.Conv2d(3, 32, kernel_size=7, stride=2, padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BottleneckBlock(32, 32, 1), BottleneckBlock(32, 32))
        self.layer2 = nn.Sequential(BottleneckBlock(32, 64, 2), BottleneckBlock(64, 64))
        self.layer3 = nn.Sequential(BottleneckBlock(64, 96, 2), BottleneckBlock(96, 96))
        self.conv2 = nn.Conv2d(96, output_dim, kernel_size=1)

    def forward(self, pair):  # the two frames go through as one batch (:166-189)
        x = torch.cat(pair, dim=0)
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.conv2(self.layer3(self.layer2(self.layer1(x))))
        return torch.split(x, [pair[0].shape[0]] * 2, dim=0)


def convrelu(cin, cout, kernel_size=3, stride=1, padding=1):  # networks/blocks/ifrnet.py:10-14
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=True), nn.PReLU(cout))


class ResBlock(nn.Module):  # networks/blocks/ifrnet.py:16-53
    def __init__(self, in_channels, side_channels):
        super().__init__()
        self.side_channels = side_channels
        self.conv1, self.conv2 = convrelu(in_channels, in_channels), convrelu(side_channels, side_channels)
        self.conv3, self.conv4 = convrelu(in_channels, in_channels), convrelu(side_channels, side_channels)
        self.conv5 = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=1, padding=1, bias=True)
        self.prelu = nn.PReLU(in_channels)

    def forward(self, x):
        s = self.side_channels
        out = self.conv1(x)
        out = self.conv3(torch.cat([out[:, :-s], self.conv2(out[:, -s:])], 1))
        out = self.conv5(torch.cat([out[:, :-s], self.conv4(out[:, -s:])], 1))
        return self.prelu(x + out)


class Encoder(nn.Module):  # networks/blocks/ifrnet.py:55-76 (large=False)
    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        for idx, (cin, cout) in enumerate(zip([3, *channels[:-1]], channels), 1):
            self.register_module(f"pyramid{idx}", nn.Sequential(convrelu(cin, cout, 3, 2, 1), convrelu(cout, cout, 3, 1, 1)))

    def forward(self, x):
        fs = []
        for idx in range(len(self.channels)):
            x = getattr(self, f"pyramid{idx + 1}")(x)
            fs.append(x)
        return fs


class InitDecoder(nn.Module):  # networks/blocks/ifrnet.py:78-92
    def __init__(self, in_ch, out_ch, skip_ch):
        super().__init__()
        self.convblock = nn.Sequential(convrelu(in_ch * 2 + 1, in_ch * 2), ResBlock(in_ch * 2, skip_ch),
                                       nn.ConvTranspose2d(in_ch * 2, out_ch + 4, 4, 2, 1, bias=True))

    def forward(self, f0, f1, embt):
        h, w = f0.shape[2:]
        out = self.convblock(torch.cat([f0, f1, embt.repeat(1, 1, h, w)], 1))
        flow0, flow1 = torch.chunk(out[:, :4], 2, 1)
        return flow0, flow1, out[:, 4:]


class IntermediateDecoder(nn.Module):  # networks/blocks/ifrnet.py:94-111
    def __init__(self, in_ch, out_ch, skip_ch):
        super().__init__()
        self.convblock = nn.Sequential(convrelu(in_ch * 3 + 4, in_ch * 3), ResBlock(in_ch * 3, skip_ch),
                                       nn.ConvTranspose2d(in_ch * 3, out_ch + 4, 4, 2, 1, bias=True))

    def forward(self, ft_, f0, f1, flow0_in, flow1_in):
        out = self.convblock(torch.cat([ft_, warp(f0, flow0_in), warp(f1, flow1_in), flow0_in, flow1_in], 1))
        flow0, flow1 = torch.chunk(out[:, :4], 2, 1)
        flow0 = flow0 + 2.0 * resize(flow0_in, scale_factor=2.0)
        flow1 = flow1 + 2.0 * resize(flow1_in, scale_factor=2.0)
        return flow0, flow1, out[:, 4:]


class MultiFlowDecoder(nn.Module):  # networks/blocks/multi_flow.py:46-69
    def __init__(self, in_ch, skip_ch, num_flows=3):
        super().__init__()
        self.num_flows = num_flows
        self.convblock = nn.Sequential(convrelu(in_ch * 3 + 4, in_ch * 3), ResBlock(in_ch * 3, skip_ch),
                                       nn.ConvTranspose2d(in_ch * 3, 8 * num_flows, 4, 2, 1, bias=True))

    def forward(self, ft_, f0, f1, flow0, flow1):
        n = self.num_flows
        out = self.convblock(torch.cat([ft_, warp(f0, flow0), warp(f1, flow1), flow0, flow1], 1))
        delta_flow0, delta_flow1, mask, img_res = torch.split(out, [2 * n, 2 * n, n, 3 * n], 1)
        flow0 = delta_flow0 + 2.0 * resize(flow0, scale_factor=2.0).repeat(1, n, 1, 1)
        flow1 = delta_flow1 + 2.0 * resize(flow1, scale_factor=2.0).repeat(1, n, 1, 1)
        return flow0, flow1, torch.sigmoid(mask), img_res


def multi_flow_combine(comb_block, img0, img1, flow0, flow1, mask, img_res, mean):  # networks/blocks/multi_flow.py:10-43
    b, c, h, w = flow0.shape
    n = c // 2
    flow0, flow1 = flow0.reshape(b, n, 2, h, w).reshape(-1, 2, h, w), flow1.reshape(b, n, 2, h, w).reshape(-1, 2, h, w)
    mask = mask.reshape(b, n, 1, h, w).reshape(-1, 1, h, w)
    img_res = img_res.reshape(b, n, 3, h, w).reshape(-1, 3, h, w)
    img0, img1 = torch.stack([img0] * n, 1).reshape(-1, 3, h, w), torch.stack([img1] * n, 1).reshape(-1, 3, h, w)
    mean = torch.stack([mean] * n, 1).reshape(-1, 1, 1, 1)
    img_warps = mask * warp(img0, flow0) + (1 - mask) * warp(img1, flow1) + mean + img_res
    img_warps = img_warps.reshape(b, n, 3, h, w)
    return img_warps.mean(1) + comb_block(img_warps.view(b, -1, h, w))


class AMTS(nn.Module):
    """``networks/AMT-S.py``'s ``Model`` (:22-154) at AMT-S.yaml's settings; ``forward`` is its ``eval=True`` path
    with ``scale_factor=1``: the frame at time ``embt`` (0-1) between ``img0`` and ``img1`` (B, 3, H, W in 0-1,
    H and W multiples of 16), clamped to 0-1."""

    def __init__(self, corr_radius=3, corr_lvls=4, num_flows=3, channels=(20, 32, 44, 56), skip_channels=20):
        super().__init__()
        self.radius, self.corr_levels, self.num_flows = corr_radius, corr_lvls, num_flows
        self.feat_encoder = SmallEncoder(output_dim=84)
        self.encoder = Encoder(list(channels))
        self.decoder4 = InitDecoder(channels[3], channels[2], skip_channels)
        self.decoder3 = IntermediateDecoder(channels[2], channels[1], skip_channels)
        self.decoder2 = IntermediateDecoder(channels[1], channels[0], skip_channels)
        self.decoder1 = MultiFlowDecoder(channels[0], skip_channels, num_flows)
        self.update4, self.update3, self.update2 = (
            SmallUpdateBlock(cdim=c, hidden_dim=76, flow_dim=20, corr_dim=64, fc_dim=68, scale_factor=s,
                             corr_levels=corr_lvls, radius=corr_radius) for c, s in ((44, None), (32, 2), (20, 4)))
        self.comb_block = nn.Sequential(nn.Conv2d(3 * num_flows, 6 * num_flows, 3, 1, 1), nn.PReLU(6 * num_flows),
                                        nn.Conv2d(6 * num_flows, 3, 3, 1, 1))

    @staticmethod
    def _corr_scale_lookup(corr_fn, coord, flow0, flow1, embt, downsample=1):  # AMT-S.py:59-72
        t1_scale, t0_scale = 1.0 / embt, 1.0 / (1.0 - embt)  # t -> 0 as 0 -> 1 and t -> 1 as 1 -> 0, linearly
        if downsample != 1:
            inv = 1 / downsample
            flow0, flow1 = inv * resize(flow0, scale_factor=inv), inv * resize(flow1, scale_factor=inv)
        corr0, corr1 = corr_fn(coord + flow1 * t1_scale, coord + flow0 * t0_scale)
        return torch.cat([corr0, corr1], dim=1), torch.cat([flow0, flow1], dim=1)

    def _refine(self, update, ft_, flow0, flow1, corr_fn, coord, embt, downsample):  # AMT-S.py:93-102, 106-115, 119-128
        corr, flow = self._corr_scale_lookup(corr_fn, coord, flow0, flow1, embt, downsample)
        delta_ft, delta_flow = update(ft_, flow, corr)
        delta_flow0, delta_flow1 = torch.chunk(delta_flow, 2, 1)
        return flow0 + delta_flow0, flow1 + delta_flow1, ft_ + delta_ft

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, embt: torch.Tensor) -> torch.Tensor:  # AMT-S.py:74-145
        mean_ = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
        img0, img1 = img0 - mean_, img1 - mean_
        b, _, h, w = img0.shape
        coord = coords_grid(b, h // 8, w // 8, img0.device)
        fmap0, fmap1 = self.feat_encoder([img0, img1])
        corr_fn = BidirCorrBlock(fmap0, fmap1, radius=self.radius, num_levels=self.corr_levels)
        f0_1, f0_2, f0_3, f0_4 = self.encoder(img0)
        f1_1, f1_2, f1_3, f1_4 = self.encoder(img1)

        flow0, flow1, ft_ = self.decoder4(f0_4, f1_4, embt)
        flow0, flow1, ft_ = self._refine(self.update4, ft_, flow0, flow1, corr_fn, coord, embt, 1)
        flow0, flow1, ft_ = self.decoder3(ft_, f0_3, f1_3, flow0, flow1)
        flow0, flow1, ft_ = self._refine(self.update3, ft_, flow0, flow1, corr_fn, coord, embt, 2)
        flow0, flow1, ft_ = self.decoder2(ft_, f0_2, f1_2, flow0, flow1)
        flow0, flow1, ft_ = self._refine(self.update2, ft_, flow0, flow1, corr_fn, coord, embt, 4)
        flow0, flow1, mask, img_res = self.decoder1(ft_, f0_1, f1_1, flow0, flow1)
        imgt = multi_flow_combine(self.comb_block, img0, img1, flow0, flow1, mask, img_res, mean_)
        return torch.clamp(imgt, 0, 1)


def load_amt_s(file: Path, where: str) -> AMTS:
    """AMT-S with the tensors of ``file`` (amt-s.pth: a dict whose ``state_dict`` holds them), strictly; a file that
    does not fit (AMT-L or AMT-G, another network) is one line naming what differs."""
    from benchkit.core.safe_load import load_state_dict_file

    state = load_state_dict_file(file)
    model = AMTS()
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    reshaped = [k for k in want if k in state and getattr(state[k], "shape", None) != want[k].shape]
    if missing or unexpected or reshaped:
        parts = [f"{len(ks)} {what} (e.g. {ks[0]})" for ks, what in ((missing, "missing"), (unexpected, "unexpected"),
                                                                     (reshaped, "of another shape")) if ks]
        raise BenchkitError(f"{where}: not an AMT-S state dict ({', '.join(parts)}); use MCG-NKU/AMT's amt-s.pth, not "
                            "amt-l.pth or amt-g.pth")
    model.load_state_dict(state, strict=True)
    return model.float().eval()
