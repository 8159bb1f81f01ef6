"""LPIPS diversity: mean pairwise LPIPS between the seeds of each prompt, averaged over prompts.

The ADM/DMD2-style diversity number (4 seeds per PartiPrompt in the ADM paper), with the lpips
package's network (v0.1 linear heads shipped in its wheel) on a torchvision backbone loaded
from a local file: lpips itself would call ``tv.alexnet(pretrained=True)``, which downloads.
Images are compared at their own resolution, scaled to [-1, 1] as lpips expects. Only the
images of prompts still waiting for seeds are held: a prompt is scored and dropped as soon as
all the run's seeds have arrived.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from benchkit.core.safe_load import read_state_dict
from metrics import preprocess as pp
from metrics import register_metric
from metrics.base import Metric, MetricContext, MetricValue, SampleBatch, SeedGroups
from metrics.model_cache import cached_model
from metrics.uncertainty import prompt_interval
from metrics.weights import library_versions, resolve

_BACKBONE_WEIGHT = {"alex": "lpips-alexnet", "vgg": "lpips-vgg16"}


def load_lpips(net: str, device: torch.device):
    """(lpips.LPIPS with the local backbone, {weight name: sha256})."""
    import lpips

    weight = resolve(_BACKBONE_WEIGHT[net])

    def build():
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)  # heads from the wheel, no download
        # read as data only (a pickle's code is refused), one line if damaged
        state = read_state_dict(weight.hashed_file, "LPIPS backbone", "fetch it again (see `benchkit weights`)")
        if not isinstance(state, dict):
            raise BenchkitError(f"{weight.hashed_file} is not a torchvision state dict; fetch it again (see `benchkit weights`)")
        sliced = {}
        for sname, slice_ in model.net.named_children():
            for pname, _ in itertools.chain(slice_.named_parameters(), slice_.named_buffers()):
                key = f"features.{pname}"
                if key not in state:
                    raise BenchkitError(f"{weight.hashed_file} lacks {key}: not a torchvision {net} state dict")
                sliced[f"{sname}.{pname}"] = state[key]
        model.net.load_state_dict(sliced, strict=True)
        return model.eval().to(device)

    model = cached_model(("lpips", net, str(weight.hashed_file), weight.sha256, str(device)), build)
    heads = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    return model, {weight.name: weight.sha256, f"lpips-v0.1-{net}-heads": hashlib.sha256(heads.read_bytes()).hexdigest()}


def to_lpips_input(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> 1x3xHxW float in [-1, 1] (lpips' ``normalize=True`` mapping, done once here)."""
    x = torch.from_numpy(pp.to_rgb_uint8(image)).permute(2, 0, 1)[None].float() / 255.0
    return x * 2 - 1


@register_metric()
class LPIPSDiversity(SeedGroups, Metric):
    name = "lpips-diversity"
    protocol = "lpips 0.1 (alex): mean pairwise distance between a prompt's seeds at native resolution, mean over prompts"
    description = "Mean pairwise LPIPS (AlexNet) between the seeds of each prompt, averaged over prompts"
    scale = "LPIPS distance, 0 (identical) up to about 1"
    higher_is_better = True
    compares_seeds = True
    net: ClassVar[str] = "alex"
    weights = ("lpips-alexnet",)
    min_side: ClassVar[int] = 31  # smallest side lpips 0.1.4 accepts (measured: AlexNet 31 px, VGG16 16 px)

    @classmethod
    def check(cls, plan, ctx: MetricContext) -> None:
        """Its backbone's weights, two seeds per prompt (base rules) and images LPIPS can read."""
        super().check(plan, ctx)
        small = sorted(s for s in plan.image_sizes or () if min(s) < cls.min_side)
        if small:
            raise BenchkitError(f"{cls.name}: {small[0][1]}x{small[0][0]} images are too small for the LPIPS {cls.net} "
                                f"network (it needs {cls.min_side} px or more a side)")

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.model, self.weights_sha256 = load_lpips(self.net, ctx.device)
        self.init_seed_groups(ctx)  # prompt -> {seed: image} until all are in; then prompt -> mean pairwise LPIPS
        self.add_state("n_images", 0, merge="sum")

    @torch.no_grad()
    def score_prompt(self, prompt_id: str, images: dict[int, np.ndarray]) -> float:
        shapes = {im.shape[:2] for im in images.values()}
        if len(shapes) > 1:
            raise BenchkitError(f"{self.name}: the seeds of prompt {prompt_id} have different sizes {sorted(shapes)}")
        xs = {s: to_lpips_input(im).to(self.ctx.device) for s, im in images.items()}
        try:
            dists = [float(self.model(xs[a], xs[b]).flatten()[0]) for a, b in itertools.combinations(sorted(xs), 2)]
        except RuntimeError as exc:
            if "too small" not in str(exc):
                raise
            (h, w), = shapes
            raise BenchkitError(f"{self.name}: {w}x{h} images are too small for the LPIPS {self.net} network "
                                "(its pooling needs about 32 px or more a side)") from None
        return float(np.mean(dists))

    def update(self, batch: SampleBatch) -> None:
        for rec, image in zip(batch.records, batch.images):
            self.n_images += 1
            self.hold(str(rec["prompt_id"]), int(rec["seed"]), np.asarray(image))

    def compute(self) -> list[MetricValue]:
        values = np.array(self.scored_prompts())
        variant = {"net": self.net, "lpips_version": "0.1", "weights_sha256": self.weights_sha256,
                   "input": "native resolution, RGB scaled to [-1, 1]", "pairs": "all seed pairs per prompt",
                   "aggregate": "mean over prompts of the mean pairwise distance",
                   "libraries": library_versions("lpips", "torch", "torchvision")}
        return [MetricValue(self.name, float(values.mean()), "lpips", True, self.n_images, variant,
                            {"prompts": len(values), "std_over_prompts": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                             "interval": prompt_interval(self.per_prompt, self.ctx.strata)})]


@register_metric()
class LPIPSDiversityVGG(LPIPSDiversity):
    name = "lpips-diversity-vgg"
    protocol = "lpips 0.1 (vgg): mean pairwise distance between a prompt's seeds at native resolution, mean over prompts"
    weights = ("lpips-vgg16",)
    min_side = 16
    description = "Mean pairwise LPIPS (VGG16) between the seeds of each prompt, averaged over prompts"
    net = "vgg"
