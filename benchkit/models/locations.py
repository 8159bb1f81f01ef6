"""Where a spec's files are: local paths, Hugging Face repo ids and ``hf://`` files, offline.

benchkit never downloads weights (runs must be reproducible and machines are often offline):
repo files are looked up in the local Hugging Face cache only. Anything missing is one line
that names the file, the repo and the command that puts it where benchkit looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchkit.core.errors import BenchkitError
from benchkit.models.spec import LOCATION_FIELDS

HF_PREFIX = "hf://"
# a path ending in one of these is a file, never an "owner/name" repo id (which may be "x/sdxl-1.0")
FILE_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".json", ".toml")


@dataclass(frozen=True)
class Location:
    """One file or folder a spec needs: a local path, or (repo, path in repo) in the HF cache."""

    field: str  # spec field it came from: base, weights, lora, lora_2, vae, config
    raw: str
    repo: str | None = None
    path_in_repo: str | None = None  # None: the whole repo (a diffusers folder)

    @property
    def is_hub(self) -> bool:
        return self.repo is not None

    def display(self) -> str:
        if self.repo is None:
            return self.raw
        return f"{self.repo}/{self.path_in_repo}" if self.path_in_repo else self.repo


def parse_location(field: str, raw: str) -> Location:
    """``hf://owner/name[/path]``, a local path, or (for folders) a bare ``owner/name`` repo id."""
    if raw.startswith(HF_PREFIX):
        parts = raw[len(HF_PREFIX):].strip("/").split("/")
        if len(parts) < 2:
            raise BenchkitError(f"spec field '{field}': '{raw}' is not hf://OWNER/NAME[/PATH/IN/REPO]")
        return Location(field, raw, "/".join(parts[:2]), "/".join(parts[2:]) or None)
    path = Path(raw).expanduser()
    looks_like_repo = (raw.count("/") == 1 and not raw.startswith((".", "/", "~")) and not path.exists()
                       and path.suffix not in FILE_SUFFIXES)
    if looks_like_repo:
        return Location(field, raw, raw, None)
    return Location(field, str(path))


def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _download_hint(loc: Location) -> str:
    what = f" {loc.path_in_repo}" if loc.path_in_repo else ""
    return (f"fetch it with `hf download {loc.repo}{what}` (into the HF cache {hf_cache_dir()}), "
            f"or set {loc.field} = \"/local/path\" in a spec TOML")


def find_local(loc: Location) -> Path | None:
    """The local path of a location if it is present, without network; None if it is not."""
    if loc.repo is None:
        path = Path(loc.raw)
        return path if path.exists() else None
    if loc.path_in_repo:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(loc.repo, loc.path_in_repo)
        if isinstance(found, str) and Path(found).exists():
            return Path(found)
        # a whole folder inside a repo (e.g. a vae/ subfolder)
        snapshot = _snapshot(loc.repo)
        if snapshot is not None and (snapshot / loc.path_in_repo).exists():
            return snapshot / loc.path_in_repo
        return None
    return _snapshot(loc.repo)


def _snapshot(repo: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if path.is_dir() else None


def require(loc: Location, preset: str = "") -> Path:
    """The local path, or a one-line error naming the file, its repo and where to put it."""
    found = find_local(loc)
    if found is not None:
        return found
    who = f" (model '{preset}')" if preset else ""
    if loc.repo is None:
        raise BenchkitError(f"{loc.field} '{loc.raw}' not found{who}: put the file or folder there or fix '{loc.field}' in the spec")
    if loc.path_in_repo:
        raise BenchkitError(f"missing {loc.path_in_repo} from {loc.repo}{who}: {_download_hint(loc)}")
    raise BenchkitError(f"missing {loc.repo} (diffusers folder){who} in the HF cache: {_download_hint(loc)}")


def spec_locations(spec) -> list[Location]:
    """Every file or folder a spec needs, base first."""
    out = []
    for field in LOCATION_FIELDS:
        value = getattr(spec, field)
        if value and not value.startswith("builtin:"):
            out.append(parse_location(field, value))
    return out
