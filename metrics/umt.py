"""UMT's video ViT (OpenGVLab/unmasked_teacher), the Kinetics-400 classifier VBench's human action runs.

VBench 0.1.5 vendors UMT (``vbench/third_party/umt``; UMT is MIT) and builds ``vit_large_patch16_224`` of
``third_party/umt/models/modeling_finetune.py`` (:347-355: width 1024, 24 blocks, 16 heads, MLP x4, qkv bias,
LayerNorm eps 1e-6) with ``all_frames=16, tubelet_size=1, use_mean_pooling=True`` and no layer scale
(human_action.py:46-62), then loads ``l16_ptk710_ftk710_ftk400_f16_res224.pth`` into it. UMT is no installable
library and importing VBench's copy pulls in decord, OpenCV and VBench's dataset code, so the part VBench runs
(eval mode: dropout and drop path are identities) is written here with the same parameter names, so that the
checkpoint loads strictly:

- ``patch_embed.proj``: a Conv3d of (tubelet x 16 x 16) patches (modeling_finetune.py:132-154), tokens in
  (frame, row, column) order;
- ``pos_embed``: one embedding per token, added to the patches (:303-308). The fine-tuned checkpoint holds it
  (at 16 frames UMT makes it a trained parameter, :198-202); a file without it gets what VBench's model holds
  then, UMT's sine table for 8 frames interpolated to 16 (:158-202, :244-255, ported in
  :func:`sinusoid_position_table`);
- ``blocks``: timm's BEiT ``Block``, whose attention is UMT's (a bias-free ``qkv`` with separate ``q_bias`` and
  ``v_bias``, a zero key bias, :55-98) under the same parameter names; with timm's fused attention switched off it
  runs UMT's operations in UMT's order (``q * scale``, ``q @ k^T``, softmax, ``@ v``, :89-95), so the numbers are
  VBench's, not merely close;
- ``fc_norm`` on the mean of the tokens, then ``head`` (``norm`` is an identity with mean pooling, :266-269,
  :316-326).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchkit.core.errors import BenchkitError

HEAD_WIDTH = 64  # ViT-L/16: 1024 wide, 16 heads (modeling_finetune.py:352)
FRAMES = 16  # all_frames=16, tubelet_size=1 (human_action.py:50-51)
IMAGE = 224  # PatchEmbed asserts the input size (modeling_finetune.py:151)
PATCH = 16
PRE_POSITIONS = 1568  # UMT's sine table: 8 frames of 14 x 14 patches (modeling_finetune.py:248-251)
PRE_FRAMES = 8


def sinusoid_position_table(n_position: int, d_hid: int, cur_frame: int,
                            pre_n_position: int = PRE_POSITIONS) -> torch.Tensor:
    """UMT's ``get_sinusoid_encoding_table`` (modeling_finetune.py:158-202) for a 224 px input (14 x 14 patches, so
    its spatial resampling, :171-184, is never taken): the sine/cosine table of ``pre_n_position`` positions (8
    frames), linearly resampled along time to ``cur_frame`` frames (:185-197). The angles are computed per
    element as UMT computes them (a scalar ``np.power`` per channel, float64), so the table is bit for bit UMT's."""
    if n_position // cur_frame * PRE_FRAMES != pre_n_position:
        raise ValueError(f"UMT's position table here is for 14 x 14 patches a frame, not {n_position // cur_frame}")
    denominators = np.array([np.power(10000, 2 * (j // 2) / d_hid) for j in range(d_hid)])
    table = np.arange(pre_n_position)[:, None] / denominators[None, :]
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    out = torch.tensor(table, dtype=torch.float).unsqueeze(0)
    if cur_frame != PRE_FRAMES:
        side = int((n_position // cur_frame) ** 0.5)
        out = out.reshape(-1, PRE_FRAMES, side, side, d_hid).permute(0, 2, 3, 4, 1).reshape(-1, d_hid, PRE_FRAMES)
        out = nn.functional.interpolate(out, size=cur_frame, mode="linear")
        out = out.reshape(1, side, side, d_hid, cur_frame).permute(0, 4, 1, 2, 3).flatten(1, 3)
    return out


class PatchEmbed(nn.Module):
    """UMT's ``PatchEmbed`` (modeling_finetune.py:132-154): (B, 3, T, H, W) -> (B, T*H*W/16^2, width)."""

    def __init__(self, width: int, tubelet: int, patch: int = PATCH):
        super().__init__()
        self.proj = nn.Conv3d(3, width, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (IMAGE, IMAGE):
            raise BenchkitError(f"UMT takes {IMAGE}x{IMAGE} frames, got {tuple(x.shape[-2:])}")
        return self.proj(x).flatten(2).transpose(1, 2)


class UMTVideoClassifier(nn.Module):
    """UMT's ``VisionTransformer`` (modeling_finetune.py:205-326) as VBench builds it: mean pooling, no layer
    scale, fixed-size input of ``frames`` frames at 224 px; logits out."""

    def __init__(self, width: int, depth: int, mlp_hidden: int, num_classes: int, frames: int = FRAMES,
                 tubelet: int = 1):
        from timm.models.beit import Block

        super().__init__()
        self.frames = frames
        self.patch_embed = PatchEmbed(width, tubelet)
        tokens = (IMAGE // PATCH) ** 2 * (frames // tubelet)
        self.pos_embed = nn.Parameter(sinusoid_position_table(tokens, width, frames // tubelet), requires_grad=False)
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList([Block(width, width // HEAD_WIDTH, qkv_bias=True, mlp_ratio=mlp_hidden / width,
                                           norm_layer=norm, init_values=None) for _ in range(depth)])
        for block in self.blocks:
            block.attn.fused_attn = False  # UMT's explicit softmax attention, the same operations in the same order
        self.fc_norm = norm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = x + self.pos_embed.expand(len(x), -1, -1).type_as(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.fc_norm(x.mean(1)))


def _tensors(checkpoint: Any) -> dict[str, torch.Tensor] | None:
    """The state dict in a UMT checkpoint: the file itself (VBench's copy, which it loads as is), or the ``'model'``
    or ``'module'`` entry of a UMT training checkpoint (UMT's ``--model_key model|module``)."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("patch_embed.proj.weight"), torch.Tensor):
        return checkpoint
    for key in ("model", "module"):
        inner = checkpoint.get(key) if isinstance(checkpoint, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("patch_embed.proj.weight"), torch.Tensor):
            return inner
    return None


def umt_config(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """The network's sizes, read from the tensors (64-wide heads, as UMT's ViTs)."""
    proj = state["patch_embed.proj.weight"]
    width, tubelet = int(proj.shape[0]), int(proj.shape[2])
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    if proj.dim() != 5 or tuple(proj.shape[1:]) != (3, tubelet, PATCH, PATCH) or width % HEAD_WIDTH or not blocks:
        raise ValueError(f"patch embedding {tuple(proj.shape)} and {len(blocks)} blocks are not a UMT ViT/{PATCH}")
    if blocks != set(range(len(blocks))):
        raise ValueError(f"blocks {sorted(blocks)} are not numbered 0..{len(blocks) - 1}")
    if tubelet != 1:  # VBench's model takes one frame a token (tubelet_size=1, human_action.py:51)
        raise ValueError(f"tubelets of {tubelet} frames, where VBench's model takes 1")
    return {"width": width, "depth": len(blocks), "mlp_hidden": int(state["blocks.0.mlp.fc1.weight"].shape[0]),
            "num_classes": int(state["head.weight"].shape[0]), "tubelet": tubelet}


def load_umt(file: Path, device: torch.device, name: str = "umt-l16-k400",
             num_classes: int | None = None) -> UMTVideoClassifier:
    """UMT from its checkpoint, loaded strictly, float32, eval. ``pos_embed`` may be missing (VBench's non-strict
    load then keeps its model's own table, which :class:`UMTVideoClassifier` holds too); nothing else may."""
    from benchkit.core.safe_load import read_state_dict

    where = f"weights '{name}' at {file}"
    state = _tensors(read_state_dict(file, what=f"weights '{name}'"))
    if state is None:
        raise BenchkitError(f"{where}: not a UMT video ViT checkpoint (no patch_embed.proj.weight, nor under 'model' or "
                            "'module'); use l16_ptk710_ftk710_ftk400_f16_res224.pth (see `benchkit weights`)")
    try:
        config = umt_config(state)
        model = UMTVideoClassifier(**config)
        if "pos_embed" not in state:
            state = {**state, "pos_embed": model.pos_embed.detach().clone()}
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        raise BenchkitError(f"{where}: does not fit UMT's ViT at {FRAMES} frames of {IMAGE} px "
                            f"({str(exc).splitlines()[0][:200]})") from None
    if num_classes is not None and config["num_classes"] != num_classes:
        raise BenchkitError(f"{where}: its head has {config['num_classes']} classes, not Kinetics-400's {num_classes}; "
                            "use the Kinetics-400 fine-tuned l16_ptk710_ftk710_ftk400_f16_res224.pth")
    return model.float().eval().to(device)
