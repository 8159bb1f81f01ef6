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
