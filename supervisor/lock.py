"""One supervisor per runtime dir: an fcntl lock on ``<runtime_dir>/supervisor.lock``.

The kernel drops the lock when the holder dies, so a SIGKILLed supervisor never blocks the next one.
The descriptor is not inherited by workers (O_CLOEXEC), so an orphaned worker cannot hold it either.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from observer.config import ensure_private_dir

LOCK_NAME = "supervisor.lock"


class AlreadyRunning(Exception):
    """Another supervisor holds the lock of this runtime dir; the message says which pid."""


class RuntimeLock:
    def __init__(self, runtime_dir: Path):
        self.path = runtime_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(
                f"another supervisor (pid {holder}) is already running on runtime dir {self.path.parent}; "
                "stop it first (or use another paths.runtime_dir)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
