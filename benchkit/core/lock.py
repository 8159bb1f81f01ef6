"""One writer per folder: an advisory lock held for a whole command.

Two `benchkit eval` processes on one ``--out`` would both generate everything, overwrite each
other's session records and time their batches under each other's load. The lock is an
``flock`` on ``FOLDER/.benchkit.core.lock``, taken before any work and held until the command ends.
The kernel drops an flock when its process dies (SIGKILL included), so a dead holder's lock is
free at once: taking it over needs no guessing from timestamps. The file also holds who took it
(pid, host, since, command) so that the process refused can say who holds it.

Ranks of one torchrun job share their rank 0's lock: only rank 0 takes it (the others wait for
rank 0 at a barrier before they touch the folder).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from benchkit.core.distributed import launched_rank
from benchkit.core.errors import BenchkitError, describe_os_error

LOCK_NAME = ".benchkit.core.lock"


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} ({info.get('command')})"
    except (OSError, ValueError):
        return "another process"


@contextmanager
def folder_lock(folder: Path, command: str, wait: bool = False, poll_seconds: float = 0.5) -> Iterator[None]:
    """Hold the lock of ``folder`` (created if missing) for the ``with`` block.

    Refuses with one line naming the holder, or with ``wait`` blocks until the holder ends. The
    lock file goes when the block ends, and so does a folder this call created and left empty: a
    command refused before any work leaves no trace.
    """
    if launched_rank() != 0:  # a worker rank of a torchrun / accelerate job: rank 0 holds the lock
        yield
        return
    folder = Path(folder)
    created = [d for d in (folder, *folder.parents) if not d.exists()]  # innermost first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise describe_os_error(exc, folder, "creating") from None
    path = folder / LOCK_NAME
    fd = _acquire(path, command, wait, poll_seconds)
    try:
        yield
    finally:
        # Removed while still held, so no file of benchkit's stays in a folder it was refused or
        # merely used; a process that opened the old file before the unlink notices the changed
        # inode after its flock and starts again on the new file (see _acquire).
        try:
            path.unlink(missing_ok=True)
            for d in created:
                if any(d.iterdir()):
                    break
                d.rmdir()
        except OSError:
            pass
        os.close(fd)


def _acquire(path: Path, command: str, wait: bool, poll_seconds: float) -> int:
    told = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise describe_os_error(exc, path, "locking") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not wait:
                raise BenchkitError(
                    f"{path.parent} is in use by {_holder_text(path)}; wait for it to finish, "
                    "or pass --wait to start when it does"
                ) from None
            if not told:
                print(f"waiting for {path.parent}: in use by {_holder_text(path)}", file=sys.stderr)
                told = True
            time.sleep(poll_seconds)
            continue
        except OSError as exc:
            os.close(fd)
            raise describe_os_error(exc, path, "locking") from None
        # The holder may have removed the file between our open and our flock: then we locked an
        # orphan inode nobody else sees, and must start again on the file that is there now.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "command": command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return fd
