"""Tiny random-initialised real architectures, saved in the real on-disk formats, for the metric
parity tests (no weights can be downloaded here).

- the FID Inception: torchvision's Inception-v3 topology, random weights, scripted with the
  NVlabs TorchScript interface clean-fid calls (``.layers`` on normalised 299x299 input, and
  ``forward(x, return_features=True)``), saved as ``inception-2015-12-05.pt``;
- open_clip models from a custom config (a folder with ``open_clip_config.json`` and
  ``open_clip_model.safetensors``, as on the Hub);
- transformers ``CLIPModel`` folders with a real CLIP BPE tokenizer built from open_clip's vocab;
- torchvision AlexNet / VGG16 state dicts under torchvision's file names.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class _ScriptedInception(nn.Module):
    def __init__(self):
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=False, init_weights=True)
        self.layers = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1, net.Conv2d_3b_1x1,
            net.Conv2d_4a_3x3, net.maxpool2, net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b,
            net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128)


def save_random_inception(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = _ScriptedInception()
    # Random conv weights blow activations up by ~1e10 over 94 layers; calibrating the batch-norm
    # statistics on two small noise images (cumulative average) keeps every layer's output near unit
    # scale; 139 px is enough for every Inception block and 4.6x cheaper than 299.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        model.layers(torch.randn(2, 3, 139, 139))
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "inception-2015-12-05.pt"
    torch.jit.script(model).save(str(path))
    return path


TINY_OPEN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def save_tiny_open_clip(folder: Path, seed: int = 0, name: str = "tiny-clip") -> Path:
    """A folder open_clip loads with ``local-dir:`` (the Hub layout of laion/CLIP-ViT-g-14-...)."""
    import open_clip
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": TINY_OPEN_CLIP,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                           "interpolation": "bicubic", "resize_mode": "shortest"},
    }))
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_OPEN_CLIP)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def clip_bpe_files(folder: Path) -> None:
    """vocab.json and merges.txt of the real CLIP BPE, derived from open_clip's bundled merges
    exactly as ``open_clip.tokenizer.SimpleTokenizer`` builds its encoder."""
    import open_clip.tokenizer as oct

    merges = gzip.open(oct.default_bpe()).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(oct.bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")


def save_clip_processor(folder: Path, size: int = 224) -> Path:
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    clip_bpe_files(folder)
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")
    image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    CLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def save_tiny_hf_clip(folder: Path, seed: int = 0, with_processor: bool = True) -> Path:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "eos_token_id": 49407,
                     "bos_token_id": 49406, "pad_token_id": 49407},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 32},
        projection_dim=16, logit_scale_init_value=3.0,
    )
    CLIPModel(config).eval().save_pretrained(folder)
    if with_processor:
        save_clip_processor(folder)
    return folder


def save_torchvision_backbone(folder: Path, net: str, seed: int = 0, published_name: bool = False) -> Path:
    """Random AlexNet / VGG16 state dicts (under torchvision's file name only when asked: that
    name carries a sha256 prefix these random weights do not have)."""
    from torchvision.models import alexnet
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(seed)
    if net == "alex":
        state, name = alexnet(weights=None).state_dict(), "alexnet-owt-7be5be79.pth"
    else:  # only the conv trunk LPIPS uses: VGG16's 120M-parameter classifier takes seconds to initialise
        state, name = {f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, "vgg16-397923af.pth"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name if published_name else f"random-{net}.pth")
    torch.save(state, path)
    return path


# --- MPS: the Kwai-Kolors/MPS model classes as its repo defines them (trainer/models/clip_model.py and
# cross_modeling.py), transcribed for the tests: module paths, attribute names and the forward math follow
# the reference so a tiny model pickles with torch.save(model) exactly as MPS_overall_checkpoint.pth was.
# benchkit never imports these: metrics/mps.py reads the pickle with stubs and rebuilds its own networks.


def _mps_reference_classes():
    import types

    from torch import einsum
    from transformers import CLIPModel as HFCLIPModel

    class LayerNorm(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))
            self.register_buffer("bias", torch.zeros(dim))

        def forward(self, x):
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias)

    class Residual(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x, *args, **kwargs):
            return self.fn(x, *args, **kwargs) + x

    class RotaryEmbedding(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)))

        def forward(self, max_seq_len, *, device):
            seq = torch.arange(max_seq_len, device=device, dtype=self.inv_freq.dtype)
            freqs = einsum("i , j -> i j", seq, self.inv_freq)
            return torch.cat((freqs, freqs), dim=-1)

    def rotate_half(x):
        x = x.reshape(*x.shape[:-1], 2, x.shape[-1] // 2)  # "... (j d) -> ... j d", j=2
        x1, x2 = x.unbind(dim=-2)
        return torch.cat((-x2, x1), dim=-1)

    def apply_rotary_pos_emb(pos, t):
        return (t * pos.cos()) + (rotate_half(t) * pos.sin())

    class SwiGLU(nn.Module):
        def forward(self, x):
            x, gate = x.chunk(2, dim=-1)
            return F.silu(gate) * x

    class ParallelTransformerBlock(nn.Module):
        def __init__(self, dim, dim_head=64, heads=8, ff_mult=4):
            super().__init__()
            self.norm = LayerNorm(dim)
            attn_inner_dim, ff_inner_dim = dim_head * heads, dim * ff_mult
            self.fused_dims = (attn_inner_dim, dim_head, dim_head, (ff_inner_dim * 2))
            self.heads = heads
            self.scale = dim_head ** -0.5
            self.rotary_emb = RotaryEmbedding(dim_head)
            self.fused_attn_ff_proj = nn.Linear(dim, sum(self.fused_dims), bias=False)
            self.attn_out = nn.Linear(attn_inner_dim, dim, bias=False)
            self.ff_out = nn.Sequential(SwiGLU(), nn.Linear(ff_inner_dim, dim, bias=False))
            self.register_buffer("pos_emb", None, persistent=False)

        def forward(self, x, attn_mask=None):
            n, h = x.shape[1], self.heads
            x = self.norm(x)
            q, k, v, ff = self.fused_attn_ff_proj(x).split(self.fused_dims, dim=-1)
            b = q.shape[0]
            q = q.reshape(b, n, h, -1).permute(0, 2, 1, 3)  # "b n (h d) -> b h n d"
            positions = self.rotary_emb(n, device=x.device)
            q, k = map(lambda t: apply_rotary_pos_emb(positions, t), (q, k))
            q = q * self.scale
            sim = einsum("b h i d, b j d -> b h i j", q, k)
            sim = sim - sim.amax(dim=-1, keepdim=True).detach()
            attn = sim.softmax(dim=-1)
            out = einsum("b h i j, b j d -> b h i d", attn, v)
            out = out.permute(0, 2, 1, 3).reshape(b, n, -1)  # "b h n d -> b n (h d)"
            return self.attn_out(out) + self.ff_out(ff)

    class CrossAttention(nn.Module):
        def __init__(self, dim, *, context_dim=None, dim_head=64, heads=12, parallel_ff=False, ff_mult=4,
                     norm_context=False):
            super().__init__()
            self.heads = heads
            self.scale = dim_head ** -0.5
            inner_dim = heads * dim_head
            context_dim = context_dim or dim
            self.norm = LayerNorm(dim)
            self.context_norm = LayerNorm(context_dim) if norm_context else nn.Identity()
            self.to_q = nn.Linear(dim, inner_dim, bias=False)
            self.to_kv = nn.Linear(context_dim, dim_head * 2, bias=False)
            self.to_out = nn.Linear(inner_dim, dim, bias=False)
            ff_inner_dim = ff_mult * dim
            self.ff = nn.Sequential(nn.Linear(dim, ff_inner_dim * 2, bias=False), SwiGLU(),
                                    nn.Linear(ff_inner_dim, dim, bias=False)) if parallel_ff else None

        def forward(self, x, context, mask):
            x = self.norm(x)
            context = self.context_norm(context)
            q = self.to_q(x)
            b, n = q.shape[:2]
            q = q.reshape(b, n, self.heads, -1).permute(0, 2, 1, 3)
            q = q * self.scale
            k, v = self.to_kv(context).chunk(2, dim=-1)
            sim = einsum("b h i d, b j d -> b h i j", q, k)
            mask = mask.unsqueeze(1).repeat(1, self.heads, 1, 1)
            sim = sim + mask
            sim = sim - sim.amax(dim=-1, keepdim=True)
            attn = sim.softmax(dim=-1)
            out = einsum("b h i j, b j d -> b h i d", attn, v)
            out = out.permute(0, 2, 1, 3).reshape(b, n, -1)
            out = self.to_out(out)
            if self.ff is not None:
                out = out + self.ff(x)
            return out

    class Cross_model(nn.Module):  # noqa: N801 (the reference's name: the pickle names it)
        def __init__(self, dim=512, layer_num=4, dim_head=64, heads=8, ff_mult=4):
            super().__init__()
            self.layers = nn.ModuleList([])
            for _ in range(layer_num):
                self.layers.append(nn.ModuleList([
                    Residual(CrossAttention(dim=dim, dim_head=dim_head, heads=heads, parallel_ff=True, ff_mult=ff_mult)),
                    Residual(ParallelTransformerBlock(dim=dim, dim_head=dim_head, heads=heads, ff_mult=ff_mult)),
                ]))

        def forward(self, query_tokens, context_tokens, mask):
            for cross_attn, self_attn_ff in self.layers:
                query_tokens = cross_attn(query_tokens, context_tokens, mask)
                query_tokens = self_attn_ff(query_tokens)
            return query_tokens

    class XCLIPModel(HFCLIPModel):
        def get_text_features(self, input_ids=None, attention_mask=None, position_ids=None):
            text_outputs = self.text_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
            return self.text_projection(text_outputs[0]), self.text_projection(text_outputs[1])

        def get_image_features(self, pixel_values=None):
            return self.visual_projection(self.vision_model(pixel_values=pixel_values)[0])

    class CLIPModel(nn.Module):
        def __init__(self, clip, cross):  # the reference builds these from a Hub name; tests pass tiny ones
            super().__init__()
            self.model = clip
            self.cross_model = cross

        @property
        def logit_scale(self):
            return self.model.logit_scale

    cross_modeling = types.ModuleType("trainer.models.cross_modeling")
    clip_model = types.ModuleType("trainer.models.clip_model")
    for mod, classes in ((cross_modeling, (LayerNorm, Residual, RotaryEmbedding, SwiGLU, ParallelTransformerBlock,
                                           CrossAttention, Cross_model)), (clip_model, (XCLIPModel, CLIPModel))):
        for cls in classes:
            cls.__module__, cls.__qualname__ = mod.__name__, cls.__name__
            setattr(mod, cls.__name__, cls)
    return {"trainer": types.ModuleType("trainer"), "trainer.models": types.ModuleType("trainer.models"),
            "trainer.models.cross_modeling": cross_modeling, "trainer.models.clip_model": clip_model}


def save_tiny_mps(path: Path, seed: int = 0, half: bool = True):
    """A tiny MPS model (CLIP as save_tiny_hf_clip's, Cross_model 2 layers) pickled whole with torch.save(model),
    as MPS_overall_checkpoint.pth is (fp16, like the GPU checkpoint). Returns the float32 model for reference use."""
    import sys

    from transformers import CLIPConfig

    modules = _mps_reference_classes()
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "eos_token_id": 49407,
                     "bos_token_id": 49406, "pad_token_id": 49407, "hidden_act": "gelu"},
        vision_config={"hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 32, "hidden_act": "gelu"},
        projection_dim=32, logit_scale_init_value=2.0,
    )
    clip = modules["trainer.models.clip_model"].XCLIPModel(config)
    cross = modules["trainer.models.cross_modeling"].Cross_model(dim=32, layer_num=2, dim_head=8, heads=4, ff_mult=2)
    for p in cross.parameters():  # random init small enough that the stack stays well conditioned
        nn.init.normal_(p, std=0.2) if p.dim() > 1 else nn.init.normal_(p, mean=1.0, std=0.1)
    model = modules["trainer.models.clip_model"].CLIPModel(clip, cross).eval()
    if half:
        model = model.half()
    saved = dict(sys.modules)
    sys.modules.update(modules)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model, path)
    finally:  # the classes stay unimportable, as on a machine without the MPS repo
        for name in modules:
            if name in saved:
                sys.modules[name] = saved[name]
            else:
                sys.modules.pop(name, None)
    return model.float()


def save_open_clip_checkpoint(folder: Path, file: str, seed: int) -> Path:
    """An HPS-style checkpoint for open_clip, with a config that makes its architecture tiny."""
    import open_clip

    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_OPEN_CLIP}))
    torch.manual_seed(seed)
    torch.save({"state_dict": open_clip.CLIP(**TINY_OPEN_CLIP).state_dict()}, folder / file)
    return folder


def save_every_metric_weight(folder: Path) -> dict[str, Path]:
    """Tiny random weights for every real image metric, by weight-registry name (for --weights); GenEval's
    detector is tests/test_geneval.py's (a cut-down Mask R-CNN its tests build in place of the real one)."""
    weights = {
        "fid-inception": save_random_inception(folder / "inception"),
        "clip-vit-g-14-laion2b-s12b-b42k": save_tiny_open_clip(folder / "clip-g", seed=1),
        # a 768-d projection, as the real ViT-L/14 has: the aesthetic head reads it (clip-score-l14 shares it)
        "clip-vit-large-patch14": save_tiny_hf_clip_l14(folder / "clip-l14", seed=2),
        "pickscore-v1": save_tiny_hf_clip(folder / "pickscore", seed=3, with_processor=False),
        "clip-vit-h-14-processor": save_clip_processor(folder / "processor"),
        "hpsv2.1": save_open_clip_checkpoint(folder / "hps21", "HPS_v2.1_compressed.pt", 4),
        "hpsv2.0": save_open_clip_checkpoint(folder / "hps20", "HPS_v2_compressed.pt", 5),
        "lpips-alexnet": save_torchvision_backbone(folder / "alex", "alex"),
        "lpips-vgg16": save_torchvision_backbone(folder / "vgg", "vgg"),
        "laion-aesthetic-v2": save_aesthetic_head(folder / "aesthetic" / "sac+logos+ava1-l14-linearMSE.pth", seed=7),
        "imagereward-v1.0": save_tiny_image_reward(folder / "imagereward", seed=8),
        "bert-base-uncased-tokenizer": save_bert_tokenizer(folder / "bert-tokenizer"),
        "dinov2-large": save_tiny_dinov2(folder / "dinov2", seed=9),
        "clip-vit-large-patch14-336": save_tiny_clip_336(folder / "clip-336", seed=10),
    }
    save_tiny_mps(folder / "MPS_overall_checkpoint.pth", seed=6)
    weights["mps"] = folder / "MPS_overall_checkpoint.pth"
    return weights


# --- ImageReward and the LAION aesthetic predictor (tests/test_metric_image_reward.py, tests/test_metric_aesthetic.py)

BERT_WORDS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "an", "the", "of", "at", "in", "on", "with", "and",
              "two", "cat", "dog", "##s", "red", "cube", "light", "##house", "water", "##color", "dusk", "photo", "man",
              "street", "table", "sitting", "standing", "next", "to", ",", ".")

# ImageReward's med_config.json with the sizes cut down (2 layers, small FFN and vocabulary); hidden_size stays
# 768 because the package's MLP head is hard-wired to 768 inputs. vocab_size counts BLIP's [DEC] and [ENC].
TINY_MED_CONFIG = {
    "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 64, "layer_norm_eps": 1e-12,
    "max_position_embeddings": 40, "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 2,
    "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": len(BERT_WORDS) + 2, "encoder_width": 768,
    "add_cross_attention": True,
}
TINY_BLIP_VIT = {"embed_dim": 128, "depth": 2, "num_heads": 2, "patch_size": 16}  # 64-wide heads, as BLIP's ViT-L


def save_bert_tokenizer(folder: Path) -> Path:
    """A bert-base-uncased-shaped tokenizer folder (vocab.txt, tokenizer_config.json) with a tiny WordPiece
    vocabulary: BERT's special tokens, [PAD] at 0."""
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BERT_WORDS) + "\n")
    BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(str(folder))
    return folder


def image_reward_state(seed: int, med: dict | None = None, vit: dict | None = None) -> dict[str, torch.Tensor]:
    """Random tensors under ImageReward.pt's names and shapes: ImageReward.blip (BLIP_Pretrain: its timm-style
    VisionTransformer, med's BertModel without pooler, the ITC projections) and ImageReward.mlp. Written from the
    package's module definitions; the parity test loads it strictly into the package's own model."""
    med, vit = med or TINY_MED_CONFIG, vit or TINY_BLIP_VIT
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def linear(name, out_f, in_f, std=None):  # default std: pre-activations of order 1, so GELU's form matters
        std = in_f ** -0.5 if std is None else std
        state[f"{name}.weight"] = torch.randn(out_f, in_f, generator=g) * std
        state[f"{name}.bias"] = torch.randn(out_f, generator=g) * std

    def norm(name, dim):
        state[f"{name}.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
        state[f"{name}.bias"] = 0.05 * torch.randn(dim, generator=g)

    d, p, hid = vit["embed_dim"], vit["patch_size"], med["hidden_size"]
    v = "blip.visual_encoder."
    state[v + "cls_token"] = torch.randn(1, 1, d, generator=g) * 0.02
    state[v + "pos_embed"] = torch.randn(1, (224 // p) ** 2 + 1, d, generator=g) * 0.02
    state[v + "patch_embed.proj.weight"] = torch.randn(d, 3, p, p, generator=g) * 0.02
    state[v + "patch_embed.proj.bias"] = torch.zeros(d)
    for i in range(vit["depth"]):
        b = f"{v}blocks.{i}."
        norm(b + "norm1", d)
        linear(b + "attn.qkv", 3 * d, d)
        linear(b + "attn.proj", d, d)
        norm(b + "norm2", d)
        linear(b + "mlp.fc1", 4 * d, d)
        linear(b + "mlp.fc2", d, 4 * d)
    norm(v + "norm", d)
    t = "blip.text_encoder."
    state[t + "embeddings.position_ids"] = torch.arange(med["max_position_embeddings"]).expand((1, -1)).clone()
    state[t + "embeddings.word_embeddings.weight"] = torch.randn(med["vocab_size"], hid, generator=g) * 0.02
    state[t + "embeddings.position_embeddings.weight"] = torch.randn(med["max_position_embeddings"], hid, generator=g) * 0.02
    norm(t + "embeddings.LayerNorm", hid)
    for i in range(med["num_hidden_layers"]):
        b = f"{t}encoder.layer.{i}."
        for attn, kv_width in (("attention", hid), ("crossattention", d)):
            linear(f"{b}{attn}.self.query", hid, hid)
            linear(f"{b}{attn}.self.key", hid, kv_width)
            linear(f"{b}{attn}.self.value", hid, kv_width)
            linear(f"{b}{attn}.output.dense", hid, hid)
            norm(f"{b}{attn}.output.LayerNorm", hid)
        linear(b + "intermediate.dense", med["intermediate_size"], hid)
        linear(b + "output.dense", hid, med["intermediate_size"])
        norm(b + "output.LayerNorm", hid)
    linear("blip.vision_proj", 256, d)
    linear("blip.text_proj", 256, hid)
    widths = (hid, 1024, 128, 64, 16, 1)
    for index, (n_in, n_out) in zip((0, 2, 4, 6, 7), zip(widths, widths[1:])):  # rewards of order 1
        linear(f"mlp.layers.{index}", n_out, n_in)
    return state


def save_tiny_image_reward(folder: Path, seed: int = 0, state: dict | None = None) -> Path:
    """A THUDM/ImageReward folder: ImageReward.pt (a plain state dict) and med_config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state if state is not None else image_reward_state(seed), folder / "ImageReward.pt")
    (folder / "med_config.json").write_text(json.dumps(TINY_MED_CONFIG, indent=2))
    return folder


def save_tiny_hf_clip_l14(folder: Path, seed: int = 0) -> Path:
    """A transformers CLIPModel folder shaped like openai/clip-vit-large-patch14 where the aesthetic head
    needs it (patch 14 at 224 px, 768-d projection, written into the sub-configs as that config.json does),
    tiny elsewhere, with a CLIP processor."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "eos_token_id": 49407,
                     "bos_token_id": 49406, "pad_token_id": 49407, "projection_dim": 768},
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 14, "projection_dim": 768},
        projection_dim=768,
    )
    CLIPModel(config).eval().save_pretrained(folder)
    save_clip_processor(folder)
    return folder


def save_aesthetic_head(path: Path, seed: int = 0) -> Path:
    """A random improved-aesthetic-predictor head saved as sac+logos+ava1-l14-linearMSE.pth is: the
    ``MLP(768).state_dict()`` of its script (an OrderedDict under ``layers.N``), not a pickled module."""
    from collections import OrderedDict

    torch.manual_seed(seed)
    widths = (768, 1024, 128, 64, 16, 1)
    state = OrderedDict()
    for index, (n_in, n_out) in zip((0, 2, 4, 6, 7), zip(widths, widths[1:])):
        layer = nn.Linear(n_in, n_out)
        nn.init.normal_(layer.weight, std=n_out ** -0.5)  # keeps the unit embedding's norm: scores spread by O(1)
        nn.init.normal_(layer.bias, std=0.1)
        state[f"layers.{index}.weight"], state[f"layers.{index}.bias"] = layer.weight.detach(), layer.bias.detach()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


# --- DINOv2 and CLIP ViT-L/14-336 (tests/test_metric_dinov2.py, tests/test_metric_cmmd.py)

def _randomise(model: nn.Module, seed: int, scales: dict[str, float] | None = None) -> None:
    """Every parameter random (matrices at fan-in scale, norms near 1, biases and tokens of order 0.1-1), so a
    wrongly mapped or skipped tensor shows in the features; ``scales``: std by parameter-name suffix."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            special = next((s for key, s in (scales or {}).items() if name.endswith(key)), None)
            if special is not None:
                p.copy_(noise * special)
            elif p.dim() >= 2:
                p.copy_(noise * p[0].numel() ** -0.5)
            elif name.endswith(("norm1.weight", "norm2.weight", "layernorm.weight", "layer_norm1.weight",
                                "layer_norm2.weight", "pre_layrnorm.weight", "post_layernorm.weight",
                                "final_layer_norm.weight")):
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)


def save_tiny_dinov2(folder: Path, seed: int = 0) -> Path:
    """A facebook/dinov2-large-shaped folder (transformers layout: model.safetensors + config.json): the real
    architecture (patch 14, 518-px position grid of 37x37, layer scale, GELU MLP, eps 1e-6), 32 wide, 2 deep.
    The position embeddings are large (std 1), so how they are resampled to 16x16 at 224 px shows."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4, image_size=518,
                          patch_size=14, layerscale_value=1.0)
    model = Dinov2Model(config).eval()
    _randomise(model, seed, {"position_embeddings": 1.0, "cls_token": 1.0, "lambda1": 0.5})
    model.save_pretrained(folder)
    return folder


def save_tiny_clip_336(folder: Path, seed: int = 0) -> Path:
    """An openai/clip-vit-large-patch14-336-shaped transformers CLIPModel folder: vision tower at 336 px with
    patch 14 (24x24 grid), quick GELU, projection_dim written into the sub-configs as that config.json does;
    32 wide, 2 deep, 16-d embeddings; a one-layer text tower (CMMD does not use it)."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                     "projection_dim": 16},
        vision_config={"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 336, "patch_size": 14, "hidden_act": "quick_gelu", "projection_dim": 16},
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    _randomise(model, seed, {"position_embedding.weight": 0.5, "class_embedding": 1.0})
    model.save_pretrained(folder)
    return folder


# --- VBench dimensions (tests/test_vbench_dimensions.py): DINO ViT and OpenAI CLIP in their own layouts

def dino_state(seed: int, dim: int = 128, depth: int = 2, patch: int = 16, image: int = 224) -> dict[str, torch.Tensor]:
    """Random tensors under the names and shapes of facebookresearch/dino's ``VisionTransformer`` state dict (what
    dino_vitbase16_pretrain.pth holds), ``dim`` wide with 64-wide heads. The position embeddings are large
    (std 1), so how they are resampled for non-square frames shows in the features; the attention is sharp
    (q and k at 3x fan-in scale), so that, as in a trained ViT, the CLS token follows the content and not the
    average of every patch."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def linear(name, out_f, in_f, gain=1.0):
        state[f"{name}.weight"] = torch.randn(out_f, in_f, generator=g) * gain * in_f ** -0.5
        state[f"{name}.bias"] = 0.1 * torch.randn(out_f, generator=g)

    def norm(name):
        state[f"{name}.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
        state[f"{name}.bias"] = 0.1 * torch.randn(dim, generator=g)

    state["cls_token"] = torch.randn(1, 1, dim, generator=g)
    state["pos_embed"] = torch.randn(1, (image // patch) ** 2 + 1, dim, generator=g)
    state["patch_embed.proj.weight"] = torch.randn(dim, 3, patch, patch, generator=g) * (3 * patch * patch) ** -0.5
    state["patch_embed.proj.bias"] = 0.1 * torch.randn(dim, generator=g)
    for i in range(depth):
        b = f"blocks.{i}."
        norm(b + "norm1")
        linear(b + "attn.qkv", 3 * dim, dim, gain=3.0)
        linear(b + "attn.proj", dim, dim)
        norm(b + "norm2")
        linear(b + "mlp.fc1", 4 * dim, dim)
        linear(b + "mlp.fc2", dim, 4 * dim)
    norm("norm")
    return state


def save_tiny_dino(folder: Path, seed: int = 0) -> Path:
    """A random DINO ViT backbone saved as dino_vitbase16_pretrain.pth is: a plain state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(dino_state(seed), folder / "dino_vitbase16_pretrain.pth")
    return folder / "dino_vitbase16_pretrain.pth"


# OpenAI CLIP's constructor arguments (clip/model.py CLIP.__init__), cut down; heads are width // 64 as there
TINY_OPENAI_B32 = {"embed_dim": 16, "image_resolution": 224, "vision_layers": 2, "vision_width": 128,
                   "vision_patch_size": 32, "context_length": 77, "vocab_size": 49408, "transformer_width": 64,
                   "transformer_heads": 1, "transformer_layers": 1}
TINY_OPENAI_L14 = {**TINY_OPENAI_B32, "embed_dim": 768, "vision_patch_size": 14}  # the aesthetic head reads 768-d


def openai_clip_state(seed: int, cfg: dict) -> dict[str, torch.Tensor]:
    """Random tensors under the names and shapes of OpenAI CLIP's state dict (clip/model.py), for ``cfg``; sharp
    attention (q, k and v at 3x fan-in scale), so that the embeddings follow the content."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def rand(name, *shape, std):
        state[name] = torch.randn(*shape, generator=g) * std

    def blocks(prefix, width, layers):
        for i in range(layers):
            b = f"{prefix}transformer.resblocks.{i}."
            rand(b + "attn.in_proj_weight", 3 * width, width, std=3 * width ** -0.5)
            rand(b + "attn.in_proj_bias", 3 * width, std=0.1)
            rand(b + "attn.out_proj.weight", width, width, std=width ** -0.5)
            rand(b + "attn.out_proj.bias", width, std=0.1)
            for ln in ("ln_1", "ln_2"):
                state[f"{b}{ln}.weight"] = 1 + 0.1 * torch.randn(width, generator=g)
                rand(f"{b}{ln}.bias", width, std=0.1)
            rand(b + "mlp.c_fc.weight", 4 * width, width, std=width ** -0.5)
            rand(b + "mlp.c_fc.bias", 4 * width, std=0.1)
            rand(b + "mlp.c_proj.weight", width, 4 * width, std=(4 * width) ** -0.5)
            rand(b + "mlp.c_proj.bias", width, std=0.1)

    def norm(name, width):
        state[f"{name}.weight"] = 1 + 0.1 * torch.randn(width, generator=g)
        rand(f"{name}.bias", width, std=0.1)

    vw, tw, p, e = cfg["vision_width"], cfg["transformer_width"], cfg["vision_patch_size"], cfg["embed_dim"]
    rand("positional_embedding", cfg["context_length"], tw, std=0.1)
    rand("text_projection", tw, e, std=tw ** -0.5)
    state["logit_scale"] = torch.tensor(4.6052)
    rand("visual.class_embedding", vw, std=1.0)
    rand("visual.positional_embedding", (cfg["image_resolution"] // p) ** 2 + 1, vw, std=0.5)
    rand("visual.proj", vw, e, std=vw ** -0.5)
    rand("visual.conv1.weight", vw, 3, p, p, std=(3 * p * p) ** -0.5)
    norm("visual.ln_pre", vw)
    blocks("visual.", vw, cfg["vision_layers"])
    norm("visual.ln_post", vw)
    blocks("", tw, cfg["transformer_layers"])
    rand("token_embedding.weight", cfg["vocab_size"], tw, std=0.02)
    norm("ln_final", tw)
    return state


def openai_clip_to_hf(state: dict[str, torch.Tensor], cfg: dict):
    """(transformers CLIPConfig, CLIPModel state dict) holding OpenAI CLIP's ``state``: the mapping of
    transformers' convert_clip_original_pytorch_to_hf.py (fused in_proj split into q, k, v; projections transposed)."""
    from transformers import CLIPConfig

    vw, tw = cfg["vision_width"], cfg["transformer_width"]
    config = CLIPConfig(
        text_config={"vocab_size": cfg["vocab_size"], "hidden_size": tw, "intermediate_size": 4 * tw,
                     "num_hidden_layers": cfg["transformer_layers"], "num_attention_heads": cfg["transformer_heads"],
                     "max_position_embeddings": cfg["context_length"], "hidden_act": "quick_gelu",
                     "projection_dim": cfg["embed_dim"], "eos_token_id": 49407, "bos_token_id": 49406, "pad_token_id": 1},
        vision_config={"hidden_size": vw, "intermediate_size": 4 * vw, "num_hidden_layers": cfg["vision_layers"],
                       "num_attention_heads": vw // 64, "image_size": cfg["image_resolution"],
                       "patch_size": cfg["vision_patch_size"], "hidden_act": "quick_gelu", "projection_dim": cfg["embed_dim"]},
        projection_dim=cfg["embed_dim"],
    )
    out = {"logit_scale": state["logit_scale"].clone(), "text_projection.weight": state["text_projection"].t(),
           "visual_projection.weight": state["visual.proj"].t()}

    def blocks(src, dst, width, layers):
        for i in range(layers):
            s, d = f"{src}transformer.resblocks.{i}.", f"{dst}encoder.layers.{i}."
            for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
                out[f"{d}self_attn.{name}.weight"] = state[s + "attn.in_proj_weight"][j * width : (j + 1) * width]
                out[f"{d}self_attn.{name}.bias"] = state[s + "attn.in_proj_bias"][j * width : (j + 1) * width]
            for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                out[f"{d}{b}.weight"], out[f"{d}{b}.bias"] = state[f"{s}{a}.weight"], state[f"{s}{a}.bias"]

    v = "vision_model."
    out[v + "embeddings.class_embedding"] = state["visual.class_embedding"]
    out[v + "embeddings.patch_embedding.weight"] = state["visual.conv1.weight"]
    out[v + "embeddings.position_embedding.weight"] = state["visual.positional_embedding"]
    for a, b in (("visual.ln_pre", "pre_layrnorm"), ("visual.ln_post", "post_layernorm")):
        out[f"{v}{b}.weight"], out[f"{v}{b}.bias"] = state[f"{a}.weight"], state[f"{a}.bias"]
    blocks("visual.", v, vw, cfg["vision_layers"])
    t = "text_model."
    out[t + "embeddings.token_embedding.weight"] = state["token_embedding.weight"]
    out[t + "embeddings.position_embedding.weight"] = state["positional_embedding"]
    out[t + "final_layer_norm.weight"], out[t + "final_layer_norm.bias"] = state["ln_final.weight"], state["ln_final.bias"]
    blocks("", t, tw, cfg["transformer_layers"])
    return config, {k: val.contiguous().clone() for k, val in out.items()}


def save_openai_clip_as_hf(folder: Path, state: dict[str, torch.Tensor], cfg: dict, with_processor: bool = False) -> Path:
    """OpenAI CLIP's ``state`` as a transformers CLIPModel folder (as openai/clip-vit-*-patch* are published),
    loaded strictly first so that a tensor the mapping misses fails here."""
    from transformers import CLIPModel

    config, hf_state = openai_clip_to_hf(state, cfg)
    model = CLIPModel(config)
    missing, unexpected = model.load_state_dict(hf_state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]  # a buffer, not a weight
    assert not missing and not unexpected, (missing, unexpected)
    model.eval().save_pretrained(folder)
    if with_processor:
        save_clip_processor(folder)
    return folder


def save_aesthetic_linear_head(path: Path, seed: int = 0, dim: int = 768) -> Path:
    """A random LAION linear aesthetic head saved as sa_0_4_vit_l_14_linear.pth is: ``nn.Linear(768, 1).state_dict()``,
    scaled so that unit embeddings score around 5 with a spread of about 1."""
    torch.manual_seed(seed)
    head = nn.Linear(dim, 1)
    with torch.no_grad():
        head.weight.normal_(std=1.0)
        head.bias.fill_(5.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), path)
    return path


TINY_MUSIQ = {"hidden_size": 64, "mlp_dim": 128, "num_heads": 1, "num_layers": 2}  # pyiqa MUSIQ arguments; 64-wide heads


def save_tiny_musiq(path: Path, seed: int = 0) -> Path:
    """A random pyiqa MUSIQ (one score, as the SPAQ checkpoint) saved as musiq_spaq_ckpt-358bb6af.pth is: a state
    dict. Gains near 1, embeddings large, so the score follows the patches and their scales."""
    from pyiqa.archs.musiq_arch import MUSIQ

    model = MUSIQ(pretrained=False, **TINY_MUSIQ)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith(("position_emb", "scale_emb", "cls")):
                p.copy_(noise)
            elif p.dim() >= 2:
                p.copy_(noise * p[0].numel() ** -0.5)
            elif name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)
        model.head.bias.fill_(50.0)  # SPAQ opinion scores are 0-100
        model.head.weight.mul_(10.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def raft_state(seed: int, head: float = 1.0) -> dict[str, torch.Tensor]:
    """Random tensors under the names and shapes of princeton-vl's full RAFT (raft-things.pth without nn.DataParallel's
    ``module.``; VBench's vendored class gives the names, so the vbench package must be installed), drawn from a
    seeded generator as torch's default init draws them (uniform within 1/sqrt(fan in)) but independent of it, so
    that a recorded reference stays valid. The flow head's last convolution is scaled by ``head`` (it sets the flow
    magnitudes, hence which side of VBench's thresholds a pair falls)."""
    from easydict import EasyDict
    from vbench.third_party.RAFT.core.raft import RAFT

    shapes = RAFT(EasyDict({"small": False, "mixed_precision": False, "alternate_corr": False})).state_dict()
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    first_name: dict[int, str] = {}
    for name, value in shapes.items():
        if value.data_ptr() in first_name:  # one module under two names (the context encoder's downsample norm)
            state[name] = state[first_name[value.data_ptr()]]
            continue
        first_name[value.data_ptr()] = name
        uniform = torch.rand(value.shape, generator=g) * 2 - 1
        if name.endswith("num_batches_tracked"):
            tensor = value.clone()
        elif value.ndim >= 2:
            tensor = uniform * value[0].numel() ** -0.5
        elif name.endswith("running_var"):
            tensor = 1 + 0.05 * (uniform + 1)
        elif name.endswith(("running_mean", "bias")):
            tensor = 0.1 * uniform
        else:  # norm weights
            tensor = 1 + 0.1 * uniform
        if name.startswith("update_block.flow_head.conv2."):
            tensor = tensor * head
        state[name] = tensor
    return state
