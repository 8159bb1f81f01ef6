"""What a model family is: everything benchkit does differently for one kind of model, in one place.

A family is recognised from a diffusers folder (its pipeline class, else its component layout)
or named in a spec; it says which pipeline builds it, how it is sampled (its generator, with
per-item noise), whether it makes images or videos, which text conditioning the distillers
build for it, where a LoRA attaches and which metrics an eval runs by default. Loading,
generation, eval, score and the distillers ask the family instead of comparing names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

# The default metrics of real image models: quality metrics that need no reference; each is
# kept only if its weights are present and it can run on the prompt set and seeds.
IMAGE_DEFAULT_METRICS = ("clip-score", "pickscore", "hpsv2", "lpips-diversity", "latency")

# The LoRA targets of diffusers' UNet2DConditionModel (attention, projections, feed-forward).
UNET_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                     "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj")


@dataclass(frozen=True)
class LatentPacking:
    """How a pipeline takes its latents as a sequence of tokens rather than a (B, C, [F,] h, w) grid.

    Noise is drawn per item in the unpacked shape, as the pipeline itself draws it, then packed with
    the pipeline's own helper; latents are unpacked the same way before benchkit decodes them. Both
    functions call the pipeline's static helpers, whose signatures differ between pipelines.
    """

    pack: Callable[[Any, Any], Any]  # (pipeline, unpacked latents) -> packed latents
    unpack: Callable[[Any, Any, tuple[int, ...]], Any]  # (pipeline, packed latents, unpacked shape) -> unpacked


def _pack_2x2(pipe, latents):
    return pipe._pack_latents(latents, *latents.shape)  # (latents, batch, channels, height, width)


def _unpack_2x2(pipe, latents, shape):
    scale = pipe.vae_scale_factor  # the helper takes the image's pixel size
    return pipe._unpack_latents(latents, shape[-2] * scale, shape[-1] * scale, scale)


# 2x2 patches of an image's latents, 4C channels each (FLUX.1's and Qwen-Image's pipelines share the helpers)
PATCHES_2X2 = LatentPacking(_pack_2x2, _unpack_2x2)


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    pipeline_class: str | None  # the diffusers pipeline that builds it; None: benchkit's own loop (the toy)
    denoiser: str = "unet"  # the model_index component that is denoised with: unet | transformer
    media: str = "image"  # image | video
    # the text conditioning: distillers.prompt_encoding builds clip, clip-pooled, clip-t5, t5-clip-pooled and umt5;
    # the others (t5, gemma, qwen2.5-vl, llama-clip-pooled, mistral3, ...) name what a family's pipeline encodes
    conditioning: str = "clip"
    # what recipe.guidance_scale does: "cfg" mixes a conditional and an unconditional prediction (two
    # denoiser rows per item); "embedded" feeds it to a guidance-distilled transformer as an input (FLUX.1-dev:
    # one row), and real CFG is recipe.true_cfg_scale with a negative prompt
    guidance: str = "cfg"
    # latents the pipeline takes as a token sequence (FLUX's 2x2 patches, LTX-Video's voxels): see LatentPacking
    packing: LatentPacking | None = None
    # the denoiser takes latents in p x p patches: image sides must be multiples of the VAE factor times p
    latent_patch: int = 1
    # (height, width) when neither the recipe nor the denoiser's config says (Z-Image's pipeline: 1024 x 1024;
    # Wan's: 480 x 832), and the frames of a video family likewise (Wan: 81)
    default_size: tuple[int, int] | None = None
    default_frames: int | None = None
    # how a video pipeline lays out its latents: "fchw" (CogVideoX: frames before channels) or "cfhw" (Wan)
    video_latents: str = "fchw"
    vae_float32: bool = False  # the card decodes in fp32 whatever the model's dtype (Wan)
    # image-to-video: each item is conditioned on the image its prompt set's ``image`` column names
    image_input: bool = False
    # components loading otherwise leaves out (an SD pipeline's image encoder is for IP-adapters) that this
    # family's pipeline runs (Wan image-to-video encodes the input image with CLIP vision)
    needed_components: tuple[str, ...] = ()
    # the pipeline takes one input image per call (Wan image-to-video): a batch runs item by item
    one_image_per_call: bool = False
    # frames the pipeline drops from each decoded clip, given the pipeline (HunyuanVideo-I2V-33ch: the image's own)
    trimmed_frames: Callable[[Any], int] | None = None
    # the pipeline draws the noise itself from the per-item generators it is given, fresh, and treats given
    # latents as a video to re-noise (LTX-Video's condition pipeline): benchkit passes generators, not noise
    draws_own_noise: bool = False
    # the pipeline decodes its latents itself (benchkit times its VAE decode): HunyuanVideo image-to-video
    # returns its latents without the image's frame and trims the frames that frame decodes to, so its own
    # decoding is the only faithful one
    pipeline_decodes: bool = False
    # fixed keyword arguments of every pipeline call, each with the reason in the family's module
    # (SANA: use_resolution_binning off, so images are made at exactly the recipe's size)
    pipeline_kwargs: Mapping[str, Any] = field(default_factory=dict)
    lora_targets: tuple[str, ...] = ()  # module names a trained LoRA attaches to
    default_metrics: tuple[str, ...] = IMAGE_DEFAULT_METRICS
    # recognises a model_index.json whose pipeline class is not this family's (e.g. a bare layout)
    layout: Callable[[Mapping[str, Any]], bool] | None = None
    # builtin model names (``builtin:NAME`` in a spec's base) and the function giving their folder
    builtins: Mapping[str, Callable[[], Path]] = field(default_factory=dict)
    # an output size only this family makes: images of it are recognised as this family's when scored
    signature_size: tuple[int, int] | None = None
    pairs_batch_size: int = 8  # teacher ODE pairs generated per batch by default
    # ``(model, recipe) -> generator`` for a family with its own sampler; None: benchkit's (see
    # benchkit.models.sampling): its written-out loop without a pipeline, else the pipeline's
    generator: Callable[[Any, Any], Any] | None = None
    # ``(spec, device, dtype, cache_dir) -> LoadedModel`` for a family whose models are not diffusers weights
    # (an outside command); None: benchkit.models.loading reads the spec's diffusers folder or file
    load: Callable[[Any, Any, Any, Any], Any] | None = None

    @property
    def is_video(self) -> bool:
        return self.media == "video"

    @property
    def uses_pipeline(self) -> bool:
        return self.pipeline_class is not None

    def recognises(self, index: Mapping[str, Any]) -> bool:
        """Whether a diffusers folder's model_index.json is this family's, by its layout."""
        return self.layout is not None and self.layout(index)
