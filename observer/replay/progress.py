"""The replay progress line on a terminal: position in the range, lines, rate and ETA.

ETA comes from the bytes read of the selected files (the merge reads them all alongside), so it
holds for every speed; on a non-terminal (or with ``--quiet``) nothing is drawn.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import IO

from observer.clock import KST
from observer.replay.reader import ReadReport, Selection

_WIDTH = 30
_EVERY_S = 0.25


class ProgressBar:
    def __init__(self, sel: Selection, out: IO[str]):
        self.sel = sel
        self.out = out
        self.t0 = time.monotonic()
        self._next = 0.0
        self._span_s = max((sel.end - sel.start).total_seconds(), 1e-9)

    def __call__(self, count: int, at: datetime, report: ReadReport) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + _EVERY_S
        position = min(max((at - self.sel.start).total_seconds() / self._span_s, 0.0), 1.0)
        done = int(position * _WIDTH)
        elapsed = now - self.t0
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
