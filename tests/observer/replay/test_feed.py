"""The public feed of a live `make run`-style pipeline, tapped by `observer tap` (real processes).

Every archived line arrives on the feed with its track and topic; a tap that stops reading for a
while (SIGSTOP) costs the pipeline nothing; a subscriber too slow to keep up loses messages and is
told how many (holes in the per-topic seq)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from observer.bus import context
from observer.clock import KST
from observer.feed_sockets import FeedPublisher, FeedSubscriber
from observer.replay.tap import Tally
from observer.schema import FeedMessage
from testkit.config import make_config
from tests.conftest import wait_for
from tests.observer.replay.conftest import Recording, archive_lines, tap_messages


def _expected_topic(m: dict[str, Any]) -> str:
    track, line = m["track"], m["line"]
    if track in ("swing", "scalp"):
        return f"{track}.{m['topic'].split('.')[1]}.{line['record_id'].split(':')[1]}"
    if track == "raw":
        return f"raw.{line['market']}"
    return f"event.{line['type']}" if track == "system" else f"event.{track}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_archived_line_arrives_on_the_feed(recording: Recording) -> None:
    archived = archive_lines(recording.data)
    everything = tap_messages(recording.tap_out)
    messages = [m for m in everything if m["kind"] == "feed"]

    by_id = {m["line"]["record_id"]: m for m in messages}
    assert len(by_id) == len(messages), "a line was published twice"
    assert all(not m["replay"] for m in messages)
    for m in messages:
        assert m["topic"] == _expected_topic(m), m["topic"]
    # each topic's seq runs without a hole
    seqs: dict[str, list[int]] = defaultdict(list)
    for m in messages:
        seqs[m["topic"]].append(m["seq"])
    for topic, got in seqs.items():
        assert got == list(range(got[0], got[0] + len(got))), topic

    # counts equal: every archived line arrived, but those archived before the tap's subscription
    # reached the writer at its start (exactly the first message's run-wide n - 1), none lost after
    ns = [m["n"] for m in messages]
    assert ns == list(range(ns[0], ns[0] + len(ns))), "the tap lost messages"
    before_join = ns[0] - 1
    assert before_join <= 200, before_join  # the start-up events of the first second or so
    assert set(by_id) <= {line["record_id"] for line in archived}
    assert len(archived) == len(messages) + before_join, (len(archived), len(messages), before_join)
    tracks = defaultdict(int)
    for m in messages:
        tracks[m["track"]] += 1
    assert tracks["scalp"] > 1000 and tracks["swing"] > 500 and tracks["raw"] > 100, tracks

    # the writer's own account on feed.stats agrees
    final = [s for s in everything if s["kind"] == "feed_stats" and s["final"]]
    assert final and sum(final[-1]["published"].values()) + final[-1]["skipped"] == len(archived), final[-1:]
    assert final[-1]["skipped"] == before_join  # lines archived before anyone listened were not sent
    assert final[-1]["dropped"] == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_stopped_tap_slows_nothing(recording: Recording) -> None:
    # 41 slots at 2 Hz kept being archived while the tap did not read
    expected = 41 * 2 * recording.stop_s
    assert recording.scalp_during_stop >= 0.97 * expected - 2 * 41, (recording.scalp_during_stop, expected)
    assert "lost 0" in recording.tap_err, recording.tap_err


def test_a_slow_subscriber_is_told_how_many_it_lost(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, "[bus]\nsend_hwm = 50\nrecv_hwm = 50\n")
    address = f"ipc://{short_tmp}/feed-loss.sock"
    pub = FeedPublisher(context(), cfg, address, run_id="r1")
    sub = FeedSubscriber(context(), cfg, address, ["scalp.KRX.005930"])
    at = datetime(2026, 12, 7, 9, 30, tzinfo=KST)
    line = b'{"record_id":"scalp:005930:x","pad":"' + b"x" * 2000 + b'"}'

    def joined() -> bool:
        pub.publish("scalp", "KRX", "scalp:005930:x", line, at)
        return sub.recv(50) is not None

    wait_for(joined, 10, 0.0, "the subscription to reach the publisher")
    while sub.recv(50) is not None:
        pass
    first = pub.seqs["scalp.KRX.005930"] + 1
    for _ in range(20_000):  # nobody reads meanwhile: the publisher drops, never waits
        pub.publish("scalp", "KRX", "scalp:005930:x", line, at)
    tally = Tally()
    got: list[int] = []
    while (item := sub.recv(300)) is not None:
        assert isinstance(item[1], FeedMessage)
        tally.add(item[1])
        got.append(item[1].seq)
    lost = sum(tally.lost.values())
    assert lost > 0, "a subscriber that did not read should have lost messages"
    assert got[0] >= first - 1
    assert len(got) + lost == got[-1] - got[0] + 1  # each message is received or counted lost
    pub.close()
    sub.close()


def _msg(topic: str, seq: int, n: int, run_id: str = "r1") -> FeedMessage:
    at = datetime(2026, 12, 7, 9, 30, tzinfo=KST)
    return FeedMessage(
        topic=topic, track="swing", seq=seq, run_id=run_id, at=at, sent_at_ns=0, line=msgspec.Raw(b"{}"), n=n
    )


def test_a_tap_of_everything_counts_a_loss_on_a_topic_it_never_sees_again() -> None:
    """Per-topic seq cannot show a lost message on a topic with one message (a swing symbol's sweep);
    the run-wide n can, and says how many messages went before the tap joined."""
    everything, filtered = Tally(everything=True), Tally()
    for msg in (_msg("swing.KOSPI.A", 1, 4), _msg("swing.KOSPI.B", 1, 5), _msg("swing.KOSPI.A", 2, 7)):
        everything.add(msg)  # n 6 (swing.KOSPI.C, its only message) was lost
        filtered.add(msg)
    assert everything.lost_total == 1 and everything.before_join == 3
    assert filtered.lost_total == 0  # per topic, nothing shows
    everything.add(_msg("swing.KOSPI.A", 1, 2, run_id="r2"))  # the publisher restarted
    assert everything.lost_total == 1 and everything.before_join == 4
    assert "lost 1" in everything.summary() and "4 published before joining" in everything.summary()
