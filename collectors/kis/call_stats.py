"""`CallStats`: the counters of one unit of KIS REST work (a sweep, a universe build), shared by the
threads that make its calls: calls, rate-limit rounds, retries, token re-issues, errors by code and
the first few answers for another code than the one asked for."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

WRONG_CODE_EXAMPLES = 10


class CallStats:
    """Counters of one unit of work (a sweep, a build). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.rate_limited = 0
        self.retries = 0
        self.token_reissues = 0
        self.errors: Counter[str] = Counter()
        self.wrong_codes: list[str] = []  # "asked->answered", the first few of them

    @classmethod
    def merged(cls, parts: Iterable[CallStats]) -> CallStats:
        """The sum of `parts` (one unit of work done by several app keys, each with its own)."""
        out = cls()
        for part in parts:
            with part._lock:
                out.calls += part.calls
                out.rate_limited += part.rate_limited
                out.retries += part.retries
                out.token_reissues += part.token_reissues
                out.errors.update(part.errors)
                out.wrong_codes.extend(part.wrong_codes[: WRONG_CODE_EXAMPLES - len(out.wrong_codes)])
        return out

    def wrong_code(self, asked: str, answered: str) -> None:
        """An answer (row) for another code than the one asked for: rejected, counted."""
        with self._lock:
            self.errors["wrong_code"] += 1
            if len(self.wrong_codes) < WRONG_CODE_EXAMPLES:
                self.wrong_codes.append(f"{asked}->{answered}")

    def count(self, field: str, code: str = "") -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + 1)
            if code:
                self.errors[code] += 1

    def error(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def errors_by_code(self) -> dict[str, int]:
        with self._lock:
            return dict(self.errors)
