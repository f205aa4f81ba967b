"""`ReliableReceiver`: the receiver end of a reliable hop (in-order admission, de-duplication,
cumulative acks; see ``observer.reliable``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import zmq

from observer.bus import ack_topic, bind, encode, make_socket
from observer.config import Config
from observer.reliable.common import SeqGap
from observer.schema import Ack, Envelope, EnvelopeBatch

_batch_decoder = msgspec.json.Decoder(EnvelopeBatch[msgspec.Raw])


@dataclass(slots=True)
class _Stream:
    expected: int
    acked: int
    last_seen: float


class ReliableReceiver:
    """Receiver end of one reliable hop: PULL bound on `endpoint`, acks PUB bound on `ack_endpoint`."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        cfg: Config,
        name: str,
        endpoint: str,
        ack_endpoint: str,
        *,
        on_gap: Callable[[SeqGap], None] | None = None,
        body_type: Any = None,
    ):
        self.name = name
        # with a body type, a batch is decoded in one pass; a batch that does not decode so (one bad
        # body) is decoded again with raw bodies, for the consumer to judge one by one
        self._typed_decoder = (
            msgspec.json.Decoder(EnvelopeBatch[body_type]) if body_type is not None else None
        )
        self._cfg = cfg
        self._on_gap = on_gap
        self.pull = make_socket(ctx, zmq.PULL, cfg, hwm=cfg.bus.recv_hwm)
        bind(self.pull, endpoint, cfg)
        self.ack_pub = make_socket(ctx, zmq.PUB, cfg, hwm=cfg.bus.send_hwm)
        bind(self.ack_pub, ack_endpoint, cfg)
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._last_republish = time.monotonic()
        self.accepted = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.malformed = 0
        self.frame = b""  # the bus message the batch last yielded by `receive_batches` came in

    def receive(self, max_messages: int = 10_000) -> Iterator[Envelope]:
        """Yield the messages waiting now, one `Envelope` each, in order per producer run, without
        duplicates."""
        for batch in self.receive_batches(max_messages):
            for i, body in enumerate(batch.bodies):
                yield Envelope(
                    batch.producer, batch.run_id, batch.seq + i, batch.floor, batch.sent_at_ns, body
                )

    def receive_batches(self, max_messages: int = 10_000) -> Iterator[EnvelopeBatch[Any]]:
        """Yield the batches waiting now (until about `max_messages` messages), trimmed to what is
        new: ``bodies[i]`` has seq ``seq + i``; in order per producer run, without duplicates.
        Bodies are ``msgspec.Raw``, or of the body type when the whole batch decoded as such."""
        count = 0
        typed = self._typed_decoder
        while count < max_messages:
            try:
                frame = self.pull.recv(flags=zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            batch: EnvelopeBatch[Any]
            try:
                batch = typed.decode(frame) if typed is not None else _batch_decoder.decode(frame)
            except msgspec.DecodeError:
                try:
                    batch = _batch_decoder.decode(frame)
                except msgspec.DecodeError:
                    self.malformed += 1
                    continue
            admitted = self._admit(batch)
            if admitted is not None:
                count += len(admitted.bodies)
                self.frame = frame
                yield admitted

    def _admit(self, batch: EnvelopeBatch[Any]) -> EnvelopeBatch[Any] | None:
        key = (batch.producer, batch.run_id)
        stream = self._streams.get(key)
        now = time.monotonic()
        if stream is None:
            stream = _Stream(expected=batch.floor, acked=batch.floor - 1, last_seen=now)
            self._streams[key] = stream
        stream.last_seen = now
        if batch.floor > stream.expected:
            if self._on_gap is not None:
                self._on_gap(
                    SeqGap(
                        batch.producer,
                        batch.run_id,
                        stream.expected,
                        batch.floor - 1,
                        self.name,
                        "producer_abandoned",
                        time.time_ns(),
                    )
                )
            stream.expected = batch.floor
            stream.acked = max(stream.acked, batch.floor - 1)
        n = len(batch.bodies)
        skip = stream.expected - batch.seq
        if skip < 0:
            self.out_of_order += n  # a predecessor was lost in flight; the producer goes back
            return None
        if skip >= n:
            self.duplicates += n
            return None
        self.duplicates += skip
        self.accepted += n - skip
        stream.expected = batch.seq + n
        if skip == 0:
            return batch
        return msgspec.structs.replace(batch, seq=stream.expected - (n - skip), bodies=batch.bodies[skip:])

    def ack(self, producer: str, run_id: str, seq: int) -> None:
        """Publish a cumulative ack: everything of (producer, run_id) up to `seq` is durable."""
        stream = self._streams.get((producer, run_id))
        received = 0
        if stream is not None:
            stream.acked = max(stream.acked, seq)
            received = stream.expected - 1
        self._publish_ack(producer, run_id, seq, received)

    def _publish_ack(self, producer: str, run_id: str, seq: int, received: int) -> None:
        body = encode(
            Ack(
                receiver=self.name,
                producer=producer,
                run_id=run_id,
                seq=seq,
                at_ns=time.time_ns(),
                received=received,
            )
        )
        try:
            self.ack_pub.send_multipart([ack_topic(producer), body], flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # acks are cumulative and re-published: a lost one costs only a later resend

    def republish_acks(self, idle_forget_s: float = 3_600.0) -> None:
        """Re-send the latest ack of every live stream (call every loop; rate-limited here)."""
        now = time.monotonic()
        if now - self._last_republish < self._cfg.bus.ack_republish_ms / 1000:
            return
        self._last_republish = now
        for key, stream in list(self._streams.items()):
            if now - stream.last_seen > idle_forget_s:
                del self._streams[key]
            elif stream.acked > 0 or stream.expected > 1:
                self._publish_ack(key[0], key[1], stream.acked, stream.expected - 1)

    def expected(self, producer: str, run_id: str) -> int | None:
        stream = self._streams.get((producer, run_id))
        return None if stream is None else stream.expected

    def close(self) -> None:
        self.pull.close(linger=0)
        self.ack_pub.close(linger=200)  # let the last acks out, or producers resend needlessly
