"""Whether the Track B feed is down, from what the ws-collector says (`FeedStatus`) and what it
sends (frames), and from the supervisor's word on it, for the sampler's output.

* every data frame: the feed is up; the frame is the producer run's *last frame* (its receive time,
  and the exchange time of its last trade), which `FeedMark` carries into the core's checkpoint so
  that a crash of the core does not lose it either.
* ``FeedStatus`` ``disconnected`` (every failed session or attempt), ``failure``, or the supervisor's
  ``worker_state`` saying the ws-collector left RUNNING (a crash: the collector says nothing): the
  feed is down **from the last frame received** (not from when the outage was noticed). Samples of
  windows starting inside an outage carry ``quality_flag: "gap"`` — also windows that close after
  the feed came back (each outage is kept as a span until its windows are closed).
* ``failure`` (CRITICAL, after ``track_b.pause_after_failure_s`` of consecutive failure): scalp
  recording pauses — samples are not written (they still count as expected, so the collection rate
  shows the failure) until a data frame arrives again.
* a frame from a new run of a producer (a restarted ws-collector): `frame_arrived` returns the
  outage — from the previous run's last frame to this first frame — for its ``collector_restart``
  gap marker.
* several app keys (one session each; ``FeedStatus.key_index`` > 0): a key's session down is down
  for the symbols it carried only, from that key's last frame until its next frame; its windows
  are flagged ``gap`` (or, after ``failure``, not written) for those symbols alone. When the key
  has failed and its symbols moved (``ws_key_failed``), its outage ends for them there.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

import msgspec

from observer.schema import FeedStatus, SystemEvent

WS_PRODUCER_SOURCE = "ws-collector"
_SPANS_KEPT = 64  # recent outages whose windows may still close (grace, catch-up after a restart)
_RUNNING = "RUNNING"


class FeedMark(msgspec.Struct, frozen=True, kw_only=True):
    """The last frame the core received from one producer run."""

    run_id: str
    received_at: datetime
    exchange_at: datetime  # the last trade's exchange time (<= received_at; the second counts)

    @property
    def start(self) -> datetime:
        """Where a restart's gap marker starts: trades are dated by their exchange second."""
        return min(self.received_at, self.exchange_at)


class Restart(msgspec.Struct, frozen=True, kw_only=True):
    """A producer came back as a new run: nothing was received from `previous.start` to `until`."""

    producer: str
    previous: FeedMark
    run_id: str
    until: datetime


class _KeyDown(msgspec.Struct):
    """One app key's session down (several keys): since when, for which symbols."""

    since: datetime
    symbols: frozenset[str]
    paused: bool = False


class FeedOutage:
    def __init__(self) -> None:
        self.down_since: datetime | None = None
        self.paused = False
        self.marks: dict[str, FeedMark] = {}  # producer -> its current run's last frame
        self._spans: deque[tuple[datetime, datetime]] = deque(maxlen=_SPANS_KEPT)
        # several keys: each key's last frame, its outage, and ended outages with their symbols
        self._key_last: dict[int, datetime] = {}
        self._keys_down: dict[int, _KeyDown] = {}
        self._key_spans: deque[tuple[datetime, datetime, frozenset[str]]] = deque(maxlen=_SPANS_KEPT)

    def restore(self, marks: dict[str, FeedMark]) -> None:
        """The marks of the checkpoint (a restarted core): a new run's first frame still finds them."""
        self.marks = dict(marks)

    @property
    def last_frame_at(self) -> datetime | None:
        return max((m.received_at for m in self.marks.values()), default=None)

    def observe(self, status: FeedStatus) -> None:
        if status.key_index:
            self._key_down(status)
            return
        match status.state:
            case "disconnected":
                self._down(status.at)
            case "failure":
                self.paused = True
                self._down(status.at)

    def observe_supervisor(self, event: SystemEvent) -> None:
        """The supervisor's ``worker_state`` events (archived lines, not a message to this core)."""
        if (
            event.type == "worker_state"
            and event.details.get("worker") == WS_PRODUCER_SOURCE
            and event.details.get("from") == _RUNNING
        ):
            self._down(event.at)  # exited, killed, stopping: its frames stopped with its last one

    def _key_down(self, status: FeedStatus) -> None:
        key = status.key_index
        down = self._keys_down.get(key)
        if down is None:
            last = self._key_last.get(key)
            since = last if last is not None and last < status.at else status.at
            down = self._keys_down[key] = _KeyDown(since=since, symbols=frozenset(status.symbols))
        else:
            down.symbols |= frozenset(status.symbols)
        if status.state == "failure":
            down.paused = True

    def key_failed(self, key: int, at: datetime) -> None:
        """`key` has failed and its symbols move to other keys: their outage ends at `at`."""
        down = self._end_key_outage(key, at)
        if down is not None:
            self._keys_down[key] = _KeyDown(since=at, symbols=frozenset(), paused=down.paused)

    def _end_key_outage(self, key: int, at: datetime) -> _KeyDown | None:
        """`key`'s outage, if any, ends at `at` (kept as a span for its symbols' windows)."""
        down = self._keys_down.pop(key, None)
        if down is not None and down.symbols:
            self._key_spans.append((down.since, at, down.symbols))
        return down

    def _down(self, noticed_at: datetime) -> None:
        if self.down_since is None:
            last = self.last_frame_at
            self.down_since = last if last is not None and last < noticed_at else noticed_at

    def frame_arrived(
        self,
        producer: str,
        run_id: str,
        received_at: datetime,
        exchange_at: datetime | None,
        key_index: int = 0,
    ) -> Restart | None:
        if key_index:
            self._key_last[key_index] = received_at
            self._end_key_outage(key_index, received_at)
        mark = FeedMark(run_id=run_id, received_at=received_at, exchange_at=exchange_at or received_at)
        previous = self.marks.get(producer)
        self.marks[producer] = mark
        restart = None
        if previous is not None and previous.run_id != run_id and previous.start < received_at:
            restart = Restart(producer=producer, previous=previous, run_id=run_id, until=received_at)
            self._spans.append((previous.received_at, received_at))
        if self.down_since is not None:
            self._spans.append((self.down_since, received_at))
        self.down_since = None
        self.paused = False
        return restart

    def silent_since(self, now: datetime, grace_ms: float, hold_ms: float) -> datetime | None:
        """The last frame's time when the whole feed is silent past the grace (but not past the hold)
        and no outage is known (yet): the windows after it wait — a collector killed says nothing,
        the supervisor's word on it decides whether they are flagged ``gap``."""
        last = self.last_frame_at
        if last is None or self.down_since is not None:
            return None
        silent_ms = (now - last).total_seconds() * 1000
        return last if grace_ms < silent_ms < hold_ms else None

    def is_paused(self, symbol: str) -> bool:
        """Whether `symbol`'s samples are not written now (its feed failed for good)."""
        if self.paused:
            return True
        return any(d.paused and symbol in d.symbols for d in self._keys_down.values())

    def is_gap(self, window_start: datetime, symbol: str = "") -> bool:
        if self.down_since is not None and window_start >= self.down_since:
            return True
        if any(start <= window_start < end for start, end in self._spans):
            return True
        if not symbol:
            return False
        for down in self._keys_down.values():
            if window_start >= down.since and symbol in down.symbols:
                return True
        return any(start <= window_start < end and symbol in syms for start, end, syms in self._key_spans)
