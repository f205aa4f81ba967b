"""At-least-once delivery over PUSH/PULL, made exactly-once by the receivers.

Producer side (`ReliableSender`): every body gets ``(producer, run_id, seq)``; the encoded body is
kept in a byte-bounded replay buffer until the receiver acknowledges it (cumulative `Ack` on the
receiver's ack PUB socket). ``send`` never blocks: it appends to the buffer and transmits what the
PUSH socket accepts right now (``ZMQ_IMMEDIATE``, non-blocking); `pump` transmits the rest.
Consecutive bodies travel together in one `EnvelopeBatch` (up to ``batch_max_records`` /
``_BATCH_MAX_BYTES``); a producer built with ``transmit_on_send=False`` leaves transmitting to its
loop's `pump`, so what one loop turn produced goes out in as few bus messages as possible (one
record per message costs ~8x more per record, PERF.md). The PUSH queue's HWM is bounded so that
queued batches stay within the replay buffer's byte bound. When acks stop advancing for
``resend_after_ms`` (doubling up to ``resend_max_ms``), what is not acknowledged is sent again
(go-back-N) from the oldest the receiver has not taken in (``Ack.received``: a receiver that is
only slow to fsync gets nothing twice), or from the oldest unacknowledged when the receiver says
nothing more. While the receiver keeps acknowledging (it re-publishes every ``ack_republish_ms``)
it is alive, and a live connection loses nothing: the go-back then waits ``resend_max_ms``. A
receiver whose ``received`` goes down was restarted and lost its queues: the producer goes back at
once. When the buffer's byte bound overflows, the *oldest* entries are abandoned, counted, and
reported once as a `SeqGap` with the exact seq range; the envelope's ``floor`` tells receivers
that nothing below it will ever come.

Receiver side (`ReliableReceiver`): accepts per (producer, run) only the next expected seq, so
processing is in order and duplicates are dropped (a batch is trimmed to what is new);
`receive_batches` hands on admitted batches, `receive` one `Envelope` per message. A ``floor``
above the expected seq is a hole, reported as a `SeqGap`. ``ack`` publishes a cumulative ack; the
latest acks are re-published every ``ack_republish_ms`` so a producer that (re)connects learns
where it stands.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import zmq

from observer.bus import Endpoints, ack_topic, bind, connect, encode, make_socket
from observer.config import Config
from observer.schema import Ack, Envelope, EnvelopeBatch

_batch_decoder = msgspec.json.Decoder(EnvelopeBatch[msgspec.Raw])
_ack_decoder = msgspec.json.Decoder(Ack)
_ENTRY_OVERHEAD_BYTES = 64
_BATCH_MAX_RECORDS = 256
_BATCH_MAX_BYTES = 256 * 1024


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True, slots=True)
class SeqGap:
    """Seqs ``first..last`` (inclusive) of one producer run that will never be delivered."""

    producer: str
    run_id: str
    first: int
    last: int
    detected_by: str
    reason: str
    at_ns: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class ReliableSender:
    """Producer end of one reliable hop. Not thread-safe: use it from the worker's loop thread."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        cfg: Config,
        producer: str,
        endpoint: str,
        ack_endpoint: str,
        *,
        run_id: str | None = None,
        on_gap: Callable[[SeqGap], None] | None = None,
        replay_buffer_bytes: int | None = None,
        transmit_on_send: bool = True,
        batch_max_records: int = _BATCH_MAX_RECORDS,
    ):
        self.producer = producer
        self.run_id = run_id or new_run_id()
        self._cfg = cfg
        self._bound_bytes = (
            replay_buffer_bytes if replay_buffer_bytes is not None else cfg.bus.replay_buffer_bytes
        )
        self._on_gap = on_gap
        self._transmit_on_send = transmit_on_send
        self._batch_max = max(1, batch_max_records)
        # the envelope batch is written by hand around the already-encoded bodies: '["p","r",'
        self._frame_head = encode([self.producer, self.run_id])[:-1] + b","
        # a queued message may carry a whole batch: the queue is bounded in bytes like the buffer
        hwm = min(cfg.bus.send_hwm, max(16, self._bound_bytes // _BATCH_MAX_BYTES))
        self.push = make_socket(ctx, zmq.PUSH, cfg, hwm=hwm)
        self.push.setsockopt(zmq.IMMEDIATE, 1)
        connect(self.push, endpoint, cfg)
        self.ack_sub = make_socket(ctx, zmq.SUB, cfg, hwm=cfg.bus.recv_hwm)
        self.ack_sub.setsockopt(zmq.SUBSCRIBE, ack_topic(producer))
        connect(self.ack_sub, ack_endpoint, cfg)
        self._pending: dict[int, bytes] = {}  # seq -> encoded body, contiguous floor..last_seq
        self._pending_bytes = 0
        self.last_seq = 0
        self.floor = 1  # lowest seq still deliverable
        self.acked = 0
        self.received = 0  # the receiver's latest "taken in up to" (Ack.received)
        self._last_ack_at = 0.0  # any ack for this run, progress or not: the receiver is alive
        self._next_tx = 1
        self._last_progress = time.monotonic()
        self._resend_after_s = cfg.bus.resend_after_ms / 1000
        # counters
        self.sent = 0
        self.resent = 0
        self.abandoned = 0
        self.resend_rounds = 0

    # -- producing
    def send(self, body: msgspec.Struct) -> int:
        """Queue `body` for reliable delivery and try to transmit now. Returns its seq. Never blocks."""
        data = encode(body)
        self.last_seq += 1
        seq = self.last_seq
        if not self._pending:
            self._last_progress = time.monotonic()
        self._pending[seq] = data
        self._pending_bytes += len(data) + _ENTRY_OVERHEAD_BYTES
        if self._pending_bytes > self._bound_bytes:
            self._abandon_oldest()
        self.sent += 1
        # deferred: try once per full batch (a refusing socket is not asked again on every send)
        if self._transmit_on_send or (self.last_seq - self._next_tx + 1) % self._batch_max == 0:
            self._transmit()
        return seq

    def _abandon_oldest(self) -> None:
        first = self.floor
        while self._pending_bytes > self._bound_bytes and self._pending:
            seq = self.floor
            data = self._pending.pop(seq)
            self._pending_bytes -= len(data) + _ENTRY_OVERHEAD_BYTES
            self.floor = seq + 1
        last = self.floor - 1
        self._next_tx = max(self._next_tx, self.floor)
        self.abandoned += last - first + 1
        if self._on_gap is not None:
            self._on_gap(
                SeqGap(
                    self.producer,
                    self.run_id,
                    first,
                    last,
                    self.producer,
                    "replay_buffer_overflow",
                    time.time_ns(),
                )
            )

    def _transmit(self) -> None:
        """Send everything not yet transmitted, consecutive bodies batched, until the socket refuses."""
        pending = self._pending
        while self._next_tx <= self.last_seq:
            if not int(self.push.getsockopt(zmq.EVENTS)) & zmq.POLLOUT:
                return  # at the HWM (or no peer): do not build a batch the socket would refuse
            first = self._next_tx
            last = min(self.last_seq, first + self._batch_max - 1)
            bodies = [pending[first]]
            size = len(bodies[0])
            for seq in range(first + 1, last + 1):
                body = pending[seq]
                size += len(body)
                if size > _BATCH_MAX_BYTES:
                    break
                bodies.append(body)
            frame = b"".join(
                (
                    self._frame_head,
                    b"%d,%d,%d,[" % (first, self.floor, time.time_ns()),
                    b",".join(bodies),
                    b"]]",
                )
            )
            try:
                # copy=True: for small frames zero-copy costs more (Frame objects, the zmq gc thread);
                # measured 2x records/s through the core (bench/bench_core.py)
                self.push.send(frame, flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            self._next_tx = first + len(bodies)

    # -- acknowledgements and retransmission
    def handle_acks(self) -> None:
        """Drain the ack socket (call when it is readable, or every loop)."""
        while True:
            try:
                frames = self.ack_sub.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frames) != 2:
                continue
            try:
                ack = _ack_decoder.decode(frames[1])
            except msgspec.DecodeError:
                continue
            if ack.run_id == self.run_id:
                self._last_ack_at = time.monotonic()
                self._apply_ack(ack.seq, ack.received)

    def _apply_ack(self, seq: int, received: int = 0) -> None:
        if received:
            received = min(received, self.last_seq)
            if received < self.received:
                # the receiver lost what it had taken in (a restart): go back now, not at the timer
                self._next_tx = min(self._next_tx, max(self.floor, received + 1))
                self._last_progress = time.monotonic()
            elif received > self.received:
                self._last_progress = time.monotonic()
            self.received = received
        seq = min(seq, self.last_seq)
        if seq <= self.acked:
            return
        for s in range(max(self.floor, self.acked + 1), seq + 1):
            data = self._pending.pop(s, None)
            if data is not None:
                self._pending_bytes -= len(data) + _ENTRY_OVERHEAD_BYTES
        self.acked = seq
        self.floor = max(self.floor, seq + 1)
        self._next_tx = max(self._next_tx, self.floor)
        self._last_progress = time.monotonic()
        self._resend_after_s = self._cfg.bus.resend_after_ms / 1000

    def pump(self) -> None:
        """Transmit what is waiting; go back to the oldest unacked when acks have stalled."""
        self.handle_acks()
        now = time.monotonic()
        alive = now - self._last_ack_at < 2 * self._cfg.bus.ack_republish_ms / 1000
        wait_s = max(self._resend_after_s, self._cfg.bus.resend_max_ms / 1000 if alive else 0.0)
        if self._pending and now - self._last_progress >= wait_s:
            # go back to what the receiver has not taken in (all of it when it says nothing)
            start = max(self.floor, self.received + 1)
            self._next_tx = min(self._next_tx, start)
            self.received = 0  # a live receiver re-states it within ack_republish_ms; a dead one
            # never does, and the next stall goes back to the floor
            self.resend_rounds += 1
            self.resent += max(0, self.last_seq - start + 1)
            self._last_progress = now
            self._resend_after_s = min(self._resend_after_s * 2, self._cfg.bus.resend_max_ms / 1000)
        self._transmit()

    @property
    def unacked(self) -> int:
        return len(self._pending)

    @property
    def unacked_bytes(self) -> int:
        return self._pending_bytes

    def wait_all_acked(self, timeout_s: float) -> bool:
        """Pump until everything is acknowledged or the deadline passes (used on graceful stop)."""
        deadline = time.monotonic() + timeout_s
        poller = zmq.Poller()
        poller.register(self.ack_sub, zmq.POLLIN)
        while self._pending and time.monotonic() < deadline:
            poller.poll(50)
            self.pump()
        return not self._pending

    def close(self) -> None:
        self.push.close(linger=0)
        self.ack_sub.close(linger=0)


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


def hop_endpoints(cfg: Config, hop: str) -> tuple[str, str]:
    """(data endpoint, ack endpoint) of a reliable hop: 'ingest' or 'archive'."""
    eps = Endpoints(cfg)
    return eps[hop], eps[hop + "_ack"]
