"""`observer tap`: the reference consumer of the public feed, live or replayed.

It subscribes to topic prefixes, prints every message as a JSON line (the `FeedMessage` with its
archive line embedded as stored) or, with ``--counts``, the messages per second of each topic group
(``swing.KOSPI``, ``event.gap_marker``, ...), and keeps the loss account: a hole in a topic's
``seq`` is a lost message (a slow consumer is dropped by the publisher, never waited for). A tap of
every topic counts holes in the run-wide ``n`` instead, which also finds a lost message on a topic
never seen again, and reports how many messages went before it joined.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

import msgspec

from observer.bus import context
from observer.config import Config
from observer.feed_sockets import FeedSubscriber
from observer.schema import FeedMessage, FeedStats

_encoder = msgspec.json.Encoder()


def topic_group(topic: str) -> str:
    """``swing.KOSPI.005930`` -> ``swing.KOSPI``; ``event.gap_marker`` stays as it is."""
    return ".".join(topic.split(".", 2)[:2])


class Tally:
    """What a consumer received, and what it lost: holes in per-topic seq (`lost`, by track) and,
    for a consumer of every topic (`everything`), holes in the run-wide n (`lost_total`) and the
    messages published before it joined each run (`before_join`)."""

    def __init__(self, everything: bool = False) -> None:
        self.everything = everything
        self.received: Counter[str] = Counter()  # by track
        self.lost: Counter[str] = Counter()  # by track
        self.groups: Counter[str] = Counter()  # by topic group, since the last `take_groups`
        self.last_stats: FeedStats | None = None
        self.before_join = 0
        self._lost_n = 0
        self._last_seq: dict[str, tuple[str, int]] = {}
        self._last_n: tuple[str, int] | None = None

    def add(self, msg: FeedMessage) -> None:
        self.received[msg.track] += 1
        self.groups[topic_group(msg.topic)] += 1
        prev = self._last_seq.get(msg.topic)
        if prev is not None and prev[0] == msg.run_id and msg.seq > prev[1] + 1:
            self.lost[msg.track] += msg.seq - prev[1] - 1
        self._last_seq[msg.topic] = (msg.run_id, msg.seq)
        if msg.n:
            if self._last_n is None or self._last_n[0] != msg.run_id:
                self.before_join += msg.n - 1
            elif msg.n > self._last_n[1] + 1:
                self._lost_n += msg.n - self._last_n[1] - 1
            self._last_n = (msg.run_id, msg.n)

    @property
    def lost_total(self) -> int:
        return self._lost_n if self.everything else sum(self.lost.values())

    def take_groups(self) -> Counter[str]:
        groups, self.groups = self.groups, Counter()
        return groups

    def summary(self) -> str:
        total = sum(self.received.values())
        parts = [f"{track} {n}" for track, n in sorted(self.received.items())]
        text = f"tap: received {total} messages ({', '.join(parts) or 'none'}); lost {self.lost_total}"
        if self.lost:
            text += " (on topics seen: " + ", ".join(f"{t} {n}" for t, n in sorted(self.lost.items())) + ")"
        if self.everything:
            text += f"; {self.before_join} published before joining"
        if self.last_stats is not None:
            published = sum(self.last_stats.published.values())
            stats = self.last_stats
            text += f"; publisher reported {published} published, {stats.skipped} skipped, {stats.dropped} dropped"
        return text


def run_tap(
    cfg: Config,
    address: str,
    topics: list[str],
    *,
    counts: bool,
    out: IO[str],
    max_messages: int = 0,
    until_final: bool = False,
    duration_s: float = 0.0,
    stop: Callable[[], bool] | None = None,
) -> Tally:
    """Consume until SIGINT/SIGTERM, `max_messages`, a final `FeedStats` (`until_final`) or `duration_s`."""
    stopping = False

    def request_stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    sub = FeedSubscriber(context(), cfg, address, topics)
    tally = Tally(everything=not topics or "" in topics)
    deadline = time.monotonic() + duration_s if duration_s > 0 else float("inf")
    next_print = time.monotonic() + 1.0
    try:
        while not stopping and not (stop is not None and stop()) and time.monotonic() < deadline:
            got = sub.recv(200)
            if got is None:
                out.flush()
            else:
                _topic, body = got
                match body:
                    case FeedMessage():
                        tally.add(body)
                        if not counts:
                            out.write(_encoder.encode(body).decode() + "\n")
                    case FeedStats():
                        tally.last_stats = body
                        if not counts:
                            out.write(_encoder.encode(body).decode() + "\n")
                        if body.final and until_final:
                            break
                if max_messages and sum(tally.received.values()) >= max_messages:
                    break
            if counts and time.monotonic() >= next_print:
                next_print += 1.0
                groups = tally.take_groups()
                line = "  ".join(f"{g} {n}/s" for g, n in sorted(groups.items())) or "(nothing)"
                out.write(f"{time.strftime('%H:%M:%S')}  {line}  lost {tally.lost_total}\n")
                out.flush()
    finally:
        out.flush()
        sub.close()
    print(tally.summary(), file=sys.stderr)
    return tally
