"""Prompt conditioning for a teacher spec, built the way the family's diffusers pipeline builds it.

A distiller's teacher must see at training time exactly what it sees at sampling time, so
each kind of conditioning a family declares follows its pipeline's ``encode_prompt``:

- "clip" (SD1.5 and the toy): the CLIP encoder's last hidden state; unconditional = encode("").
- "clip-pooled" (SDXL): both CLIP encoders' penultimate hidden states concatenated on the channel axis, the
  pooled (projected) output of the encoder with a projection (encoder 2) as ``text_embeds``,
  and ``add_time_ids`` = (original size, crop top-left (0, 0), target size) at the model's
  default resolution. Unconditional: all zeros when the pipeline sets
  ``force_zeros_for_empty_prompt`` (SDXL base does), else encode("").
- "clip-t5" (SD3): both CLIP encoders' penultimate hidden states concatenated, zero-padded to T5's width,
  then T5's last hidden state (zeros when the model ships no T5) appended on the sequence axis;
  pooled = both CLIP projections concatenated. Unconditional: encode("").
- "t5-clip-pooled" (FLUX.1): T5's last hidden state alone as the token sequence, padded to
  ``max_sequence_length`` (the spec's recipe, else the pipeline's 512), and CLIP's ``pooler_output``
  (no projection) as ``pooled_projections``; text ids are all zero (the adapter makes them). A
  guidance-distilled transformer (dev) also takes the embedded guidance, the spec's
  ``recipe.guidance_scale``, carried on every row. Unconditional (true CFG only): encode("").
- "umt5" (Wan 2.1 text-to-video): WanPipeline._get_t5_prompt_embeds: each prompt cleaned with the
  pipeline's ``prompt_clean``, tokenized to ``max_sequence_length`` (the spec's recipe, else WanPipeline's
  512) with its attention mask, UMT5's last hidden state, each row trimmed to its true token count and
  zero-padded back. Unconditional: the encoded ``recipe.negative_prompt`` (else ""), as the pipeline
  encodes its negative_prompt. The denoiser's sample is a channels-first video latent (C, F, h, w).

Hand-written rather than calling ``pipeline.encode_prompt``: the distillers need the pieces
separately (per-prompt rows cached on the CPU, the unconditional row once, time ids per row),
and this lets the tests hold it against the pipelines' own ``encode_prompt`` as an independent
reference. Cached rows are float32 on the CPU; ``Denoiser`` casts them to the model's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from benchkit.core.errors import BenchkitError
from distillers.adapter import Conditioning

T5_MAX_SEQUENCE_LENGTH = 256  # StableDiffusion3Pipeline's default max_sequence_length
FLUX_MAX_SEQUENCE_LENGTH = 512  # FluxPipeline's default max_sequence_length, and the most it takes
WAN_MAX_SEQUENCE_LENGTH = 512  # WanPipeline.__call__'s default max_sequence_length (encode_prompt's own is 226)
CONDITIONINGS = ("clip", "clip-pooled", "clip-t5", "t5-clip-pooled", "umt5")  # what teacher_text builds


@dataclass
class TeacherText:
    """How a teacher is conditioned: ``encode(prompts)``, the one-row unconditional (None: encode
    the empty prompt) and the denoiser's sample shape: (channels, height, width), or (channels, frames,
    height, width) for a video teacher whose latents are channels first (Wan).

    ``image_tokens`` is the training resolution's token count, which a scheduler that shifts by
    resolution needs (FLUX.1-dev, see ``distillers.adapter.flow_shift``); ``recipe`` holds the recipe
    fields a student's spec must carry so that its pipeline conditions it as training did (FLUX: the
    embedded guidance, T5's length and the size the schedule was computed for; Wan: UMT5's length, the
    size and frames, and fps). ``scheduler_config``: the config of the scheduler the teacher's spec
    samples with, where its recipe changes the shipped one (Wan's presets set ``flow_shift``); None: the
    shipped config.
    """

    encode: Callable[[list[str]], Conditioning]
    negative: Conditioning | None
    shape: tuple[int, ...]
    family: str
    details: dict[str, Any]
    image_tokens: int | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    scheduler_config: dict[str, Any] | None = None


def _max_length(tokenizer, default: int = 77) -> int:
    n = getattr(tokenizer, "model_max_length", default)
    return n if n and n < 100_000 else default


def _tokens(tokenizer, prompts: list[str], max_length: int, device) -> torch.Tensor:
    return tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True,
                     return_tensors="pt").input_ids.to(device)


def _clip_penultimate(tokenizer, encoder, prompts: list[str], max_length: int, device):
    """(penultimate hidden state, output[0]) of a CLIP text encoder: output[0] is the projected
    pooled embedding for CLIPTextModelWithProjection and the last hidden state otherwise."""
    out = encoder(_tokens(tokenizer, prompts, max_length, device), output_hidden_states=True)
    return out.hidden_states[-2], out[0]


def sdxl_encoder(parts: dict[str, Any], device, time_ids: list[float]) -> Callable[[list[str]], Conditioning]:
    pairs = [(parts.get(t), parts.get(e)) for t, e in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"))]
    pairs = [(t, e) for t, e in pairs if e is not None]  # SDXL refiner-style models ship only encoder 2
    ids = torch.tensor([time_ids], dtype=torch.float32)

    def encode(prompts: list[str]) -> Conditioning:
        hidden, pooled = [], None
        for tokenizer, encoder in pairs:
            h, first = _clip_penultimate(tokenizer, encoder, prompts, _max_length(tokenizer), device)
            hidden.append(h)
            if pooled is None and first.ndim == 2:  # the pipeline takes the first 2-D output[0] (encoder 2's)
                pooled = first
        if pooled is None:
            raise BenchkitError("SDXL teacher: no text encoder with a projection (CLIPTextModelWithProjection) gives "
                                "the pooled text_embeds; check text_encoder_2 in model_index.json")
        return Conditioning(torch.cat(hidden, dim=-1).float().cpu(), pooled.float().cpu(), ids.expand(len(prompts), 6).clone())

    return encode


def sd3_encoder(parts: dict[str, Any], device, joint_attention_dim: int) -> Callable[[list[str]], Conditioning]:
    clips = [(parts.get("tokenizer"), parts.get("text_encoder")), (parts.get("tokenizer_2"), parts.get("text_encoder_2"))]
    if any(e is None or t is None for t, e in clips):
        raise BenchkitError("SD3 teacher: both CLIP text encoders (text_encoder, text_encoder_2) and their tokenizers are required")
    clip_len = _max_length(clips[0][0])  # the pipeline pads both CLIPs to tokenizer 1's length
    t5_tok, t5 = parts.get("tokenizer_3"), parts.get("text_encoder_3")

    def encode(prompts: list[str]) -> Conditioning:
        hidden, pooled = [], []
        for tokenizer, encoder in clips:
            h, p = _clip_penultimate(tokenizer, encoder, prompts, clip_len, device)
            hidden.append(h.float())
            pooled.append(p.float())
        if t5 is None:  # SD3 without T5: the pipeline appends zeros in T5's place
            t5_hidden = torch.zeros(len(prompts), T5_MAX_SEQUENCE_LENGTH, joint_attention_dim, device=hidden[0].device)
        else:
            t5_hidden = t5(_tokens(t5_tok, prompts, T5_MAX_SEQUENCE_LENGTH, device))[0].float()
        clip = torch.cat(hidden, dim=-1)
        clip = torch.nn.functional.pad(clip, (0, t5_hidden.shape[-1] - clip.shape[-1]))
        return Conditioning(torch.cat([clip, t5_hidden], dim=-2).cpu(), torch.cat(pooled, dim=-1).cpu())

    return encode


def flux_encoder(parts: dict[str, Any], device, max_sequence_length: int,
                 guidance: float | None) -> Callable[[list[str]], Conditioning]:
    """FluxPipeline.encode_prompt's pieces: CLIP's pooler_output at the CLIP tokenizer's length, T5's last
    hidden state at ``max_sequence_length``; ``guidance`` (None without a guidance embedding) on every row."""
    clip_tok, clip, t5_tok, t5 = (parts.get(k) for k in ("tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2"))
    if any(v is None for v in (clip_tok, clip, t5_tok, t5)):
        raise BenchkitError("FLUX teacher: the CLIP (text_encoder, tokenizer) and T5 (text_encoder_2, tokenizer_2) "
                            "encoders are both required")
    clip_len = _max_length(clip_tok)

    def encode(prompts: list[str]) -> Conditioning:
        pooled = clip(_tokens(clip_tok, prompts, clip_len, device), output_hidden_states=False).pooler_output
        hidden = t5(_tokens(t5_tok, prompts, max_sequence_length, device), output_hidden_states=False)[0]
        rows = None if guidance is None else torch.full((len(prompts),), float(guidance))
        return Conditioning(hidden.float().cpu(), pooled.float().cpu(), guidance=rows)

    return encode


def flux_size(model) -> tuple[int, int]:
    """The training resolution in pixels: the spec's recipe height/width, else the pipeline's default
    (``default_sample_size * vae_scale_factor``: FLUX's transformer has no sample_size), as eval samples it."""
    pipe = model.pipeline
    scale = pipe.vae_scale_factor
    recipe = model.spec.recipe
    default = pipe.default_sample_size * scale
    height, width = recipe.height or default, recipe.width or default
    if height % (2 * scale) or width % (2 * scale):  # whole 2x2 patches of latents, as eval requires
        raise BenchkitError(f"{model.spec.name}: recipe.height/width must be multiples of {2 * scale} for this model, "
                            f"got {height}x{width}")
    return height, width


def flux_text(model, device: torch.device) -> TeacherText:
    cfg = model.unet.config
    recipe = model.spec.recipe
    length = recipe.max_sequence_length or FLUX_MAX_SEQUENCE_LENGTH
    if length > FLUX_MAX_SEQUENCE_LENGTH:
        raise BenchkitError(f"{model.spec.name}: recipe.max_sequence_length {length} is over FluxPipeline's {FLUX_MAX_SEQUENCE_LENGTH}")
    guidance = float(recipe.guidance_scale) if cfg.guidance_embeds else None
    height, width = flux_size(model)
    scale = model.pipeline.vae_scale_factor
    shape = (cfg.in_channels // 4, height // scale, width // scale)  # packed tokens hold 2x2 patches of C channels
    fields: dict[str, Any] = {"height": height, "width": width, "max_sequence_length": length}
    if guidance is not None:  # the transformer's guidance input, which the pipeline takes as guidance_scale
        fields["guidance_scale"] = guidance
    return TeacherText(flux_encoder(model.components, device, length, guidance), None, shape, model.family,
                       {"text": f"T5 last hidden state ({length} tokens) + CLIP pooled", "negative": "encode('')",
                        "embedded_guidance": guidance, "size": [height, width]},
                       image_tokens=(shape[1] // 2) * (shape[2] // 2), recipe=fields)


def umt5_encoder(parts: dict[str, Any], device, max_sequence_length: int) -> Callable[[list[str]], Conditioning]:
    """WanPipeline._get_t5_prompt_embeds: cleaned prompts, UMT5 with the attention mask, rows trimmed to their
    token count and zero-padded back to ``max_sequence_length``."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    tokenizer, encoder = parts.get("tokenizer"), parts.get("text_encoder")
    if tokenizer is None or encoder is None:
        raise BenchkitError("Wan teacher: the UMT5 text encoder (text_encoder) and its tokenizer are required")

    def encode(prompts: list[str]) -> Conditioning:
        inputs = tokenizer([prompt_clean(p) for p in prompts], padding="max_length", max_length=max_sequence_length,
                           truncation=True, add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        lengths = inputs.attention_mask.gt(0).sum(dim=1)
        hidden = encoder(inputs.input_ids.to(device), inputs.attention_mask.to(device)).last_hidden_state.float().cpu()
        kept = torch.arange(hidden.shape[1])[None, :] < lengths[:, None]  # the first `length` tokens of each row
        return Conditioning(torch.where(kept[..., None], hidden, torch.zeros((), dtype=hidden.dtype)))

    return encode


def wan_size(model) -> tuple[int, int, int]:
    """(height, width, num_frames) in pixels and frames: the spec's recipe, else the family's defaults (WanPipeline's
    480 x 832 x 81), as eval samples it; checked as eval checks it (whole patches of latents, 1 + k frames per latent frame)."""
    pipe, recipe, info = model.pipeline, model.spec.recipe, model.family_info
    default_h, default_w = info.default_size or (None, None)
    height, width, frames = recipe.height or default_h, recipe.width or default_w, recipe.num_frames or info.default_frames
    if not (height and width and frames):
        raise BenchkitError(f"{model.spec.name}: set recipe.height, width and num_frames; {model.family} has no default")
    multiple = pipe.vae_scale_factor_spatial * model.unet.config.patch_size[-1]
    if height % multiple or width % multiple:
        raise BenchkitError(f"{model.spec.name}: recipe.height/width must be multiples of {multiple} for this model, "
                            f"got {height}x{width}")
    if (frames - 1) % pipe.vae_scale_factor_temporal:
        raise BenchkitError(f"{model.spec.name}: recipe.num_frames must be 1 + a multiple of {pipe.vae_scale_factor_temporal} "
                            f"for this model, got {frames}")
    return height, width, frames


def wan_text(model, device: torch.device) -> TeacherText:
    """Wan 2.1 text-to-video: UMT5 rows, the negative prompt as the unconditional, channels-first video latents.
    Teachers the distillers cannot call as their pipeline does are refused in one line: image-to-video (the
    image's latents and embedding), Wan 2.2 A14B's two experts and TI2V-5B's per-token timesteps."""
    from benchkit.models.generation import make_scheduler

    name, pipe, recipe = model.spec.name, model.pipeline, model.spec.recipe
    if model.family_info.image_input:
        raise BenchkitError(f"{name}: distillation builds Wan text-to-video teachers; a {model.family} model is also "
                            "conditioned on an input image")
    if getattr(pipe, "transformer_2", None) is not None:
        raise BenchkitError(f"{name}: a Wan 2.2 A14B teacher denoises with two experts (transformer_2 below its boundary); "
                            "distillation takes a one-transformer Wan 2.1 teacher")
    if getattr(pipe.config, "expand_timesteps", False):
        raise BenchkitError(f"{name}: a Wan 2.2 TI2V teacher takes a timestep per latent token (expand_timesteps); "
                            "distillation takes a Wan 2.1 teacher")
    length = recipe.max_sequence_length or WAN_MAX_SEQUENCE_LENGTH
    height, width, frames = wan_size(model)
    spatial, temporal = pipe.vae_scale_factor_spatial, pipe.vae_scale_factor_temporal
    shape = (pipe.vae.config.z_dim, (frames - 1) // temporal + 1, height // spatial, width // spatial)
    encode = umt5_encoder(model.components, device, length)
    negative_prompt = recipe.negative_prompt or ""
    with torch.no_grad():
        negative = encode([negative_prompt])
    negative.texts = (negative_prompt,)
    fields: dict[str, Any] = {"height": height, "width": width, "num_frames": frames, "max_sequence_length": length}
    if recipe.fps:
        fields["fps"] = recipe.fps
    # the flow schedule the spec samples with: the shipped config with its recipe's scheduler kwargs (Wan's presets
    # set flow_shift); a recipe naming a scheduler that does not step on flow sigmas leaves the shipped one
    sampler = make_scheduler(recipe, model.scheduler_config)
    config = {**dict(sampler.config), "_class_name": type(sampler).__name__}
    if not (config.get("use_flow_sigmas") or "FlowMatch" in config["_class_name"]):
        config = dict(model.scheduler_config)
    return TeacherText(encode, negative, shape, model.family,
                       {"text": f"UMT5 last hidden state ({length} tokens, each row trimmed to its prompt and zero-padded)",
                        "negative": f"encode({negative_prompt!r})" + (" (recipe.negative_prompt)" if negative_prompt else ""),
                        "size": [height, width], "num_frames": frames, "latents": "(C, F, h, w), channels first",
                        "scheduler": config["_class_name"], "flow_shift": config.get("flow_shift", config.get("shift"))},
                       recipe=fields, scheduler_config=config)


def teacher_text(model, device: torch.device) -> TeacherText:
    """The conditioning of a loaded teacher (``benchkit.models.loading.LoadedModel``), by family."""
    from distillers.data import text_encoder_fn

    family = model.family
    conditioning = model.family_info.conditioning  # what the family's denoiser is conditioned on
    if conditioning not in CONDITIONINGS:
        raise BenchkitError(f"{model.spec.name}: distillation builds CLIP, SDXL, SD3, FLUX.1 and Wan (UMT5) text conditioning, "
                            f"not the {conditioning} conditioning of a {family} model")
    if conditioning == "t5-clip-pooled":
        return flux_text(model, device)
    if conditioning == "umt5":
        return wan_text(model, device)
    cfg = model.unet.config
    height, width = (cfg.sample_size, cfg.sample_size) if isinstance(cfg.sample_size, int) else tuple(cfg.sample_size)
    shape = (cfg.in_channels, height, width)
    parts = model.components or {"tokenizer": model.tokenizer, "text_encoder": model.text_encoder}
    if conditioning == "clip":
        if getattr(cfg, "addition_embed_type", None) == "text_time":
            raise BenchkitError(f"{model.spec.name}: its UNet takes SDXL's added conditions but the model loaded as {family}; "
                                "set family = \"sdxl\" in the spec")
        return TeacherText(text_encoder_fn(model.tokenizer, model.text_encoder, device), None, shape, family,
                           {"text": "CLIP last hidden state", "negative": "encode('')"})
    if conditioning == "clip-pooled":
        pipe = model.pipeline
        scale = pipe.vae_scale_factor if pipe is not None else 8
        size = [height * scale, width * scale]  # the pipeline's default resolution, which eval also uses
        time_ids = [*size, 0, 0, *size]  # original size, crop top-left (0, 0), target size
        proj = getattr(parts.get("text_encoder_2"), "config", None)
        expected = getattr(cfg, "projection_class_embeddings_input_dim", None)
        passed = (cfg.addition_time_embed_dim or 0) * 6 + (getattr(proj, "projection_dim", 0) or 0)
        if expected is not None and expected != passed:
            raise BenchkitError(f"{model.spec.name}: the UNet's added-embedding width is {expected} but 6 time ids and "
                                f"text_encoder_2's projection give {passed}; the text encoders do not match this UNet")
        zeros = bool(getattr(getattr(pipe, "config", None), "force_zeros_for_empty_prompt", True))
        encode = sdxl_encoder(parts, device, time_ids)
        negative = None
        if zeros:
            one = encode([""])
            negative = Conditioning(torch.zeros_like(one.hidden), torch.zeros_like(one.pooled), one.time_ids, texts=("",))
        return TeacherText(encode, negative, shape, family,
                           {"text": "CLIP x2 penultimate hidden states + pooled text_embeds", "time_ids": time_ids,
                            "negative": "zeros (force_zeros_for_empty_prompt)" if zeros else "encode('')"})
    if conditioning == "clip-t5":
        encode = sd3_encoder(parts, device, cfg.joint_attention_dim)
        return TeacherText(encode, None, shape, family,
                           {"text": "CLIP x2 penultimate + T5" if parts.get("text_encoder_3") is not None else
                            "CLIP x2 penultimate + zeros for the absent T5", "negative": "encode('')"})
    raise AssertionError(conditioning)  # refused above
