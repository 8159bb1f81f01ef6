"""A tiny random-initialised FLUX.2 [dev] pipeline, saved in the diffusers layout, built offline.

Flux2Pipeline reads the prompt with a Mistral 3 (Mistral3ForConditionalGeneration) in a chat template: it
formats a system message (``SYSTEM_MESSAGE``) and the prompt as content blocks (``[{"type": "text", ...}]``),
calls ``tokenizer.apply_chat_template(..., padding="max_length", truncation=True, max_length=...)`` and stacks
the hidden states of layers (10, 20, 30) channel-wise, so the transformer's ``joint_attention_dim`` is three
times the encoder's width and the encoder needs at least 30 layers (benchkit passes no
``text_encoder_out_layers``). FLUX.2-dev's model_index.json names a ``PixtralProcessor`` as its tokenizer;
so does this one:

- the tokenizer is word-level over the system message's words, the toy's digit words and a few more, with
  Mistral's control tokens ([SYSTEM_PROMPT], [INST], [IMG], ...) as single special tokens, and adds ``<s>``
  as Mistral's does; the chat template is a shortened Mistral Small 3.x one (content given as a string or
  as text blocks);
- the Mistral 3 has a 30-layer, 16-wide Mistral language model and a one-layer Pixtral vision tower that the
  pipeline never runs (text-only prompts);
- the VAE is AutoencoderKLFlux2 with two levels (scale factor 2) and 4 latent channels, so the transformer
  takes 2x2 patches of 16 channels; its batch-norm running statistics, with which the pipeline
  de-normalises latents before decoding, are random and far from (0, 1);
- the scheduler is FLUX.2-dev's shipped config: dynamic, exponential time shift (the pipeline gives ``mu``).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from benchkit.toy.teacher import vocabulary

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
CONTROL_TOKENS = ("[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[IMG]", "[IMG_BREAK]", "[IMG_END]")
# words of prompts beyond the toy's vocabulary (the toy's digit words are in it)
EXTRA_WORDS = ("cat", "dog", "on", "red", "blue", "car", "walks", "runs", "blurry")
TEXT_WIDTH, TEXT_LAYERS = 16, 30  # the pipeline stacks hidden states 10, 20 and 30

# Mistral Small 3.x's chat template, shortened: the system prompt, then each user turn's text blocks
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{- '[SYSTEM_PROMPT]' }}{%- else %}{{- '[INST]' }}{%- endif %}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for block in message['content'] %}"
    "{%- if block['type'] == 'text' %}{{- block['text'] }}{%- elif block['type'] == 'image' %}{{- '[IMG]' }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'system' %}{{- '[/SYSTEM_PROMPT]' }}{%- else %}{{- '[/INST]' }}{%- endif %}"
    "{%- endfor %}"
)

# FLUX.2-dev's scheduler/scheduler_config.json
SCHEDULER_CONFIG = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5,
                    "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096,
                    "time_shift_type": "exponential"}


def build_mistral_tokenizer():
    """A word-level tokenizer splitting as the Whitespace pre-tokenizer does, Mistral's control tokens whole."""
    from diffusers.pipelines.flux2.system_messages import SYSTEM_MESSAGE
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = set(re.findall(r"\w+|[^\w\s]+", SYSTEM_MESSAGE)) | set(vocabulary()[4:]) | set(EXTRA_WORDS)
    specials = (UNK, BOS, EOS, PAD, *CONTROL_TOKENS)
    vocab = {t: i for i, t in enumerate((*specials, *sorted(words)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
                                   model_max_length=1024, padding_side="right", chat_template=CHAT_TEMPLATE)


def build_flux2(root: Path) -> Path:
    """FLUX.2-dev-shaped: one double- and one single-stream block over 2x2 patches of a 4-channel
    AutoencoderKLFlux2, guidance embedding, a 30-layer tiny Mistral 3 read through a PixtralProcessor."""
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2Pipeline,
        Flux2Transformer2DModel,
    )
    from transformers import (
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        MistralConfig,
        PixtralImageProcessor,
        PixtralProcessor,
        PixtralVisionConfig,
    )

    torch.manual_seed(0)
    tok = build_mistral_tokenizer()
    ids = tok.convert_tokens_to_ids
    text = MistralConfig(vocab_size=len(tok), hidden_size=TEXT_WIDTH, intermediate_size=32,
                         num_hidden_layers=TEXT_LAYERS, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                         max_position_embeddings=1024, sliding_window=None, pad_token_id=ids(PAD),
                         bos_token_id=ids(BOS), eos_token_id=ids(EOS))
    vision = PixtralVisionConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 head_dim=4, patch_size=4, image_size=16)
    encoder = Mistral3ForConditionalGeneration(Mistral3Config(vision_config=vision, text_config=text,
                                                              image_token_index=ids("[IMG]"), spatial_merge_size=2))
    processor = PixtralProcessor(image_processor=PixtralImageProcessor(size={"longest_edge": 16}, patch_size=4),
                                 tokenizer=tok, patch_size=4, spatial_merge_size=2, chat_template=CHAT_TEMPLATE)
    vae = AutoencoderKLFlux2(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                             up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                             latent_channels=4, norm_num_groups=4, sample_size=32)
    patched = vae.bn.num_features  # 2x2 patches of the latent channels: the transformer's input channels
    with torch.no_grad():  # a missed (de)normalisation would show
        vae.bn.running_mean.copy_(torch.randn(patched) * 0.5)
        vae.bn.running_var.copy_(torch.rand(patched) * 3.0 + 0.25)
    # rotary axes (2, 2, 2, 2) sum to the head dim; the context is three stacked encoder layers
    transformer = Flux2Transformer2DModel(patch_size=1, in_channels=patched, num_layers=1, num_single_layers=1,
                                          attention_head_dim=8, num_attention_heads=2,
                                          joint_attention_dim=3 * TEXT_WIDTH, timestep_guidance_channels=32,
                                          axes_dims_rope=(2, 2, 2, 2), guidance_embeds=True)
    pipe = Flux2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG), vae=vae, text_encoder=encoder,
                         tokenizer=processor, transformer=transformer)
    pipe.save_pretrained(root)
    return root
