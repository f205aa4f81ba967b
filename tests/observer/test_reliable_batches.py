"""The reliable hop carries many messages per bus message: per-message seqs, trimming of resent
batches, and resends limited to what the receiver has not taken in (real zmq sockets, one process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from observer.bus import context
from observer.reliable import ReliableReceiver, ReliableSender, hop_endpoints
from observer.schema import Envelope, SystemEvent
from testkit.config import make_config
from testkit.records import DAY
from tests.conftest import wait_for


def event(i: int) -> SystemEvent:
    return SystemEvent(record_id=f"ev-{i}", type="t", severity="INFO", at=DAY, source="test")


@pytest.fixture
def hop(short_tmp: Path) -> Iterator[tuple[ReliableSender, ReliableReceiver]]:
    cfg = make_config(
        short_tmp, "[bus]\nresend_after_ms = 200\nresend_max_ms = 400\nack_republish_ms = 100\n"
    )
    ctx: zmq.Context[Any] = context()
    data, ack = hop_endpoints(cfg, "ingest")
    receiver = ReliableReceiver(ctx, cfg, "core", data, ack)
    sender = ReliableSender(ctx, cfg, "p", data, ack, transmit_on_send=False)
    yield sender, receiver
    sender.close()
    receiver.close()
    ctx.destroy(linger=0)


def drain(receiver: ReliableReceiver, want: int) -> list[Envelope]:
    got: list[Envelope] = []
    wait_for(lambda: got.extend(receiver.receive()) or len(got) >= want, 10, what=f"{want} messages")
    return got


def test_one_bus_message_per_loop_turn_and_resent_batches_trimmed(
    hop: tuple[ReliableSender, ReliableReceiver],
) -> None:
    sender, receiver = hop
    wait_for(lambda: int(sender.push.getsockopt(zmq.EVENTS)) & zmq.POLLOUT, 10, what="connected")
    for i in range(10):
        sender.send(event(i))
    assert receiver.pull.poll(200) == 0  # deferred: nothing on the wire before the loop's pump
    sender.pump()
    batches = []
    wait_for(lambda: batches.extend(receiver.receive_batches()) or batches, 10, what="a batch")
    assert [(b.seq, len(b.bodies)) for b in batches] == [(1, 10)]  # ten messages, one bus message
    for i in range(10, 15):
        sender.send(event(i))
    sender._next_tx = 8  # a go-back overlapping what the receiver has: 8..15 on the wire
    sender.pump()
    got = drain(receiver, 5)
    assert [e.seq for e in got] == [11, 12, 13, 14, 15]  # 8..10 dropped, the rest in order
    assert receiver.duplicates == 3 and receiver.accepted == 15


def test_a_stall_resends_only_what_the_receiver_has_not_taken_in(
    hop: tuple[ReliableSender, ReliableReceiver],
) -> None:
    sender, receiver = hop
    wait_for(lambda: int(sender.push.getsockopt(zmq.EVENTS)) & zmq.POLLOUT, 10, what="connected")
    for i in range(20):
        sender.send(event(i))
    sender.pump()
    drain(receiver, 20)
    receiver.ack("p", sender.run_id, 5)  # durable up to 5; taken in up to 20 (a slow fsync)
    wait_for(lambda: (sender.pump(), sender.received == 20 and sender.acked == 5)[1], 10, what="ack")
    wait_for(lambda: (sender.pump(), receiver.republish_acks(), sender.resend_rounds >= 2)[2], 10)
    assert sender.resent == 0  # stalled, but nothing the receiver lacks
    assert receiver.pull.poll(100) == 0
