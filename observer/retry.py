"""The one retry/backoff helper: a schedule, a cap, jitter, reset on success, and a named
exception when the tries are exhausted.

    backoff = Backoff(schedule_s=[1, 2, 5, 10, 20, 30, 60])   # then 60 s repeated
    delay = backoff.next_delay()   # on each failure
    backoff.reset()                # after a healthy period / a success

    retry_call(fn, tries=3, retry_on=(Timeout,))                 # raises RetriesExhausted
    retry_call(fn, tries=None, retry_on=(...), stop=event)       # until it works or `stop` is set
    retry_call(fn, retry_on=(KisError,), kind_of=..., budgets={"error": Budget(3, ...),
               "rate_limited": Budget(13, ...)})                   # a budget per kind of failure
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


class RetryCancelled(Exception):
    """`stop` was set while retrying; ``__cause__`` is the last error."""


@dataclass
class Budget:
    """How many tries one kind of failure gets (None: unlimited) and the waits between them."""

    tries: int | None
    backoff: Backoff
    used: int = 0


def retry_call(
    fn: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    tries: int | None = 3,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "call",
    kind_of: Callable[[BaseException], str] | None = None,
    budgets: Mapping[str, Budget] | None = None,
    min_delay_s: Callable[[BaseException], float] | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
    stop: threading.Event | None = None,
) -> T:
    """Call `fn` until it returns; each `retry_on` error waits the next delay of its budget and
    tries again, until that budget's tries are spent (`RetriesExhausted`, from the last error).

    One budget (`tries`, `backoff`) unless `kind_of` names a budget in `budgets` per error.
    `min_delay_s` raises a delay (a server's Retry-After); `on_retry(error, delay_s)` is told before
    each wait; with `stop`, waits end early when it is set (`RetryCancelled`)."""
    default = Budget(tries, backoff or Backoff(base_s=0.2, cap_s=2.0, jitter=0.5))
    calls = 0
    while True:
        calls += 1
        try:
            return fn()
        except retry_on as e:
            budget = budgets[kind_of(e)] if kind_of is not None and budgets is not None else default
            budget.used += 1
            if budget.tries is not None and budget.used >= budget.tries:
                raise RetriesExhausted(f"{what} failed after {calls} tries: {e}", calls) from e
            delay = budget.backoff.next_delay()
            if min_delay_s is not None:
                delay = max(delay, min_delay_s(e))
            if on_retry is not None:
                on_retry(e, delay)
            if stop is None:
                sleep(delay)
            elif stop.wait(delay) or stop.is_set():
                raise RetryCancelled(f"{what} cancelled after {calls} tries") from e
