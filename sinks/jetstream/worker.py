"""The ``jetstream`` worker process: receives the ``archive_stream`` hop from the writer, publishes
each line to JetStream (publisher thread), acknowledges on the hop what JetStream acknowledged."""

from __future__ import annotations

import queue
import sys
import time

import msgspec

from observer.bus import stats_topic
from observer.reliable import ReliableReceiver, SeqGap, hop_endpoints
from observer.schema import EnvelopeBatch, JetStreamStats, StreamLine
from observer.worker_base import Worker
from sinks.jetstream.publisher import Published, Publisher

EXIT_DISABLED = 2
_RECV_HWM = 128  # like the writer: a backlog stays in the writer's bounded replay buffer


class JetStreamSinkWorker(Worker):
    """See the package docstring for the data flow and why the writer forwards."""

    name = "jetstream"
    stats_interval_s = 2.0

    def on_start(self) -> None:
        assert self.ctx is not None
        jcfg = self.cfg.jetstream
        if not jcfg.enabled:
            msg = "observer jetstream: [jetstream] enabled = false; the writer forwards nothing"
            self.log.error(msg)
            print(msg, file=sys.stderr)
            raise SystemExit(EXIT_DISABLED)
        self.batches: queue.Queue[EnvelopeBatch[StreamLine]] = queue.Queue(maxsize=jcfg.queue_batches)
        self._held: EnvelopeBatch[StreamLine] | None = None
        self.gaps = 0
        self._last_stats = 0.0
        data_ep, ack_ep = hop_endpoints(self.cfg, "archive_stream")
        hop_cfg = msgspec.structs.replace(
            self.cfg, bus=msgspec.structs.replace(self.cfg.bus, recv_hwm=_RECV_HWM)
        )
        self.receiver = ReliableReceiver(
            self.ctx, hop_cfg, self.name, data_ep, ack_ep, on_gap=self.handle_gap, body_type=StreamLine
        )
        self.register(self.receiver.pull, self.handle_lines)
        self.publisher = Publisher(jcfg, self.batches, self.post)
        self._thread = self.spawn("jetstream-publisher", self.publisher.run)

    # -- intake: admitted batches to the publisher thread; a full queue stops reading the socket
    def handle_lines(self) -> None:
        for batch in self.receiver.receive_batches(4_096):
            if not self._hand_on(batch):
                return

    def _hand_on(self, batch: EnvelopeBatch[StreamLine]) -> bool:
        try:
            self.batches.put_nowait(batch)
            return True
        except queue.Full:
            self._held = batch
            self.unregister(self.receiver.pull)
            return False

    def _retry_held(self) -> None:
        if self._held is not None:
            batch, self._held = self._held, None
            try:
                self.batches.put_nowait(batch)
            except queue.Full:
                self._held = batch
                return
            self.register(self.receiver.pull, self.handle_lines)

    def handle_gap(self, gap: SeqGap) -> None:
        """The writer abandoned lines of this hop (its replay bound): it archives the event itself."""
        self.gaps += 1
        self.log.error(
            "archive stream hop gap",
            extra={"producer": gap.producer, "run_id": gap.run_id, "first": gap.first, "last": gap.last},
        )

    def _handle_result(self, item: object) -> None:
        if isinstance(item, Published):
            self.receiver.ack(item.producer, item.run_id, item.seq)

    def on_tick(self) -> None:
        self.drain_inbox(self._handle_result)
        self._retry_held()
        self.receiver.republish_acks()
        now = time.monotonic()
        if now - self._last_stats >= self.stats_interval_s:
            self._last_stats = now
            assert self.events is not None
            self.events.publish(stats_topic(self.name), self.worker_stats())

    def worker_stats(self) -> JetStreamStats:
        p = self.publisher
        return JetStreamStats(
            worker=self.name,
            at=self.clock.now(),
            published=p.published,
            duplicates=p.duplicates,
            retries=p.retries,
            gaps=self.gaps,
            hop_duplicates=self.receiver.duplicates,
            queue_batches=self.batches.qsize(),
            connected=bool(p.connected),
        )

    def stats(self) -> dict[str, float]:
        if not hasattr(self, "publisher"):
            return {}
        return {"published": float(self.publisher.published), "connected": float(self.publisher.connected)}

    # -- shutdown: what is not acknowledged yet is resent by the writer to the next sink
    def on_stop(self) -> None:
        if not hasattr(self, "publisher"):
            return
        self.publisher.stop()  # it finishes the group in flight (bounded by publish_timeout_s)
        self._thread.join(self.cfg.jetstream.publish_timeout_s + 1.0)
        self.drain_inbox(self._handle_result, raise_crash=False)
        self.receiver.close()
