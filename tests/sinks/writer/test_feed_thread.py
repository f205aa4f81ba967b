"""The writer's feed thread on a real XPUB: lines archived while nobody listens are not encoded, but
they count in the run-wide ``n`` and in ``FeedStats.skipped``, so a consumer that joins later knows
exactly how many lines went before it. A line whose id names no symbol does not stop the thread."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import zmq

from observer.bus import Endpoints
from observer.feed_sockets import FeedSubscriber
from observer.schema import FeedMessage, FeedStats
from sinks.writer.feed import FeedThread
from testkit.config import make_config
from tests.conftest import wait_for
from tests.sinks.writer.test_kill import nominal

AT = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)


def test_lines_archived_before_anyone_listens_count_in_n_and_skipped(short_tmp: Path) -> None:
    cfg = make_config(short_tmp)
    ctx: zmq.Context[object] = zmq.Context()
    feed = FeedThread(ctx, cfg, run_id="r1", now=lambda: AT)
    feed.start()
    sub: FeedSubscriber | None = None
    try:
        feed.offer([(rec, bytes(rec.line)) for rec in map(nominal, range(5))])
        wait_for(lambda: feed.unheard == 5, 10, 0.01, "five lines taken with nobody listening")
        sub = FeedSubscriber(ctx, cfg, Endpoints(cfg)["feed"], [])
        got: list[FeedMessage] = []
        offered = 5

        def joined() -> bool:  # one line at a time until the subscription has reached the thread
            nonlocal offered
            feed.offer([(nominal(offered), bytes(nominal(offered).line))])
            offered += 1
            assert sub is not None
            while (item := sub.recv(50)) is not None:
                if isinstance(item[1], FeedMessage):
                    got.append(item[1])
            return bool(got)

        wait_for(joined, 10, 0.0, "the subscription to reach the feed thread")
        assert got[0].n - 1 == feed.unheard >= 5  # exactly the lines that went before it
        assert got[0].topic.endswith("._")  # these ids name no symbol: published, the thread alive
        feed.stop()
        feed.join(5)
        final: FeedStats | None = None
        while (item := sub.recv(500)) is not None:
            if isinstance(item[1], FeedStats) and item[1].final:
                final = item[1]
        assert final is not None and final.skipped == got[0].n - 1
        assert sum(final.published.values()) + final.skipped == offered
    finally:
        feed.stop()
        if sub is not None:
            sub.close()
        ctx.destroy(linger=0)
