"""User-facing errors.

Anything a user can cause (a bad spec, a missing file, a full disk) raises
:class:`BenchkitError` with one actionable line; the CLI prints that line and
exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class BenchkitError(Exception):
    """An error caused by input or environment, with a one-line message that says what to do."""

    exit_code = 2


def describe_os_error(exc: OSError, path: object, action: str = "writing") -> BenchkitError:
    """Turn an OSError into a one-line BenchkitError that names the path and a fix."""
    import errno

    if exc.errno == errno.ENOSPC:
        return BenchkitError(
            f"no space left on device while {action} {path}: free some space or choose another --out"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BenchkitError(f"permission denied while {action} {path}: choose a writable --out")
    return BenchkitError(f"{action} {path} failed: {exc.strerror or exc}")
