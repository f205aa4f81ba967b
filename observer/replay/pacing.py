"""Pacing: when each replayed line goes out, and pause/resume.

`Pacer` maps the lines' own times onto real time: the first line goes at once, a line ``d``
recorded seconds later goes ``d / speed`` seconds after it (``speed`` None: as fast as possible).
Waits are short sleeps against an absolute target, so a pause (`pause` / `resume`, or SIGTSTP /
SIGCONT through `install_signal_pause`) shifts the schedule by exactly the time spent paused and
the stream continues without a burst.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

_MAX_SLEEP_S = 0.05


class Pacer:
    def __init__(self, speed: float | None, *, anchor: tuple[int, int] | None = None):
        """`anchor`: (line time ns, monotonic ns) to pin the schedule to (default: the first line, now)."""
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._anchor_at_ns: int | None = anchor[0] if anchor else None
        self._anchor_real_ns = anchor[1] if anchor else 0
        self._paused_at_ns: int | None = None
        self._resumed = threading.Event()
        self.paused_s = 0.0

    def target_ns(self, at_ns: int) -> int:
        """The real (monotonic) time at which a line of time `at_ns` is due."""
        if self._anchor_at_ns is None:
            self._anchor_at_ns, self._anchor_real_ns = at_ns, time.monotonic_ns()
        assert self.speed is not None
        return self._anchor_real_ns + int((at_ns - self._anchor_at_ns) / self.speed)

    def wait(self, at_ns: int, idle: Callable[[], None] | None = None) -> None:
        """Return when the line of time `at_ns` is due (at once for speed max, unless paused).
        `idle` is called between the short sleeps (e.g. to pump a reliable sender)."""
        while True:
            if idle is not None:
                idle()
            if self._paused_at_ns is not None:
                self._resumed.wait(_MAX_SLEEP_S)
                continue
            if self.speed is None:
                return
            delay_ns = self.target_ns(at_ns) - time.monotonic_ns()
            if delay_ns <= 0:
                return
            time.sleep(min(delay_ns / 1e9, _MAX_SLEEP_S))

    @property
    def paused(self) -> bool:
        return self._paused_at_ns is not None

    def pause(self) -> None:
        if self._paused_at_ns is None:
            self._resumed.clear()
            self._paused_at_ns = time.monotonic_ns()

    def resume(self) -> None:
        if self._paused_at_ns is None:
            return
        paused_ns = time.monotonic_ns() - self._paused_at_ns
        self._anchor_real_ns += paused_ns
        self.paused_s += paused_ns / 1e9
        self._paused_at_ns = None
        self._resumed.set()


def install_signal_pause(pacer: Pacer) -> None:
    """SIGTSTP (Ctrl-Z) pauses and really stops the process (so the shell gets its prompt back);
    SIGCONT (``fg``, ``kill -CONT``) resumes, the schedule shifted by the time spent stopped."""

    def on_tstp(_sig: int, _frame: FrameType | None) -> None:
        pacer.pause()
        os.kill(os.getpid(), signal.SIGSTOP)

    def on_cont(_sig: int, _frame: FrameType | None) -> None:
        pacer.resume()

    signal.signal(signal.SIGTSTP, on_tstp)
    signal.signal(signal.SIGCONT, on_cont)
