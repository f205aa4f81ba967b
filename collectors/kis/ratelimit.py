"""One request-rate budget per app key, shared by every thread and every process on this host.

KIS counts requests per app key per second (20/s real, 2/s mock), whoever sends them: the sweep,
the universe build, the calendar check and the WS collector's approval request all draw from the
same budget. The limiter is a GCRA / virtual-scheduling token bucket whose whole state is one
number — the earliest time the next request may start — kept in a small file under an fcntl lock
(``<runtime_dir>/kis_rate_<key fingerprint>.state``). `acquire` reserves the next free slot under
the lock and then sleeps outside it, so callers are served in order and never burst.

With ``burst = 1`` (the default) requests are spaced by exactly ``1 / rate_per_s``; in any
one-second window at most ``rate_per_s + burst`` requests start, so a configured 18/s keeps a real
margin under KIS's 20/s even when network jitter bunches two arrivals.
The time base is ``CLOCK_MONOTONIC``, which every process on the host shares.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from observer.config import Config, ensure_private_dir, runtime_dir

_STATE = struct.Struct("<d")


class RateLimitError(Exception):
    """The limiter cannot be used (bad rate, unusable state file)."""


def key_fingerprint(app_key: str) -> str:
    """A short, non-reversible name for an app key (file names, logs): never the key itself."""
    return hashlib.sha256(app_key.encode()).hexdigest()[:12]


def limiter_path(cfg: Config, app_key: str) -> Path:
    return runtime_dir(cfg) / f"kis_rate_{key_fingerprint(app_key)}.state"


class SharedRateLimiter:
    """Cross-process token bucket for one app key. Thread-safe and process-safe."""

    def __init__(
        self,
        path: Path,
        rate_per_s: float,
        *,
        burst: int = 1,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        if rate_per_s <= 0:
            raise RateLimitError(f"rate must be > 0 requests/s, got {rate_per_s}")
        if burst < 1:
            raise RateLimitError(f"burst must be >= 1, got {burst}")
        self.path = path
        self.rate_per_s = rate_per_s
        self.interval_s = 1.0 / rate_per_s
        self.burst = burst
        self._sleep = sleep
        self._monotonic = monotonic
        self._thread_lock = threading.Lock()
        ensure_private_dir(path.parent)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.acquired = 0
        self.waited_s = 0.0

    def reserve(self) -> float:
        """Reserve the next slot; returns the monotonic time at which the request may start."""
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                now = self._monotonic()
                raw = os.pread(self._fd, _STATE.size, 0)
                theoretical = _STATE.unpack(raw)[0] if len(raw) == _STATE.size else 0.0
                if theoretical > now + 3_600:  # a state from before a reboot: monotonic restarted
                    theoretical = 0.0
                # GCRA: a request may start once `theoretical` is within (burst - 1) intervals.
                start = max(now, theoretical - (self.burst - 1) * self.interval_s)
                os.pwrite(self._fd, _STATE.pack(max(theoretical, now) + self.interval_s), 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self.acquired += 1
            return start

    def acquire(self) -> float:
        """Block until this caller may send one request. Returns the seconds waited."""
        start = self.reserve()
        delay = start - self._monotonic()
        if delay > 0:
            self._sleep(delay)
            self.waited_s += delay
            return delay
        return 0.0

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass


def limiter_for(cfg: Config, app_key: str, rate_per_s: float) -> SharedRateLimiter:
    """The shared limiter of `app_key` under this config's runtime dir."""
    return SharedRateLimiter(limiter_path(cfg, app_key), rate_per_s)
