"""Every member of every message union, round-tripped on the real socket type it travels on.

The unions are found in `observer.schema` (every module-level union of Structs) and their members
read from the unions themselves (`typing.get_args`): a new union without a route, or a new member
without a sample, fails `test_every_union_member_has_a_sample` (and its round trip cannot run).

* ``IngestBody``  — inside an `EnvelopeBatch`, PUSH -> PULL (the ingest hop);
* ``ArchiveBody`` — inside an `EnvelopeBatch`, PUSH -> PULL (the archive hop); each ``ArchiveLine``
  rides in an `ArchiveRecord`'s ``line`` and is decoded back as its own type, as the writer does;
* ``EventBody``   — topic frame + body, PUB -> forwarder (XSUB/XPUB) -> SUB;
* ``FeedBody``    — topic frame + body, PUB -> SUB (the public feed);
* ``Command`` / ``CommandReply`` — REQ -> REP and back (the control socket).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from observer import schema as s
from observer.bus import (
    EventPublisher,
    EventSubscriber,
    Forwarder,
    archive_decoder,
    bind,
    encode,
    feed_decoder,
    ingest_decoder,
    make_socket,
    reply_decoder,
    stats_topic,
)
from observer.config import Config
from testkit.config import make_config
from tests.observer.test_schema import AT, INGEST, _pattern

_ING = {type(m): m for m in INGEST}

SAMPLES: dict[type[Any], msgspec.Struct] = {
    s.TradeFrame: _ING[s.TradeFrame],
    s.QuoteSnapshot: _ING[s.QuoteSnapshot],
    s.SystemEvent: _ING[s.SystemEvent],
    s.GapMarker: _ING[s.GapMarker],
    s.OverflowEntry: _ING[s.OverflowEntry],
    s.MetricsSnapshot: _ING[s.MetricsSnapshot],
    s.FeedStatus: s.FeedStatus(
        record_id="evt:ws-collector:r1:3",
        state="failure",
        at=AT,
        source="ws-collector",
        provider="kis",
        severity="CRITICAL",
        message="websocket down for 60 s",
        details={"attempts": 4, "reasons": ["refused"]},
    ),
    s.UniverseBuilt: s.UniverseBuilt(
        record_id="evt:rest-collector:universe_built:kis:KOSPI:20261126",
        at=AT,
        source="rest-collector",
        provider="kis",
        market="KOSPI",
        day=date(2026, 11, 26),
        symbols=2400,
        path="config/universe/20261126_KOSPI.json",
    ),
    s.DayAnomalous: s.DayAnomalous(
        record_id="evt:monitor:day_anomalous:kis:20261126",
        at=AT,
        source="monitor",
        provider="kis",
        day=date(2026, 11, 26),
        severity="WARNING",
        reasons=["WS reconnects 21 >= 20"],
    ),
    s.SweepSummary: s.SweepSummary(
        record_id="evt:rest-collector:r1:9",
        at=AT,
        source="rest-collector",
        provider="kis",
        severity="WARNING",
        sweep_id="20261126T0930",
        duration_s=41.5,
        calls=4100,
        universe=4000,
        recorded=3990,
        failed=10,
        collection_rate=0.9975,
        errors_by_code=["EGW00201=10"],
    ),
    s.ArchiveRecord: s.ArchiveRecord(
        track="scalp",
        provider="kis",
        market="KRX",
        partition_at=AT,
        record_id="scalp:005930:20261126T093102.500",
        line=msgspec.Raw(msgspec.json.encode(_pattern())),
    ),
    s.FeedMessage: s.FeedMessage(
        topic="scalp.KOSPI.005930",
        track="scalp",
        seq=7,
        run_id="r1",
        at=AT,
        sent_at_ns=1,
        line=msgspec.Raw(msgspec.json.encode(_pattern())),
    ),
    s.FeedStats: s.FeedStats(run_id="r1", at=AT, published={"scalp": 7}, dropped=1, final=True),
    s.PatternRecord: _pattern(),
    s.RawFrameRecord: s.RawFrameRecord(
        record_id="raw:ws-collector:r1:7",
        provider="kis",
        market="KRX",
        received_at=AT,
        tr_id="H0STCNT0",
        frame="0|H0STCNT0|001|005930^093102^71000",
    ),
    s.Heartbeat: s.Heartbeat(worker="writer", pid=42, run_id="abc", at=AT, stats={"queue_bytes": 0.0}),
    s.Ack: s.Ack(receiver="writer", producer="observer", run_id="r1", seq=99, at_ns=1),
    s.MitigationLevel: s.MitigationLevel(level=1, at=AT, reasons=["cpu>=80% for 300s"]),
    s.SlotCommand: s.SlotCommand(
        version=3,
        at=AT,
        slots=[s.SlotAssignment(slot_number=1, symbol="005930", rule="manual", since=AT, pinned=True)],
    ),
    s.Command: s.Command(action="pin", target="005930"),
    s.CommandReply: s.CommandReply(ok=True, message="sent", data={"x": msgspec.Raw(encode([1, 2]))}),
    s.CoreStats: s.CoreStats(
        worker="observer",
        at=AT,
        records={"scalp": 82},
        findings={"rejection.price_band": 1},
        samples_expected=90,
        samples_written=82,
        slots_used=41,
        track_b_collection_rate=0.91,
        event_lag_max_s=0.004,
        slots=[s.SlotProgress(slot_number=1, symbol="005930", expected=90, written=82)],
        track_a_sweep_at=AT,
    ),
    s.WriterStats: s.WriterStats(
        worker="writer", at=AT, written={"raw": 10}, commits=3, fsync_p99_ms=2.5, disk_error=True
    ),
    s.WsCollectorStats: s.WsCollectorStats(
        worker="ws-collector",
        at=AT,
        frames=10,
        reconnects=1,
        connected=True,
        subscribed=41,
        last_frame_age_s=0.2,
    ),
    s.JetStreamStats: s.JetStreamStats(worker="jetstream", at=AT, published=10, connected=True),
    s.MonitorStats: s.MonitorStats(
        worker="monitor",
        at=AT,
        health=1,
        reasons={"mitigation": 1},
        values=s.HealthValues(mitigation_level=1, cpu_pct=50.0, ws_connected=True, slots_used=41),
        samples=3,
    ),
}

# how each union travels, by its name in observer.schema (subsets travel as the union they are in)
ROUTES = {
    "IngestBody": "ingest",
    "TypedEvent": "ingest",
    "ArchiveLine": "archive_line",
    "EventBody": "events",
    "WorkerStats": "events",
    "FeedBody": "feed",
}
CONTROL = [s.Command, s.CommandReply]


def members(union: Any) -> tuple[type[Any], ...]:
    return typing.get_args(union) or (union,)


def _is_message_union(value: Any) -> bool:
    args = typing.get_args(value) if isinstance(value, types.UnionType) else ()
    return bool(args) and all(isinstance(a, type) and issubclass(a, msgspec.Struct) for a in args)


SCHEMA_UNIONS = {name: value for name, value in vars(s).items() if _is_message_union(value)}
UNIONS: list[tuple[str, Any, str]] = [("ArchiveBody", s.ArchiveBody, "archive")] + [
    (name, union, ROUTES.get(name, "unrouted")) for name, union in sorted(SCHEMA_UNIONS.items())
]


CASES = [(route, member) for _, union, route in UNIONS for member in members(union)] + [
    ("control", t) for t in CONTROL
]


def test_every_union_member_has_a_sample() -> None:
    unrouted = sorted(name for name in SCHEMA_UNIONS if name not in ROUTES)
    assert not unrouted, f"message unions with no route (which socket they travel on): {unrouted}"
    assert {"IngestBody", "EventBody", "ArchiveLine", "FeedBody"} <= set(SCHEMA_UNIONS)
    needed = {m for _, union, _ in UNIONS for m in members(union)} | set(CONTROL)
    missing = sorted(t.__name__ for t in needed - set(SAMPLES))
    assert not missing, f"message types without a round-trip sample: {missing}"
    stale = sorted(t.__name__ for t in set(SAMPLES) - needed)
    assert not stale, f"samples of types no union carries: {stale}"
    for t, sample in SAMPLES.items():
        assert type(sample) is t


@dataclass
class Sockets:
    cfg: Config
    ctx: zmq.Context[Any]
    push: zmq.Socket[Any]
    pull: zmq.Socket[Any]
    req: zmq.Socket[Any]
    rep: zmq.Socket[Any]
    pub: EventPublisher
    sub: EventSubscriber
    feed_pub: zmq.Socket[Any]
    feed_sub: zmq.Socket[Any]


@pytest.fixture(scope="module")
def sockets() -> Iterator[Sockets]:
    base = Path(tempfile.mkdtemp(prefix="obs-", dir="/tmp"))
    os.chmod(base, 0o700)
    cfg = make_config(base)
    ctx: zmq.Context[Any] = zmq.Context()
    forwarder = Forwarder(ctx, cfg)
    forwarder.start()
    pull = make_socket(ctx, zmq.PULL, cfg)
    bind(pull, f"ipc://{base}/unions-push.sock")
    push = make_socket(ctx, zmq.PUSH, cfg)
    push.connect(f"ipc://{base}/unions-push.sock")
    rep = make_socket(ctx, zmq.REP, cfg)
    bind(rep, f"ipc://{base}/unions-ctl.sock")
    req = make_socket(ctx, zmq.REQ, cfg)
    req.connect(f"ipc://{base}/unions-ctl.sock")
    pub = EventPublisher(ctx, cfg)
    sub = EventSubscriber(ctx, cfg, [stats_topic("unions")])
    feed_pub = make_socket(ctx, zmq.PUB, cfg)
    bind(feed_pub, f"ipc://{base}/unions-feed.sock")
    feed_sub = make_socket(ctx, zmq.SUB, cfg)
    feed_sub.setsockopt(zmq.SUBSCRIBE, b"")
    feed_sub.connect(f"ipc://{base}/unions-feed.sock")
    try:
        yield Sockets(cfg, ctx, push, pull, req, rep, pub, sub, feed_pub, feed_sub)
    finally:
        for sock in (push, pull, req, rep, feed_pub, feed_sub):
            sock.close(linger=0)
        pub.close()
        sub.close()
        forwarder.stop()
        ctx.term()
        shutil.rmtree(base, ignore_errors=True)


def _recv(sock: zmq.Socket[Any]) -> bytes:
    assert sock.poll(5_000), "nothing arrived within 5 s"
    return sock.recv()


def _via_hop(sk: Sockets, body: msgspec.Struct) -> msgspec.Raw:
    batch = s.EnvelopeBatch("p", "r1", 1, 0, time.time_ns(), [msgspec.Raw(encode(body))])
    sk.push.send(encode(batch))
    got = msgspec.json.decode(_recv(sk.pull), type=s.EnvelopeBatch[msgspec.Raw])
    assert (got.producer, got.run_id, got.seq, len(got.bodies)) == ("p", "r1", 1, 1)
    return got.bodies[0]


def _via_feed(sk: Sockets, body: msgspec.Struct) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a SUB joins late: publish until it hears
        sk.feed_pub.send_multipart([b"scalp.KOSPI.005930", encode(body)])
        if sk.feed_sub.poll(50):
            topic, raw = sk.feed_sub.recv_multipart()
            while sk.feed_sub.poll(20):  # drain the repeats
                sk.feed_sub.recv_multipart()
            assert topic == b"scalp.KOSPI.005930"
            return feed_decoder.decode(raw)
    raise AssertionError("the feed message never arrived")


def _via_events(sk: Sockets, body: Any) -> Any:
    topic = stats_topic("unions")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a new SUB joins the forwarder late: publish until it hears
        sk.pub.publish(topic, body)
        if sk.sub.sock.poll(50):
            got = sk.sub.recv_nowait()
            assert got is not None, f"undecodable on the event bus (malformed={sk.sub.malformed})"
            assert got[0] == topic
            while sk.sub.recv_nowait() is not None:  # drain the repeats
                pass
            return got[1]
    raise AssertionError("the event never arrived")


def _equal(back: Any, sample: Any) -> None:
    if isinstance(sample, s.ArchiveRecord | s.FeedMessage):
        assert type(back) is type(sample) and bytes(back.line) == bytes(sample.line)
        assert msgspec.structs.replace(back, line=msgspec.Raw(b"0")) == msgspec.structs.replace(
            sample, line=msgspec.Raw(b"0")
        )
    elif isinstance(sample, s.CommandReply):
        assert isinstance(back, s.CommandReply) and back.ok == sample.ok
        assert {k: msgspec.json.decode(v) for k, v in back.data.items()} == {
            k: msgspec.json.decode(v) for k, v in sample.data.items()
        }
    else:
        assert back == sample and type(back) is type(sample)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("route", "member"), CASES, ids=[f"{r}-{m.__name__}" for r, m in CASES])
def test_round_trip_on_its_socket(sockets: Sockets, route: str, member: type[Any]) -> None:
    sample = SAMPLES[member]
    back: Any
    match route:
        case "ingest":
            back = ingest_decoder.decode(_via_hop(sockets, sample))
        case "archive":
            back = archive_decoder.decode(_via_hop(sockets, sample))
        case "archive_line":
            record = s.ArchiveRecord(
                track="system",
                provider="kis",
                market="",
                partition_at=AT,
                record_id=str(msgspec.to_builtins(sample)["record_id"]),
                line=msgspec.Raw(msgspec.json.encode(sample)),
            )
            got = archive_decoder.decode(_via_hop(sockets, record))
            back = msgspec.json.decode(bytes(got.line), type=member)
        case "events":
            back = _via_events(sockets, sample)
        case "feed":
            back = _via_feed(sockets, sample)
        case "control":
            if member is s.Command:
                sockets.req.send(encode(sample))
                back = msgspec.json.decode(_recv(sockets.rep), type=s.Command)
                sockets.rep.send(encode(s.CommandReply(ok=True)))
                _recv(sockets.req)
            else:
                sockets.req.send(encode(s.Command(action="status")))
                _recv(sockets.rep)
                sockets.rep.send(encode(sample))
                back = reply_decoder.decode(_recv(sockets.req))
        case _:
            raise AssertionError(route)
    _equal(back, sample)


def test_typed_events_are_archived_with_their_old_type_names() -> None:
    sweep = SAMPLES[s.SweepSummary]
    assert isinstance(sweep, s.SweepSummary)
    assert sweep.event().type == "sweep_summary" and sweep.event().details["sweep_id"] == "20261126T0930"
    assert sweep.event().message == "sweep 20261126T0930: 99.75%"
    feed = SAMPLES[s.FeedStatus]
    assert isinstance(feed, s.FeedStatus) and feed.event().type == "ws_failure"
    built = SAMPLES[s.UniverseBuilt]
    assert isinstance(built, s.UniverseBuilt)
    assert built.event().type == "universe_built" and built.event().details["day"] == "2026-11-26"
    anomalous = SAMPLES[s.DayAnomalous]
    assert isinstance(anomalous, s.DayAnomalous)
    ev = anomalous.event()
    assert ev.type == "day_anomalous" and ev.details["day"] == "2026-11-26" and "date" not in ev.details
    assert ev.at - AT == timedelta(0)


@pytest.mark.parametrize("member", typing.get_args(s.TypedEvent), ids=lambda t: t.__name__)
def test_an_archived_typed_event_reads_back_as_the_message_it_was(member: type[Any]) -> None:
    """What re-derivation sends again (`typed_from_event`) is what the collector sent."""
    sample = SAMPLES[member]
    back = s.typed_from_event(sample.event())  # type: ignore[attr-defined]
    assert back == sample
    assert s.typed_from_event(_ING[s.SystemEvent]) is _ING[s.SystemEvent]  # any other event: as it is
