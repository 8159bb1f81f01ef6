"""FID and KID on clean-fid's Inception, under the named protocols of the papers.

A protocol is the exact image path from a uint8 image to the 2048 Inception pool features:

- ``clean-fid``: clean-fid's clean mode as is (PIL bicubic in float to 299);
- ``dmd2-sd15-coco30k``: DMD2's SD1.5 COCO-30k (crop to the short side, PIL LANCZOS to 256,
  then clean bicubic to 299); reference: all of val2014;
- ``dmd2-sdxl-coco10k``: DMD2's SDXL COCO-10k (crop, LANCZOS to 512, clean bicubic to 299)
  plus patch FID (centre 299 crop, no resize) of the same images; reference: the prompts'
  matched images.

Real and generated images go through the same path (as clean-fid's ``custom_image_tranform``
does for both folders). Reference statistics are built once by ``benchkit reference coco
--protocol P`` and cached under a key of (reference content hash, protocol, view, Inception
sha256); the cache's index says which reference each protocol uses. KID is clean-fid's
unbiased polynomial-kernel MMD over 100 subsets of at most 1000, with a seeded generator
(clean-fid draws from numpy's global one) so a rerun gives the same number.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from benchkit.core.atomic import write_json_atomic
from benchkit.core.errors import BenchkitError
from metrics import preprocess as pp
from metrics import register_metric
from metrics.base import FeatureMoments, Metric, MetricContext, MetricValue, SampleBatch, item_key
from metrics.feature_store import FeatureView
from metrics.features import get_extractor, register_extractor
from metrics.frechet import frechet_distance
from metrics.uncertainty import frechet_interval
from metrics.model_cache import cached_model
from metrics.refstats import cached_arrays, load_cached_arrays
from metrics.weights import library_versions, resolve

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 0


@dataclass(frozen=True)
class View:
    """One image path to 299x299: a transform on the uint8 image, then clean-fid's clean resize."""

    key: str  # "fid" or "patch-fid"
    steps: str  # human-readable, recorded in every result
    transform: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FIDProtocol:
    name: str
    metric: str  # registry name of the metric computing it
    description: str
    views: tuple[View, ...]
    pairing: str  # the reference pairing the paper used ("any" for plain clean-fid)
    prompts: str | None = None  # prompt set for a matched reference

    def value_name(self, view: View, kind: str) -> str:
        """fid / kid / patch-fid / patch-kid, suffixed with the protocol's short name."""
        base = view.key.replace("fid", kind)
        suffix = self.metric[len("fid"):]  # "" for plain clean-fid, "-dmd2-sd15" ...
        return base + suffix


_CLEAN = "clean-fid clean resize (PIL bicubic, float, to 299)"
PROTOCOLS: dict[str, FIDProtocol] = {p.name: p for p in (
    FIDProtocol("clean-fid", "fid", "clean-fid clean mode, images as they are",
                (View("fid", _CLEAN, pp.identity),), pairing="any"),
    FIDProtocol("dmd2-sd15-coco30k", "fid-dmd2-sd15", "DMD2 SD1.5 COCO-30k: crop, LANCZOS 256, clean bicubic 299",
                (View("fid", "center-crop long edge; PIL LANCZOS 256; " + _CLEAN, pp.crop_lanczos(256)),),
                pairing="all"),
    FIDProtocol("dmd2-sdxl-coco10k", "fid-dmd2-sdxl", "DMD2 SDXL COCO-10k: crop, LANCZOS 512, clean bicubic 299; patch FID",
                (View("fid", "center-crop long edge; PIL LANCZOS 512; " + _CLEAN, pp.crop_lanczos(512)),
                 View("patch-fid", "center 299x299 crop (no resize); " + _CLEAN, pp.patch_299)),
                pairing="matched", prompts="coco2014-10k"),
)}


def protocol_for_metric(metric: str) -> FIDProtocol:
    return next(p for p in PROTOCOLS.values() if p.metric == metric)


def get_protocol(name: str) -> FIDProtocol:
    if name not in PROTOCOLS:
        raise BenchkitError(f"unknown FID protocol '{name}'; available: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


@register_extractor("clean-fid-inception-2015-12-05")
class CleanFIDInception:
    """clean-fid's clean-mode network call on the NVlabs TorchScript Inception, from a local file.

    Same arithmetic as ``cleanfid.inception_torchscript.InceptionV3W`` (``(x - 128) / 128``
    then ``base.layers``); written here because that wrapper only loads a file named
    ``inception-2015-12-05.pt`` from a folder and downloads it when absent.
    """

    name = "clean-fid-inception-2015-12-05"
    dim = 2048

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.weight = resolve("fid-inception")
        try:
            self.base = torch.jit.load(str(self.weight.hashed_file), map_location=device).eval()
            self.layers = self.base.layers
        except (RuntimeError, ValueError, AttributeError) as exc:
            raise BenchkitError(f"{self.weight.hashed_file} is not the TorchScript Inception ({str(exc).splitlines()[0]}); "
                                "delete it and fetch it again (see `benchkit weights`)") from None
        self.device = device
        self.weights_sha256 = self.weight.sha256

    @torch.no_grad()
    def __call__(self, images_299: list[np.ndarray]) -> np.ndarray:
        """float32 299x299x3 arrays in [0, 255] -> float64 N x 2048."""
        out = []
        # One image per forward on CPU: conv kernels round differently by batch size, and
        # per-image calls keep features identical however a run is batched or sharded.
        step = 1 if self.device.type == "cpu" else 32
        for start in range(0, len(images_299), step):
            x = torch.from_numpy(np.stack(images_299[start : start + step]).transpose(0, 3, 1, 2).copy()).to(self.device)
            x = (x - 128) / 128
            out.append(self.layers.forward(x).view(x.shape[0], self.dim).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim))


def inception(device: torch.device) -> CleanFIDInception:
    """clean-fid's Inception on ``device``, through the extractor registry and the model cache."""
    w = resolve("fid-inception")
    name = CleanFIDInception.name
    return cached_model(("extractor", name, str(w.hashed_file), w.sha256, str(device)),
                        lambda: get_extractor(name)(device))


def inception_view(extractor: CleanFIDInception, protocol: FIDProtocol, view: View) -> FeatureView:
    """Inception features of a protocol view, as stored per image content (metrics.feature_store); its key
    is also the view's preprocessor key, so FID, Vendi, PRDC and the COCO reference share one pass."""
    return FeatureView(extractor.name, extractor.weights_sha256, f"fid:{protocol.name}:{view.key}", extractor.dim)


def prepare_view(image: np.ndarray, transform: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """One image through a view's CPU path: RGB, the protocol's transform, clean-fid's resize to 299."""
    return pp.clean_resize_299(transform(pp.to_rgb_uint8(image)))


def view_preprocessor(view: View) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`prepare_view` for ``view``, picklable (it runs in DataLoader workers)."""
    return functools.partial(prepare_view, transform=view.transform)


def view_features(extractor: CleanFIDInception, view: View, images: list[np.ndarray]) -> np.ndarray:
    return extractor([prepare_view(im, view.transform) for im in images])


def kernel_distance(feats_gen: np.ndarray, feats_ref: np.ndarray, num_subsets: int = KID_SUBSETS,
                    max_subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> float:
    """clean-fid's KID estimator (same draws, same order) with a seeded generator."""
    rng = np.random.RandomState(seed)
    n = feats_gen.shape[1]
    m = min(feats_gen.shape[0], feats_ref.shape[0], max_subset_size)
    if m < 2:
        raise BenchkitError("KID needs at least 2 images on each side")
    t = 0.0
    for _ in range(num_subsets):
        x = feats_ref[rng.choice(feats_ref.shape[0], m, replace=False)]
        y = feats_gen[rng.choice(feats_gen.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


# --- reference statistics -------------------------------------------------------------------

def reference_index_path(cache_dir: Path, protocol: str) -> Path:
    return Path(cache_dir) / "references" / f"{protocol}.json"


def _stats_parts(reference_sha256: str, protocol: FIDProtocol, view: View, extractor: CleanFIDInception) -> dict:
    return {"reference_sha256": reference_sha256, "protocol": protocol.name, "view": view.key, "steps": view.steps,
            "extractor": extractor.name, "extractor_sha256": extractor.weights_sha256, "kind": "fid-kid-v1"}


def build_reference_stats(files: list[Path], reference: dict[str, Any], protocol: FIDProtocol, cache_dir: Path,
                          device: torch.device, show_progress: bool = True, sha256s: list[str] | None = None
                          ) -> dict[str, Any]:
    """Features of every reference image under each view of ``protocol``, and their statistics, cached.

    The features go through the feature store like any other reference's (keyed by each file's
    content, see :mod:`metrics.reference_sets`), so the same val2014 folder given as ``--reference``
    or scored by PRDC is not run through Inception again. Returns the index entry, also written to
    ``<cache>/references/<protocol>.json`` for the FID metrics to find.
    """
    from metrics.feature_store import file_sha256
    from metrics.reference_sets import ImageReference

    extractor = inception(device)
    files = [Path(f) for f in files]
    shas = list(sha256s) if sha256s is not None else [file_sha256(f) for f in files]
    images = ImageReference("coco", Path(reference.get("root") or (files[0].parent if files else ".")), files, shas,
                            Path(cache_dir))
    views = {}
    for view in protocol.views:
        def compute(view=view):
            feats = images.features(inception_view(extractor, protocol, view), view_preprocessor(view), extractor,
                                    show_progress)
            moments = FeatureMoments(extractor.dim)
            moments.update(feats)
            mu, sigma = moments.mean_cov()
            return {"mu": mu, "sigma": sigma, "n": np.array(moments.n), "feats": feats.astype(np.float32)}

        arrays, key, was_cached = cached_arrays(cache_dir, _stats_parts(reference["sha256"], protocol, view, extractor),
                                                compute)
        views[view.key] = {"stats_key": key, "n": int(arrays["n"]), "was_cached": was_cached}
    entry = {"protocol": protocol.name, "reference": reference, "extractor": extractor.name,
             "extractor_sha256": extractor.weights_sha256, "views": views}
    path = reference_index_path(cache_dir, protocol.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, entry)
    return entry


def load_reference(cache_dir: Path, protocol: FIDProtocol, extractor: CleanFIDInception) -> tuple[dict, dict]:
    """(index entry, {view: arrays}) for ``protocol``; one-line errors when absent or stale."""
    path = reference_index_path(cache_dir, protocol.name)
    pairing = "all" if protocol.pairing == "any" else protocol.pairing
    build = (f"benchkit reference coco --coco-dir PATH/val2014 --protocol {protocol.name} --pairing {pairing}"
             + (f" -p {protocol.prompts}" if protocol.prompts else ""))
    if not path.exists():
        raise BenchkitError(f"{protocol.metric}: no reference statistics for protocol {protocol.name} in {path.parent}; "
                            f"build them with `{build}` (same --cache-dir)")
    damaged = (f"{protocol.metric}: the reference statistics index {path} is damaged (not the JSON benchkit writes); "
               f"rebuild it with `{build}`")
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        raise BenchkitError(damaged) from None
    if not isinstance(entry, dict):
        raise BenchkitError(damaged)
    if entry.get("extractor_sha256") != extractor.weights_sha256:
        raise BenchkitError(f"{protocol.metric}: the reference statistics in {path} were made with Inception weights "
                            f"{str(entry.get('extractor_sha256'))[:12]}…, not the {extractor.weights_sha256[:12]}… in use; "
                            f"rebuild them with `{build}`")
    if not isinstance(entry.get("views"), dict) or not isinstance(entry.get("reference"), dict):
        raise BenchkitError(damaged)
    arrays = {}
    for view in protocol.views:
        view_entry = entry["views"].get(view.key)
        stats_key = view_entry.get("stats_key") if isinstance(view_entry, dict) else None
        # a sha256 names the entry; anything else is a damaged index, not a path to follow
        found = load_cached_arrays(cache_dir, stats_key) if re.fullmatch(r"[0-9a-f]{64}", str(stats_key)) else None
        if found is not None and not {"mu", "sigma", "n", "feats"} <= set(found):
            found = None  # an entry that lacks arrays is as good as missing
        if found is None:
            raise BenchkitError(f"{protocol.metric}: cached statistics for {view.key} of {protocol.name} are missing or "
                                f"damaged; rebuild them with `{build}`")
        arrays[view.key] = found
    return entry, arrays


# --- the metrics ----------------------------------------------------------------------------

class ProtocolFID(Metric):
    """FID and KID (and patch FID/KID where the protocol has it) against cached reference statistics."""

    protocol: FIDProtocol
    weights = ("fid-inception",)
    scale = "Frechet distance of Inception features, 0 up; KID (unbiased MMD, x1) beside it"
    higher_is_better = False

    @classmethod
    def needs(cls) -> list[str]:
        return [*super().needs(), f"reference statistics (benchkit reference coco --protocol {cls.protocol.name})"]

    @classmethod
    def value_names(cls) -> tuple[str, ...]:
        """fid/kid (and patch-fid/-kid), suffixed with the protocol's short name."""
        return tuple(cls.protocol.value_name(view, kind) for view in cls.protocol.views for kind in ("fid", "kid"))

    takes_reference = True

    @classmethod
    def check(cls, plan, ctx: MetricContext) -> None:
        """The Inception weights and this protocol's reference statistics (or a --reference) must be there."""
        super().check(plan, ctx)
        path = reference_index_path(ctx.cache_dir, cls.protocol.name)
        if ctx.reference is None and not path.exists():
            pairing = "all" if cls.protocol.pairing == "any" else cls.protocol.pairing
            build = (f"benchkit reference coco --coco-dir PATH/val2014 --protocol {cls.protocol.name} --pairing {pairing}"
                     + (f" -p {cls.protocol.prompts}" if cls.protocol.prompts else ""))
            raise BenchkitError(f"{cls.protocol.metric}: no reference statistics for protocol {cls.protocol.name} in "
                                f"{path.parent}; build them with `{build}` (same --cache-dir)")

    def __init__(self, ctx: MetricContext):
        super().__init__(ctx)
        self.extractor = inception(ctx.device)
        self.add_state("moments", {v.key: FeatureMoments(self.extractor.dim) for v in self.protocol.views}, merge="moments")
        # KID needs the features themselves; kept per item so the subset draws do not depend on
        # the order in which batches or shards arrived.
        self.add_state("kid_feats", {v.key: {} for v in self.protocol.views}, merge="update_each")

    def preprocessors(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Each view's transform and clean-fid resize to 299 (the CPU-heavy part of FID)."""
        return {self.feature_view(view).preprocessing: view_preprocessor(view) for view in self.protocol.views}

    def feature_view(self, view: View) -> FeatureView:
        return inception_view(self.extractor, self.protocol, view)

    def feature_views(self) -> list[FeatureView]:
        return [self.feature_view(view) for view in self.protocol.views]

    def reference(self) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
        """(what the reference is, {view: mu, sigma, n, feats}): --reference's images, else the cached COCO statistics."""
        ref = self.ctx.reference
        if ref is None:
            entry, arrays = load_reference(self.ctx.cache_dir, self.protocol, self.extractor)
            about = {"reference": entry["reference"].get("name"), "reference_sha256": entry["reference"].get("sha256")}
            return about, {key: {**a, "stats_key": entry["views"][key]["stats_key"]} for key, a in arrays.items()}
        arrays = {}
        for view in self.protocol.views:
            feats = ref.features(self.feature_view(view), view_preprocessor(view), self.extractor)
            moments = FeatureMoments(self.extractor.dim)
            moments.update(feats)
            mu, sigma = moments.mean_cov()
            arrays[view.key] = {"mu": mu, "sigma": sigma, "n": np.array(moments.n), "feats": feats}
        return {"reference": ref.name, **{f"reference_{k}": v for k, v in ref.describe().items()}}, arrays

    def update(self, batch: SampleBatch) -> None:
        keys = [item_key(r) for r in batch.records]
        for view in self.protocol.views:
            feats = self.view_features(batch, self.feature_view(view), self.extractor)
            self.moments[view.key].update(feats)
            for key, f in zip(keys, feats):
                self.kid_feats[view.key][key] = f.astype(np.float32)

    def compute(self) -> list[MetricValue]:
        if any(m.n < 2 for m in self.moments.values()):
            raise BenchkitError(f"{self.name} needs at least 2 images")
        about, ref = self.reference()
        out = []
        for view in self.protocol.views:
            mu, sigma = self.moments[view.key].mean_cov()
            r = ref[view.key]
            gen_feats = np.stack([self.kid_feats[view.key][k] for k in sorted(self.kid_feats[view.key])]).astype(np.float64)
            variant = {
                "protocol": self.protocol.name, "view": view.key, "preprocessing": view.steps,
                "extractor": self.extractor.name, "extractor_sha256": self.extractor.weights_sha256,
                "weights_sha256": {"fid-inception": self.extractor.weights_sha256},
                **about, "reference_n": int(r["n"]),
                **({"reference_stats_key": r["stats_key"]} if "stats_key" in r else {}),
                "precision": "float64 statistics; frechet via symmetric eigendecomposition",
                "libraries": library_versions("clean-fid", "torch", "numpy", "pillow"),
            }
            fid = frechet_distance(mu, sigma, r["mu"], r["sigma"])
            kid = kernel_distance(gen_feats, r["feats"].astype(np.float64))
            n = self.moments[view.key].n
            out.append(MetricValue(self.protocol.value_name(view, "fid"), fid, "fid", False, n,
                                   {**variant, "scale": "FID (squared Inception-feature units)"},
                                   {"interval": frechet_interval(self.kid_feats[view.key], fid, r["mu"], r["sigma"],
                                                                 strata=self.ctx.strata)} if self.ctx.frechet_intervals else {}))
            out.append(MetricValue(self.protocol.value_name(view, "kid"), kid, "kid", False, n,
                                   {**variant, "scale": "KID x1 (papers often print x1000)", "kid": {"subsets": KID_SUBSETS, "subset_size": min(n, int(r["n"]), KID_SUBSET_SIZE),
                                                       "kernel": "(x.y/d + 1)^3", "seed": KID_SEED}}))
        return out


def _metric_class(protocol: FIDProtocol) -> type[ProtocolFID]:
    return type(f"FID_{protocol.name.replace('-', '_')}", (ProtocolFID,), {
        "name": protocol.metric, "protocol": protocol,
        "description": f"FID and KID, {protocol.description} (reference from `benchkit reference coco --protocol {protocol.name}`)",
    })


FID_METRICS: list[type[ProtocolFID]] = [register_metric()(_metric_class(p)) for p in PROTOCOLS.values()]
