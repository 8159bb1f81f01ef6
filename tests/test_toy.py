"""The toy world: shipped weights load in their real formats, training is deterministic."""

import hashlib
import json

import torch

from benchkit.toy import CLASSIFIER_DIR, TEACHER_DIR
from benchkit.toy.classifier import (
    ClassifierTrainConfig,
    load_classifier,
    train_classifier,
)
from benchkit.toy.data import load_digits_uint8, split_indices
from benchkit.toy.teacher import TeacherTrainConfig, train_teacher


def test_shipped_teacher_is_a_diffusers_folder():
    from diffusers import UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    index = json.loads((TEACHER_DIR / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    unet = UNet2DConditionModel.from_pretrained(TEACHER_DIR / "unet")
    tok = AutoTokenizer.from_pretrained(TEACHER_DIR / "tokenizer")
    enc = CLIPTextModel.from_pretrained(TEACHER_DIR / "text_encoder")
    ids = tok(["a handwritten digit seven"], padding="max_length", max_length=16, return_tensors="pt").input_ids
    assert tok.convert_ids_to_tokens(ids[0, :6].tolist()) == ["[BOS]", "a", "handwritten", "digit", "seven", "[EOS]"]
    assert enc(ids).last_hidden_state.shape == (1, 16, unet.config.cross_attention_dim)
    training = json.loads((TEACHER_DIR / "training.json").read_text())
    weights = TEACHER_DIR / "unet" / "diffusion_pytorch_model.safetensors"
    assert training["unet_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert weights.stat().st_size < 8_000_000


def test_shipped_classifier_accuracy_on_held_out_digits():
    model = load_classifier(CLASSIFIER_DIR)
    images, labels = load_digits_uint8()
    _, test = split_indices(len(images))
    x = torch.as_tensor(images[test], dtype=torch.float32).unsqueeze(1) / 255.0
    with torch.no_grad():
        acc = (model(x).argmax(1).numpy() == labels[test]).mean()
    assert acc > 0.97


def test_teacher_training_is_deterministic(tmp_path):
    cfg = TeacherTrainConfig(steps=3, batch_size=16)
    a = train_teacher(tmp_path / "a", cfg)
    b = train_teacher(tmp_path / "b", cfg)
    assert a["unet_sha256"] == b["unet_sha256"]
    c = train_teacher(tmp_path / "c", TeacherTrainConfig(steps=3, batch_size=16, seed=1))
    assert c["unet_sha256"] != a["unet_sha256"]


def test_classifier_training_is_deterministic(tmp_path):
    cfg = ClassifierTrainConfig(epochs=1)
    assert train_classifier(tmp_path / "a", cfg)["sha256"] == train_classifier(tmp_path / "b", cfg)["sha256"]
