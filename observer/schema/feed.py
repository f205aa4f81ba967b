"""The public feed: ``FeedMessage`` (one archived line) and ``FeedStats`` (``FeedBody``)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from observer.schema.base import ArchiveKind, _Msg


class FeedMessage(_Msg, frozen=True, tag="feed"):
    """One archived line on the public feed (topic frame first, see ``observer.bus.feed_topic``).

    ``line`` is the archive line exactly as stored; ``at`` its own time (captured / received /
    window end / event time), so a replayed message carries the original time. ``seq`` counts per
    topic from 1 for one publisher run (``run_id``): a hole means the consumer lost messages (a slow
    subscriber is dropped at the HWM, never waited for). ``n`` counts every line of the run from 1,
    across topics, including those not sent while nobody listened (`FeedStats.skipped`): a consumer
    of every topic learns from it what per-topic holes cannot show (a lost message on a topic it
    never sees again, and how many lines went before it joined: its first ``n`` - 1). ``replay`` is
    the only other difference between a live and a replayed message."""

    topic: str
    track: ArchiveKind
    seq: int
    run_id: str
    at: datetime
    sent_at_ns: int
    line: msgspec.Raw
    replay: bool = False
    n: int = 0  # 0: a publisher from before the run-wide count


class FeedStats(_Msg, frozen=True, tag="feed_stats"):
    """Published on topic ``feed.stats`` every few seconds and once at the end of a run: how many
    messages the publisher sent per track (compare with what arrived), how many lines it did not
    send because nobody subscribed to line topics then (``skipped``, counted in ``n``), and how many
    it had to drop itself because its own bounded queue was full (the pipeline never waits for the
    feed)."""

    run_id: str
    at: datetime
    published: dict[str, int]
    dropped: int = 0
    skipped: int = 0
    replay: bool = False
    final: bool = False


FeedBody = FeedMessage | FeedStats
