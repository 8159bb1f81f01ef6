"""One registry shape for every kind of thing benchkit looks up by name (families, metrics,
feature extractors, rewards): filled by a decorator where each thing is defined, completed by
the plugins (:mod:`benchkit.core.plugins`) on the first read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Callable, Generic, TypeVar

from benchkit.core.errors import BenchkitError
from benchkit.core.plugins import load_plugins

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """``name -> thing`` in registration order; reading it loads the plugins first."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind  # "metric", "model family", ...: used in error messages
        self.hint = hint  # where to see them all, e.g. "see `benchkit metrics`"
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: add the decorated thing under ``name`` (default: its ``name`` attribute)."""

        def add(thing: T) -> T:
            key = name or getattr(thing, "name")
            if key in self._items and self._items[key] is not thing:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = thing
            return thing

        return add

    def _all(self) -> dict[str, T]:
        load_plugins()
        return self._items

    def __getitem__(self, name: str) -> T:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def get_or_fail(self, name: str) -> T:
        """The thing, or one line naming the unknown name and the known ones."""
        items = self._all()
        if name not in items:
            raise BenchkitError(f"unknown {self.kind} '{name}'; available: {', '.join(items)}"
                                + (f" ({self.hint})" if self.hint else ""))
        return items[name]
