"""The weights registry: every network a metric loads, where it comes from, and how it is checked.

Metrics never download. A weight is looked for, in order, at:

1. ``--weights NAME=PATH`` (the CLI puts these in ``BENCHKIT_WEIGHT_PATHS`` so worker
   processes see them too);
2. ``$BENCHKIT_WEIGHTS/NAME`` or ``$BENCHKIT_WEIGHTS/<file name>``;
3. the Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``);
4. ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``);
5. a tool's own cache where one exists (clean-fid's ``/tmp/inception-2015-12-05.pt``).

A file found is checked against the sha256 in this registry; where the publisher gives none
(most do not) it is checked against a user pin in ``$BENCHKIT_WEIGHTS/SHA256SUMS``
(``sha256sum`` format, one ``<hex>  <registry name>`` per line), or the first 8 hex digits
torchvision puts in its file names. A missing or mismatching file is one error line with the
command that fetches it; nothing is ever re-downloaded behind the user's back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit.core import settings
from benchkit.core.errors import BenchkitError
from benchkit.core.filehash import sha256_file

OVERRIDES_ENV = settings.WEIGHT_OVERRIDES_ENV
WEIGHTS_DIR_ENV = settings.WEIGHTS_DIR_ENV
PINS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class WeightSpec:
    """One weight file (or Hugging Face model folder) a metric needs."""

    name: str
    description: str
    source: str  # where it is published
    license: str
    files: tuple[str, ...]  # a file, or the files a folder must hold (the first is hashed)
    is_dir: bool = False
    sha256: str | None = None  # full digest where the publisher gives one; None = unknown, pin it
    sha256_prefix: str | None = None  # torchvision's convention: the first 8 hex digits in the file name
    hf_repo: str | None = None
    torch_hub: bool = False  # look in $TORCH_HOME/hub/checkpoints
    extra_paths: tuple[str, ...] = ()  # a tool's own cache location
    fetch: str = ""
    alternatives: tuple[str, ...] = ()  # other file names accepted as the hashed file in a folder

    def fetch_command(self) -> str:
        return self.fetch.replace("$DEST", f"${WEIGHTS_DIR_ENV}/{self.name}")


_HF_CLIP_FILES = ("model.safetensors", "config.json", "preprocessor_config.json", "tokenizer_config.json",
                  "vocab.json", "merges.txt")


def _vbench_cache(*parts: str) -> str:
    """A file in VBench's own cache (vbench/utils.py:21-23), where its local mode keeps its models."""
    return str(settings.vbench_cache_dir().joinpath(*parts))


DINO_URL = "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"
DREAMSIM_ENSEMBLE_URL = ("https://github.com/ssundaram21/dreamsim/releases/download/v0.2.0-checkpoints/"
                         "dreamsim_ensemble_checkpoint.zip")
AESTHETIC_URL = "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth"
MUSIQ_URL = "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth"
AMT_S_URL = "https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth"
RAFT_ZIP_URL = "https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip"
VICLIP_URL = "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/ViClip-InternVid-10M-FLT.pth"
UMT_URL = "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/l16_ptk710_ftk710_ftk400_f16_res224.pth"
TAG2TEXT_URL = "https://huggingface.co/spaces/xinyu1205/recognize-anything/resolve/main/tag2text_swin_14m.pth"


REGISTRY: dict[str, WeightSpec] = {w.name: w for w in (
    WeightSpec(
        "fid-inception", "Inception-v3 (TF 2015-12-05) as TorchScript, the clean-fid / StyleGAN2-ADA FID network",
        "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        "NVIDIA Source Code License (TorchScript wrapper); TF Inception weights Apache-2.0",
        ("inception-2015-12-05.pt",), torch_hub=False, extra_paths=("/tmp/inception-2015-12-05.pt",),
        fetch="mkdir -p $BENCHKIT_WEIGHTS && curl -L -o $BENCHKIT_WEIGHTS/inception-2015-12-05.pt "
              "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"),
    WeightSpec(
        "clip-vit-g-14-laion2b-s12b-b42k", "open_clip ViT-g-14 laion2b_s12b_b42k (DMD2/GigaGAN CLIP score)",
        "https://huggingface.co/laion/CLIP-ViT-g-14-laion2B-s12B-b42K", "MIT",
        ("open_clip_pytorch_model.bin", "open_clip_config.json"), is_dir=True,
        alternatives=("open_clip_model.safetensors",), hf_repo="laion/CLIP-ViT-g-14-laion2B-s12B-b42K",
        fetch="hf download laion/CLIP-ViT-g-14-laion2B-s12B-b42K open_clip_pytorch_model.bin open_clip_config.json "
              "--local-dir $DEST"),
    WeightSpec(
        "clip-vit-large-patch14", "OpenAI CLIP ViT-L/14 in transformers layout (torchmetrics CLIPScore default)",
        "https://huggingface.co/openai/clip-vit-large-patch14", "MIT", ("model.safetensors", "config.json", "tokenizer_config.json"),
        is_dir=True,
        hf_repo="openai/clip-vit-large-patch14",
        fetch="hf download openai/clip-vit-large-patch14 " + " ".join(_HF_CLIP_FILES) + " --local-dir $DEST"),
    WeightSpec(
        "pickscore-v1", "PickScore_v1 (a transformers CLIPModel fine-tuned on Pick-a-Pic)",
        "https://huggingface.co/yuvalkirstain/PickScore_v1", "not stated on the model card (code MIT); check before use",
        ("model.safetensors", "config.json"), is_dir=True, hf_repo="yuvalkirstain/PickScore_v1",
        fetch="hf download yuvalkirstain/PickScore_v1 model.safetensors config.json --local-dir $DEST"),
    WeightSpec(
        "clip-vit-h-14-processor", "Image processor and tokenizer of laion/CLIP-ViT-H-14 (PickScore's and MPS's; no weights)",
        "https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "MIT",
        ("preprocessor_config.json", "tokenizer_config.json"), alternatives=("processor_config.json",),
        is_dir=True, hf_repo="laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        fetch="hf download laion/CLIP-ViT-H-14-laion2B-s32B-b79K preprocessor_config.json tokenizer_config.json "
              "vocab.json merges.txt special_tokens_map.json --local-dir $DEST"),
    WeightSpec(
        "hpsv2.0", "HPS v2.0 checkpoint for open_clip ViT-H-14 (HPS_v2_compressed.pt, fp16 state_dict)",
        "https://huggingface.co/xswu/HPSv2", "Apache-2.0 (HF repo tag)", ("HPS_v2_compressed.pt",),
        hf_repo="xswu/HPSv2", fetch="hf download xswu/HPSv2 HPS_v2_compressed.pt --local-dir $BENCHKIT_WEIGHTS"),
    WeightSpec(
        "hpsv2.1", "HPS v2.1 checkpoint for open_clip ViT-H-14 (HPS_v2.1_compressed.pt, fp16 state_dict)",
        "https://huggingface.co/xswu/HPSv2", "Apache-2.0 (HF repo tag)", ("HPS_v2.1_compressed.pt",),
        hf_repo="xswu/HPSv2", fetch="hf download xswu/HPSv2 HPS_v2.1_compressed.pt --local-dir $BENCHKIT_WEIGHTS"),
    WeightSpec(
        "mps", "MPS overall checkpoint (Kwai-Kolors; a whole pickled model, read by a restricted loader)",
        "https://drive.google.com/file/d/17qrK_aJkVNM75ZEvMEePpLj6L867MLkN (Google Drive link in the "
        "github.com/Kwai-Kolors/MPS README)", "code MIT (Kwai-Kolors/MPS); the checkpoint's license is not stated, check before use",
        ("MPS_overall_checkpoint.pth",),
        fetch="pip install gdown && mkdir -p $BENCHKIT_WEIGHTS && gdown 17qrK_aJkVNM75ZEvMEePpLj6L867MLkN -O "
              "$BENCHKIT_WEIGHTS/MPS_overall_checkpoint.pth"),
    WeightSpec(
        "lpips-alexnet", "torchvision AlexNet ImageNet weights (the LPIPS 'alex' backbone; linear heads ship in lpips)",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "BSD-3-Clause (torchvision)",
        ("alexnet-owt-7be5be79.pth",), sha256_prefix="7be5be79", torch_hub=True,
        fetch="mkdir -p $BENCHKIT_WEIGHTS && curl -L -o $BENCHKIT_WEIGHTS/alexnet-owt-7be5be79.pth "
              "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    WeightSpec(
        "lpips-vgg16", "torchvision VGG16 ImageNet weights (the LPIPS 'vgg' backbone)",
        "https://download.pytorch.org/models/vgg16-397923af.pth", "BSD-3-Clause (torchvision)",
        ("vgg16-397923af.pth",), sha256_prefix="397923af", torch_hub=True,
        fetch="mkdir -p $BENCHKIT_WEIGHTS && curl -L -o $BENCHKIT_WEIGHTS/vgg16-397923af.pth "
              "https://download.pytorch.org/models/vgg16-397923af.pth"),
    WeightSpec(
        "imagereward-v1.0", "ImageReward v1.0 (THUDM): BLIP ViT-L + BERT cross-attention + MLP state dict, and its med_config.json",
        "https://huggingface.co/THUDM/ImageReward", "Apache-2.0 (HF repo tag)", ("ImageReward.pt", "med_config.json"),
        is_dir=True, hf_repo="THUDM/ImageReward",
        fetch="hf download THUDM/ImageReward ImageReward.pt med_config.json --local-dir $DEST"),
    WeightSpec(
        "bert-base-uncased-tokenizer", "bert-base-uncased WordPiece tokenizer (ImageReward's text side; no weights)",
        "https://huggingface.co/google-bert/bert-base-uncased", "Apache-2.0", ("vocab.txt", "tokenizer_config.json"),
        is_dir=True, hf_repo="bert-base-uncased",  # the name ImageReward loads it by, hence its HF cache folder
        fetch="hf download bert-base-uncased vocab.txt tokenizer_config.json --local-dir $DEST"),
    WeightSpec(
        "laion-aesthetic-v2", "LAION improved aesthetic predictor head (MLP on CLIP ViT-L/14 embeddings, plain state dict)",
        "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac+logos+ava1-l14-linearMSE.pth",
        "not stated in the repository (christophschuhmann/improved-aesthetic-predictor); check before use",
        ("sac+logos+ava1-l14-linearMSE.pth",),
        fetch="mkdir -p $BENCHKIT_WEIGHTS && curl -L -o $BENCHKIT_WEIGHTS/sac+logos+ava1-l14-linearMSE.pth "
              "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac%2Blogos%2Bava1-l14-linearMSE.pth"),
    WeightSpec(
        "maskrcnn-resnet50-fpn-v2-coco", "torchvision Mask R-CNN ResNet-50 FPN v2, COCO_V1 state dict (the geneval metric's detector)",
        "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth", "BSD-3-Clause (torchvision)",
        ("maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",), sha256_prefix="73cbd019", torch_hub=True,
        fetch="mkdir -p $BENCHKIT_WEIGHTS && curl -L -o $BENCHKIT_WEIGHTS/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth "
              "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"),
    WeightSpec(
        "dinov2-large", "DINOv2 ViT-L/14 (facebook/dinov2-large, transformers layout): FD-DINOv2 / KD / PRDC-DINOv2 (dgm-eval)",
        "https://huggingface.co/facebook/dinov2-large", "Apache-2.0", ("model.safetensors", "config.json"), is_dir=True,
        hf_repo="facebook/dinov2-large",
        fetch="hf download facebook/dinov2-large model.safetensors config.json --local-dir $DEST"),
    WeightSpec(
        "clip-vit-large-patch14-336", "OpenAI CLIP ViT-L/14 at 336 px in transformers layout (CMMD's image embedding; a pytorch_model.bin is "
        "accepted instead of model.safetensors and read with weights_only=True)",
        "https://huggingface.co/openai/clip-vit-large-patch14-336", "MIT", ("model.safetensors", "config.json"), is_dir=True,
        alternatives=("pytorch_model.bin",), hf_repo="openai/clip-vit-large-patch14-336",
        fetch="hf download openai/clip-vit-large-patch14-336 model.safetensors config.json --local-dir $DEST"),
    # VBench's dimensions (metrics/vbench_dimensions.py)
    WeightSpec(
        "dino-vitb16", "DINO ViT-B/16 backbone (facebookresearch/dino dino_vitbase16_pretrain.pth, a plain state dict): "
        "VBench subject consistency", DINO_URL, "Apache-2.0 (facebookresearch/dino)", ("dino_vitbase16_pretrain.pth",),
        torch_hub=True,  # torch.hub.load('facebookresearch/dino:main', 'dino_vitb16') caches it there
        extra_paths=(_vbench_cache("dino_model", "dino_vitbase16_pretrain.pth"),),
        fetch=f"mkdir -p $BENCHKIT_WEIGHTS && curl -L -o $BENCHKIT_WEIGHTS/dino_vitbase16_pretrain.pth {DINO_URL}"),
    WeightSpec(
        "clip-vit-base-patch32", "OpenAI CLIP ViT-B/32 in transformers layout (VBench background consistency; a "
        "pytorch_model.bin is accepted instead of model.safetensors and read with weights_only=True)",
        "https://huggingface.co/openai/clip-vit-base-patch32", "MIT", ("model.safetensors", "config.json"), is_dir=True,
        alternatives=("pytorch_model.bin",), hf_repo="openai/clip-vit-base-patch32",
        fetch="hf download openai/clip-vit-base-patch32 model.safetensors config.json --local-dir $DEST"),
    WeightSpec(
        "laion-aesthetic-linear-l14", "LAION aesthetic predictor, linear head on CLIP ViT-L/14 embeddings "
        "(sa_0_4_vit_l_14_linear.pth, a plain state dict): VBench aesthetic quality", AESTHETIC_URL,
        "MIT (LAION-AI/aesthetic-predictor)", ("sa_0_4_vit_l_14_linear.pth",),
        sha256="2cd4e60f4f24ae3bcd57b847b13c1f3ba27edc28cc1a7f9ce74ee9f421243cba",  # the file in the repository's git
        extra_paths=(_vbench_cache("aesthetic_model", "emb_reader", "sa_0_4_vit_l_14_linear.pth"),),
        fetch=f"mkdir -p $BENCHKIT_WEIGHTS && curl -L -o $BENCHKIT_WEIGHTS/sa_0_4_vit_l_14_linear.pth {AESTHETIC_URL}"),
    WeightSpec(
        "musiq-spaq", "MUSIQ trained on SPAQ, pyiqa's conversion (musiq_spaq_ckpt-358bb6af.pth, a state dict): VBench "
        "imaging quality", MUSIQ_URL,
        "not stated for the weights; pyiqa 0.1.16 is PolyForm-Noncommercial-1.0.0 (MUSIQ: google-research, Apache-2.0); "
        "check before use",
        ("musiq_spaq_ckpt-358bb6af.pth",),
        extra_paths=(_vbench_cache("pyiqa_model", "musiq_spaq_ckpt-358bb6af.pth"),),
        fetch=f"mkdir -p $BENCHKIT_WEIGHTS && curl -L -o $BENCHKIT_WEIGHTS/musiq_spaq_ckpt-358bb6af.pth {MUSIQ_URL}"),
    WeightSpec(
        "amt-s", "AMT-S frame interpolation network (MCG-NKU/AMT, amt-s.pth: a dict whose 'state_dict' holds the "
        "tensors): VBench motion smoothness", AMT_S_URL, "CC-BY-NC-SA-4.0 (MCG-NKU/AMT); check before use", ("amt-s.pth",),
        hf_repo="lalala125/AMT", extra_paths=(_vbench_cache("amt_model", "amt-s.pth"),),
        fetch="hf download lalala125/AMT amt-s.pth --local-dir $BENCHKIT_WEIGHTS"),
    WeightSpec(
        "dreamsim-ensemble", "DreamSim ensemble checkpoint (dreamsim_ensemble_checkpoint.zip unzipped: ensemble_lora/ "
        "and the OpenAI CLIP and OpenCLIP ViT-B/16 backbones as DINO-layout state dicts; DINO's backbone is "
        "dino-vitb16): VBench-I2V i2v background", DREAMSIM_ENSEMBLE_URL,
        "MIT (ssundaram21/dreamsim; the release states no separate checkpoint license); backbones: OpenAI CLIP MIT, "
        "OpenCLIP MIT",
        ("ensemble_lora/adapter_model.bin", "ensemble_lora/adapter_config.json", "clip_vitb16_pretrain.pth.tar",
         "open_clip_vitb16_pretrain.pth.tar"), is_dir=True, alternatives=("ensemble_lora/adapter_model.safetensors",),
        fetch=f"mkdir -p $DEST && curl -L -o $DEST/dreamsim_ensemble_checkpoint.zip {DREAMSIM_ENSEMBLE_URL} && "
              "unzip -o $DEST/dreamsim_ensemble_checkpoint.zip -d $DEST && rm $DEST/dreamsim_ensemble_checkpoint.zip"),
    WeightSpec(
        "cotracker2", "CoTracker2 point tracker (facebookresearch/co-tracker, the torch.hub 'cotracker2' entry's "
        "cotracker2.pth, a plain state dict): VBench-I2V camera motion",
        "https://huggingface.co/facebook/cotracker/resolve/main/cotracker2.pth", "CC-BY-NC-4.0 (facebookresearch/co-tracker)",
        ("cotracker2.pth",), hf_repo="facebook/cotracker", torch_hub=True,  # torch.hub caches it in hub/checkpoints
        fetch="hf download facebook/cotracker cotracker2.pth --local-dir $BENCHKIT_WEIGHTS"),
    WeightSpec(
        "raft-things", "RAFT optical flow trained on FlyingChairs + FlyingThings (princeton-vl/RAFT raft-things.pth, a "
        "state dict saved from nn.DataParallel): VBench dynamic degree and temporal flickering's static filter", RAFT_ZIP_URL, "BSD-3-Clause (princeton-vl/RAFT)",
        ("raft-things.pth",), extra_paths=(_vbench_cache("raft_model", "models", "raft-things.pth"),),
        fetch=f"mkdir -p $BENCHKIT_WEIGHTS && curl -L -o /tmp/raft-models.zip {RAFT_ZIP_URL} && "
              "unzip -j /tmp/raft-models.zip models/raft-things.pth -d $BENCHKIT_WEIGHTS"),
    WeightSpec(
        "viclip-internvid-10m-flt", "ViCLIP ViT-L/14 trained on InternVid-10M-FLT (OpenGVLab, ViClip-InternVid-10M-FLT.pth, "
        "a dict whose 'model' holds the tensors): VBench temporal style and overall consistency", VICLIP_URL,
        "MIT (OpenGVLab/InternVideo)", ("ViClip-InternVid-10M-FLT.pth",), hf_repo="OpenGVLab/VBench_Used_Models",
        extra_paths=(_vbench_cache("ViCLIP", "ViClip-InternVid-10M-FLT.pth"),),
        fetch="hf download OpenGVLab/VBench_Used_Models ViClip-InternVid-10M-FLT.pth --local-dir $BENCHKIT_WEIGHTS"),
    WeightSpec(
        "umt-l16-k400", "UMT ViT-L/16 video classifier fine-tuned on Kinetics-400, 16 frames at 224 px "
        "(OpenGVLab/unmasked_teacher l16_ptk710_ftk710_ftk400_f16_res224.pth, a plain state dict): VBench human action",
        UMT_URL, "MIT (OpenGVLab/unmasked_teacher)", ("l16_ptk710_ftk710_ftk400_f16_res224.pth",),
        hf_repo="OpenGVLab/VBench_Used_Models",
        extra_paths=(_vbench_cache("umt_model", "l16_ptk710_ftk710_ftk400_f16_res224.pth"),),
        fetch="hf download OpenGVLab/VBench_Used_Models l16_ptk710_ftk710_ftk400_f16_res224.pth --local-dir $BENCHKIT_WEIGHTS"),
    WeightSpec(
        "tag2text-swin-14m", "Tag2Text Swin-B captioner (recognize-anything tag2text_swin_14m.pth, a dict whose 'model' "
        "holds the tensors): VBench scene", TAG2TEXT_URL,
        "Apache-2.0 (xinyu1205/recognize-anything); check before use", ("tag2text_swin_14m.pth",),
        extra_paths=(_vbench_cache("caption_model", "tag2text_swin_14m.pth"),),
        fetch=f"mkdir -p $BENCHKIT_WEIGHTS && curl -L -o $BENCHKIT_WEIGHTS/tag2text_swin_14m.pth {TAG2TEXT_URL}"),
)}


@dataclass
class ResolvedWeight:
    """A weight found on disk, with its sha256 and how that digest was checked."""

    name: str
    path: Path  # the file, or the folder for folder weights
    hashed_file: Path
    sha256: str
    verified: str  # "registry", "pin", "name-prefix" or "unverified"
    found_via: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256, "verified": self.verified,
                "found_via": self.found_via}


@dataclass
class _Candidate:
    path: Path
    via: str
    notes: list[str] = field(default_factory=list)


def parse_weight_overrides(items: list[str]) -> dict[str, str]:
    """``["NAME=PATH", ...]`` from ``--weights`` -> {name: path}, with one-line errors."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        name = name.strip()
        if not sep or not name or not path.strip():
            raise BenchkitError(f"--weights '{item}': write NAME=PATH, e.g. fid-inception=/data/inception-2015-12-05.pt")
        if name not in REGISTRY:
            raise BenchkitError(f"--weights: unknown weight '{name}'; known: {', '.join(REGISTRY)} (see `benchkit weights`)")
        out[name] = str(Path(path.strip()).expanduser())
    return out


def set_overrides(overrides: dict[str, str]) -> None:
    """Make ``--weights`` visible to this process and to any worker it starts (via the environment)."""
    merged = {**_overrides(), **overrides}
    settings.set_weight_overrides(json.dumps(merged, sort_keys=True))


def _overrides() -> dict[str, str]:
    text = settings.weight_overrides()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise BenchkitError(f"${OVERRIDES_ENV} is not JSON ({{\"name\": \"path\"}}); unset it or use --weights NAME=PATH") from None
    return {str(k): str(v) for k, v in data.items()}


def weights_dir() -> Path | None:
    return settings.weights_dir()


def _candidates(spec: WeightSpec) -> list[_Candidate]:
    cands: list[_Candidate] = []
    override = _overrides().get(spec.name)
    if override:
        return [_Candidate(Path(override), "--weights")]
    wd = weights_dir()
    if wd:
        cands.append(_Candidate(wd / spec.name, f"${WEIGHTS_DIR_ENV}"))
        if not spec.is_dir:
            cands.append(_Candidate(wd / spec.files[0], f"${WEIGHTS_DIR_ENV}"))
    if spec.hf_repo:
        snapshots = settings.hf_hub_cache() / f"models--{spec.hf_repo.replace('/', '--')}" / "snapshots"
        if snapshots.is_dir():
            for snap in sorted(snapshots.iterdir()):
                cands.append(_Candidate(snap if spec.is_dir else snap / spec.files[0], "HF cache"))
    if spec.torch_hub:
        cands.append(_Candidate(settings.torch_home() / "hub" / "checkpoints" / spec.files[0], "TORCH_HOME"))
    for extra in spec.extra_paths:
        cands.append(_Candidate(Path(extra), "tool cache"))
    return cands


def _hashed_file(spec: WeightSpec, path: Path) -> Path | None:
    """The file whose digest identifies the weight, or None if ``path`` does not hold the weight."""
    if spec.is_dir:
        if not path.is_dir():
            return None
        for name in (spec.files[0], *spec.alternatives):
            if (path / name).is_file():
                return path / name
        return None
    if path.is_dir():  # a folder given for a file weight: accept the file inside it
        path = path / spec.files[0]
    return path if path.is_file() else None


def _missing_files(spec: WeightSpec, folder: Path) -> list[str]:
    return [f for f in spec.files[1:] if not (folder / f).exists()]


def _hash_cache_path() -> Path:
    return settings.cache_dir() / "weight-hashes.json"


def file_sha256(path: Path) -> str:
    """sha256 of a weight file, remembered in the benchkit cache so multi-GB weights are read once."""
    return sha256_file(path, _hash_cache_path())


def user_pins() -> dict[str, str]:
    """{registry name: sha256} from ``$BENCHKIT_WEIGHTS/SHA256SUMS``."""
    wd = weights_dir()
    path = wd / PINS_FILE if wd else None
    if not path or not path.is_file():
        return {}
    pins = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise BenchkitError(f"{path} line {lineno}: expected '<64 hex sha256>  <weight name>', got {line!r}")
        pins[parts[1].lstrip("*")] = parts[0].lower()
    return pins


def _check(spec: WeightSpec, digest: str, where: Path) -> str:
    """How the digest was verified; raises a one-line error on a mismatch."""
    pin = user_pins().get(spec.name)
    expected, how = (spec.sha256, "registry") if spec.sha256 else (pin, "pin") if pin else (None, "")
    if expected:
        if digest != expected:
            raise BenchkitError(
                f"weights '{spec.name}' at {where}: sha256 {digest[:16]}… does not match the {how} "
                f"{expected[:16]}… (corrupt or a different file); delete it and fetch again: {spec.fetch_command()}")
        return how
    if spec.sha256_prefix and where.name == spec.files[0]:  # the published name carries the claim
        if not digest.startswith(spec.sha256_prefix):
            raise BenchkitError(
                f"weights '{spec.name}' at {where}: sha256 {digest[:16]}… does not start with {spec.sha256_prefix} as its "
                f"published file name says (corrupt download?); delete it and fetch again: {spec.fetch_command()}")
        return "name-prefix"
    return "unverified"


_RESOLVED: dict[tuple, ResolvedWeight] = {}


def resolve(name: str) -> ResolvedWeight:
    """Find, hash and verify weight ``name``; one-line BenchkitError when it is missing or corrupt."""
    if name not in REGISTRY:
        raise BenchkitError(f"unknown weight '{name}'; known: {', '.join(REGISTRY)}")
    spec = REGISTRY[name]
    problems = []
    for cand in _candidates(spec):
        hashed = _hashed_file(spec, cand.path)
        if hashed is None:
            if cand.via == "--weights":
                raise BenchkitError(f"--weights {name}={cand.path}: no {' or '.join((spec.files[0], *spec.alternatives))} there")
            continue
        folder = cand.path if spec.is_dir else hashed
        if spec.is_dir:
            missing = _missing_files(spec, folder)
            if missing:
                problems.append(f"{folder} lacks {', '.join(missing)}")
                continue
        key = (name, str(folder), hashed.stat().st_size, hashed.stat().st_mtime_ns, json.dumps(user_pins()))
        if key not in _RESOLVED:
            digest = file_sha256(hashed)
            _RESOLVED[key] = ResolvedWeight(name, folder, hashed, digest, _check(spec, digest, hashed), cand.via)
        return _RESOLVED[key]
    looked = ", ".join(dict.fromkeys(str(c.path) for c in _candidates(spec))) or f"nowhere (set ${WEIGHTS_DIR_ENV})"
    extra = f" ({'; '.join(problems)})" if problems else ""
    raise BenchkitError(
        f"weights '{name}' not found{extra}; looked in {looked}. Fetch: {spec.fetch_command()} "
        f"(with ${WEIGHTS_DIR_ENV} set) or pass --weights {name}=PATH")


def status_rows() -> list[dict[str, Any]]:
    """One row per registry entry: present or missing (and why), with its fetch command."""
    rows = []
    for spec in REGISTRY.values():
        row = {"name": spec.name, "description": spec.description, "source": spec.source, "license": spec.license,
               "expected_sha256": spec.sha256 or (f"{spec.sha256_prefix}… (file name)" if spec.sha256_prefix else None),
               "fetch": spec.fetch_command()}
        try:
            found = resolve(spec.name)
            row.update(status="present", path=str(found.path), sha256=found.sha256, verified=found.verified,
                       found_via=found.found_via)
        except BenchkitError as exc:
            row.update(status="corrupt" if "does not" in str(exc) else "missing", problem=str(exc))
        rows.append(row)
    return rows


def library_versions(*packages: str) -> dict[str, str]:
    """Installed versions of the libraries a metric ran on (recorded in every result's variant)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
