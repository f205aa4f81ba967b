"""The replay progress line on a terminal: position in the range, lines, rate and ETA.

The range runs from the first selected line to the newest one (read from the files' tails, capped
at ``--to``). ETA: at a paced speed, what is left of the range divided by the speed; at ``max``,
from the bytes read of the selected files (the merge reads them all alongside). On a non-terminal
(or with ``--quiet``) nothing is drawn.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import IO

from observer.clock import KST
from observer.replay.reader import ReadReport, Selection, last_time

_WIDTH = 30
_EVERY_S = 0.25


class ProgressBar:
    def __init__(self, sel: Selection, out: IO[str], speed: float | None):
        self.sel = sel
        self.out = out
        self.speed = speed
        self.t0 = time.monotonic()
        self._next = 0.0
        self._first: datetime | None = None
        newest = last_time(sel)
        self._end = min(newest, sel.end) if newest is not None else sel.end

    def __call__(self, count: int, at: datetime, report: ReadReport) -> None:
        now = time.monotonic()
        if now < self._next and at < self._end:
            return
        self._next = now + _EVERY_S
        if self._first is None:
            self._first = at
        span_s = max((self._end - self._first).total_seconds(), 1e-9)
        position = min(max((at - self._first).total_seconds() / span_s, 0.0), 1.0)
        done = int(position * _WIDTH)
        elapsed = now - self.t0
        if self.speed is not None:
            eta = f"{max((self._end - at).total_seconds(), 0.0) / self.speed:5.0f}s"
        else:
            fraction = report.bytes_read / report.bytes_total if report.bytes_total else 0.0
            eta = f"{elapsed / fraction - elapsed:5.0f}s" if fraction > 0.01 else "    ?"
        self.out.write(
            f"\r[{'#' * done}{'.' * (_WIDTH - done)}] {at.astimezone(KST):%H:%M:%S} {position:4.0%}"
            f"  {count:,} lines  {count / max(elapsed, 1e-9):,.0f}/s  ETA {eta} "
        )
        self.out.flush()

    def close(self) -> None:
        self.out.write("\n")
        self.out.flush()
