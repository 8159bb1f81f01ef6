"""Plugins: modules that register families, metrics, feature extractors and rewards when imported.

A registry in a lower layer (metrics, the family table) cannot import what registers into it
from a higher one without an upward import. Plugins are named instead as entry points of the
group ``benchkit.plugins`` (benchkit's own in its pyproject, an outside package's in its own),
and every registry calls :func:`load_plugins` before its first lookup.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from benchkit.core.errors import BenchkitError

GROUP = "benchkit.plugins"
_loaded = False


def plugin_modules() -> list[str]:
    """The modules named by the entry points of ``benchkit.plugins``, sorted by entry name."""
    return [ep.value for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name)]


def load_plugins() -> None:
    """Import every plugin module once (importing is what registers)."""
    global _loaded
    if _loaded:
        return
    modules = plugin_modules()
    if not modules:
        raise BenchkitError("benchkit's plugins are not registered (no 'benchkit.plugins' entry points): "
                            "install benchkit with `pip install -e .` or `pip install benchkit`")
    _loaded = True  # set first: a plugin may look something up in a registry while it registers
    for module in modules:
        import_module(module)
