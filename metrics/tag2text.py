"""Tag2Text's captioner (Huang et al. 2023, xinyu1205/recognize-anything) as VBench 0.1.5 runs it for its scene
dimension: ``vbench/third_party/tag2Text/tag2text.py`` ``Tag2Text_Caption.generate(image, tag_input=None)`` with
the ``tag2text_swin_14m.pth`` weights, under the transformers VBench pins (4.33.2).

What it does with a batch of 384 x 384 frames (tag2text.py:114-206):

1. a Swin-B image encoder (window 12), whose tokens get their mean prepended as a CLS token;
2. the tag head (query2label): 3429 learned label queries cross-attend to the image tokens through a 2-layer
   BERT whose self-attention is deleted (``mode='mlr'``), a per-class linear layer, sigmoid > 0.7: the frame's
   tags, in class order, joined with " | " (six classes are never reported);
3. a BERT tag encoder ([ENC] + the tag string, 40 tokens) cross-attending to the image tokens;
4. a BERT decoder cross-attending to the tag encoding, prompted with "[DEC] a picture of", beam search with 3
   beams, 10 to 30 tokens; the caption is the decoded text after "a picture of ".

Why a port and not the package or transformers' classes: VBench's ``med.py`` does not import with transformers 5
(it imports helpers transformers removed), and its results depend on transformers 4.33.2's ``generate``: the
length normalisation of finished beams counts the prompt tokens (later versions, transformers 5 among them, count
only the generated ones); med.py's ``prepare_inputs_for_generation`` takes the cache as ``past``, which 4.33 no
longer passes, so every step runs the whole sequence (kept here: the numbers depend on the shapes); and
4.33's ``generate`` repeats every model argument per beam, so the decoder's cross-attention input (already
repeated per beam by tag2text.py:167) is repeated twice and med.py:225-228 keeps its first rows: the caption of
frame ``i`` in a batch is decoded from the tag encoding of frame ``i // 3`` (kept here, as VBench computes it).
transformers' BERT has no cross-attention-only layer (``mode='mlr'``) and no key/value width other than the
hidden size. As in VBench's model (transformers' ``tie_weights``), the decoder's LM head and word embeddings are
one tensor. The Swin encoder is timm's (the same computation as tag2Text/swin_transformer.py, whose state dict
maps onto it by moving each stage's patch merging to the next stage), with timm's fused attention switched off
so that it computes attention as the original does.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchkit.core.errors import BenchkitError

IMAGE_SIZE = 384  # vbench.utils.init_submodules: image_size=384, vit='swin_b' (config_swinB_384.json)
WINDOW = 12  # config_swinB_384.json window_size
NUM_BEAMS, MAX_LENGTH, MIN_LENGTH = 3, 30, 10  # generate()'s defaults, as vbench/scene.py:25-27 calls it
THRESHOLD = 0.7  # Tag2Text_Caption(threshold=0.7)
PROMPT = "a picture of "  # Tag2Text_Caption(prompt='a picture of ')
TAG_TOKENS = 40  # the tag string's tokenizer call: padding='max_length', truncation=True, max_length=40
DELETE_TAG_INDEX = (127, 3351, 3265, 3338, 3355, 3359)  # tag2text.py:30
HIDDEN = 768  # tag2text.py: num_features = 768 and the decoder's encoder_width = 768 are hard-wired
MED_HEADS = 12  # med_config.json num_attention_heads (tag encoder and decoder): not in the state dict
Q2L_HEADS = 4  # q2l_config.json num_attention_heads (the tag head)
LAYER_NORM_EPS = 1e-12  # both BERT configs


# ---- BERT (vbench/third_party/tag2Text/med.py, BLIP's fork of transformers 4.15's BERT) -----------------------

class _SelfAttention(nn.Module):
    """med.py:146-281 ``BertSelfAttention`` (absolute positions, eval mode): keys and values from the layer input,
    or from the encoder states for cross-attention (``kv_width`` wide)."""

    def __init__(self, hidden: int, heads: int, kv_width: int):
        super().__init__()
        self.heads, self.head_size = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(kv_width, hidden)
        self.value = nn.Linear(kv_width, hidden)

    def split(self, x: torch.Tensor) -> torch.Tensor:  # transpose_for_scores
        return x.view(*x.shape[:-1], self.heads, self.head_size).permute(0, 2, 1, 3)

    def keys_values(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.key(states)), self.split(self.value(states))

    def forward(self, x, mask, kv=None):
        query = self.split(self.query(x))
        key, value = self.keys_values(x) if kv is None else kv
        if key.shape[0] > query.shape[0]:  # med.py:225-228: more encoder rows than queries: the first ones
            key, value = key[: query.shape[0]], value[: query.shape[0]]
            mask = None if mask is None else mask[: query.shape[0]]
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size)
        if mask is not None:
            scores = scores + mask
        context = torch.matmul(F.softmax(scores, dim=-1), value).permute(0, 2, 1, 3).contiguous()
        return context.view(*context.shape[:-2], self.heads * self.head_size)


class _AddNorm(nn.Module):
    """med.py:284-295 / 362-372 ``BertSelfOutput`` / ``BertOutput``: LayerNorm(dense(x) + residual)."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.dense = nn.Linear(width, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    """med.py:298-344 ``BertAttention``."""

    def __init__(self, hidden: int, heads: int, kv_width: int):
        super().__init__()
        self.self = _SelfAttention(hidden, heads, kv_width)
        self.output = _AddNorm(hidden, hidden)

    def forward(self, x, mask, kv=None):
        return self.output(self.self(x, mask, kv), x)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, width: int):
        super().__init__()
        self.dense = nn.Linear(hidden, width)

    def forward(self, x):  # med.py:347-359, hidden_act 'gelu' (transformers' GELUActivation: exact erf)
        return F.gelu(self.dense(x))


class _Layer(nn.Module):
    """med.py:376-461 ``BertLayer``: self-attention (absent in the tag head, which runs ``mode='mlr'``), then
    cross-attention to the encoder states, then the feed-forward block."""

    def __init__(self, hidden: int, heads: int, width: int, kv_width: int, self_attention: bool = True):
        super().__init__()
        if self_attention:
            self.attention = _Attention(hidden, heads, hidden)
        self.crossattention = _Attention(hidden, heads, kv_width)
        self.intermediate = _Intermediate(hidden, width)
        self.output = _AddNorm(width, hidden)

    def forward(self, x, mask, cross_kv):
        if hasattr(self, "attention"):
            x = self.attention(x, mask)
        # the cross-attention mask of every call here is all ones, which med.py adds as -0.0: left out
        x = self.crossattention(x, None, cross_kv)
        return self.output(self.intermediate(x), x)


class _Embeddings(nn.Module):
    """med.py:100-143 ``BertEmbeddings``: words + absolute positions, LayerNorm (no token types)."""

    def __init__(self, vocab: int, hidden: int, positions: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, ids):
        x = self.word_embeddings(ids)
        x = x + self.position_embeddings(torch.arange(ids.shape[1], device=ids.device)[None])
        return self.LayerNorm(x)


class _Bert(nn.Module):
    """med.py:648-884 ``BertModel`` without pooler, under its state-dict names (``embeddings``, ``encoder.layer``)."""

    def __init__(self, layers: int, hidden: int, heads: int, width: int, kv_width: int, vocab: int = 0,
                 positions: int = 0, self_attention: bool = True):
        super().__init__()
        if vocab:
            self.embeddings = _Embeddings(vocab, hidden, positions)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([_Layer(hidden, heads, width, kv_width, self_attention) for _ in range(layers)])

    def cross_keys_values(self, states: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's cross-attention keys and values of ``states`` (constant while a caption is decoded:
        med.py recomputes them at every step, with the same result)."""
        return [layer.crossattention.self.keys_values(states) for layer in self.encoder.layer]

    def forward(self, x, mask, cross_kv):
        for layer, kv in zip(self.encoder.layer, cross_kv):
            x = layer(x, mask, kv)
        return x


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """med.py:686-745 ``get_extended_attention_mask`` for an encoder: (1 - mask) * -10000 over the keys."""
    return (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0


def causal_mask(batch: int, length: int, device) -> torch.Tensor:
    """The same for the decoder (``is_decoder=True``, all tokens present): key j is seen from query i when j <= i."""
    ids = torch.arange(length, device=device)
    seen = ids[None, None, :].repeat(batch, length, 1) <= ids[None, :, None]
    return (1.0 - seen[:, None, :, :].to(torch.float32)) * -10000.0


class _Predictions(nn.Module):
    """med.py:578-623 ``BertOnlyMLMHead.predictions``: dense, gelu, LayerNorm, then the vocabulary projection,
    whose bias is also saved as ``predictions.bias``."""

    def __init__(self, hidden: int, vocab: int):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(hidden, hidden)
        self.transform.LayerNorm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.decoder = nn.Linear(hidden, vocab)
        self.bias = self.decoder.bias

    def forward(self, x):
        return self.decoder(self.transform.LayerNorm(F.gelu(self.transform.dense(x))))


# ---- the image encoder ----------------------------------------------------------------------------------------

class SwinEncoder(nn.Module):
    """tag2Text/swin_transformer.py ``SwinTransformer.forward`` (:569-583): the stages, the final norm, then the
    tokens' mean (``AdaptiveAvgPool1d(1)``) prepended. Its ``PatchEmbed`` (:442-457) moves the patch convolution
    to the CPU and runs it there whatever the device: so does this (on a GPU the numbers depend on it)."""

    def __init__(self, swin: nn.Module):
        super().__init__()
        self.swin = swin

    def forward(self, x):
        device, swin = x.device, self.swin
        proj = swin.patch_embed.proj
        if proj.weight.device.type != "cpu":
            proj.to("cpu")
        x = swin.patch_embed.norm(proj(x.to("cpu")).to(device).permute(0, 2, 3, 1))
        x = swin.norm(swin.layers(x))
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        cls = F.adaptive_avg_pool1d(x.transpose(1, 2), 1)
        return torch.cat([cls.transpose(1, 2), x], dim=1)


def swin_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original Swin layout (patch merging at the end of a stage) in timm's (at the start of the next); the
    relative position indices and attention masks, which both recompute, dropped (as VBench's loader does)."""
    out = {}
    for key, value in state.items():
        if key.endswith(("relative_position_index", "attn_mask")):
            continue
        out[re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", key)] = value
    return out


def timm_to_swin(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`swin_to_timm` (for writing a checkpoint in the original layout)."""
    return {re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", k): v
            for k, v in state.items()}


# ---- the tokenizer ---------------------------------------------------------------------------------------------

class Tag2TextTokenizer:
    """``init_tokenizer()`` (tag2text.py:329-334): bert-base-uncased from a local folder plus [DEC] (bos) and [ENC]
    after its vocabulary. Text is encoded by transformers' BertTokenizer; ids are decoded as transformers 4.33's
    slow tokenizer does (tokenization_utils.py:928-972: special tokens skipped, WordPiece joined, then
    ``clean_up_tokenization`` unless the folder's tokenizer_config.json turns it off)."""

    def __init__(self, folder: Path):
        from transformers import BertTokenizer

        self.tokenizer = BertTokenizer.from_pretrained(str(folder))
        vocab = [line.rstrip("\n") for line in (Path(folder) / "vocab.txt").read_text(encoding="utf-8").splitlines()]
        self.id_to_token = dict(enumerate(vocab))
        index = {token: i for i, token in self.id_to_token.items()}
        self.dec_id = index.get("[DEC]", len(vocab))
        self.enc_id = index.get("[ENC]", len(vocab) + (0 if "[DEC]" in index else 1))
        tok = self.tokenizer
        self.pad_id, self.sep_id = tok.pad_token_id, tok.sep_token_id
        self.special_ids = {tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id,
                            self.dec_id, self.enc_id}
        config = Path(folder) / "tokenizer_config.json"
        settings = json.loads(config.read_text()) if config.is_file() else {}
        self.clean_up = bool(settings.get("clean_up_tokenization_spaces", True))  # transformers 4.33's default: True
        self.size = max(len(vocab), self.dec_id + 1, self.enc_id + 1)

    def encode(self, texts: list[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        kwargs = {"padding": "max_length", "truncation": True, "max_length": max_length} if max_length else {}
        out = self.tokenizer(texts, return_tensors="pt", **kwargs)
        return out["input_ids"], out["attention_mask"]

    def decode(self, ids: list[int]) -> str:
        tokens = [self.id_to_token.get(int(i), self.tokenizer.unk_token) for i in ids if int(i) not in self.special_ids]
        text = " ".join(tokens).replace(" ##", "").strip()
        if self.clean_up:  # tokenization_utils_base.py:3598-3620
            for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                                  (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(before, after)
        return text


# ---- beam search (transformers 4.33.2 generation/utils.py:2823-3126 and beam_search.py:123-417, 910-978) -------

class _Hypotheses:
    """beam_search.py:910-978 ``BeamHypotheses`` with length_penalty=1.0, early_stopping=False."""

    def __init__(self, num_beams: int):
        self.num_beams, self.beams, self.worst_score = num_beams, [], 1e9

    def add(self, tokens: torch.Tensor, sum_logprobs: float) -> None:
        score = sum_logprobs / (tokens.shape[-1] ** 1.0)  # the prompt tokens count (4.33)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, tokens))
            if len(self.beams) > self.num_beams:
                ranked = sorted([(s, i) for i, (s, _) in enumerate(self.beams)])
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        if len(self.beams) < self.num_beams:
            return False
        return self.worst_score >= best_sum_logprobs / cur_len ** 1.0

    def best(self) -> torch.Tensor:
        return sorted(self.beams, key=lambda x: x[0]).pop()[1]


def beam_search(logits_of: Callable[[torch.Tensor], torch.Tensor], input_ids: torch.Tensor, eos: int, pad: int,
                num_beams: int = NUM_BEAMS, max_length: int = MAX_LENGTH, min_length: int = MIN_LENGTH) -> list[torch.Tensor]:
    """transformers 4.33.2 ``generate(input_ids, num_beams, max_length, min_length, eos_token_id, pad_token_id)``
    for a decoder whose ``prepare_inputs_for_generation`` ignores the cache (med.py:1012-1026 takes ``past``, which
    4.33 no longer passes): every step runs the whole sequence, and the last position's log-softmax, with [SEP]
    forbidden below ``min_length`` tokens (MinLengthLogitsProcessor), extends the beams. Returns the best
    hypothesis of each batch row (prompt included, without its end token)."""
    batch = input_ids.shape[0]
    input_ids = input_ids.repeat_interleave(num_beams, dim=0)
    device = input_ids.device
    hyps = [_Hypotheses(num_beams) for _ in range(batch)]
    done = [False] * batch
    beam_scores = torch.zeros((batch, num_beams), dtype=torch.float, device=device)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view((batch * num_beams,))
    while True:
        scores = F.log_softmax(logits_of(input_ids)[:, -1, :], dim=-1)
        if input_ids.shape[-1] < min_length:
            scores[:, eos] = -float("inf")
        scores = scores + beam_scores[:, None].expand_as(scores)
        vocab = scores.shape[-1]
        top_scores, top_tokens = torch.topk(scores.view(batch, num_beams * vocab), 2 * num_beams, dim=1, largest=True,
                                            sorted=True)
        top_beams = torch.div(top_tokens, vocab, rounding_mode="floor")
        top_tokens = top_tokens % vocab
        # BeamSearchScorer.process (beam_search.py:215-313)
        cur_len = input_ids.shape[-1] + 1
        next_scores = torch.zeros((batch, num_beams), dtype=top_scores.dtype, device=device)
        next_tokens = torch.zeros((batch, num_beams), dtype=top_tokens.dtype, device=device)
        next_rows = torch.zeros((batch, num_beams), dtype=top_beams.dtype, device=device)
        for b in range(batch):
            if done[b]:
                next_tokens[b, :] = pad
                continue
            k = 0
            for rank, (token, score, beam) in enumerate(zip(top_tokens[b], top_scores[b], top_beams[b])):
                row = b * num_beams + beam
                if token.item() == eos:
                    if rank >= num_beams:
                        continue
                    hyps[b].add(input_ids[row].clone(), score.item())
                else:
                    next_scores[b, k], next_tokens[b, k], next_rows[b, k] = score, token, row
                    k += 1
                if k == num_beams:
                    break
            done[b] = done[b] or hyps[b].is_done(top_scores[b].max().item(), cur_len)
        beam_scores = next_scores.view(-1)
        input_ids = torch.cat([input_ids[next_rows.view(-1), :], next_tokens.view(-1).unsqueeze(-1)], dim=-1)
        if all(done) or input_ids.shape[-1] >= max_length:
            break
    for b in range(batch):  # BeamSearchScorer.finalize (beam_search.py:315-417)
        if not done[b]:
            for j in range(num_beams):
                hyps[b].add(input_ids[b * num_beams + j], beam_scores[b * num_beams + j].item())
    return [h.best() for h in hyps]


# ---- the captioner ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tag2TextSizes:
    embed_dim: int
    depths: tuple[int, ...]
    swin_heads: tuple[int, ...]
    vocab: int
    positions: int
    decoder_layers: int
    encoder_layers: int
    tag_layers: int
    med_width: int
    q2l_width: int
    num_class: int

    @property
    def vision_width(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)


def tie_weights(shared: _Layer, own: _Layer) -> None:
    """``tie_encoder_decoder_weights(tag_encoder, vision_multi)`` (tag2text.py:226-295) for one layer: ``own``'s
    cross-attention and feed-forward Linear and LayerNorm modules become ``shared``'s (each keeps its head count)."""
    for part in ("crossattention", "intermediate", "output"):
        for name, module in getattr(shared, part).named_modules():
            if isinstance(module, (nn.Linear, nn.LayerNorm)):
                parent, _, leaf = f"{part}.{name}".rpartition(".")
                setattr(own.get_submodule(parent), leaf, module)


class Tag2TextCaptioner(nn.Module):
    """``Tag2Text_Caption`` (tag2text.py:32-206) under its state-dict names; the tag encoder's first layers share
    their cross-attention and feed-forward weights with the tag head's (``tie_encoder_decoder_weights``, :102)."""

    def __init__(self, sizes: Tag2TextSizes, tokenizer: Tag2TextTokenizer, tags: tuple[str, ...]):
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        swin = SwinTransformer(img_size=IMAGE_SIZE, patch_size=4, in_chans=3, num_classes=0, global_pool="",
                               embed_dim=sizes.embed_dim, depths=sizes.depths, num_heads=sizes.swin_heads,
                               window_size=WINDOW, mlp_ratio=4.0, qkv_bias=True, drop_path_rate=0.0)
        for module in swin.modules():  # the original's attention arithmetic, not scaled_dot_product_attention
            if hasattr(module, "fused_attn"):
                module.fused_attn = False
        self.sizes, self.tokenizer, self.tags = sizes, tokenizer, tags
        self.visual_encoder = SwinEncoder(swin)
        self.text_decoder = nn.Module()
        self.text_decoder.bert = _Bert(sizes.decoder_layers, HIDDEN, MED_HEADS, sizes.med_width, HIDDEN, sizes.vocab,
                                       sizes.positions)
        self.text_decoder.cls = nn.Module()
        self.text_decoder.cls.predictions = _Predictions(HIDDEN, sizes.vocab)
        # transformers' PreTrainedModel ties the LM head's weight to the word embeddings (tie_word_embeddings)
        self.text_decoder.cls.predictions.decoder.weight = self.text_decoder.bert.embeddings.word_embeddings.weight
        self.tag_encoder = _Bert(sizes.encoder_layers, HIDDEN, MED_HEADS, sizes.med_width, sizes.vision_width,
                                 sizes.vocab, sizes.positions)
        self.vision_multi = _Bert(sizes.tag_layers, HIDDEN, Q2L_HEADS, sizes.q2l_width, sizes.vision_width,
                                  self_attention=False)
        self.label_embed = nn.Embedding(sizes.num_class, HIDDEN)
        self.fc = nn.Module()  # GroupWiseLinear (tag2text.py:298-326)
        self.fc.W = nn.Parameter(torch.zeros(1, sizes.num_class, HIDDEN))
        self.fc.b = nn.Parameter(torch.zeros(1, sizes.num_class))
        for shared, own in zip(self.vision_multi.encoder.layer, self.tag_encoder.encoder.layer):
            tie_weights(shared, own)

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual_encoder(images)

    def tag_strings(self, image_embeds: torch.Tensor) -> list[str]:
        """tag2text.py:119-145: the label queries through the tag head, sigmoid > 0.7, six classes dropped."""
        labels = self.label_embed.weight.unsqueeze(0).repeat(image_embeds.shape[0], 1, 1)
        head = self.vision_multi.encoder.layer
        x = labels
        for layer in head:  # mode='mlr': cross-attention and feed-forward only (Q2L_HEADS heads)
            x = layer(x, None, layer.crossattention.self.keys_values(image_embeds))
        logits = (self.fc.W * x).sum(-1) + self.fc.b
        targets = torch.where(torch.sigmoid(logits) > THRESHOLD, torch.tensor(1.0, device=x.device),
                              torch.zeros(self.sizes.num_class, device=x.device))
        tag = targets.cpu().numpy()
        tag[:, list(DELETE_TAG_INDEX)] = 0
        return [" | ".join(self.tags[i] for i in np.argwhere(row == 1)[:, 0]) for row in tag]

    def tag_encoding(self, tags: list[str], image_embeds: torch.Tensor) -> torch.Tensor:
        """tag2text.py:147-170: each frame's row repeated per beam, [ENC] + tags (40 tokens) through the tag encoder
        (MED_HEADS heads; its first layers' cross-attention and feed-forward weights are the tag head's)."""
        image_embeds = image_embeds.repeat_interleave(NUM_BEAMS, dim=0)
        ids, mask = self.tokenizer.encode([t for t in tags for _ in range(NUM_BEAMS)], TAG_TOKENS)
        ids, mask = ids.to(image_embeds.device), mask.to(image_embeds.device)
        ids[:, 0] = self.tokenizer.enc_id
        encoder = self.tag_encoder
        return encoder(encoder.embeddings(ids), padding_mask(mask), encoder.cross_keys_values(image_embeds))

    def captions(self, images: torch.Tensor) -> tuple[list[str], list[str]]:
        """(captions, tags) of a batch of frames: ``generate(image, tag_input=None, return_tag_predict=True)``
        (VBench hands it a clip's 16 frames at once; the batch matters, see the module doc)."""
        with torch.no_grad():
            embeds = self.image_embeds(images)
            tags = self.tag_strings(embeds)
            return self.decode(self.tag_encoding(tags, embeds)), tags

    def decode(self, encoding: torch.Tensor, cross_states: torch.Tensor | None = None) -> list[str]:
        """tag2text.py:172-206: the captions from the tag encoding (one row per frame and beam). The decoder
        cross-attends to ``cross_states``, by default what VBench's generate hands it: the encoding repeated per
        beam once more, of which med.py keeps the first rows (see the module doc)."""
        if cross_states is None:
            cross_states = encoding.repeat_interleave(NUM_BEAMS, dim=0)
        kv = self.text_decoder.bert.cross_keys_values(cross_states)
        tok = self.tokenizer
        prompt, _ = tok.encode([PROMPT] * (encoding.shape[0] // NUM_BEAMS))
        prompt = prompt.to(encoding.device)
        prompt[:, 0] = tok.dec_id
        prompt = prompt[:, :-1]
        bert, head = self.text_decoder.bert, self.text_decoder.cls.predictions

        def logits_of(ids):
            return head(bert(bert.embeddings(ids), causal_mask(ids.shape[0], ids.shape[1], ids.device), kv))

        best = beam_search(logits_of, prompt, eos=tok.sep_id, pad=tok.pad_id)
        return [tok.decode(seq.tolist())[len(PROMPT):] for seq in best]


def _count(prefix: str, state: dict[str, torch.Tensor]) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({m.group(1) for k in state if (m := pattern.match(k))})


def sizes_from_state(state: dict[str, torch.Tensor], where: str) -> Tag2TextSizes:
    """The model's sizes from the tensors' shapes (head counts from the configs VBench ships, above)."""
    try:
        proj = state["visual_encoder.patch_embed.proj.weight"]
        stages = _count("visual_encoder.layers.", state)
        depths = tuple(_count(f"visual_encoder.layers.{i}.blocks.", state) for i in range(stages))
        tables = [state[f"visual_encoder.layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(stages)]
        words = state["text_decoder.bert.embeddings.word_embeddings.weight"]
        sizes = Tag2TextSizes(
            embed_dim=proj.shape[0], depths=depths, swin_heads=tuple(int(t.shape[1]) for t in tables),
            vocab=words.shape[0], positions=state["text_decoder.bert.embeddings.position_embeddings.weight"].shape[0],
            decoder_layers=_count("text_decoder.bert.encoder.layer.", state),
            encoder_layers=_count("tag_encoder.encoder.layer.", state),
            tag_layers=_count("vision_multi.encoder.layer.", state),
            med_width=state["text_decoder.bert.encoder.layer.0.intermediate.dense.weight"].shape[0],
            q2l_width=state["vision_multi.encoder.layer.0.intermediate.dense.weight"].shape[0],
            num_class=state["label_embed.weight"].shape[0])
    except (KeyError, IndexError) as exc:
        raise BenchkitError(f"{where}: not a Tag2Text checkpoint (no {str(exc)[:120]}); use tag2text_swin_14m.pth "
                            "(the recognize-anything release VBench's scene dimension downloads)") from None
    if tuple(proj.shape[1:]) != (3, 4, 4) or not all(depths) or words.shape[1] != HIDDEN:
        raise BenchkitError(f"{where}: not Tag2Text's Swin + BERT-base layout (patch {tuple(proj.shape)}, width "
                            f"{words.shape[1]})")
    if sizes.decoder_layers != sizes.encoder_layers:  # one med_config.json builds both
        raise BenchkitError(f"{where}: {sizes.encoder_layers} tag-encoder layers but {sizes.decoder_layers} decoder layers "
                            "(Tag2Text builds both from one config); the file is incomplete or not Tag2Text's")
    if any(t.shape[0] != (2 * WINDOW - 1) ** 2 for t in tables):
        raise BenchkitError(f"{where}: Swin windows of {[int((math.isqrt(t.shape[0]) + 1) // 2) for t in tables]}, not "
                            f"{WINDOW} (the 384-pixel Tag2Text VBench uses)")
    return sizes


def model_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under this module's names, the Swin in timm's layout. Where VBench's model holds one
    tensor under two names (the tag encoder's weights shared with the tag head, the decoder's LM head weight and
    word embeddings, its two bias names) the copy its loader writes last is taken: the tag head's, the LM head's."""
    out = {}
    for key, value in state.items():
        if key.startswith("visual_encoder."):
            continue
        out[key] = value
    swin = {k.removeprefix("visual_encoder."): v for k, v in state.items() if k.startswith("visual_encoder.")}
    out.update({"visual_encoder.swin." + k: v for k, v in swin_to_timm(swin).items()})
    tied = re.compile(r"^vision_multi\.encoder\.layer\.(\d+)\.(crossattention|intermediate|output)\.(.*)$")
    for key, value in list(out.items()):
        if (m := tied.match(key)):
            out[f"tag_encoder.encoder.layer.{m.group(1)}.{m.group(2)}.{m.group(3)}"] = value
    head = "text_decoder.cls.predictions."
    for key in (head + "bias", head + "decoder.bias"):  # one tensor: the one VBench's loader writes last wins
        if key in state:
            out[head + "bias"] = out[head + "decoder.bias"] = state[key]
    words = "text_decoder.bert.embeddings.word_embeddings.weight"
    tied = state.get(head + "decoder.weight", state.get(words))  # the LM head's copy is written after the embeddings'
    if tied is not None:
        out[words] = out[head + "decoder.weight"] = tied
    return out


def load_tag2text(checkpoint: Path, tokenizer_folder: Path, device: torch.device, tags: tuple[str, ...],
                  name: str = "tag2text-swin-14m") -> Tag2TextCaptioner:
    """The captioner from a ``tag2text_swin_14m.pth``-style file (``{'model': state dict}``, read as data)."""
    from benchkit.core.safe_load import read_state_dict

    where = f"weights '{name}' at {checkpoint}"
    data = read_state_dict(checkpoint, f"weights '{name}'")
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise BenchkitError(f"{where}: expected a dict with the state dict under 'model', got {type(data).__name__}")
    sizes = sizes_from_state(state, where)
    if sizes.num_class != len(tags):
        raise BenchkitError(f"{where}: {sizes.num_class} tag classes, but Tag2Text's tag list has {len(tags)}")
    try:
        tokenizer = Tag2TextTokenizer(tokenizer_folder)
    except (OSError, ValueError) as exc:
        raise BenchkitError(f"weights 'bert-base-uncased-tokenizer' at {tokenizer_folder}: not a BERT tokenizer folder "
                            f"({str(exc).splitlines()[0][:200]}); check it (see `benchkit weights`)") from None
    if tokenizer.size > sizes.vocab:
        raise BenchkitError(f"{where}: the tokenizer at {tokenizer_folder} has {tokenizer.size} tokens with [DEC] and "
                            f"[ENC], more than the checkpoint's {sizes.vocab}; use bert-base-uncased's")
    model = Tag2TextCaptioner(sizes, tokenizer, tags)
    expected = model.state_dict()
    given = model_state(state)
    missing = sorted(k for k in expected if k not in given)
    if missing:
        raise BenchkitError(f"{where}: not a complete Tag2Text checkpoint ({len(missing)} tensors missing, e.g. "
                            f"{missing[0]})")
    wrong = [k for k in expected if tuple(given[k].shape) != tuple(expected[k].shape)]
    if wrong:
        raise BenchkitError(f"{where}: {wrong[0]} is {tuple(given[wrong[0]].shape)}, the model expects "
                            f"{tuple(expected[wrong[0]].shape)}")
    model.load_state_dict({k: given[k] for k in expected}, strict=True)
    model = model.float().eval().to(device)
    model.visual_encoder.swin.patch_embed.proj.to("cpu")  # as VBench's PatchEmbed (SwinEncoder)
    return model


def checkpoint_state(model: Tag2TextCaptioner) -> dict[str, Any]:
    """``model``'s tensors in the release's layout (``{'model': state dict}``, the Swin in the original layout):
    what :func:`load_tag2text` reads (the tests write random checkpoints with it)."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("visual_encoder.swin."):
            continue
        state[key] = value.clone()
    swin = {k.removeprefix("visual_encoder.swin."): v for k, v in model.state_dict().items()
            if k.startswith("visual_encoder.swin.")}
    state.update({"visual_encoder." + k: v.clone() for k, v in timm_to_swin(swin).items()})
    return {"model": state}


# Tag2Text's 3429 tag names in class order (vbench/third_party/tag2Text/tag_class.py ``tra_array``, the
# recognize-anything tag list; duplicates included: the index is the class)
TAGS: tuple[str, ...] = tuple((
    "tennis|bear cub|observatory|bicycle|hillside|judge|watercolor illustration|granite|lobster|livery|stone|"
    "ceramic|ranch|cloth|smile|building|tattoo|cricketer|cheek|pear|source|winter|surface|spray|ceremony|magic|"
    "curve|container|fair|medicine|baby|tennis racquet|ornament|bamboo|duckling|song|safari|team presentation|"
    "daffodil|cross|toothpaste|shield|fashion model|capsule|map|creek|glass house|glass plate|siding|corner|"
    "water buffalo|bison|figure skater|diploma|tire|race|cable car|brain|gas stove|soap bubble|palette|snowboard|"
    "school child|trench coat|monk|fiber|kitchen window|sunglass|coffee|security|strawberry|penguin|tree root|"
    "loaf|engagement ring|lamb|vector cartoon illustration|sandwich|mountain village|shape|charm|fiction|knot|"
    "greenhouse|sushi|text|disaster|trophy|gang|strap|soccer game|cardinal|tee|turtle|water surface|grassland|"
    "dolphin|store|dirt|iceberg|pergola|farmer market|publicity portrait|tote bag|teenage girl|view mirror|"
    "session|commuter|dressing room|tricycle|christmas ball|headlight|police|armchair|chart|yacht|saw|printer|"
    "rock band|gingerbread house|tag|table lamp|hockey game|slope|font|wicker basket|jewelry|quarter|software|"
    "weapon|pin|worship|painter|goal|morning light|bike|baseball bat|elevator|cuisine|sausage|stunt|wrestler|"
    "statue|landing|pillar|willow tree|sea wave|chicken|peanut|muscle|bob|tv genre|bathroom window|radish|"
    "textile|pelican|marketplace|crest|elevation map|gift|parish|traffic light|campfire|fog|award winner|"
    "beach ball|mat|white house|plaster|moped|football team|solution|bicyclist|bit|playground|darkness|cake|"
    "maple leave|mold|cracker|blueberry|rubble|container ship|pedestrian bridge|snail|parrot|form|circuit|"
    "highlight|pickup truck|koala|rain|system|weather|raincoat|soccer team|windshield|thunderstorm|mike|"
    "bird house|bridge|grandfather|restroom|animation|wilderness|clown|banana|brown|braid|dining room|"
    "kindergarten|launch event|purple|school|stairwell|brooch|movie poster image|mountain river|shelf|wicket|"
    "headboard|buddha|flower field|dugout|cd|bald eagle|lagoon|seaweed|agriculture|emergency service|maple tree|"
    "parachute|continent|amusement park|remote|bun|tackle|hospital|garage door|birthday party|friendship|go|"
    "mausoleum|jeep|raccoon|step|ice hockey team|cigarette|lace dress|forest floor|mall|captain|milk|golf course|"
    "meal|picnic table|sail|volleyball|canal|terrace|computer desk|caravan|hotel|cheerleader|nurse|museum|marsh|"
    "fox|plateau|night|twin|letter logo|autumn tree|powder|convention|creature|lighthouse|shop window|jacket|"
    "stork|taxi|trade|blackboard|olive|road sign|resort|snowflake|cemetery|travel|evening dress|picnic|drink|"
    "winter morning|football player|snack|boxing glove|dinner party|airline|swing|port|wheelbarrow|bathroom sink|"
    "sweater|ambulance|gear|oil|wii controller|array|home office|car show|mixture|profession|tree frog|square|"
    "facility|coral reef|sea wall|pizza|exhibit|demolition|trout|ring|coffee shop|bracelet|bean|lip|fencing|"
    "landscape|sitting|package|metal|bust|king|hair|window seat|wildlife|trunk|greenery|stencil|fire hydrant|"
    "bridesmaid|plaza|alps|tower bridge|crop top|crossing|cinema|pedestrian crossing|family|shopping cart|"
    "stomach|church building|screen door|skater|soccer field|kettle|mussel|raindrop|candy cane|water lily|"
    "flower girl|desert|enclosure|christmas light|kitchen|caterpillar|plaid|bath|bush|mud|ballet|knee|adult|raft|"
    "sea view|cactus|office chair|overall|rim|scaffolding|pig|cover|poster page|sprinkle|chandelier|algae|"
    "traffic|surfboard|book|filming|flash|mansion|camouflage|trouser|ticket|weed|cab|trench|elephant|huddle|"
    "sphere|christmas decoration|city|launch|doll|christmas ornament|fabric|bikini|biplane|breakfast|"
    "neighbourhood|race track|foliage|avocado|school bus|footwear|highway|ocean view|art vector illustration|"
    "wall clock|curtain|teenager|kitchen area|robot|tusk|lounge chair|beam|paddle|camel|lid|world map|city view|"
    "newlywed|cargo ship|yellow|exhibition|bend|novel|wool|ontario|bread|campus|coastline|cutting board|booth|"
    "table top|carpet|beach chair|workout|street food|fun|costumer film designer|gadget|artist|fishing village|"
    "builder|violinist|iphone|spider web|traffic sign|ruin|rescue|clipboard|seal|film director|paw|nursery|"
    "intersection|tomato sauce|taste|paddy field|christmas tree|wave|stool|watering can|rug|daytime|"
    "subway station|craft|pine forest|black|planet|motif|christmas market|glass window|college|wheat|damage|"
    "rectangle|picture frame|chess|guest room|street corner|religion|seed|puzzle|freeway|beauty|ocean|watch|"
    "mother|garage|quote|dj|supporter|hip hop artist|muffin|eiffel tower|cash|firefighter|cauliflower|bunker|"
    "sled|manicure|shark|stall|jungle|family home|tour bus|chimney|touchdown|roundabout|coyote|street scene|tank|"
    "wedding dress|mantle|bedroom window|coconut|chapel|goat|living space|rock wall|polka dot|railway|mandala|"
    "mango|lesson|mountain landscape|team photo|bookshelf|meter|bulldog|evening sun|stick|card|pink|fish pond|"
    "paint|pill|cart|pea|van|album|football college game|mountain pass|doughnut|ski slope|match|official|shadow|"
    "organ|celebration|coin|log cabin|firework display|present|twig|chef|confetti|footpath|tour|ponytail|artwork|"
    "race car|club|season|hose|pencil|aircraft|rock formation|wardrobe|participant|politician|engineer|peace|"
    "filter|sailing boat|water bottle|service dog|poodle|loki|statesman|sleeping bag|outskirt|clock|factory|"
    "oak tree|physician|color|room|stairway|company|lady|graph|faucet|tablecloth|subway train|"
    "chocolate chip cookie|headquarters|screw|goggle|halloween|city street|swirl|cord|forward|bone|bedding|"
    "archway|wig|lobby|mask|attic|kitchen table|skylight|fire|exit|oil painting|passenger|meditation|salmon|"
    "fedora|rubber stamp|orange juice|arch|scientist|stroll|manhattan|float|baseball uniform|circle|church|"
    "decker bus|competitor|zoo|basketball team|tourist|daughter|silverware|ceiling fan|birth|vase|jack|mushroom|"
    "spiral|cage|limb|salad|ad|control|earth|party|bolt|tractor|barley|wedding photo|hawk|warehouse|"
    "vegetable garden|chocolate cake|cabbage|floor window|baby shower|magnifying glass|table|stethoscope|reading|"
    "mission|croissant|gift box|rocket|forest road|cooking|suite|hill country|motorcycle|baseball player|angle|"
    "drug|sport association|championship|family portrait|florist|softball|egret|office|plywood|jockey|mosque|"
    "brunch|beanie|office building|pattern|calendar|indoor|pepper|ledge|trail|fuel|laptop computer|tennis shoe|"
    "deck chair|guitarist|barn|surgery|cartoon illustration|nebula|railroad|mountain goat|goose|car door|cheer|"
    "liquid|hardwood floor|pathway|acorn|gull|airliner|couch|lake house|spaghetti|promenade|collection|garden|"
    "bank|robin|tennis ball|peony|gymnast|lavender|deck|test|riverside|rapper|domino|bride|mouse|basil|"
    "wedding couple|ocean wave|arm|kitchen floor|grove|family member|backyard|raspberry|forest fire|officer|"
    "hibiscus|canyon|composer|signature|olive oil|hibiscus flower|rose|vector icon|sunrise|horseback|"
    "motor scooter|office worker|tradition|ingredient|washing machine|lighting|bagel|sailboat|policeman|mare|"
    "graphic|halloween pumpkin|stock|pilot|education|team|body|horse|kimono|bazaar|bag|recording studio|parsley|"
    "entrance|denim|vet|horse farm|charcoal|architecture|glass vase|puppy|estuary|television show host|city bus|"
    "shoulder|beast|balance|golfer|roadside|denim jacket|stone wall|counter top|app icon|toast|head coach|ham|"
    "warrior|gem|refrigerator|snowman|construction worker|coal|website|morning fog|mustard|human|owl|puppy dog|"
    "piggy bank|vegetation|pirate|action film|marshmallow|thanksgiving|business|disease|signage|greeting|"
    "skate park|tile|mouth|spinach|vacation|leader|shrine|walker|science fiction film|bill|rabbit|motor boat|bar|"
    "radio|barge|tail|chainsaw|gallery|rainbow|pasta|padlock|web|pastry|ink|reef|school uniform|shawl|treasure|"
    "peach|dinner table|injury|harbor|witch|car dealership|litter|gesture|documentary|marriage|sea shell|priest|"
    "dome|kit|icon|seaside|bucket|entertainment|stable|hat|puddle|sock|shopper|technology|harbour|orbit|antler|"
    "tube|flag waving|cook|tight|commander|farmland|switch|hiker|wedding ceremony|award ceremony|champion|"
    "chopstick|farmhouse|performer|spike|accident|cruise ship|passenger train|attraction|entertainer|rear view|"
    "sidewalk|parade|racing|plane|ritual|peacock|pocket|plum|drop|carrot|floor|sunset|troop|architect|"
    "coffee table|dust|outline|leather|charity event|heat|whale|laundry|coconut tree|crosswalk|pony|ant|pipe|"
    "string|coat|angel|beef|church tower|dish|pitch|cupboard|thermometer|dirt field|fireworks|minute|cane|pajama|"
    "flower garden|autumn|trash can|dachshund|banana tree|tray|moose|roadway|carnival|antenna|pole|castle wall|"
    "ram|cattle|hay|cookie|swimmer|baseball team|strait|hedge|jet|fire pit|octopus|calf|cube|opera|cardboard box|"
    "tiara|kitchen sink|prairie|bowl|galaxy|straw hat|linen|ski resort|stitch|street lamp|motorist|icicle|stain|"
    "flora|drain|kitchen cabinet|decor|bouquet|pound|interior design|nail polish|figurine|tomb|disc|twist|blouse|"
    "ribbon|figure|burger|cork|soccer goalkeeper|train bridge|drinking water|dew|baker|storm cloud|tarmac|"
    "tv drama|sponge|magnet|sailor|entry|swan|exercise|sloth|jewel|scuba diver|bite|cat tree|tent|can|"
    "tennis match|ecosystem|picket fence|palm|train car|frying pan|rally|tablet pc|reindeer|image|wolf|chin|"
    "conservatory|flood water|cityscape|beach sand|car park|pavement|farm field|swimming|winter storm|stem|"
    "pillow|inning|gorilla|desk|avenue|fern|money|pearl|train station|skillet|nap|barber|library|freezer|label|"
    "rainforest|parking sign|mirror|wing|noodle|press room|sculpture|tablet|viewer|prayer|mini|mechanic|laugh|"
    "rice field|hand|mustache|mountain road|catwalk|conference|cape|installation|musician|stream|machine|speech|"
    "crocodile|soccer match|town square|passport|post box|point|stone building|motorway|mix|dentist|"
    "businessperson|happiness|boat|vineyard|treadmill|glass wall|water droplet|coffee mug|graduate|sunflower|"
    "parliament|shepherd|movie|wine|orchard|tulip|motherboard|cup|broom|spot|drawing|polo shirt|graduation|"
    "film producer|moonlight|glow|film format|t shirt|rock face|sword|clinic|festival day|meadow|staple|pupil|"
    "training ground|rider|flower|foal|wharf|foot bridge|shooting|top|mast|police car|robe|wedding bouquet|"
    "stop sign|birthday cake|glitter|butter|scooter|tundra|superhero|pocket watch|inscription|youngster|"
    "fruit tree|movie poster|engine|foundation|motorcyclist|take|woman|antelope|country artist|road trip|"
    "typewriter|tuxedo|brand|pine|bathroom|paradise|texture|balloon|dining table|home|computer screen|actor|clip|"
    "tv tower|panorama|summit|cat|plot|eagle|dancer|pup|studio shot|tear|bird bath|classroom|bookstore|city wall|"
    "tv programme|blade|easel|buttercream|sweet|designer|diamond|handshake|herb|corn field|seafront|concrete|"
    "street artist|gas|stamp|window display|paper|note|pint|quarry|research|fixture|manager|soil|leopard|"
    "board game|ladder|stop light|island|ramp|football match|icing|drill|currency|summer evening|topping|pyramid|"
    "pomegranate|cell|ivy|squad|scenery|computer|locomotive|surf|mascot|dune|path|duck|twilight|wire|bow tie|"
    "strike|cormorant|car wash|crane|market|philosopher|alarm clock|camera|birch|greeting card|plain|clay|donut|"
    "lock|moth|laboratory|fan|violin|jazz fusion artist|mountain biker|terrain|magazine|pickup|comedy film|"
    "smartphone|film|bed|microwave oven|tournament|lawn|car window|alligator|screen|jetty|shopping bag|"
    "landscape view|cabinetry|friendly match|thing|petal|shopping center|transport|ballet dancer|shoreline|"
    "princess|car seat|parking meter|green|vodka|band|rock|costume|warning sign|strip|plaque|wheelchair|headband|"
    "ginger|dice|media|hairdresser|press|living room|stove|player|cherry|workshop|carving|embroidery|doodle|"
    "adventure|rugby player|monument|brush|marker|loft|postcard|collage|ball|professor|dresser|gig|festival|"
    "blackbird|makeup artist|video camera|sticker|peak|wildflower|santa hat|rodeo|wedding photographer|guy|staff|"
    "waterfall|operation|defender|falcon|haze|individual|gentleman|greyhound|rocking chair|rice|garbage|platter|"
    "chocolate|splash|business suit|cheetah|valley|maze|trampoline|garland|slalom|unicorn|tree stump|painting|"
    "romance|fight|alcohol|ghost|fondant|spa|shutter|death|demonstration|cotton|pier|flea market|history|"
    "savannah|fist|aisle|crew|jug|pose|anchor|teapot|boat house|business team|tripod|bee|pebble|mattress|canvas|"
    "hallway|campaign|pod|lake district|article|white|sofa|honey|marathon|pancake|tourist attraction|"
    "wedding gown|battle|shelving|sea|sheet music|pie|yarn|construction site|flyer|tie|star|lettuce|"
    "martial artist|dart|straw|reflection|conference room|temperature|rugby|mosquito|physicist|rock climber|"
    "crash|backdrop|toilet seat|sand castle|water park|toy car|waste|luxury|hangar|rv|tree trunk|board|gold|"
    "project picture|cap|cottage|relief|attire|microscope|battery|roll|line|parking garage|crystal|broadcasting|"
    "brick wall|lab|flooring|meeting|3d cg rendering|desktop computer|cowboy|sailing ship|junction|hairstyle|"
    "homework|profile|model|flower pot|street light|salt lake|maple|space|blizzard|throw|zebras|brochure|"
    "constellation|beak|kilt|pond|blue sky|sneaker|sand dune|morning sun|almond|grill|curl|basketball girl game|"
    "chameleon|toilet bowl|prince|keyboard|queen|computer monitor|writing|crown|basilica|kiss|house|parking|"
    "football competition|shell|sport equipment|comedy|baboon|vendor|rise building|wrap|food truck|cat bed|"
    "rickshaw|flare|teal|nectar|eclipse|vehicle|steam locomotive|gorge|cow|christmas card|demonstrator|memorial|"
    "towel|jewellery|train|frisbee|baseball game|fur|afternoon sun|community|sparkler|bandage|firework|dollar|"
    "pasture|video|bus|tree house|seashore|field|hamburger|souvenir|hedgehog|worm|pine cone|osprey|dinosaur|"
    "vegetable|junk|poster|army|winger|bundle|stage|growth|wedding party|service|blanket|ruler|eye|credit card|"
    "castle|diner|hut|elk|hard rock artist|nun|dog breed|nest|drama film|number icon|water tank|giraffe|altar|"
    "pavilion|tv personality|suv|street vendor|street sign|ditch|debris|foam|takeoff|spice|mountain lake|tea|"
    "orchestra|spacecraft|counter|abbey|mountain|hydrangea|racer|orange tree|tide|cowboy hat|rapid|town|wild|"
    "herd|vein|driveway|jar|bark|illustration|horror film|corn|stroller|industry|mountain stream|gym|neckline|"
    "pan|client|spectator|eggplant|camper|fawn|hoodie|meat|lemonade|food market|slum|comic book character|"
    "flower market|love|palace|gun|heel|shopping street|shooting basketball guard|family photo|rooftop|"
    "laundry basket|airport runway|horn|face mask|flight|appetizer|violet|country lane|cement|instrument|"
    "tv actor|spark|celebrity|award|country house|standing|auction|date|engagement|puck|advertisement|chair|"
    "zebra|driftwood|bumblebee|maple leaf|bonnet|orange|water tower|door|singer|floor plan|discussion|theatre|"
    "pilgrim|mug|branch|window sill|baseball pitcher|bakery|lollipop|basketball player|toilet paper|chalkboard|"
    "cabin|sign|night sky|cannon|fishing net|submarine|suit|fur coat|wine bottle|folder|street art|"
    "suspension bridge|evening sky|billboard|postage stamp|newspaper|transportation|surgeon|light|park|horizon|"
    "road|sand bar|trumpet|lounge|cloud forest|birthday celebration|balcony|anime|beehive|umbrella|goldfish|"
    "baseball cap|waterhole|ceiling|carousel|backpack|plant pot|atmosphere|sunflower field|spire|vision|"
    "woodpecker|chip|pool table|lotus flower|cone|humpback whale|reservoir|hunt|piano|plate|dining area|luggage|"
    "skier|dance floor|crow|stair|overpass|opera house|bear|jazz artist|water|vessel|cast|yard|cathedral|"
    "basketball hoop|graveyard|sound|berry|onlooker|fauna|birch tree|retail|hill|skeleton|journalist|frost|"
    "basket|nail|dusk|trash|dawn|clover|hen|volcano|basketball coach|home decor|charge|haircut|sense|university|"
    "lizard|daisy|tablet computer|grass field|prison|metal artist|bathroom mirror|window frame|chest|flavor|"
    "pop country artist|market square|monkey|blog|deer|speech bubble|dog|independence day|girl|boy|tartan|"
    "furniture|appliance|office window|fish boat|sand box|tv sitcom|drama|sleigh|depression|paper towel|baseball|"
    "protestor|grape|wedding cake|invitation|accessory|pick|grandparent|racket|tea plantation|outdoors|egg|"
    "glass bowl|sun|organization|lion|panel|station|wallpaper|helicopter|salt|vanity|patio|lunch|"
    "street performer|mountain range|soup|bacon|power station|cantilever bridge|hummingbird|shirt|rope|hip|chalk|"
    "pendant|choir|tv|lichen|railway bridge|art gallery|bartender|wagon|baby elephant|accordion|horseshoe|"
    "building site|clutch|harvest|savanna|geranium|business woman|paddock|patch|beech tree|war|suburbs|"
    "hospital bed|motorcycle racer|moss|gravel|government agency|dollar bill|father|fjord|concert|nut|"
    "wedding photography|finish line|home plate|food|nose|thumb|village|dining room table|bumper|monster|"
    "blackberry|lime|conflict|gala|wallet|wrist|hug|mermaid|lava|lawyer|folk rock artist|arena|onion|toothbrush|"
    "fashion|perfume|flip|triangle|woodland|mail|grasshopper|studio|wood floor|den|racquet|cello|lemur|astronaut|"
    "glass table|blood|dvd|planter|silver|leash|master bedroom|forest|batter|shoe|engraving|opening|product|toe|"
    "cocktail|mallard duck|bike ride|oasis|wedding ring|cinematographer|holly|autograph|fence|ice cube|cove|"
    "pineapple|aurora|glass bead|produce|apartment building|cob|miniature|cockpit|flashlight|frog|sheep|groom|"
    "steel|watermelon|clip art|paper plate|ostrich|contour|mural|cub|paisley bandanna|winery|turn|handle|"
    "satellite|post|pork|child|asphalt|grocery store|vulture|trolley|nightclub|brick|trailer|compass|cereal|cafe|"
    "cartoon character|sugar|fiction book|glass floor|umpire|guitar|hamster|protester|airplane|garment|blazer|"
    "railway line|wedding|shoe box|parking lot|construction|graduation ceremony|tram|telescope|copper|pain|"
    "autumn forest|guest house|partner|crayon|dip|boot|corridor|computer keyboard|hockey player|chicken coop|"
    "bus station|gathering|ankle|bunk bed|wood table|football coach|monarch|pharmacy|legging|mannequin|female|"
    "train track|stack|canopy|design element|grandmother|symbol|beach hut|zucchini|bomb|businessman|skyscraper|"
    "tongue|case|sparkle|highland|ballroom|prom|estate|customer|archipelago|cheese|debate|carriage|bulldozer|"
    "pumpkin|sitting room|gas station|wedding reception|camp|dog bed|tower|property|river bed|pop latin artist|"
    "fridge|wine glass|coast|beer|tow truck|fire truck|mountain bike|thigh|heron|boat ride|gondola|turquoise|"
    "lake|llama|kitty|tin|waiting room|coffee cup|socialite|guard|tap|waterway|forehead|list|erosion|box|"
    "sea lion|pollen|dam|wasp|salon|tennis tournament|flower box|aquarium|rain cloud|clothing store|lead singer|"
    "cupcake|tortoise|lettering|sport facility|dance|dog house|nature|football|rooster|footballer|railway track|"
    "crowd|fishing rod|silhouette|wind turbine|sari|bus window|cloud|charity|medal|yoga|event|veil|"
    "fashion menswear milan week|news|knife|print|screen tv|walnut|fungus|ice cream|computer mouse|play|tribe|"
    "picture|video game|business card|music festival|rack|envelope|shower|dirt road|mine|oyster|"
    "monarch butterfly|dude|fruit salad|podium|fork|lace|test match|boulder|cricket player|staircase|peninsula|"
    "shopping|popcorn|oak|market stall|pine tree|mountaineer|student|closet|hood|handstand|centerpiece|insect|"
    "patient|makeover|tennis player|sheet|park bench|apple|organism|hook|turkey|tangerine|sibling|shopping mall|"
    "bird|scarf|smoothie|net|grass|napkin|ray|eyebrow|laptop keyboard|motorbike|woman hand|oven|book cover|"
    "easter egg|microwave|sand|snapshot|soccer ball|makeup|knight|bowling ball|shower curtain|flame|lightning|"
    "running|power plant|crib|cartoon|moat|fashion girl|wedding invitation|bottle|cliff|monastery|file photo|"
    "apartment|casino|cream|sweatshirt|storm|cruise|teddy bear|shovel|wind farm|writer|dock|professional|"
    "hotel room|job|monitor|donkey|pass|interview|duchess|mark|plank|beard|zombie|trio|channel|cricket team|"
    "windmill|vest|diagram|cable|winter scene|golden gate bridge|buffalo|studio portrait|pagoda|whiskey|"
    "freight train|kite|future|steam train|phone box|headset|wood|snowboarder|paper bag|slide|grapefruit|seating|"
    "morning|bronze sculpture|theatre actor|stump|jean|landmark|jam|waist|watercolor|hammock|light fixture|ice|"
    "basin|beverage|shelter|premiere|mound|ear|bronze|sunlight|street|energy|barn door|hike|fleet|claw|beach|"
    "pepperoni|bin|trainer|buffet|archive|toddler|referee|bay window|dove|production company|evening light|gate|"
    "farm|reed|fruit stand|explorer|snow storm|throw pillow|button|display case|bookcase|lead|lipstick|"
    "basketball court|cargo|ensemble|pope|clock tower|teen|speaker|rat|laptop|ski|mess|stadium|ferry boat|bunny|"
    "waterfront|downtown|sink|press conference|dinner|condiment|thread|audience|grid|car|plastic|people|barbecue|"
    "pigeon|urinal|seagull|volunteer|hockey|fir tree|pollution|trial|collar|area|meeting room|circus|yogurt|"
    "orangutan|viaduct|comedian|drone|scissor|pop rock artist|biscuit|panda|water feature|air balloon|"
    "remote control|watercolor painting|show|walk|post office|bike path|rap gangsta artist|microphone|crack|"
    "sunset sky|glass|tv show|cartoon style|stripe|foyer|signal|calligraphy|bulb|gardener|coffee bean|spider|"
    "tapestry|city skyline|necklace|kitten|traveler|veteran|frosting|fry|tennis court|tank top|butterfly house|"
    "mist|drummer|water level|scale|baseball glove|music video performer|champagne|camping|clothing|water drop|"
    "telephone box|pen|morning mist|fire engine|porch|opening ceremony|style|palm tree|fashion show|universe|"
    "scratch|axe|ottoman|explosion|rib|boutique|game|cucumber|fruit|stone bridge|nature reserve|track|"
    "train window|punch|telephone pole|velvet|sauce|moon|contrast|flamingo|bat|vending machine|ship|equestrian|"
    "shade|comforter|pallet|sparrow|wii|glaze|grocery|steeple|soccer player|contract|advertising|runner|"
    "chimpanzee|world|seat|project|chihuahua|bubble|willow|pedestal|soul hip hop artist|curb|drawer|leaf|banner|"
    "launch party|coach|government|snowball|toy|portrait|doctor|whiteboard|electronic|tiger|graffiti|column|"
    "nightstand|whistle|maxi dress|bench|wetsuit|bird feeder|football game|basketball|class|bathroom door|"
    "store window|text message|wreath|street view|binocular|pet|facade|drought|lemon|new year|night view|"
    "airplane window|specie|rule|jaw|wheat field|diet|pop artist|habitat|screenshot|scoreboard|shore|mane|quilt|"
    "ski lift|orchid|turban|christmas|airport|marina|glass door|glass bottle|restaurant|conductor|logo|sleep|"
    "tape|tomato|river bank|lilac|tooth|training|pottery|shop|steam engine|mason jar|base|procession|border|"
    "shoot|footprint|hotdog|bull|stocking|recreation|automobile model|design|country pop artist|river|retriever|"
    "department store|auditorium|sport car|supermarket|belt|cricket|window box|dress shirt|letter|residence|"
    "megaphone|pant|wildfire|bird nest|crab|swimsuit|candle|funeral|mill|national park|plant|cop|power line|"
    "perch|blue|finger|ferris wheel|globe|skateboard|helmet|movie theater|uniform|hammer|material|kid|well|"
    "butterfly|sideline|fashion fall show|planet earth|lift|male|sauna|gray|flour|sand sculpture|program|cabinet|"
    "infant|wheel|aircraft model|dough|garlic|skate|arrow|wrapping paper|ripple|lamp|iron|banknote|beaver|ferry|"
    "courtyard|bassist|countryside|steak|comfort|boxer|laundry room|campsite|brick building|golf|subway|"
    "headphone|fort|handbag|drum|flood|saddle|bass|labyrinth|needle|sun ray|app|menu|president|cardigan|"
    "dandelion|wetland|ice hockey player|number|city hall|fishing|portrait session|pug|key|art print|minister|"
    "hurdle|emergency|painting artist|flag pole|evening|purse|recipe|golf ball|coloring book|mountain peak|"
    "senior|holiday|bud|cousin|pantry|lap|skin|flag|tissue paper|ridge|wire fence|surfer|climber|photograph|"
    "sewing machine|cooler|actress|apple tree|cancer|starfish|automobile make|dumbbell|brace|tunnel|window|"
    "paint artist|composition|school student|condo|convertible|cushion|selfie|territory|guide|tree|court|shrimp|"
    "stone house|dress|eyelash|juice|broccoli|chain|tourism|mountain top|concept car|film premiere|light bulb|"
    "cafeteria|badge|flower bed|theater|root|racecar driver|basketball boy game|glove|skyline|wall|glacier|"
    "airport terminal|bug|trim|railway station|briefcase|flat|fountain|person|lane|asparagus|art|lantern|"
    "dishwasher|director|snake|lecture|game controller|tree branch|pub|bathing suit|queue|belly|poppy|bow|"
    "pitcher|ice cream cone|cave|candy|road bridge|host|traffic jam|earring|file|foot|watermark overlay stamp|"
    "mailbox|supercar|railing|bedroom|seafood|waffle|bronze statue|plan|flow|marble|basketball game|automobile|"
    "scene|cypress tree|soldier|skateboarder|glass building|cherry tree|pump|grain|wildebeest|loop|frame|bathtub|"
    "saxophone|diver|stalk|lily|bead|alley|flock|family room|manufacturing|pointer|worker|navy|potato|teacher|"
    "photography|dolly|boardwalk|water fountain|athlete|side dish|bay|ice hockey|phone|hero|face|gold medal|"
    "blind|swamp|researcher|swim|meatball|iguana|leather jacket|jellyfish|site|smoke|traffic signal|melon|beetle|"
    "calculator|skirt|plantation|sculptor|barrier|catcher|security guard|sketch|awning|steering wheel|"
    "mountain view|bus stop|pool|leg|spotlight|apron|mineral|inlet|sleeve|torch|emotion|march|police officer|"
    "performance|lamp post|fishing boat|summer|presentation|saucer|suitcase|supermodel|goalkeeper|shrub|"
    "rock artist|document|beach house|man|blue artist|cigar|railroad track|gown|mosaic|bungalow|alphabet|"
    "baseball field|shed|pedestrian|rail|soap|kitchen counter|dessert|dunk|blossom|conversation|fruit market|"
    "glass jar|military|beer bottle|photographer|tennis racket|competition|escalator|bell tower|stilt|ballerina|"
    "television|feather|fence post|rear|dahlia|red carpet|tub|hole|fortress|pack|telephone|cardboard|city park|"
    "platform|college student|arch bridge|wind|blender|bloom|ice rink|birthday|raven|fairy|embankment|hall|"
    "flower shop|suburb|barrel|biker|steam|dragonfly|formation|electricity|business people|symmetry|walkway|"
    "fisherman|gas mask|loch|youth|hanger|dot|fish|street market|animation film|crime fiction film|boar|emblem|"
    "halloween costume|kangaroo|couple|spoon|squirrel|neon sign|sky|office desk|beauty salon|breakwater|"
    "fashion look|toaster|author|news conference|outdoor|canoe|dragon|tool|shopping centre|ladybug|swimming pool|"
    "landscaping|ski pole|red|truck|fly|temple|level|sunday|railroad bridge|car mirror|lawn mower|flute|"
    "aircraft carrier|fashion menswear london week|sunshine|tile floor|skull|fossil|flower arrangement|diaper|"
    "sea turtle|cherry blossom|fireman|shack|lens|waiter|animal|basement|snow|autumn park|glass box|kick|head|"
    "anniversary|vine|back|paper lantern|fish tank|cellphone|silk|coral|notebook|photo|gazebo|ketchup|driver|"
    "farmer|bonfire|chestnut|photoshoot|football field|olive tree|pheasant|sandal|toilet|fireplace|music|deity|"
    "fish market|fig|bell|neck|grave|villa|cyclist|crate|grey|asphalt road|soccer|hostel|municipality|courthouse|"
    "roof|end table|pot|sedan|structure|folk artist|sport|sport team|protest|syringe|fashion designer|jersey|"
    "heart shape|kayak|stare|sit with|direct|read|photograph|spin|teach|laugh|carve|grow on|warm|watch|stretch|"
    "smell|decorate|shine|light|dance|send|park|chase|collect|lead|kiss|lead to|lick|smile|cheer|sit|point|block|"
    "rock|drop|cut|ski|wrap|lose|serve|provide|sleep|dress|embrace|burn|pack|stir|create|touch|wash|stick|reveal|"
    "shop|train|paint|groom|hunt|bloom|play|pay|brush|shoot|hold|picture|carry|sip|contain|turn|pour|pitch|give|"
    "add|blow|look in|show|walk|illuminate|kneel|cover|drag|post|present|fit|operate|fish|race|write|deliver|"
    "peel|push|run|sit around|buy|jump|walk on|attend|clean|sell|ride on|mount|host|dry|plant|sing|row|shake|"
    "perch|ride|fight|skateboard|live|call|surround|practice|play on|work on|step|relax|hit|fall in|flow|greet|"
    "launch|wear|hang on|drive|sit in|break|learn|fly|connect|display|locate|compete|go for|sail|lift|toast|help|"
    "run on|reflect|pose|scratch|frame|dribble|herd|enter|exit|place|inspect|build|pick|fill|grind|skate|offer|"
    "float|sit by|stand|release|rest|singe|climb|tie|mark|lay|stand around|capture|set|land|swinge|run in|kick|"
    "lean|head|sign|approach|swim|close|crash|control|fall|remove|repair|open|appear|travel|load|miss|check|surf|"
    "moor|smoke|drink|board|seat|feed|rise|sit on|swing|grow|strike|date|slide|share|graze|jump in|lie|extrude|"
    "roll|move|gather|eat|pull|run through|squeeze|lay on|draw|play with|wave|assemble|perform|march|score|"
    "attach|adjust|hang|hug|sleep on|throw|live in|talk|pet|work|run with|see|flip|catch|cook|receive|celebrate|"
    "look|classic|bridal|indoor|industrial|teenage|mini|grassy|aged|long|warm|light|handsome|happy|three|"
    "pregnant|circular|urban|silver|ceramic|3d|green|blonde|golden|dark|tropical|ripe|deep|fat|musical|giant|"
    "medical|medieval|bare|stunning|bold|geographical|huge|plastic|foggy|stormy|gothic|biological|empty|clear|"
    "antique|pink|steep|brown|striped|aerial|rainy|cool|flying|commercial|purple|trendy|blank|haired|dead|wooden|"
    "flat|high|beige|panoramic|angry|dozen|rural|solar|big|small|stained|thick|many|fresh|clean|strong|abstract|"
    "crowded|retro|dry|gorgeous|martial|modern|blue|cloudy|low|four|outdoor|single|much|beautiful|snowy|pretty|"
    "new|short|sunny|closed|rocky|red|two|double|male|gray|five|colorful|automotive|various|one|old|rusty|tall|"
    "wild|narrow|natural|several|frozen|textured|lush|young|hot|mixed|white|float|quiet|round|bright|religious|"
    "female|historical|shiny|traditional|tourist|yellow|bald|coastal|lovely|little|broken|romantic|wide|royal|"
    "rich|open|cute|ancient|cold|political|elderly|gold|full|rustic|metallic|floral|sad|wet|fancy|senior|tiny|"
    "stylish|large|frosty|orange|transparent|electronic|shallow|scared|armed|dirty|historic|black|few|windy|some|"
    "square|ornamental|sandy|thin"
).split("|"))
