"""Tiny random-initialised pipelines of every family benchkit runs, saved in real on-disk formats.

Shapes follow diffusers' own fast-test configs, shrunk further; tokenizers are the toy's
offline word-level tokenizer (the hub's tiny-random tokenizers need network access).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchkit.toy.teacher import SCHEDULER_CONFIG, build_tokenizer


def clip_config(vocab: int, hidden: int = 32, projection: int | None = None, max_positions: int = 16):
    from transformers import CLIPTextConfig

    kw = {"projection_dim": projection} if projection else {}
    return CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=37, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=max_positions, pad_token_id=0,
                          bos_token_id=2, eos_token_id=3, **kw)


def tiny_vae(latent_channels: int = 4, **config):
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(8, 16),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         norm_num_groups=4, layers_per_block=1, sample_size=16, **config)


def build_sd15(root: Path) -> Path:
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    tok = build_tokenizer()
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                                cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    pipe = StableDiffusionPipeline(vae=tiny_vae(), text_encoder=CLIPTextModel(clip_config(len(tok))), tokenizer=tok,
                                   unet=unet, scheduler=DDIMScheduler(**SCHEDULER_CONFIG), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(root)
    return root


def build_sdxl(root: Path) -> Path:
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tok = build_tokenizer()
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                layers_per_block=1, attention_head_dim=(2, 4), use_linear_projection=True,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
                                cross_attention_dim=64, norm_num_groups=8)
    config = {k: v for k, v in SCHEDULER_CONFIG.items() if k not in ("clip_sample", "set_alpha_to_one")}
    pipe = StableDiffusionXLPipeline(
        vae=tiny_vae(), text_encoder=CLIPTextModel(clip_config(len(tok))),
        text_encoder_2=CLIPTextModelWithProjection(clip_config(len(tok), projection=32)), tokenizer=tok,
        tokenizer_2=build_tokenizer(), unet=unet, scheduler=EulerDiscreteScheduler(**config),
        force_zeros_for_empty_prompt=True)
    pipe.save_pretrained(root)
    return root


def build_sd3(root: Path) -> Path:
    """SD3-shaped: MMDiT transformer, two CLIP encoders with projection, no T5 (optional in SD3)."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(0)
    tok = build_tokenizer()
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                                        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=64,
                                        pooled_projection_dim=64, out_channels=4)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_vae(shift_factor=0.0609, scaling_factor=1.5305),
        text_encoder=CLIPTextModelWithProjection(clip_config(len(tok), projection=32)), tokenizer=tok,
        text_encoder_2=CLIPTextModelWithProjection(clip_config(len(tok), projection=32)), tokenizer_2=build_tokenizer(),
        text_encoder_3=None, tokenizer_3=None)
    pipe.save_pretrained(root)
    return root


def build_flux(root: Path, guidance_embeds: bool = True) -> Path:
    """FLUX.1-shaped: one double- and one single-stream block over 2x2-packed 16-channel latents, CLIP
    (pooled) + T5, guidance embedding (dev) or none (schnell), the dynamic-shift flow scheduler."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    tok = build_tokenizer()
    # rotary axes (2, 2, 4) sum to the head dim; joint/pooled dims are T5's d_model and CLIP's width
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                         attention_head_dim=8, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, guidance_embeds=guidance_embeds, axes_dims_rope=(2, 2, 4))
    encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
                                        pad_token_id=0, eos_token_id=3))
    # FLUX.1-dev's shipped scheduler config (schnell's has use_dynamic_shifting false)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0 if guidance_embeds else 1.0, use_dynamic_shifting=guidance_embeds,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=tiny_vae(latent_channels=16, shift_factor=0.1159, scaling_factor=0.3611),
                        text_encoder=CLIPTextModel(clip_config(len(tok))), tokenizer=tok, text_encoder_2=encoder_2,
                        tokenizer_2=build_tokenizer(), transformer=transformer)
    pipe.save_pretrained(root)
    return root


def build_sana(root: Path, sprint: bool = False) -> Path:
    """SANA-shaped: a one-block linear DiT, a two-level DC-AE, a one-layer Gemma-2 encoder; SANA's
    flow DPM-Solver as shipped, or SANA-Sprint's SCM scheduler and guidance embedding."""
    from diffusers import (
        AutoencoderDC,
        DPMSolverMultistepScheduler,
        SanaPipeline,
        SanaSprintPipeline,
        SanaTransformer2DModel,
        SCMScheduler,
    )
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    tok = build_tokenizer()
    transformer = SanaTransformer2DModel(patch_size=1, in_channels=4, out_channels=4, num_layers=1, num_attention_heads=2,
                                         attention_head_dim=4, num_cross_attention_heads=2, cross_attention_head_dim=4,
                                         cross_attention_dim=8, caption_channels=8, sample_size=8,
                                         guidance_embeds=sprint, qk_norm="rms_norm_across_heads" if sprint else None)
    vae = AutoencoderDC(in_channels=3, latent_channels=4, attention_head_dim=2, encoder_block_types=("ResBlock", "EfficientViTBlock"),
                        decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(8, 8),
                        decoder_block_out_channels=(8, 8), encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
                        encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1), downsample_block_type="conv",
                        upsample_block_type="interpolate", decoder_norm_types="rms_norm", decoder_act_fns="silu",
                        scaling_factor=0.41407)
    encoder = Gemma2Model(Gemma2Config(vocab_size=len(tok), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, num_key_value_heads=2, head_dim=4, pad_token_id=0,
                                       bos_token_id=2, eos_token_id=3))
    if sprint:
        pipe = SanaSprintPipeline(tokenizer=tok, text_encoder=encoder, vae=vae, transformer=transformer,
                                  scheduler=SCMScheduler())
    else:  # SANA 1.6B ships DPM-Solver++ on flow sigmas, shift 3
        scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")
        pipe = SanaPipeline(tokenizer=tok, text_encoder=encoder, vae=vae, transformer=transformer, scheduler=scheduler)
    pipe.save_pretrained(root)
    return root


def build_zimage(root: Path) -> Path:
    """Z-Image-shaped: a one-layer single-stream DiT over 2x2 patches of 16-channel latents, a two-layer
    Qwen3 encoder whose tokenizer carries a chat template, Z-Image-Turbo's flow scheduler (shift 3)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(0)
    tok = build_tokenizer()
    tok.chat_template = "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}{% endfor %}"
    # rotary axes (4, 6, 6) sum to the head dim 32 / 2; cap_feat_dim is the encoder's width
    transformer = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=1,
                                           n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=16, axes_dims=[4, 6, 6],
                                           axes_lens=[64, 32, 32])
    encoder = Qwen3Model(Qwen3Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, num_key_value_heads=2, head_dim=8, pad_token_id=0,
                                     bos_token_id=2, eos_token_id=3))
    pipe = ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False),
                          vae=tiny_vae(latent_channels=16, shift_factor=0.1159, scaling_factor=0.3611), text_encoder=encoder,
                          tokenizer=tok, transformer=transformer)
    pipe.save_pretrained(root)
    return root


def build_qwenimage(root: Path) -> Path:
    """Qwen-Image-shaped: a two-block MMDiT over packed latents of a three-level one-frame video VAE
    (4 latent channels, per-channel statistics), a two-layer Qwen2.5-VL, the shipped flow scheduler."""
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImagePipeline, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    tok = build_tokenizer()
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
                                              num_attention_heads=3, joint_attention_dim=16, guidance_embeds=False,
                                              axes_dims_rope=(8, 4, 4))
    vae = AutoencoderKLQwenImage(base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1, temperal_downsample=[False, True],
                                 latents_mean=[0.1, -0.2, 0.3, 0.0], latents_std=[1.5, 0.8, 1.2, 1.0])
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                     "rope_theta": 1000000.0, "vocab_size": len(tok), "bos_token_id": 2, "eos_token_id": 3},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=len(tok), bos_token_id=2, eos_token_id=3, vision_end_token_id=len(tok) - 1, vision_start_token_id=len(tok) - 2,
        vision_token_id=len(tok) - 3)
    # Qwen-Image's shipped scheduler config: dynamic exponential shift between log 0.5 and log 0.9, terminal 0.02
    scheduler = FlowMatchEulerDiscreteScheduler(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=8192, max_shift=0.9,
                                                shift=1.0, shift_terminal=0.02, use_dynamic_shifting=True,
                                                time_shift_type="exponential")
    pipe = QwenImagePipeline(scheduler=scheduler, vae=vae, text_encoder=Qwen2_5_VLForConditionalGeneration(config),
                             tokenizer=tok, transformer=transformer)
    pipe.save_pretrained(root)
    return root


def _wan_transformer(in_channels: int, out_channels: int, **extra):
    """A two-block Wan video DiT over (1, 2, 2) patches, text width 32 (the tiny UMT5's)."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
                                 out_channels=out_channels, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
                                 cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32, **extra)


def _wan21_vae():
    """Wan 2.1's causal 3-D VAE, tiny: 4x in time, 8x in space, 16 channels with its default statistics."""
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])


def _umt5(tok):
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
                                       pad_token_id=0, eos_token_id=3, decoder_start_token_id=0))


def _wan_scheduler(flow_shift: float):
    """UniPC on flow sigmas, as the Wan folders ship it."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                                   flow_shift=flow_shift)


def build_wan(root: Path, image_to_video: bool = False) -> Path:
    """Wan 2.1-shaped: a two-block video DiT over (1, 2, 2) patches, Wan's causal 3-D VAE (4x time, 8x space,
    16 channels with per-channel statistics), a one-layer UMT5, UniPC on flow sigmas with shift 3 (480p).
    ``image_to_video``: Wan 2.1 I2V, whose transformer takes the noise, a frame mask and the image latents
    (16 + 4 + 16 channels) and a CLIP vision encoder's embedding of the image."""
    from diffusers import WanImageToVideoPipeline, WanPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    tok = build_tokenizer()
    transformer = _wan_transformer(36, 16, image_dim=4) if image_to_video else _wan_transformer(16, 16)
    vae = _wan21_vae()
    encoder = _umt5(tok)
    scheduler = _wan_scheduler(3.0)
    if image_to_video:
        vision = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                                                                num_attention_heads=2, image_size=32, intermediate_size=16,
                                                                patch_size=1))
        pipe = WanImageToVideoPipeline(tokenizer=tok, text_encoder=encoder, vae=vae, transformer=transformer,
                                       scheduler=scheduler, image_encoder=vision,
                                       image_processor=CLIPImageProcessor(crop_size=32, size=32))
    else:
        pipe = WanPipeline(tokenizer=tok, text_encoder=encoder, vae=vae, transformer=transformer, scheduler=scheduler)
    pipe.save_pretrained(root)
    return root


def build_wan22(root: Path, ti2v: bool = False, image_to_video: bool = False) -> Path:
    """Wan 2.2-shaped. A14B (default): two experts, ``transformer`` for high noise and ``transformer_2`` for low,
    switching at boundary_ratio 0.875 of the training timesteps, on Wan 2.1's VAE. TI2V-5B (``ti2v``): one
    transformer with a timestep per latent token (expand_timesteps) on the Wan 2.2 VAE (48 channels with their
    own statistics, a 2x2 pixel patchify before its 8x encoder: 16x in space), UniPC shift 5.
    ``image_to_video``: saved as WanImageToVideoPipeline without a CLIP image encoder (Wan 2.2 has none): A14B
    I2V's transformers take noise, a frame mask and the image latents (16 + 4 + 16 channels), boundary 0.9;
    TI2V-5B's takes the noise with the image's latents written into its first frame."""
    from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanPipeline

    torch.manual_seed(0)
    tok = build_tokenizer()
    channels = 12 if ti2v else 16
    inputs = 36 if image_to_video and not ti2v else channels

    def transformer():
        return _wan_transformer(inputs, channels)

    if ti2v:
        g = torch.Generator().manual_seed(1)  # statistics that are not Wan 2.1's defaults, as the 2.2 VAE's are not
        vae = AutoencoderKLWan(base_dim=4, z_dim=channels, dim_mult=[1, 1, 1, 1], num_res_blocks=1, is_residual=True,
                               in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16,
                               temperal_downsample=[False, True, True],
                               latents_mean=torch.randn(channels, generator=g).tolist(),
                               latents_std=(torch.rand(channels, generator=g) + 0.5).tolist())
    else:
        vae = _wan21_vae()
    encoder = _umt5(tok)
    scheduler = _wan_scheduler(5.0 if ti2v else 3.0)
    if ti2v:
        experts = {"expand_timesteps": True}
    else:
        experts = {"transformer_2": transformer(), "boundary_ratio": 0.9 if image_to_video else 0.875}
    if image_to_video:
        WanImageToVideoPipeline(tokenizer=tok, text_encoder=encoder, vae=vae, transformer=transformer(), scheduler=scheduler,
                                image_encoder=None, image_processor=None, **experts).save_pretrained(root)
    else:
        WanPipeline(tokenizer=tok, text_encoder=encoder, vae=vae, transformer=transformer(), scheduler=scheduler,
                    **experts).save_pretrained(root)
    return root


def build_hunyuanvideo(root: Path) -> Path:
    """HunyuanVideo-shaped: one dual- and one single-stream block over (1, 2, 2) patches with guidance
    embedding, a two-level causal 3-D VAE (4x time), a two-layer Llama and a CLIP with pooled output."""
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import CLIPTextModel, LlamaConfig, LlamaModel

    torch.manual_seed(0)
    tok = build_tokenizer()
    tok.model_max_length = 512
    transformer = HunyuanVideoTransformer3DModel(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10,
                                                 num_layers=1, num_single_layers=1, num_refiner_layers=1, patch_size=2,
                                                 patch_size_t=1, guidance_embeds=True, text_embed_dim=16,
                                                 pooled_projection_dim=32, rope_axes_dim=(2, 4, 4))
    vae = AutoencoderKLHunyuanVideo(in_channels=3, out_channels=3, latent_channels=4,
                                    down_block_types=("HunyuanVideoDownBlock3D",) * 4,
                                    up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                                    layers_per_block=1, act_fn="silu", norm_num_groups=4, scaling_factor=0.476986,
                                    spatial_compression_ratio=8, temporal_compression_ratio=4, mid_block_add_attention=True)
    llama = LlamaModel(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=37, num_hidden_layers=3,
                                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                                   pad_token_id=0, bos_token_id=2, eos_token_id=3, head_dim=4))
    clip_tok = build_tokenizer()
    pipe = HunyuanVideoPipeline(text_encoder=llama, tokenizer=tok, transformer=transformer, vae=vae,
                                scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                                text_encoder_2=CLIPTextModel(clip_config(len(clip_tok), max_positions=77)), tokenizer_2=clip_tok)
    pipe.save_pretrained(root)
    return root


def build_ltx(root: Path, condition: bool = False) -> Path:
    """LTX-Video 0.9.1-shaped: a one-block video DiT over single voxels (patch 1), an 8-channel causal VAE with
    4x space and 4x time compression, random per-channel statistics (buffers) and a timestep-conditioned
    decoder that injects noise, a one-layer T5, the cards' flow scheduler (dynamic shift, terminal 0.1).
    ``condition``: saved as LTXConditionPipeline (0.9.5+, the distilled models' layout) with the static-shift
    scheduler diffusers' converter writes for it (the condition pipeline passes no dynamic shift)."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tok = build_tokenizer()
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2,
                                             attention_head_dim=8, cross_attention_dim=16, num_layers=1, caption_channels=32)
    vae = AutoencoderKLLTXVideo(in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8,) * 4,
                                decoder_block_out_channels=(8,) * 4, layers_per_block=(1,) * 5, decoder_layers_per_block=(1,) * 5,
                                spatio_temporal_scaling=(True, True, False, False),
                                decoder_spatio_temporal_scaling=(True, True, False, False),
                                decoder_inject_noise=(True, True, True, False, False), upsample_residual=(False,) * 4,
                                upsample_factor=(1,) * 4, timestep_conditioning=True, patch_size=1, patch_size_t=1,
                                encoder_causal=True, decoder_causal=False)
    with torch.no_grad():  # released VAEs carry real statistics; zeros and ones would hide a missed denormalisation
        vae.latents_mean.normal_()
        vae.latents_std.uniform_(0.5, 2.0)
    encoder = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
                                      pad_token_id=0, eos_token_id=3))
    if condition:
        scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False)
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                    base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)
    cls = LTXConditionPipeline if condition else LTXPipeline
    cls(scheduler=scheduler, vae=vae, text_encoder=encoder, tokenizer=tok, transformer=transformer).save_pretrained(root)
    return root


def build_cogvideox(root: Path, image_to_video: bool = False) -> Path:
    """CogVideoX-shaped; ``image_to_video``: the I2V variant, whose transformer takes the first frame's
    latents beside the noise (twice the input channels) with learned positional embeddings, as 5B-I2V ships."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tok = build_tokenizer()
    tok.model_max_length = 226
    # (rotary embeddings split the head dim in quarters and eighths: 16 keeps every part even)
    i2v = {"use_learned_positional_embeddings": True, "use_rotary_positional_embeddings": True} if image_to_video else {}
    transformer = CogVideoXTransformer3DModel(num_attention_heads=4, attention_head_dim=16 if image_to_video else 8,
                                              in_channels=8 if image_to_video else 4,
                                              out_channels=4, time_embed_dim=2, text_embed_dim=32, num_layers=1, sample_width=4,
                                              sample_height=4, sample_frames=9, patch_size=2, temporal_compression_ratio=4,
                                              max_text_seq_length=226, **i2v)
    vae = AutoencoderKLCogVideoX(in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
                                 up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                                 latent_channels=4, layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    encoder = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
                                      pad_token_id=0, eos_token_id=3))
    # as CogVideoX ships: zero terminal SNR, hence v-prediction (epsilon is undefined at t=999 there)
    config = {k: v for k, v in SCHEDULER_CONFIG.items() if k not in ("steps_offset", "prediction_type")}
    scheduler = CogVideoXDDIMScheduler(**config, prediction_type="v_prediction",
                                       timestep_spacing="trailing", rescale_betas_zero_snr=True, snr_shift_scale=1.0)
    cls = CogVideoXImageToVideoPipeline if image_to_video else CogVideoXPipeline
    pipe = cls(tokenizer=tok, text_encoder=encoder, vae=vae, transformer=transformer, scheduler=scheduler)
    pipe.save_pretrained(root)
    return root


def write_kohya_lora(unet, path: Path, rank: int = 4, alpha: float = 2.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """A kohya-format LoRA (``lora_unet_*.lora_down/lora_up/alpha``) on the UNet's attention projections,
    with non-zero up weights so it changes the model. Returns the PEFT-format state dict it encodes."""
    import copy

    from diffusers.utils import convert_state_dict_to_kohya
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
    from safetensors.torch import save_file

    model = copy.deepcopy(unet)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    torch.manual_seed(seed)
    inject_adapter_in_model(config, model)
    peft_state = get_peft_model_state_dict(model)
    kohya = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in peft_state.items()})
    # diffusers' converter writes alpha = rank; released kohya files (DMD2: rank 64, alpha 8) do not
    kohya = {k: (torch.tensor(float(alpha)) if k.endswith(".alpha") else v) for k, v in kohya.items()}
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(path))
    return peft_state


def write_peft_lora(pipeline_cls, model, folder: Path, targets=("to_q", "to_k", "to_v"), rank: int = 4,
                    alpha: float = 4.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """A PEFT/diffusers-format LoRA saved with the pipeline's own ``save_lora_weights``."""
    import copy

    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    model = copy.deepcopy(model)
    torch.manual_seed(seed)
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False), model)
    state = get_peft_model_state_dict(model)
    key = "transformer_lora_layers" if "transformer" in type(model).__name__.lower() else "unet_lora_layers"
    pipeline_cls.save_lora_weights(str(folder), **{key: state}, weight_name="lora.safetensors")
    return state


def write_unet_state_dict(model, path: Path, seed: int = 1) -> dict[str, torch.Tensor]:
    """A 'distilled' denoiser: the base's weights perturbed, saved as a bare state dict (.bin or .safetensors)."""
    g = torch.Generator().manual_seed(seed)
    state = {k: (v + 0.01 * torch.randn(v.shape, generator=g)).to(torch.float16) for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return state


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Every family on disk, plus a kohya LoRA, PEFT LoRAs and UNet state dicts beside them."""
    from diffusers import (
        StableDiffusion3Pipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    root = tmp_path_factory.mktemp("tiny")
    out = {"sd15": build_sd15(root / "sd15"), "sdxl": build_sdxl(root / "sdxl"), "sd3": build_sd3(root / "sd3"),
           "cogvideox": build_cogvideox(root / "cogvideox"), "root": root}
    sd15_unet = UNet2DConditionModel.from_pretrained(out["sd15"] / "unet")
    sdxl_unet = UNet2DConditionModel.from_pretrained(out["sdxl"] / "unet")
    out["sd15_kohya_state"] = write_kohya_lora(sd15_unet, root / "sd15_kohya.safetensors")
    out["sdxl_kohya_state"] = write_kohya_lora(sdxl_unet, root / "sdxl_kohya.safetensors", seed=1)
    out["sdxl_peft_state"] = write_peft_lora(StableDiffusionXLPipeline, sdxl_unet, root / "sdxl_peft")
    from diffusers import SD3Transformer2DModel

    out["sd3_peft_state"] = write_peft_lora(StableDiffusion3Pipeline, SD3Transformer2DModel.from_pretrained(out["sd3"] / "transformer"),
                                            root / "sd3_peft")
    out["sdxl_unet_bin"] = write_unet_state_dict(sdxl_unet, root / "sdxl_unet_fp16.bin")
    out["sdxl_unet_st"] = write_unet_state_dict(sdxl_unet, root / "sdxl_unet.safetensors", seed=2)
    out["sd15_unet_bin"] = write_unet_state_dict(sd15_unet, root / "sd15_unet.bin", seed=3)
    return out


# ---- an original-layout (A1111/LDM) single-file checkpoint, for from_single_file ---------------
# Key names follow the LDM layout rules (input/middle/output blocks, first_stage_model,
# cond_stage_model); the test checks the round trip through diffusers' own converter.

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
          ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]


def _resnet(rest):
    for d, l in _RESNET:
        if rest.startswith(d + "."):
            return l + rest[len(d):]
    raise KeyError(rest)


def _unet_to_ldm(state, config):
    L = config["layers_per_block"]
    attn_up = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    out = {}
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for k, v in state.items():
        parts = k.split(".")
        head = ".".join(parts[:2])
        if head in fixed:
            new = fixed[head] + "." + ".".join(parts[2:])
        elif parts[0] in fixed:
            new = fixed[parts[0]] + "." + ".".join(parts[1:])
        elif parts[0] == "down_blocks":
            i, kind = int(parts[1]), parts[2]
            if kind == "downsamplers":
                new = f"input_blocks.{(i + 1) * (L + 1)}.0.op." + ".".join(parts[5:])
            else:
                j, rest = int(parts[3]), ".".join(parts[4:])
                idx = 1 + i * (L + 1) + j
                new = f"input_blocks.{idx}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{idx}.1.{rest}"
        elif parts[0] == "mid_block":
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            new = f"middle_block.{2 * j}.{_resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
        elif parts[0] == "up_blocks":
            i, kind = int(parts[1]), parts[2]
            if kind == "upsamplers":
                new = f"output_blocks.{i * (L + 1) + L}.{2 if attn_up[i] else 1}." + ".".join(parts[4:])
            else:
                j, rest = int(parts[3]), ".".join(parts[4:])
                idx = i * (L + 1) + j
                new = f"output_blocks.{idx}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{idx}.1.{rest}"
        else:
            raise KeyError(k)
        out["model.diffusion_model." + new] = v
    return out


def _vae_to_ldm(state, config):
    n = len(config["block_out_channels"])
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        side = parts[0]
        if side in ("quant_conv", "post_quant_conv"):
            new = k
        elif parts[1] in ("conv_in", "conv_out"):
            new = k
        elif parts[1] == "conv_norm_out":
            new = f"{side}.norm_out." + ".".join(parts[2:])
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                new = f"{side}.mid.block_{int(parts[3]) + 1}." + ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            else:
                rest = ".".join(parts[4:])
                name = next(d for d in attn if rest.startswith(d + "."))
                new = f"{side}.mid.attn_1.{attn[name]}{rest[len(name):]}"
                if v.ndim == 2:
                    v = v.reshape(*v.shape, 1, 1)
        elif parts[1] in ("down_blocks", "up_blocks"):
            i = int(parts[2])
            block = f"{side}.down.{i}" if parts[1] == "down_blocks" else f"{side}.up.{n - 1 - i}"
            if parts[3] == "resnets":
                new = f"{block}.block.{parts[4]}." + ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
            else:
                new = f"{block}.{'downsample' if parts[1] == 'down_blocks' else 'upsample'}." + ".".join(parts[5:])
        else:
            raise KeyError(k)
        out["first_stage_model." + new] = v
    return out


def write_ldm_checkpoint(folder: Path, path: Path) -> None:
    """The SD1.5-like pipeline in ``folder`` as one original-layout .safetensors file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    text = CLIPTextModel.from_pretrained(folder / "text_encoder")
    text_state = {k.removeprefix("text_model."): v for k, v in text.state_dict().items()}
    state = {**_unet_to_ldm(unet.state_dict(), dict(unet.config)), **_vae_to_ldm(vae.state_dict(), dict(vae.config)),
             **{"cond_stage_model.transformer.text_model." + k: v for k, v in text_state.items()}}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
