"""Polling with a deadline: the one loop tests, benches and testkit use to wait for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    predicate: Callable[[], T],
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
    what: str = "",
    error: type[Exception] = TimeoutError,
) -> T:
    """Poll `predicate` until it returns something truthy; raise `error` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout_s}s waiting for {what or predicate}")
        time.sleep(interval_s)  # polling interval, not a wait for an event
