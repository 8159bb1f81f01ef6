"""`benchkit weights fetch`: download registry weights where `resolve()` looks, and verify them.

Metrics never download (metrics/weights.py); this is the one place benchkit goes online, and
only when asked. Hub weights go through ``huggingface_hub.hf_hub_download`` into its own cache
(``HF_HUB_CACHE`` / ``HF_HOME``, where resolve() searches; ``HF_ENDPOINT`` picks a mirror).
A weight whose source is a direct URL of one file is streamed into ``$BENCHKIT_WEIGHTS`` through
``<file>.partial`` (resumed with an HTTP Range request after an interruption) and moved to its
final name only once whole and verified.

Every file is verified: the file a weight is identified by against the registry sha256, the
user's pin in ``$BENCHKIT_WEIGHTS/SHA256SUMS`` and torchvision's name prefix, whichever exist;
with none, its digest is pinned on this first fetch. Hub files are also checked against the
Hub's own content hash (the blob's ETag: sha256 for LFS files, git's sha1 otherwise).

Users' files are never overwritten or deleted: a file already at a destination that fails
verification is reported and left; only what this command itself created (a ``.partial``, a
fresh Hub cache entry) is removed when it fails verification.
"""

from __future__ import annotations

import hashlib
import http.client
import inspect
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from benchkit.core import settings
from benchkit.core.atomic import atomic_target, fsync_dir
from benchkit.core.errors import BenchkitError, describe_os_error
from benchkit.core.filehash import sha256_file
from metrics import weights as W

PARTIAL_SUFFIX = ".partial"
CHUNK = 1 << 20
TIMEOUT_S = 60  # per socket operation, not per download
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")


@dataclass
class FetchResult:
    """What happened to one weight: the summary row, and the one line to print when it failed."""

    name: str
    status: str  # "fetched", "present", "failed" or "manual" (no automatic source)
    path: str = ""
    verified: str = ""  # "registry", "pin", "name-prefix", "pinned now", "unverified"
    message: str = ""  # the failure line, or a note (e.g. "pinned ...")

    @property
    def ok(self) -> bool:
        return self.status in ("fetched", "present")


class _Failed(Exception):
    """One weight failed; its message is the whole line the user sees."""


def select(names: list[str], all_: bool) -> list[str]:
    """The weights to fetch; unknown names are one line listing the known ones, before any download."""
    if all_ and names:
        raise BenchkitError("benchkit weights fetch: give weight names or --all, not both")
    if all_:
        return list(W.REGISTRY)
    if not names:
        raise BenchkitError(f"benchkit weights fetch: name the weights to fetch, or pass --all; known: {', '.join(W.REGISTRY)}")
    unknown = [n for n in names if n not in W.REGISTRY]
    if unknown:
        raise BenchkitError(f"unknown weight{'s' if len(unknown) > 1 else ''} {', '.join(repr(n) for n in unknown)}; "
                            f"known: {', '.join(W.REGISTRY)}")
    return list(dict.fromkeys(names))


def direct_url(spec: W.WeightSpec) -> str | None:
    """The spec's source when it is a plain link to its one file (the URL ends in the file's name)."""
    src = spec.source.strip()
    if spec.hf_repo or spec.is_dir or not re.fullmatch(r"https?://\S+", src):
        return None
    return src if urllib.parse.unquote(src.rsplit("/", 1)[-1]) == spec.files[0] else None


def hub_files(spec: W.WeightSpec) -> tuple[str, ...]:
    """The spec's files plus those its printed `hf download` command names (a tokenizer's vocab,
    say): a fetch should leave what the printed command would."""
    words = spec.fetch.split()
    extra: list[str] = []
    if "download" in words:
        i = words.index("download")
        if words[i + 1:i + 2] == [spec.hf_repo]:
            for word in words[i + 2:]:
                if word.startswith("-"):
                    break
                extra.append(word)
    return tuple(dict.fromkeys((*spec.files, *extra)))


def fetch(names: list[str], progress: bool = True, report: Callable[[FetchResult], None] | None = None) -> list[FetchResult]:
    """Fetch and verify each weight; one failure does not stop the others. Needs $BENCHKIT_WEIGHTS
    (where direct downloads and SHA256SUMS pins live)."""
    from benchkit.core.progress import progress_bar

    wd = W.weights_dir()
    if wd is None:
        raise BenchkitError(f"set ${W.WEIGHTS_DIR_ENV} to the folder weights are fetched into (and pinned in "
                            f"{W.PINS_FILE}), e.g. export {W.WEIGHTS_DIR_ENV}=~/benchkit-weights")
    if wd.exists() and not wd.is_dir():
        raise BenchkitError(f"${W.WEIGHTS_DIR_ENV}={wd} is not a folder; point it at a folder")
    W.user_pins()  # a malformed SHA256SUMS is one line now, before any download
    results = []
    with progress_bar(progress) as bar:
        for name in names:
            result = _fetch_one(W.REGISTRY[name], wd, bar)
            results.append(result)
            if report is not None:
                report(result)
    return results


def _fetch_one(spec: W.WeightSpec, wd: Path, bar: Any) -> FetchResult:
    try:
        found = W.resolve(spec.name)
        return FetchResult(spec.name, "present", str(found.path), found.verified)
    except BenchkitError:
        pass  # missing, incomplete or corrupt where benchkit looks: fetch it (a user's file is never touched)
    url = direct_url(spec)
    if not spec.hf_repo and url is None:
        return FetchResult(spec.name, "manual", message=(
            f"{spec.name}: no automatic download ({spec.source}); fetch it by hand: {spec.fetch_command()}"))
    try:
        if spec.hf_repo:
            path, how, note, status = _fetch_hub(spec, wd, bar)
        else:
            path, how, note, status = _fetch_url(spec, url, wd, bar)
    except _Failed as exc:
        return FetchResult(spec.name, "failed", message=str(exc))
    except BenchkitError as exc:  # disk full, permissions, a malformed pin file: still one line
        return FetchResult(spec.name, "failed", message=f"{spec.name}: {exc}")
    except OSError as exc:
        return FetchResult(spec.name, "failed", message=f"{spec.name}: {describe_os_error(exc, exc.filename or wd)}")
    W._RESOLVED.clear()
    try:
        found = W.resolve(spec.name)
    except BenchkitError as exc:  # fetched, but benchkit would load something else or nothing
        return FetchResult(spec.name, "failed", str(path), how, f"{spec.name}: fetched to {path}, but {exc}")
    return FetchResult(spec.name, status, str(found.path), how, note)


# ---- verification ----------------------------------------------------------------------------

def _expectations(spec: W.WeightSpec, file_name: str) -> list[tuple[str, str]]:
    """(how, expected hex or prefix) for every claim about the identifying file's digest."""
    out = []
    if spec.sha256:
        out.append(("registry", spec.sha256.lower()))
    pin = W.user_pins().get(spec.name)
    if pin:
        out.append(("pin", pin))
    if spec.sha256_prefix and file_name == spec.files[0]:
        out.append(("name-prefix", spec.sha256_prefix.lower()))
    return out


def _mismatch(spec: W.WeightSpec, file_name: str, digest: str) -> tuple[str, str | None]:
    """(how it is verified, or "" when nothing is known; the failed claim described, or None)."""
    claims = _expectations(spec, file_name)
    for how, expected in claims:
        if not digest.startswith(expected):
            what = {"registry": f"the registry's sha256 {expected[:16]}…",
                    "pin": f"the pin {expected[:16]}… in ${W.WEIGHTS_DIR_ENV}/{W.PINS_FILE}",
                    "name-prefix": f"the {expected} its published file name claims"}[how]
            return how, f"its sha256 {digest[:16]}… does not match {what}"
    return (claims[0][0] if claims else ""), None


def _pin(wd: Path, name: str, digest: str) -> Path:
    """Append ``<hex>  <name>`` to SHA256SUMS, rewriting it atomically with the user's lines kept."""
    path = wd / W.PINS_FILE
    target = path.resolve() if path.is_symlink() else path  # keep a user's symlinked pin file a symlink
    old = target.read_text() if target.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    if target.exists():
        mode = target.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with atomic_target(target) as tmp:  # its temp file is private (0600): give it the pin file's mode
        tmp.write_text(f"{old}{digest}  {name}\n")
        os.chmod(tmp, mode)
    return path


def _finish_verification(spec: W.WeightSpec, wd: Path, digest: str, how: str, path: Path) -> tuple[str, str]:
    """Pin a digest nothing vouched for; returns (how verified, note for the user)."""
    if how:
        return how, ""
    pins = _pin(wd, spec.name, digest)
    return "pinned now", (f"{spec.name}: no published sha256, so {digest[:16]}… of {path.name} is pinned in {pins} "
                          "(later fetches and every load are checked against it)")


# ---- direct downloads ------------------------------------------------------------------------

def _fetch_url(spec: W.WeightSpec, url: str, wd: Path, bar: Any) -> tuple[Path, str, str, str]:
    file_name = spec.files[0]
    final = wd / file_name
    partial = wd / (file_name + PARTIAL_SUFFIX)
    if final.exists() or final.is_symlink():
        return _existing(spec, final)
    wd.mkdir(parents=True, exist_ok=True)
    _download(spec, url, partial, bar)
    digest = sha256_file(partial)
    how, problem = _mismatch(spec, file_name, digest)
    if problem:
        partial.unlink(missing_ok=True)  # benchkit's own .partial: a wrong file must not be resumed
        raise _Failed(f"{spec.name}: {url} was downloaded whole, but {problem}; nothing was kept. The source "
                      f"changed or the transfer was altered: fetch it by hand and check it ({spec.fetch_command()})")
    _place(spec, partial, final)
    how, note = _finish_verification(spec, wd, digest, how, final)
    return final, how, note, "fetched"


def _existing(spec: W.WeightSpec, final: Path) -> tuple[Path, str, str, str]:
    """A file already at the destination that benchkit did not create: checked, never replaced."""
    if not final.is_file():
        raise _Failed(f"{spec.name}: {final} exists and is not a file; benchkit leaves it alone: move it away "
                      f"and run `benchkit weights fetch {spec.name}` again")
    digest = sha256_file(final)
    how, problem = _mismatch(spec, final.name, digest)
    if problem:
        raise _Failed(f"{spec.name}: the file already at {final} fails verification ({problem}); benchkit did "
                      f"not create it, so it is left as is: move it away and run `benchkit weights fetch {spec.name}` again")
    note = "" if how else (f"{spec.name}: {final} was already there and nothing vouches for it (no published sha256, "
                           f"no pin); pin it with '<sha256>  {spec.name}' in ${W.WEIGHTS_DIR_ENV}/{W.PINS_FILE} if you trust it")
    return final, how or "unverified", note, "present"


def _place(spec: W.WeightSpec, partial: Path, final: Path) -> None:
    """Give the verified download its final name without ever replacing a file that appeared there."""
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    try:
        os.link(partial, final)  # fails, rather than overwrites, if the name is taken
    except FileExistsError:
        partial.unlink(missing_ok=True)
        raise _Failed(f"{spec.name}: {final} appeared while downloading (another process?); it was left as is "
                      f"and the download dropped: run `benchkit weights fetch {spec.name}` again to check it") from None
    except OSError:  # a file system without hard links: check, then rename
        if final.exists():
            raise _Failed(f"{spec.name}: {final} appeared while downloading; left as is, the download kept at "
                          f"{partial}") from None
        os.replace(partial, final)
    else:
        partial.unlink()
    fsync_dir(final.parent)


def _download(spec: W.WeightSpec, url: str, partial: Path, bar: Any) -> None:
    """Stream ``url`` into ``partial``, resuming what an earlier interrupted run left there."""
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": "benchkit-weights-fetch", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        total = _total_from_content_range(exc.headers.get("Content-Range"))
        if exc.code == 416 and have and total == have:  # the .partial was already whole
            return
        if exc.code == 416 and have:
            partial.unlink()  # longer than the file: not a prefix of it, start again
            return _download(spec, url, partial, bar)
        hint = ("the file is not there (moved, or the mirror lacks it)" if exc.code in (404, 410)
                else "access refused" if exc.code in (401, 403) else "the server failed")
        raise _Failed(f"{spec.name}: GET {url} failed: HTTP {exc.code} {exc.reason} ({hint}); try again later or fetch "
                      f"it by hand: {spec.fetch_command()}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _Failed(f"{spec.name}: cannot reach {url}: {reason}; check the network (or proxy) and run "
                      f"`benchkit weights fetch {spec.name}` again") from None
    with response:
        if response.status == 206:
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != have:  # a range we did not ask for: do not splice it in
                partial.unlink(missing_ok=True)
                raise _Failed(f"{spec.name}: {url} answered a resume request with the wrong range "
                              f"({response.headers.get('Content-Range')}); the partial download was dropped: "
                              f"run `benchkit weights fetch {spec.name}` again")
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
        else:  # 200: the server ignored the Range request, or there was none; start from the beginning
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        task = bar.add_task(spec.name, total=total, completed=have, info=_mb(have, total))
        done, cut = have, None
        try:
            with open(partial, mode) as f:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as exc:  # reset, timeout, closed early
                        cut = exc
                        break
                    if not block:
                        break
                    f.write(block)
                    done += len(block)
                    bar.update(task, completed=done, info=_mb(done, total))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # writing: disk full, permissions
            raise describe_os_error(exc, partial) from None
    size = partial.stat().st_size
    if cut is not None or (total is not None and size < total):
        why = f" ({type(cut).__name__})" if cut is not None else ""
        raise _Failed(f"{spec.name}: download of {url} stopped at {size} of {total or '?'} bytes{why}; the part is "
                      f"kept in {partial}: run `benchkit weights fetch {spec.name}` again to resume")
    if total is not None and size > total:
        partial.unlink()
        raise _Failed(f"{spec.name}: {url} sent {size} bytes where it announced {total}; nothing was kept: "
                      f"run `benchkit weights fetch {spec.name}` again")


def _start_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(\d+)-\d+/", value or "")
    return int(m.group(1)) if m else None


def _total_from_content_range(value: str | None) -> int | None:
    m = re.search(r"/(\d+)\s*$", value or "")
    return int(m.group(1)) if m else None


def _mb(done: int, total: int | None) -> str:
    return f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"


# ---- Hugging Face Hub ------------------------------------------------------------------------

def hub_endpoint() -> str | None:
    """HF_ENDPOINT as set now (huggingface_hub reads it once, at its import); None = the public Hub."""
    return settings.hf_endpoint()


@contextmanager
def _hub_online() -> Iterator[None]:
    """benchkit sets HF_HUB_OFFLINE for every other command; a fetch the user asked for goes online."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _fetch_hub(spec: W.WeightSpec, wd: Path, bar: Any) -> tuple[Path, str, str, str]:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise _Failed(f"{spec.name}: huggingface_hub is not installed: pip install huggingface_hub, then run "
                      f"`benchkit weights fetch {spec.name}` again") from None
    cache = settings.hf_hub_cache()
    storage = cache / f"models--{spec.hf_repo.replace('/', '--')}"
    endpoint = hub_endpoint()
    takes_bar = "tqdm_class" in inspect.signature(hf_hub_download).parameters
    how, note, hashed_path, downloaded = "", "", None, False
    for file_name in hub_files(spec):
        url = f"{endpoint or 'https://huggingface.co'}/{spec.hf_repo}/resolve/main/{file_name}"
        pointers_before = set(storage.glob(f"snapshots/*/{file_name}"))
        blobs_before = set((storage / "blobs").iterdir()) if (storage / "blobs").is_dir() else set()
        extra = {"tqdm_class": _rich_tqdm(bar, f"{spec.name}: {file_name}")} if takes_bar else {}
        try:
            with _hub_online():
                pointer = Path(hf_hub_download(spec.hf_repo, file_name, cache_dir=str(cache), endpoint=endpoint, **extra))
        except Exception as exc:  # the Hub's error types differ across huggingface_hub versions
            raise _Failed(f"{spec.name}: Hub file {spec.hf_repo}/{file_name} ({url}): {_hub_error(exc)}") from None
        ours = pointer not in pointers_before
        downloaded = downloaded or ours
        blob = pointer.resolve()
        problem = _hub_content_problem(blob, pointer)
        digest = sha256_file(pointer, W._hash_cache_path())
        if not problem and file_name == spec.files[0]:
            how, problem = _mismatch(spec, file_name, digest)
            hashed_path = pointer
        if problem:
            if not ours:
                raise _Failed(f"{spec.name}: the copy of {file_name} already in the Hub cache at {pointer} fails "
                              f"verification ({problem}); benchkit did not create it, so it is left as is: delete it "
                              f"(`hf cache delete`) and run `benchkit weights fetch {spec.name}` again")
            pointer.unlink(missing_ok=True)
            if blob not in blobs_before and blob.parent == storage / "blobs":
                blob.unlink(missing_ok=True)
            raise _Failed(f"{spec.name}: Hub file {spec.hf_repo}/{file_name} ({url}) was downloaded, but {problem}; "
                          f"nothing was kept. Try again later; if it persists the registry entry is out of date")
    if hashed_path is not None:
        how, note = _finish_verification(spec, wd, sha256_file(hashed_path, W._hash_cache_path()), how, hashed_path)
    return hashed_path.parent if spec.is_dir else hashed_path, how, note, "fetched" if downloaded else "present"


def _hub_content_problem(blob: Path, pointer: Path) -> str | None:
    """The Hub names each cached blob by its ETag: the sha256 of an LFS file, git's blob sha1 of
    any other. A download that does not hash to its name was altered on the way."""
    etag = blob.name
    if _HEX64.fullmatch(etag):
        digest = sha256_file(pointer, W._hash_cache_path())
        return None if digest == etag else f"its sha256 {digest[:16]}… is not the {etag[:16]}… the Hub lists for it"
    if _HEX40.fullmatch(etag) and blob.stat().st_size < (64 << 20):  # git blobs: small text files
        data = blob.read_bytes()
        sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        return None if sha1 == etag else f"its git sha1 {sha1[:12]}… is not the {etag[:12]}… the Hub lists for it"
    return None  # copied rather than linked (no symlinks here): the blob name is not at hand


def _hub_error(exc: Exception) -> str:
    """One line from a huggingface_hub / httpx error, with what to do."""
    kind = type(exc).__name__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = next((line for line in lines if not re.search(r"Client Error|Server Error|Request ID", line)),
                 lines[0] if lines else "")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if "Gated" in kind or status in (401, 403):
        todo = "accept the model's terms on its Hub page and log in (`hf auth login`), then run again"
    elif "EntryNotFound" in kind or status == 404:
        todo = "the file is not in that repository (the registry entry may be out of date)"
    elif "RepositoryNotFound" in kind:
        todo = "the repository is not there or is private; check HF_ENDPOINT and your login"
    elif "Offline" in kind:
        todo = "unset HF_HUB_OFFLINE and run again"
    else:
        todo = "check the network (or HF_ENDPOINT, proxy) and run the same command again"
    said = f"HTTP {status} ({kind})" if status else f"{kind}: {first[:200]}"  # the URL is already in the line
    return f"{said}; {todo}"


def _rich_tqdm(bar: Any, label: str) -> type:
    """A real tqdm (huggingface_hub calls much of its API) that draws nowhere and mirrors its
    count into benchkit's rich progress bar."""
    from tqdm import tqdm

    class _Sink:
        def write(self, _text: str) -> None:
            pass

        def flush(self) -> None:
            pass

    class RichTqdm(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs.update(disable=False, file=_Sink())
            self._task = None
            super().__init__(*args, **kwargs)
            self._task = bar.add_task(label, total=self.total, completed=self.n, info="")

        def _mirror(self) -> None:
            if getattr(self, "_task", None) is not None:
                bar.update(self._task, completed=self.n, total=self.total, info=_mb(self.n, self.total))

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            self._mirror()
            return shown

        def refresh(self, *args: Any, **kwargs: Any) -> None:
            super().refresh(*args, **kwargs)
            self._mirror()

    return RichTqdm
