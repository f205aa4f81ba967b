"""Which Track A marks the rest-collector has accounted for, across its own restarts.

Data flow::

    rest-collector loop -> MarkLedger.account(mark)   (swept, skipped or reported: written to
                                                       ``state_dir/track_a_marks.json``, 0600)
    start / new day / clock jump -> MarkLedger.missed(sessions, upto) -> marks nobody looked at
      -> a ``collector_down`` gap marker each (the worker sends them once the day's universe is known)

A collector that was stopped (``ctl stop``), killed, hung or simply not running across sweep marks
thereby leaves one gap marker per missed mark instead of a silent hole. A collector that never ran
before (no ledger) reports nothing: it cannot know what it would have swept.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import msgspec

from observer.atomic import write_atomic
from observer.config import ensure_private_dir
from observer.sessions import MarketSessions

log = logging.getLogger(__name__)


class _Ledger(msgspec.Struct, frozen=True):
    last_mark: datetime


_decoder = msgspec.json.Decoder(_Ledger)
_encoder = msgspec.json.Encoder()


class MarkLedger:
    """The newest mark accounted for, durable (a crash right after a sweep started keeps it)."""

    def __init__(self, path: Path):
        self.path = path
        self.last: datetime | None = self._load()

    def _load(self) -> datetime | None:
        try:
            return _decoder.decode(self.path.read_bytes()).last_mark
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as e:  # unreadable: start afresh, say so
            log.warning(
                "Track A mark ledger unreadable; ignoring it", extra={"path": str(self.path), "error": str(e)}
            )
            return None

    def missed(self, sessions: MarketSessions, upto: datetime) -> list[datetime]:
        """Marks after the last accounted one and strictly before `upto`, on trading days."""
        return [] if self.last is None else sessions.marks_between(self.last, upto)

    def account(self, mark: datetime) -> None:
        if self.last is not None and mark <= self.last:
            return
        self.last = mark
        try:
            ensure_private_dir(self.path.parent)
            write_atomic(self.path, _encoder.encode(_Ledger(mark)))
        except OSError as e:  # the schedule goes on; only the after-restart report is at risk
            log.warning("Track A mark ledger not written", extra={"path": str(self.path), "error": str(e)})
