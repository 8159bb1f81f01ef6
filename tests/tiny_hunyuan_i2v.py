"""A tiny random-initialised HunyuanVideo-I2V pipeline, saved in the diffusers layout, built offline.

HunyuanVideoImageToVideoPipeline reads the prompt with a LLaVA (Llama + CLIP vision) in its default
template (``DEFAULT_PROMPT_TEMPLATE``), whose positions are fixed for Llama 3's tokenizer: ``<image>`` is
token 5 (after ``<|begin_of_text|>``), it stands for ``image_emb_len`` = 576 image tokens, and the system
part of the template is ``crop_start`` = 103 tokens long. benchkit calls the pipeline with that default
template, so the tiny model is shaped to it:

- the tokenizer is word-level, but splits text with Llama 3's own pre-tokenizer pattern, so that every
  Llama 3 pre-token is one token: the template's system part is then exactly 103 tokens with ``<image>``
  at 5, and the pipeline crops exactly the prompt out of the LLaVA's hidden states;
- the LLaVA's CLIP vision tower sees 24 x 24 one-pixel patches: 576 image features, one per image token.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchkit.toy.teacher import SPECIAL_TOKENS, build_tokenizer, vocabulary

# Llama 3's pre-tokenizer (its tokenizer.json's Split pattern)
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
TEMPLATE_SPECIAL_TOKENS = ("<image>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
BOS, PAD, UNK = "<|begin_of_text|>", "<|end_of_text|>", "<unk>"
IMAGE_SIDE = 24  # the vision tower's 24 x 24 patches: the template's 576 image tokens
# words of prompts beyond the toy's vocabulary (the toy's digit words are in it)
EXTRA_WORDS = ("a", "cat", "dog", "on", "red", "blue", "car", "walks", "runs", "digit", "blurry")


def llama3_pieces(text: str) -> list[str]:
    from tokenizers import Regex, pre_tokenizers

    return [p for p, _ in pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated").pre_tokenize_str(text)]


def build_llava_tokenizer():
    """A word-level tokenizer that splits like Llama 3's, with the template's special tokens as single tokens."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    template = DEFAULT_PROMPT_TEMPLATE["template"]
    for special in TEMPLATE_SPECIAL_TOKENS + ("{}",):  # the text between them, as Llama 3 splits it
        template = template.replace(special, "\0")
    pieces = {p for part in template.split("\0") for p in llama3_pieces(part)}
    for word in set(vocabulary()[len(SPECIAL_TOKENS):]) | set(EXTRA_WORDS):  # a prompt's first word follows "\n\n", the rest a space
        pieces |= {word, " " + word, word.capitalize(), " " + word.capitalize()}
    tokens = [PAD, UNK, BOS, *TEMPLATE_SPECIAL_TOKENS, *sorted(pieces)]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (PAD, UNK, BOS, *TEMPLATE_SPECIAL_TOKENS)])
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, pad_token=PAD, unk_token=UNK,
                                   model_max_length=1024, padding_side="right")


def build_hunyuanvideo_i2v(root: Path, latent_concat: bool = False) -> Path:
    """HunyuanVideo-I2V-shaped, as build_hunyuanvideo (tests/tiny_pipelines.py) plus the image.

    ``latent_concat=False``: HunyuanVideo-I2V (diffusers' "HYVideo-T/2-I2V-16ch"): ``image_condition_type``
    "token_replace", in_channels = the VAE's latent channels, guidance embedded. ``latent_concat=True``:
    HunyuanVideo-I2V-33ch: "latent_concat", noise + image latents + mask (2 * 4 + 1 channels), no guidance
    embedding. The text encoder is a LLaVA (two-layer Llama + two-layer CLIP vision tower of 576 patches)."""
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoImageToVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModel,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    from tiny_pipelines import clip_config

    torch.manual_seed(0)
    tok = build_llava_tokenizer()
    condition = ({"in_channels": 2 * 4 + 1, "guidance_embeds": False, "image_condition_type": "latent_concat"}
                 if latent_concat else
                 {"in_channels": 4, "guidance_embeds": True, "image_condition_type": "token_replace"})
    transformer = HunyuanVideoTransformer3DModel(out_channels=4, num_attention_heads=2, attention_head_dim=10,
                                                 num_layers=1, num_single_layers=1, num_refiner_layers=1, patch_size=2,
                                                 patch_size_t=1, text_embed_dim=16, pooled_projection_dim=32,
                                                 rope_axes_dim=(2, 4, 4), **condition)
    vae = AutoencoderKLHunyuanVideo(in_channels=3, out_channels=3, latent_channels=4,
                                    down_block_types=("HunyuanVideoDownBlock3D",) * 4,
                                    up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                                    layers_per_block=1, act_fn="silu", norm_num_groups=4, scaling_factor=0.476986,
                                    spatial_compression_ratio=8, temporal_compression_ratio=4, mid_block_add_attention=True)
    pad, image_token = tok.convert_tokens_to_ids(PAD), tok.convert_tokens_to_ids("<image>")
    text = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=37, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024, head_dim=4,
                       pad_token_id=pad, bos_token_id=tok.bos_token_id, eos_token_id=pad)
    vision = CLIPVisionConfig(hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=2,
                              image_size=IMAGE_SIDE, patch_size=1, projection_dim=8)
    llava = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token,
                                                      image_seq_length=IMAGE_SIDE * IMAGE_SIDE, pad_token_id=pad))
    clip_tok = build_tokenizer()
    pipe = HunyuanVideoImageToVideoPipeline(
        text_encoder=llava, tokenizer=tok, transformer=transformer, vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=CLIPTextModel(clip_config(len(clip_tok), max_positions=77)), tokenizer_2=clip_tok,
        image_processor=CLIPImageProcessor(size={"shortest_edge": IMAGE_SIDE},
                                           crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}))
    pipe.save_pretrained(root)
    return root
