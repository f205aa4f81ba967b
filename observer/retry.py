"""The one retry/backoff helper: a schedule, a cap, jitter, reset on success, and a named
exception when the tries are exhausted.

    backoff = Backoff(schedule_s=[1, 2, 5, 10, 20, 30, 60])   # then 60 s repeated
    delay = backoff.next_delay()   # on each failure
    backoff.reset()                # after a healthy period / a success

    retry_call(fn, tries=3, base_s=0.2, retry_on=(Timeout,))    # raises RetriesExhausted
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class RetriesExhausted(Exception):
    """Every try failed; ``__cause__`` is the last error and ``attempts`` how many were made."""

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class Backoff:
    """Delays from `schedule_s`, the last one repeated; or exponential from `base_s` up to `cap_s`.

    `jitter` is a fraction: a delay d becomes uniform in [d * (1 - jitter), d].
    """

    def __init__(
        self,
        schedule_s: Sequence[float] | None = None,
        *,
        base_s: float = 1.0,
        factor: float = 2.0,
        cap_s: float = 60.0,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ):
        self._schedule = list(schedule_s) if schedule_s else None
        self._base_s = base_s
        self._factor = factor
        self._cap_s = cap_s
        self._jitter = jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        if self._schedule:
            delay = self._schedule[min(self.failures, len(self._schedule) - 1)]
        else:
            delay = min(self._base_s * (self._factor**self.failures), self._cap_s)
        self.failures += 1
        if self._jitter:
            delay *= 1 - self._rng.random() * self._jitter
        return delay

    def peek(self) -> float:
        if self._schedule:
            return self._schedule[min(self.failures, len(self._schedule) - 1)]
        return min(self._base_s * (self._factor**self.failures), self._cap_s)

    def reset(self) -> None:
        self.failures = 0


def retry_call(
    fn: Callable[[], T],
    *,
    tries: int,
    retry_on: tuple[type[BaseException], ...],
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "call",
) -> T:
    """Call `fn` up to `tries` times, sleeping `backoff` between tries on `retry_on` errors."""
    backoff = backoff or Backoff(base_s=0.2, cap_s=2.0, jitter=0.5)
    last: BaseException | None = None
    for attempt in range(1, tries + 1):
        try:
            return fn()
        except retry_on as e:
            last = e
            if attempt < tries:
                sleep(backoff.next_delay())
    raise RetriesExhausted(f"{what} failed after {tries} tries: {last}", tries) from last
