"""ViCLIP (OpenGVLab's video CLIP, InternVideo) as VBench 0.1.5 runs it, and OpenAI CLIP's BPE tokenizer.

VBench's temporal style and overall consistency score a clip with ViCLIP ViT-L/14 trained on InternVid-10M-FLT
(``ViClip-InternVid-10M-FLT.pth``). ViCLIP is no installable library: VBench vendors it
(``vbench/third_party/ViCLIP``: viclip.py, viclip_vision.py, viclip_text.py, simple_tokenizer.py), and importing
it pulls in decord, einops and a tokenizer that downloads its vocabulary when imported. This module is the part
VBench runs, transcribed with the same parameter names, so that the published checkpoint (a dict whose
``'model'`` holds the tensors) loads strictly:

- :class:`VisionTransformer` (viclip_vision.py:100-194): a Conv3d patch embedding (1 x 14 x 14), a class token
  and per-patch position embeddings shared by the frames, a temporal position embedding per frame, one
  transformer over every frame's patches (patch-major, frame-minor) behind the class token, the class token's
  output projected; VBench calls it in eval mode (no drop path, no token masking: ``encode_vision(test=True)``).
- the text tower (viclip_text.py ``CLIP_TEXT``:79-172): OpenAI CLIP's, with a 32-token context, causal mask, the
  end token's output (the largest id, ``argmax``) projected; open_clip's ``TextTransformer`` is that network with
  the same parameter names and gives the same bits (:func:`text_transformer`), so it is reused.
- :class:`ViCLIP` (viclip.py:16-224): the two, and the ``temp`` scalar the checkpoint holds.

The vision blocks are ``nn.MultiheadAttention`` on (length, batch, width) tensors, as ViCLIP's, so the numbers are
those of VBench's code, not merely close (transformers' CLIP text model, for one, differs in the last bits: 6e-7
on the test's weights, where open_clip's text tower and this vision tower give VBench's exactly).

The tokenizer is OpenAI CLIP's ``SimpleTokenizer`` (clip/simple_tokenizer.py, which VBench's ViCLIP copy and
``clip.tokenize`` both use), with the BPE merges read from the ``bpe_simple_vocab_16e6.txt.gz`` that open_clip
ships (its contents are OpenAI's file byte for byte; :data:`BPE_SHA256` is checked), so nothing is downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import math
from collections import OrderedDict
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchkit.core.errors import BenchkitError

# sha256 of the decompressed bpe_simple_vocab_16e6.txt (openai/CLIP clip/, open_clip, VBench's download: one file)
BPE_SHA256 = "67603cfda2e032ad77b5f8808af37789d590db664b26df8705d2bf8b3c553fc8"
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
HEAD_WIDTH = 64  # ViCLIP-L/14: 1024-wide vision with 16 heads, 768-wide text with 12 (viclip_vision.py:270, viclip_text.py:204-205)


# ---- OpenAI CLIP's BPE tokenizer (clip/simple_tokenizer.py, = vbench/third_party/ViCLIP/simple_tokenizer.py) ----

def bpe_vocab_file() -> Path:
    """open_clip's copy of OpenAI's ``bpe_simple_vocab_16e6.txt.gz``."""
    try:
        import open_clip.tokenizer
    except ImportError:
        raise BenchkitError("the CLIP tokenizer's vocabulary comes from open_clip: pip install open-clip-torch") from None
    return Path(open_clip.tokenizer.default_bpe())


@lru_cache
def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(pairwise(word))


def basic_clean(text: str) -> str:
    import ftfy

    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text: str) -> str:
    import regex as re

    return re.sub(r"\s+", " ", text).strip()


class SimpleTokenizer:
    """OpenAI CLIP's byte-level BPE (``SimpleTokenizer``): ``encode`` cleans (ftfy, HTML entities twice,
    whitespace, lower case) and splits with CLIP's pattern, then applies the merges."""

    def __init__(self, bpe_path: str | Path | None = None):
        import regex as re

        path = Path(bpe_path) if bpe_path is not None else bpe_vocab_file()
        try:
            with gzip.open(path) as f:
                raw = f.read()
        except OSError as exc:
            raise BenchkitError(f"CLIP BPE vocabulary {path}: cannot be read ({exc})") from None
        if hashlib.sha256(raw).hexdigest() != BPE_SHA256:
            raise BenchkitError(f"CLIP BPE vocabulary {path} is not OpenAI's bpe_simple_vocab_16e6.txt (sha256 differs); "
                                "reinstall open-clip-torch")
        merges = [tuple(m.split()) for m in raw.decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + [SOT, EOT]
        self.byte_encoder = bytes_to_unicode()
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {SOT: SOT, EOT: EOT}
        self.pat = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                              re.IGNORECASE)

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        import regex as re

        tokens: list[int] = []
        for token in re.findall(self.pat, whitespace_clean(basic_clean(text)).lower()):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            tokens.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return tokens


@lru_cache(maxsize=1)
def clip_tokenizer() -> SimpleTokenizer:
    return SimpleTokenizer()


def tokenize(texts: str | list[str], context_length: int = 77, truncate: bool = False) -> torch.Tensor:
    """``clip.tokenize`` (clip/clip.py) and ViCLIP's ``CLIP_TEXT.tokenize`` (viclip_text.py:122-157):
    start token, BPE, end token, zeros after; (n, context_length) int32. Longer than the context: cut with the
    last position set to the end token (``truncate``, as ViCLIP does), else one line (as ``clip.tokenize``'s
    default raises)."""
    tok = clip_tokenizer()
    texts = [texts] if isinstance(texts, str) else list(texts)
    sot, eot = tok.encoder[SOT], tok.encoder[EOT]
    result = torch.zeros(len(texts), context_length, dtype=torch.int)
    for i, text in enumerate(texts):
        tokens = [sot, *tok.encode(text), eot]
        if len(tokens) > context_length:
            if not truncate:
                raise BenchkitError(f"text {text[:60]!r} is {len(tokens)} CLIP tokens, over the context of {context_length} "
                                    "(clip.tokenize refuses it too)")
            tokens = tokens[:context_length]
            tokens[-1] = eot
        result[i, : len(tokens)] = torch.tensor(tokens)
    return result


# ---- the network (vbench/third_party/ViCLIP) -----------------------------------------------------------------

class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """viclip_vision.py:54-79 (dropout and drop path are off in eval)."""

    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d_model, d_model * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(d_model * 4, d_model))]))
        self.ln_2 = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class VisionTransformer(nn.Module):
    """viclip_vision.py ``VisionTransformer`` (:100-194) as ``encode_vision(test=True)`` runs it."""

    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int, heads: int, output_dim: int,
                 kernel_size: int = 1, num_frames: int = 8):
        super().__init__()
        self.conv1 = nn.Conv3d(3, width, (kernel_size, patch_size, patch_size), (kernel_size, patch_size, patch_size),
                               (0, 0, 0), bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, num_frames, width))
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, output_dim)."""
        x = self.conv1(x)
        b, c, t, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        cls_tokens = x[:b, :1, :]  # ViCLIP keeps the first b rows' class tokens (all alike)
        x = x[:, 1:]
        x = x.reshape(b, t, h * w, c).permute(0, 2, 1, 3).reshape(b * h * w, t, c)  # '(b t) n m -> (b n) t m'
        x = x + (self.temporal_positional_embedding.mean(1) if t == 1 else self.temporal_positional_embedding)
        x = x.reshape(b, h * w * t, c)  # '(b n) t m -> b (n t) m'
        x = self.ln_pre(torch.cat((cls_tokens, x), dim=1))
        x = self.transformer(x.permute(1, 0, 2))  # BND -> NBD
        return self.ln_post(x)[0] @ self.proj


def text_transformer(embed_dim: int, context_length: int, vocab_size: int, width: int, heads: int,
                     layers: int) -> nn.Module:
    """viclip_text.py ``CLIP_TEXT`` (:79-172) is OpenAI CLIP's text tower with a 32-token context: open_clip's
    ``TextTransformer`` with QuickGELU, argmax (end token) pooling and a bias-free projection holds the same tensors
    under the same names and computes the same bits (its float causal mask keeps PyTorch's fused attention path
    off, as ViCLIP's length-first blocks never take it; tests/test_vbench_text_dimensions.py compares them)."""
    from open_clip.model import QuickGELU as OpenClipQuickGELU
    from open_clip.transformer import TextTransformer

    return TextTransformer(context_length=context_length, vocab_size=vocab_size, width=width, heads=heads, layers=layers,
                           output_dim=embed_dim, act_layer=OpenClipQuickGELU, pool_type="argmax")


class ViCLIP(nn.Module):
    """viclip.py ``ViCLIP``: ``encode_vision`` on (B, T, 3, H, W) frames, ``encode_text`` on a string."""

    def __init__(self, vision: dict[str, int], text: dict[str, int]):
        super().__init__()
        self.config = {"vision": dict(vision), "text": dict(text)}
        self.vision_encoder = VisionTransformer(**vision)
        self.text_encoder = text_transformer(**text)
        self.temp = nn.Parameter(torch.ones([]) / 100.0)

    def encode_vision(self, frames: torch.Tensor) -> torch.Tensor:
        """viclip.py:114-136 with test=True: (B, T, C, H, W) -> (B, embed)."""
        return self.vision_encoder(frames.permute(0, 2, 1, 3, 4).contiguous())

    def encode_text(self, text: str | list[str]) -> torch.Tensor:
        """viclip.py:138-154: tokenised to the text tower's context (32, max_txt_l), cut to it when longer."""
        device = next(self.text_encoder.parameters()).device
        ids = tokenize(text, context_length=self.text_encoder.context_length, truncate=True).to(device)
        return self.text_encoder(ids)


def _layers(state: dict[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def viclip_config(state: dict[str, torch.Tensor]) -> tuple[dict[str, int], dict[str, int]]:
    """(vision, text) constructor arguments read from a ViCLIP state dict's tensor shapes (heads 64 wide)."""
    v, t = "vision_encoder.", "text_encoder."
    conv, pos, temporal, proj = (state[v + k] for k in ("conv1.weight", "positional_embedding",
                                                         "temporal_positional_embedding", "proj"))
    token, tpos, tproj = (state[t + k] for k in ("token_embedding.weight", "positional_embedding", "text_projection"))
    width, patch, grid = conv.shape[0], conv.shape[-1], math.isqrt(pos.shape[0] - 1)
    if conv.dim() != 5 or grid * grid != pos.shape[0] - 1 or width % HEAD_WIDTH or token.shape[1] % HEAD_WIDTH:
        raise ValueError(f"vision conv {tuple(conv.shape)}, {pos.shape[0] - 1} positions, text width {token.shape[1]}")
    vision = {"input_resolution": grid * patch, "patch_size": patch, "width": width,
              "layers": _layers(state, v + "transformer.resblocks."), "heads": width // HEAD_WIDTH,
              "output_dim": proj.shape[1], "kernel_size": conv.shape[2], "num_frames": temporal.shape[1]}
    text = {"embed_dim": tproj.shape[1], "context_length": tpos.shape[0], "vocab_size": token.shape[0],
            "width": token.shape[1], "heads": token.shape[1] // HEAD_WIDTH,
            "layers": _layers(state, t + "transformer.resblocks.")}
    return vision, text


def load_viclip(file: Path, device: torch.device, name: str = "viclip-internvid-10m-flt") -> ViCLIP:
    """ViCLIP from its checkpoint (``torch.load(file)['model']``, viclip.py:55-59), loaded strictly, float32, eval."""
    from benchkit.core.safe_load import read_state_dict

    where = f"weights '{name}' at {file}"
    checkpoint: Any = read_state_dict(file, what=f"weights '{name}'")
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise BenchkitError(f"{where}: not a ViCLIP checkpoint (a dict whose 'model' holds the tensors, as "
                            "ViClip-InternVid-10M-FLT.pth); see `benchkit weights`")
    try:
        vision, text = viclip_config(state)
        model = ViCLIP(vision, text)
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        raise BenchkitError(f"{where}: does not fit ViCLIP ({str(exc).splitlines()[0][:200]})") from None
    if vision["output_dim"] != text["embed_dim"]:
        raise BenchkitError(f"{where}: video embeddings are {vision['output_dim']}-d but text ones {text['embed_dim']}-d")
    return model.float().eval().to(device)
