"""Decoding and per-image preprocessing of a scoring pass, in DataLoader workers.

The scorer hands this module its chunks of image files and the metrics' preprocessors
(:meth:`metrics.base.Metric.preprocessors`); a ``torch.utils.data.DataLoader`` with
``num_workers`` processes decodes each image once and runs every preprocessor on it, and the
main process gets each chunk back whole, in order, to run the networks on. This is how
clean-fid spreads its resize over workers; the functions and their inputs are the serial
path's, so the numbers do not depend on the worker count (tests/test_parallel_scoring.py).

Errors are carried, not raised, in the workers: a file that does not decode raises when its
chunk is reached, and a preprocessing error when a metric asks for that input, so a parallel
pass fails with the same one-line message as a serial one, not a worker traceback.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchkit.core.errors import BenchkitError
from benchkit.core.rundir import read_image
from metrics.base import PrepareFailed

MAX_DEFAULT_WORKERS = 8
LOAD_BATCH = 8  # images per worker task: small, so the networks start soon and every worker gets a share


def default_workers() -> int:
    """``--workers`` when not given: one per CPU core but one (the main process runs the networks), at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 1 else min(MAX_DEFAULT_WORKERS, cores - 1)


def check_workers(workers: int | None) -> int:
    """The worker count to use: ``workers``, or :func:`default_workers` when None."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise BenchkitError(f"--workers must be 0 (decode in the main process) or more, got {workers!r}")
    return workers


def _portable(exc: BaseException) -> BaseException:
    """An exception that survives the trip from a worker process with its message: a BenchkitError
    (one line, the same as the serial path's) as itself, anything else as its type and text in a
    RuntimeError (it may hold something that cannot be pickled)."""
    if torch.utils.data.get_worker_info() is None or type(exc) is BenchkitError:
        return exc
    return RuntimeError(f"{type(exc).__name__}: {exc}")


class PreparedImages(torch.utils.data.Dataset):
    """Item i: (decoded image or None, {key: prepared input}, decode error or None) of ``paths[i]``."""

    def __init__(self, paths: list[Path], preprocessors: dict[str, Callable[[np.ndarray], Any]], keep_images: bool,
                 decode: Callable[[Path], np.ndarray] = read_image, wanted: list[frozenset[str]] | None = None):
        self.paths = list(paths)
        self.preprocessors = dict(preprocessors)
        self.keep_images = keep_images
        self.decode = decode
        self.wanted = wanted  # per item, the keys to prepare (None: all); an item that needs none is not decoded

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray | None, dict[str, Any], BaseException | None]:
        keys = self.preprocessors if self.wanted is None else [k for k in self.preprocessors if k in self.wanted[i]]
        if not keys and not self.keep_images:  # every feature of this image is stored: nothing to decode
            return None, {}, None
        try:
            image = self.decode(self.paths[i])
        except Exception as exc:  # noqa: BLE001 (carried to the main process, raised there in order)
            return None, {}, _portable(exc)
        prepared = {}
        for key in keys:
            fn = self.preprocessors[key]
            try:
                prepared[key] = fn(image)
            except Exception as exc:  # noqa: BLE001 (raised when a metric reads this input)
                prepared[key] = PrepareFailed(_portable(exc))
        return (image if self.keep_images else None), prepared, None


def _pack(values: list[Any]) -> tuple[str, Any]:
    """Equal-shaped arrays or tensors as one (one buffer, one file descriptor to cross processes)."""
    first = values[0]
    if isinstance(first, np.ndarray) and all(isinstance(v, np.ndarray) and v.shape == first.shape
                                             and v.dtype == first.dtype for v in values):
        stacked = np.stack(values)
        try:  # as a tensor it crosses in shared memory instead of through a pipe; .numpy() gives the bits back
            return "numpy", torch.from_numpy(stacked)
        except TypeError:  # a dtype torch lacks
            return "list", list(stacked)
    if isinstance(first, torch.Tensor) and all(isinstance(v, torch.Tensor) and v.shape == first.shape
                                               and v.dtype == first.dtype for v in values):
        return "torch", torch.stack(values)
    return "list", values


def _unpack(packed: tuple[str, Any]) -> list[Any]:
    kind, value = packed
    if kind == "numpy":
        return list(value.numpy())
    if kind == "torch":
        return list(value.unbind(0))
    return value


def _collate(items: list[tuple]) -> dict[str, Any]:
    """Runs in the worker: the task's items, prepared inputs packed per key (kept item by item
    when a file of the task failed to decode)."""
    errors = [err for _, _, err in items]
    keys = list(dict.fromkeys(k for _, p, _ in items for k in p))
    whole = {k for k in keys if all(err is None and k in p for _, p, err in items)}  # every item has it
    return {"images": [im for im, _, _ in items], "errors": errors,
            "prepared": {k: _pack([p[k] for _, p, _ in items]) if k in whole else ("list", [p.get(k) for _, p, _ in items])
                         for k in keys}}


def _tasks(sizes: list[int], workers: int) -> list[list[int]]:
    """Index lists of the worker tasks: each chunk cut into pieces no larger than LOAD_BATCH."""
    tasks, start = [], 0
    for n in sizes:
        step = max(1, min(LOAD_BATCH, math.ceil(n / max(1, workers))))
        tasks += [list(range(start + s, start + min(n, s + step))) for s in range(0, n, step)]
        start += n
    return tasks


class _Chunk:
    """One chunk's items as they arrive from the loader, fetched on first access."""

    def __init__(self, stream: Iterator[dict[str, Any]], size: int, keys: list[str]):
        self.stream, self.size = stream, size
        self.images: list[Any] = []
        self.errors: list[BaseException | None] = []
        self.prepared: dict[str, list[Any]] = {k: [] for k in keys}

    def fill(self, n: int) -> None:
        while len(self.errors) < min(n, self.size):
            part = next(self.stream)
            self.images += part["images"]
            self.errors += part["errors"]
            for key, values in self.prepared.items():
                got = part["prepared"].get(key)
                values += _unpack(got) if got is not None else [None] * len(part["errors"])

    def get(self, key: str | None, i: int) -> Any:
        self.fill(i + 1)
        if self.errors[i] is not None:
            raise self.errors[i]
        value = self.images[i] if key is None else self.prepared[key][i]
        if isinstance(value, PrepareFailed):
            raise value.error
        return value


class LazyItems(Sequence):
    """A chunk's decoded images (``key`` None) or one key's prepared inputs, in order; item i is
    waited for when first read, so the networks start on the first items of a chunk while workers
    still prepare the rest. Reading an item whose file did not decode, or whose preparation
    failed, raises that error."""

    def __init__(self, chunk: _Chunk, key: str | None):
        self.chunk, self.key = chunk, key

    def __len__(self) -> int:
        return self.chunk.size

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.chunk.get(self.key, j) for j in range(*i.indices(self.chunk.size))]
        if i < 0:
            i += self.chunk.size
        if not 0 <= i < self.chunk.size:
            raise IndexError(i)
        return self.chunk.get(self.key, i)


def load_chunks(chunks: list[list[Path]], preprocessors: dict[str, Callable[[np.ndarray], Any]], keep_images: bool,
                workers: int, decode: Callable[[Path], np.ndarray] = read_image,
                wanted: list[list[frozenset[str]]] | None = None) -> Iterator[tuple[Sequence, dict[str, Sequence]]]:
    """(images, {key: prepared inputs}) of each chunk of files, in order, decoded and prepared by
    ``workers`` processes (0: in this one); ``images`` is empty unless ``keep_images``. ``wanted``:
    per chunk and item, the keys to prepare (None: all); the others read as None, and an item
    that wants none is not decoded at all (its features are stored).

    The sequences fill as the workers deliver (see :class:`LazyItems`); workers prepare up to
    about one chunk ahead of the item being read. Moving to the next chunk first reads what is
    left of the current one, and raises the first error among its files.
    """
    sizes = [len(c) for c in chunks]
    if not sizes or sum(sizes) == 0:
        return
    dataset = PreparedImages([p for c in chunks for p in c], preprocessors, keep_images, decode,
                             [w for c in wanted for w in c] if wanted is not None else None)
    tasks = _tasks(sizes, workers)
    extra = {}
    if workers:
        per_chunk = math.ceil(max(sizes) / len(tasks[0]))
        extra = {"prefetch_factor": max(2, math.ceil(per_chunk / workers) + 1)}
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=tasks, num_workers=workers, collate_fn=_collate,
                                         pin_memory=False, **extra)
    stream = iter(loader)
    try:
        for size in sizes:
            chunk = _Chunk(stream, size, list(preprocessors))
            yield (LazyItems(chunk, None) if keep_images else []), {k: LazyItems(chunk, k) for k in preprocessors}
            chunk.fill(size)
            failed = next((e for e in chunk.errors if e is not None), None)
            if failed is not None:
                raise failed
    finally:
        del stream  # stops the workers when the caller stops early
