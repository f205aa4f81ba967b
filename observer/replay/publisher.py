"""The replay side of the feed: the merged, paced stream published exactly as the live feed does.

`replay` drives it: lines from `reader.read_range`, each waited for by the `Pacer`, published by
an `observer.feed_sockets.FeedPublisher` on an XPUB socket (``replay_feed`` unless ``--endpoint``) with
``replay=True`` and the line's original time in ``at``; a `FeedStats` on ``feed.stats`` every few
seconds and a final one at the end. XPUB lets replay wait for its first subscriber before the
first line (``--wait``), so a consumer started just before it misses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import zmq

from observer.bus import context
from observer.clock import KST
from observer.config import Config
from observer.feed_sockets import FeedPublisher
from observer.reliable import new_run_id
from observer.replay.pacing import Pacer
from observer.replay.reader import ReadReport, ReplayError, Selection, read_range

STATS_INTERVAL_S = 5.0
FLUSH_LINGER_MS = 5_000


@dataclass
class ReplayResult:
    published: int
    seconds: float
    first_at: datetime | None
    last_at: datetime | None
    report: ReadReport


def wait_for_subscriber(sock: zmq.Socket[Any], timeout_s: float | None) -> bool:
    """Block until an XPUB socket sees a subscription (True) or `timeout_s` passes (False)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while deadline is None or time.monotonic() < deadline:
        if sock.poll(200):
            msg = sock.recv()
            if msg[:1] == b"\x01":
                return True
    return False


def replay(
    cfg: Config,
    sel: Selection,
    address: str,
    pacer: Pacer,
    *,
    wait_s: float | None = None,
    wait: bool = True,
    progress: Callable[[int, datetime, ReadReport], None] | None = None,
    on_waiting: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Publish the selection on `address`. Raises ReplayError for a missing day or an empty range."""
    report = ReadReport()
    lines = read_range(sel, report)
    first = next(lines, None)
    if first is None:
        problems = f"; {report.format()}" if report.bad_lines else ""
        raise ReplayError(
            f"nothing to replay: no archive lines in {sel.describe()} under {sel.data}{problems}"
        )
    pub = FeedPublisher(context(), cfg, address, run_id=new_run_id(), replay=True, sock_type=zmq.XPUB)
    try:
        if wait:
            if on_waiting is not None:
                on_waiting(address)
            if not wait_for_subscriber(pub.sock, wait_s):
                raise ReplayError(f"no subscriber connected to {address} within {wait_s} s")
        t0 = time.monotonic()
        next_stats = t0 + STATS_INTERVAL_S
        count = 0
        last = first
        for line in _chain(first, lines):
            pacer.wait(line.at_ns)
            pub.publish(line.track, line.market, line.record_id, line.raw, line.at)
            count += 1
            last = line
            if count % 256 == 0:
                now = time.monotonic()
                if progress is not None:
                    progress(count, line.at, report)
                if now >= next_stats:
                    next_stats = now + STATS_INTERVAL_S
                    pub.publish_stats(datetime.now(KST))
        pub.publish_stats(datetime.now(KST), final=True)
        seconds = time.monotonic() - t0
        if progress is not None:
            progress(count, last.at, report)
        return ReplayResult(count, seconds, first.at, last.at, report)
    finally:
        pub.close(FLUSH_LINGER_MS)


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest
