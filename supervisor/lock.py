"""One supervisor per runtime dir: an fcntl lock on ``<runtime_dir>/supervisor.lock``.

The kernel drops the lock when the holder dies, so a SIGKILLed supervisor never blocks the next one.
The descriptor is not inherited by workers (O_CLOEXEC), so an orphaned worker cannot hold it either.
"""

from __future__ import annotations

from pathlib import Path

from observer.config import ensure_private_dir
from observer.pidlock import LockHeld, PidLock

LOCK_NAME = "supervisor.lock"


class AlreadyRunning(Exception):
    """Another supervisor holds the lock of this runtime dir; the message says which pid."""


class RuntimeLock:
    def __init__(self, runtime_dir: Path):
        self.path = runtime_dir / LOCK_NAME
        self._lock = PidLock(self.path)

    def acquire(self) -> None:
        ensure_private_dir(self.path.parent)
        try:
            self._lock.acquire()
        except LockHeld as e:
            raise AlreadyRunning(
                f"another supervisor (pid {e.holder}) is already running on runtime dir {self.path.parent}; "
                "stop it first (or use another paths.runtime_dir)"
            ) from None

    def release(self) -> None:
        self._lock.release()
