"""The model families benchkit knows, one module each, looked up by name in ``FAMILIES``.

Adding a family is one module here (registering a :class:`Family`), its presets and a tiny-model
test; outside packages add theirs through a ``benchkit.plugins`` entry point.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Mapping

from benchkit.core.errors import BenchkitError
from benchkit.core.registry import Registry
from benchkit.models.families.base import IMAGE_DEFAULT_METRICS, Family

FAMILIES: Registry[Family] = Registry("model family", "see `benchkit families`")
register_family = FAMILIES.register

# benchkit's own families, in the order they are tried on a folder's layout
BUILTIN = ("toy", "sd15", "sdxl", "sd3", "flux", "flux2", "sana", "zimage", "qwenimage", "cogvideox", "wan", "hunyuanvideo", "ltx", "command")
for _name in BUILTIN:
    import_module(f"benchkit.models.families.{_name}")


def get_family(name: str) -> Family:
    return FAMILIES.get_or_fail(name)


def family_names() -> str:
    return "|".join(FAMILIES)


def pipeline_families() -> list[str]:
    """The families built by a diffusers pipeline: what single files and LoRAs need."""
    return [f.name for f in FAMILIES.values() if f.uses_pipeline]


def detect_family(index: Mapping[str, Any]) -> Family:
    """The family of a diffusers folder: by its pipeline class, else by its component layout."""
    cls = index.get("_class_name", "")
    by_class = [f for f in FAMILIES.values() if f.pipeline_class and f.pipeline_class == cls]
    if by_class:
        return by_class[0]
    by_layout = [f for f in FAMILIES.values() if f.recognises(index)]
    if by_layout:
        return by_layout[0]
    raise BenchkitError(f"cannot tell the pipeline family of {cls or 'this model'}; set family = \"{family_names()}\" in the spec")


def builtin_folder(base: str) -> Path:
    """The folder of a ``builtin:NAME`` base, from the family that ships it."""
    for family in FAMILIES.values():
        if base in family.builtins:
            return family.builtins[base]()
    known = [b for f in FAMILIES.values() for b in f.builtins]
    raise BenchkitError(f"unknown builtin model '{base}'; builtins: {', '.join(known)}")


def family_of_images(sizes: set[tuple[int, int]]) -> Family | None:
    """The family whose signature size all these images have (the toy's 8x8 digits), else None."""
    for family in FAMILIES.values():
        if family.signature_size is not None and sizes == {family.signature_size}:
            return family
    return None


def describe_families() -> list[dict[str, Any]]:
    """One row per family, for `benchkit families`."""
    return [{"name": f.name, "description": f.description, "pipeline": f.pipeline_class,
             "runs": f.pipeline_class or ("its own loader and generator" if f.load is not None else "benchkit's own loop"),
             "denoiser": f.denoiser,
             "media": f.media, "conditioning": f.conditioning, "guidance": f.guidance, "lora_targets": list(f.lora_targets),
             "default_metrics": list(f.default_metrics), "builtins": sorted(f.builtins)} for f in FAMILIES.values()]


__all__ = ["describe_families", "FAMILIES", "IMAGE_DEFAULT_METRICS", "Family", "builtin_folder", "detect_family", "family_names",
           "family_of_images", "get_family", "pipeline_families", "register_family"]
