"""DreamSim's "ensemble" image embedding (ssundaram21/dreamsim 0.2.1), built by benchkit from the checkpoint as data.

``dreamsim(pretrained=True)`` (dreamsim/model.py:251-308, config.py "ensemble") is a ``PerceptualModel`` over three
ViT-B/16s, each fed the [0, 1] image after its own mean/std (model.py:175-196):

- DINO (``torch.hub.load('facebookresearch/dino:main', 'dino_vitb16')``, i.e. dino_vitbase16_pretrain.pth, the
  registry's ``dino-vitb16``): the CLS token of block 11's output, *before* the final norm (feat ``cls``: a forward
  hook on ``blocks[11]``, extractor.py:233-267, model.py:160-167);
- OpenAI CLIP and OpenCLIP ViT-B/16 as DINO-layout ViTs (load_clip_as_dino.py, load_open_clip_as_dino.py: CLIP's
  ``ln_pre`` in place of ``pos_drop``, LayerNorm eps 1e-5, QuickGELU for OpenAI CLIP only): the final-norm CLS token
  times ``proj`` (feat ``embedding``, model.py:169-170, extractor.py:171-174);

with a LoRA (``ensemble_lora/``, as peft saves it) on all three, the features concatenated (768 + 512 + 512) and normalised
(``normalize_embeds=True``: the mean over the features subtracted, then divided by the norm, model.py:107-126,
311-313).

Why not the dreamsim package itself: it loads its checkpoints with ``torch.hub`` code fetched from GitHub at run
time, asks for CUDA by default and pins nothing; here the same networks are timm ViTs (whose parameter names are
DINO's, so the state dicts load unchanged) and the LoRA is merged into them, from files read as data.
tests/test_vbench_i2v_background.py checks this against the package's ``PerceptualModel.embed`` on random weights.
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import torch

from benchkit.core.errors import BenchkitError
from metrics.weights import ResolvedWeight

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # dreamsim/constants.py
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGE_SIZE = 224  # dreamsim_args["img_size"]: every input is resized to 224 x 224 before the networks
DINO_LAYER = 11  # PerceptualModel._extract_cls: the hooked block (model.py:160-167)
BACKBONES = ("clip_vitb16_pretrain.pth.tar", "open_clip_vitb16_pretrain.pth.tar")
LORA_DIR = "ensemble_lora"
LORA_FILES = ("adapter_model.safetensors", "adapter_model.bin")  # peft's names; old peft wrote .bin


class _Extractor(torch.nn.Module):
    """Holds a ViT as ``ViTExtractor.model`` does, so the module paths, and with them the LoRA's state-dict keys
    (``base_model.model.extractor_list.<i>.model.blocks.<j>.attn.qkv.lora_A.weight``), are DreamSim's."""

    def __init__(self, vit: torch.nn.Module):
        super().__init__()
        self.model = vit


class DreamSimEnsemble(torch.nn.Module):
    """``PerceptualModel.embed`` of DreamSim's ensemble on (B, 3, 224, 224) images in [0, 1]: (B, 1792), normalised."""

    def __init__(self, dino: torch.nn.Module, clip: torch.nn.Module, clip_proj: torch.Tensor, open_clip: torch.nn.Module,
                 open_clip_proj: torch.Tensor):
        super().__init__()
        self.extractor_list = torch.nn.ModuleList([_Extractor(dino), _Extractor(clip), _Extractor(open_clip)])
        self.register_buffer("clip_proj", clip_proj.float())
        self.register_buffer("open_clip_proj", open_clip_proj.float())

    @staticmethod
    def _tokens(vit: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``prepare_tokens`` (vision_transformer.py:204-215) at the trained 224 px grid (its position embedding is
        used unchanged there); ``norm_pre`` is CLIP's ``ln_pre``, which DreamSim puts in ``pos_drop``."""
        if tuple(x.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise BenchkitError(f"DreamSim embeds {IMAGE_SIZE}x{IMAGE_SIZE} images; got {tuple(x.shape[-2:])}")
        tokens = vit.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([vit.cls_token.expand(len(x), -1, -1), tokens], dim=1) + vit.pos_embed
        return vit.norm_pre(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dino, clip, open_clip = (e.model for e in self.extractor_list)
        # DINO: block 11's output CLS token, no final norm (the hook in ViTExtractor._extract_features)
        d = dino.blocks[: DINO_LAYER + 1](self._tokens(dino, _normalize(x, IMAGENET_MEAN, IMAGENET_STD)))[:, 0]
        c = clip.norm(clip.blocks(self._tokens(clip, _normalize(x, CLIP_MEAN, CLIP_STD))))[:, 0] @ self.clip_proj
        o = open_clip.norm(open_clip.blocks(self._tokens(open_clip, _normalize(x, CLIP_MEAN, CLIP_STD))))[:, 0]
        return normalize_embedding(torch.cat([d, c, o @ self.open_clip_proj], dim=-1))


def normalize_embedding(embed: torch.Tensor) -> torch.Tensor:
    """``normalize_embedding`` (model.py:311-313, ``normalize_embeds=True``): each row less its mean, over its norm."""
    embed = embed - embed.mean(dim=1, keepdim=True)
    return embed / embed.norm(dim=1, keepdim=True)


def _normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """``PerceptualModel._preprocess`` (model.py:175-196): torchvision's Normalize."""
    from torchvision.transforms import functional as TF

    return TF.normalize(x, mean, std)


def clip_as_dino_vit(state: dict[str, torch.Tensor], where: str, quick_gelu: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    """A timm ViT from ``{clip,open_clip}_vitb16_pretrain.pth.tar``'s state dict (DINO's ViT names plus ``pos_drop``
    = CLIP's ``ln_pre`` and ``proj``), as load_clip_as_dino.py / load_open_clip_as_dino.py build theirs: its size
    read from the tensors (64-wide heads, as ViT-B/16's), LayerNorm eps 1e-5, QuickGELU for OpenAI CLIP."""
    from timm.layers import QuickGELU
    from timm.models.vision_transformer import VisionTransformer

    state = dict(state)
    proj, pos, patch = state.pop("proj", None), state.get("pos_embed"), state.get("patch_embed.proj.weight")
    if not all(isinstance(t, torch.Tensor) for t in (proj, pos, patch)) or pos.dim() != 3 or patch.dim() != 4:
        raise BenchkitError(f"{where}: not DreamSim's CLIP-as-DINO state dict (proj, pos_embed or patch_embed.proj.weight "
                            "missing); use the files of dreamsim_ensemble_checkpoint.zip")
    dim, size, grid = pos.shape[-1], patch.shape[-1], math.isqrt(pos.shape[1] - 1)
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    hidden = state.get("blocks.0.mlp.fc1.weight")
    if grid * size != IMAGE_SIZE or grid * grid != pos.shape[1] - 1 or dim % 64 or not depth or hidden is None \
            or proj.dim() != 2 or proj.shape[0] != dim:
        raise BenchkitError(f"{where}: not a {IMAGE_SIZE}-px ViT with a projection (position grid {pos.shape[1] - 1}, "
                            f"patch {size}, width {dim}, {depth} blocks, proj {tuple(proj.shape)})")
    state = {("norm_pre." + k[len("pos_drop."):] if k.startswith("pos_drop.") else k): v for k, v in state.items()}
    norm = partial(torch.nn.LayerNorm, eps=1e-5)
    vit = VisionTransformer(img_size=IMAGE_SIZE, patch_size=size, embed_dim=dim, depth=depth, num_heads=dim // 64,
                            mlp_ratio=hidden.shape[0] / dim, qkv_bias=True, num_classes=0, norm_layer=norm,
                            act_layer=QuickGELU if quick_gelu else torch.nn.GELU)
    vit.norm_pre = norm(dim)  # not timm's pre_norm=True, which drops the patch embedding's bias (DreamSim's has one)
    try:
        vit.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BenchkitError(f"{where}: does not fit a CLIP-as-DINO ViT ({' '.join(str(exc).split())[:300]})") from None
    return vit, proj


def lora_file(folder: Path) -> Path:
    for name in LORA_FILES:
        if (folder / LORA_DIR / name).is_file():
            return folder / LORA_DIR / name
    raise BenchkitError(f"DreamSim weights {folder}: no {LORA_DIR}/{' or '.join(LORA_FILES)}; unzip "
                        "dreamsim_ensemble_checkpoint.zip there")


# adapter_config.json options this merge does not implement, with the values that make them no-ops (peft's defaults)
LORA_NO_OPS = {"use_rslora": False, "use_dora": False, "fan_in_fan_out": False, "rank_pattern": {}, "alpha_pattern": {},
               "bias": "none", "modules_to_save": None, "layers_to_transform": None, "layers_pattern": None,
               "megatron_config": None, "exclude_modules": None, "trainable_token_indices": None, "lora_bias": False,
               "target_parameters": None, "layer_replication": None}


def _targeted(name: str, targets) -> bool:
    """peft's ``check_target_module_exists``: a string is a regex on the whole module path, a list names modules by
    their last path components."""
    import re

    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def merge_lora(model: DreamSimEnsemble, folder: Path) -> DreamSimEnsemble:
    """The LoRA in ``folder/ensemble_lora`` merged into ``model``'s weights: W += (lora_alpha / r) B A on every module
    ``target_modules`` names, which is what ``PeftModel.from_pretrained`` (model.py:285-295) computes in eval mode
    (peft's ``LoraLayer.get_delta_weight``), up to float rounding. Hand-written because importing peft costs seconds
    (it pulls in transformers' modeling stack) for a dozen matrix products; an option that would change the merge
    (rsLoRA, DoRA, per-module ranks, biases) is refused, and tests/test_vbench_i2v_background.py checks the result
    against the dreamsim package, which runs peft."""
    from benchkit.core.safe_load import read_state_dict

    where = f"DreamSim LoRA {folder / LORA_DIR}"
    try:
        config = json.loads((folder / LORA_DIR / "adapter_config.json").read_text())
        r, alpha, targets = config["r"], config["lora_alpha"], config["target_modules"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BenchkitError(f"{where}: no readable adapter_config.json with r, lora_alpha and target_modules ({exc}); "
                            "unzip dreamsim_ensemble_checkpoint.zip again") from None
    odd = {k: config[k] for k, v in LORA_NO_OPS.items() if config.get(k) not in (None, v)}
    if config.get("peft_type", "LORA") != "LORA" or odd or not isinstance(r, int) or r <= 0:
        raise BenchkitError(f"{where}: adapter_config.json is not the plain LoRA DreamSim ships (peft_type "
                            f"{config.get('peft_type')}, r {r}, {odd or 'no other options'}); benchkit merges plain LoRA only")
    adapter = read_state_dict(lora_file(folder), what="DreamSim LoRA")
    if not isinstance(adapter, dict):
        raise BenchkitError(f"{where}: the adapter file holds {type(adapter).__name__}, not a state dict")
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in adapter.items():
        path, _, kind = key.removeprefix("base_model.model.").replace(".default.weight", ".weight").rpartition(".lora_")
        if kind not in ("A.weight", "B.weight") or not isinstance(tensor, torch.Tensor):
            raise BenchkitError(f"{where}: unexpected tensor {key} (a plain LoRA holds lora_A/lora_B weights only)")
        pairs.setdefault(path, {})[kind[0]] = tensor
    modules = dict(model.named_modules())
    wanted = {n for n, m in modules.items() if n and _targeted(n, targets) and isinstance(m, torch.nn.Linear)}
    if set(pairs) != wanted:
        extra, lacking = sorted(set(pairs) - wanted), sorted(wanted - set(pairs))
        raise BenchkitError(f"{where}: the adapter does not fit the ensemble ({len(extra)} LoRA modules not in it, e.g. "
                            f"{(extra or ['-'])[0]}; {len(lacking)} targeted modules without one, e.g. {(lacking or ['-'])[0]})")
    scaling = float(alpha) / r
    with torch.no_grad():
        for path, ab in sorted(pairs.items()):
            weight, a, b = modules[path].weight, ab.get("A"), ab.get("B")
            if a is None or b is None or a.shape != (r, weight.shape[1]) or b.shape != (weight.shape[0], r):
                raise BenchkitError(f"{where}: {path}: lora_A {None if a is None else tuple(a.shape)} and lora_B "
                                    f"{None if b is None else tuple(b.shape)} do not fit its weight {tuple(weight.shape)} "
                                    f"at rank {r}")
            weight += (b.to(weight.dtype) @ a.to(weight.dtype)) * scaling
    return model


def load_dreamsim_ensemble(dino: ResolvedWeight, ensemble: ResolvedWeight, device: torch.device) -> DreamSimEnsemble:
    """The ensemble from the DINO backbone file and the unzipped DreamSim checkpoint folder, LoRA merged, float32."""
    from benchkit.core.safe_load import read_state_dict
    from metrics.vbench_dimensions import load_dino

    dino_vit = load_dino(dino, torch.device("cpu")).vit  # a fresh copy: the LoRA is merged into it
    if len(dino_vit.blocks) <= DINO_LAYER:
        raise BenchkitError(f"weights '{dino.name}' at {dino.hashed_file}: {len(dino_vit.blocks)} blocks; DreamSim reads "
                            f"block {DINO_LAYER}")
    vits = []
    for name, quick_gelu in zip(BACKBONES, (True, False)):
        file = ensemble.path / name
        if not file.is_file():
            raise BenchkitError(f"weights '{ensemble.name}' at {ensemble.path}: no {name}; unzip "
                                "dreamsim_ensemble_checkpoint.zip there")
        held = read_state_dict(file, what="DreamSim backbone")
        if not isinstance(held, dict) or not isinstance(held.get("state_dict"), dict):
            raise BenchkitError(f"DreamSim backbone {file}: expected {{'state_dict': ...}} as DreamSim saves it")
        vits.append(clip_as_dino_vit(held["state_dict"], f"DreamSim backbone {file}", quick_gelu))
    (clip, clip_proj), (open_clip, open_clip_proj) = vits
    model = DreamSimEnsemble(dino_vit, clip, clip_proj, open_clip, open_clip_proj)
    return merge_lora(model.float().eval(), ensemble.path).float().eval().requires_grad_(False).to(device)


def dreamsim_for(ctx) -> tuple[DreamSimEnsemble, dict[str, str]]:
    """The registry's DreamSim ensemble (``dino-vitb16`` + ``dreamsim-ensemble``) on ``ctx``'s device, from the one
    model cache, and {weight name: sha256}."""
    from metrics.model_cache import cached_model
    from metrics.weights import resolve

    dino, ensemble = resolve("dino-vitb16"), resolve("dreamsim-ensemble")
    key = ("dreamsim-ensemble", str(dino.hashed_file), dino.sha256, str(ensemble.path), ensemble.sha256, str(ctx.device))
    model = cached_model(key, lambda: load_dreamsim_ensemble(dino, ensemble, ctx.device))
    return model, {dino.name: dino.sha256, ensemble.name: ensemble.sha256}
