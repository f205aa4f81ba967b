"""`ReliableSender`: the producer end of a reliable hop (replay buffer, batches, go-back resend;
see ``observer.reliable``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from observer.bus import ack_topic, connect, encode, make_socket
from observer.config import Config
from observer.reliable.common import SeqGap, new_run_id
from observer.schema import Ack

_ack_decoder = msgspec.json.Decoder(Ack)
_ENTRY_OVERHEAD_BYTES = 64
_BATCH_MAX_RECORDS = 256
_BATCH_MAX_BYTES = 256 * 1024


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
