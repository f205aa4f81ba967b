"""The ``writer`` worker process: receives the archive hop, hands lines to the committer thread,
publishes acks for what is fsynced, turns seq holes into gap markers, publishes ``stats.writer``."""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import msgspec

from observer.bus import MITIGATION, EventSubscriber, archive_decoder, stats_topic, system_topic
from observer.config import data_dir, ensure_private_dir, state_dir
from observer.gap_markers import seq_gap
from observer.reliable import ReliableReceiver, SeqGap, hop_endpoints
from observer.schema import ArchiveRecord, MitigationLevel, WriterStats
from observer.worker_base import Worker
from sinks.writer.committer import Committer, event_item
from sinks.writer.feed import FeedThread
from sinks.writer.files import DataDirLock, WriterLocked
from sinks.writer.forward import StreamForwarder
from sinks.writer.partitions import PartitionError, check_route
from sinks.writer.queue import Chunk, IntakeQueue, Item

EXIT_LOCKED = 3


class _LineId(msgspec.Struct):
    record_id: str


_line_decoder = msgspec.json.Decoder(_LineId)
_id_encoder = msgspec.json.Encoder()


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class WriterWorker(Worker):
    """See the package docstring for the data flow."""

    name = "writer"
    stats_interval_s = 2.0
    rejection_event_interval_s = 10.0

    def on_start(self) -> None:
        assert self.ctx is not None
        self.root = Path(os.path.abspath(data_dir(self.cfg)))
        ensure_private_dir(self.root)
        state = ensure_private_dir(state_dir(self.cfg))
        self.lock = DataDirLock(state / "writer.lock")
        try:
            self.lock.acquire()
        except WriterLocked as e:
            self.log.error(str(e))
            print(f"observer writer: {e}", file=sys.stderr)
            raise SystemExit(EXIT_LOCKED) from None
        self.level = 0
        self.queue = IntakeQueue()
        self.paused = False
        self.rejected = 0
        self.gaps = 0
        self.pauses = 0
        self._rejections: dict[str, tuple[float, int]] = {}
        self._routes_ok: set[tuple[str, str, str]] = set()
        self._last_sent_ns: dict[tuple[str, str], int] = {}
        self._last_stats = 0.0
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.feed = FeedThread(self.ctx, self.cfg, run_id=self.run_id, now=self.clock.now)
        self.feed.start()
        self.stream_out: StreamForwarder | None = None
        if self.cfg.jetstream.enabled:
            self.stream_out = StreamForwarder(
                self.ctx,
                self.cfg,
                producer=self.name,
                run_id=self.run_id,
                on_gap=self.handle_stream_gap,
                root=self.root,
                marks_path=state / "stream_marks.json",
            )
            self.stream_out.resume()
        self.committer = Committer(
            self.root,
            self.cfg.writer,
            self.queue,
            provider=self.cfg.archive_provider,
            make_event=self.make_event,
            marks_path=state / "writer_window.json",
            generation_bytes=self.cfg.writer.dedupe_generation_bytes or self.cfg.bus.replay_buffer_bytes,
            wake_fd=self._wake_w,
            on_commit=self.feed.offer,
            on_archived=self.stream_out.offer if self.stream_out is not None else None,
        )
        self.committer.start()
        data_ep, ack_ep = hop_endpoints(self.cfg, "archive")
        # a small zmq receive queue: while intake is paused the backlog must stay in the producers'
        # bounded replay buffers, not in this process (bus.recv_hwm would let 100 k messages in)
        hop_bus = msgspec.structs.replace(self.cfg.bus, recv_hwm=self.cfg.writer.recv_hwm)
        hop_cfg = msgspec.structs.replace(self.cfg, bus=hop_bus)
        self.receiver = ReliableReceiver(
            self.ctx, hop_cfg, self.name, data_ep, ack_ep, on_gap=self.handle_gap, body_type=ArchiveRecord
        )
        self.register(self.receiver.pull, self.handle_archive)
        self.mitigation = EventSubscriber(self.ctx, self.cfg, [MITIGATION])
        self.register(self.mitigation.sock, self.handle_events)
        self.register(self._wake_r, self.handle_commits)

    # -- intake
    def handle_archive(self) -> None:
        bound = self.cfg.writer.queue_bytes
        receiver = self.receiver
        for batch in receiver.receive_batches(self.cfg.writer.max_batch_records):
            self._last_sent_ns[(batch.producer, batch.run_id)] = batch.sent_at_ns
            # a line can hold a newline only as JSON whitespace, so a bus message without one has
            # none in any of its lines: one search per message instead of one per line
            whole = b"\n" not in receiver.frame
            items: list[Item] = []
            append, routes_ok, encode_id = items.append, self._routes_ok, _id_encoder.encode
            for body in batch.bodies:
                # the usual case, checked inline and without copying the line (a quarter of the
                # writer's throughput): what `_check` asks of a decoded record of a known route
                if whole and type(body) is ArchiveRecord and body.record_id:
                    line = body.line
                    prefix = b'{"record_id":' + encode_id(body.record_id) + b","
                    if (
                        (body.track, body.provider, body.market) in routes_ok
                        and body.partition_at.tzinfo is not None
                        and memoryview(line)[: len(prefix)] == prefix
                    ):
                        append((body, line))
                        continue
                item = self._item(body, batch.producer, whole)
                if item is not None:
                    append(item)
            ack = (batch.producer, batch.run_id, batch.seq + len(batch.bodies) - 1)
            self.queue.put(Chunk(items, ack, self.level))
            if self.queue.nbytes >= bound:
                self._pause_intake()
                return

    def _item(self, body: ArchiveRecord | msgspec.Raw, producer: str, whole: bool = False) -> Item | None:
        """The line of one archive message, or None when it is rejected (reported, acknowledged).
        A body arrives raw only when its batch did not decode as a whole. `whole`: the bus message
        it came in holds no newline (so the line cannot)."""
        if isinstance(body, msgspec.Raw):
            try:
                body = archive_decoder.decode(body)
            except msgspec.DecodeError as e:
                self._reject(f"undecodable archive message: {e}", producer, "")
                return None
        line = bytes(body.line)
        problem = self._check(body, line, whole)
        if problem is not None:
            self._reject(problem, producer, body.record_id)
            return None
        return body, line

    def _check(self, rec: ArchiveRecord, line: bytes, whole: bool) -> str | None:
        if not rec.record_id:
            return "empty record_id"
        if not whole and b"\n" in line:
            return "line contains a newline"
        route = (rec.track, rec.provider, rec.market)
        try:
            if route not in self._routes_ok or rec.partition_at.tzinfo is None:
                check_route(rec.track, rec.provider, rec.market, rec.partition_at)
                self._routes_ok.add(route)
            # the core encodes record_id first: compare bytes, decode only when that does not match
            if not line.startswith(b'{"record_id":' + _id_encoder.encode(rec.record_id) + b","):
                line_id = _line_decoder.decode(line).record_id
                if line_id != rec.record_id:
                    return "record_id of the line differs from the message's"
        except PartitionError as e:
            return str(e)
        except msgspec.DecodeError as e:
            return f"line is not a JSON object with a record_id: {e}"
        return None

    def _reject(self, problem: str, producer: str, record_id: str) -> None:
        """Counted always; a system event at most every ``rejection_event_interval_s`` per problem."""
        self.rejected += 1
        kind = problem.split(":")[0]
        now = time.monotonic()
        last, suppressed = self._rejections.get(kind, (0.0, 0))
        if now - last < self.rejection_event_interval_s:
            self._rejections[kind] = (last, suppressed + 1)
            return
        self._rejections[kind] = (now, 0)
        ev = self.make_event(
            "archive_rejected",
            "ERROR",
            f"archive message rejected: {problem}",
            producer=producer,
            record_id=record_id,
            suppressed_since_last=suppressed,
        )
        self.log.error(ev.message, extra={"producer": producer, "record_id": record_id})
        self.queue.put(Chunk([event_item(ev, self.cfg.archive_provider)]))

    def _pause_intake(self) -> None:
        if not self.paused:
            self.paused = True
            self.pauses += 1
            self.unregister(self.receiver.pull)
            self.log.warning(
                "intake paused: queue over its byte bound", extra={"queue_bytes": self.queue.nbytes}
            )

    def _resume_intake(self) -> None:
        if self.paused and self.queue.nbytes < self.cfg.writer.queue_bytes * 3 // 4:
            self.paused = False
            self.register(self.receiver.pull, self.handle_archive)
            self.log.info("intake resumed", extra={"queue_bytes": self.queue.nbytes})

    def handle_gap(self, gap: SeqGap) -> None:
        """A seq hole on the archive hop: a gap marker with the producer, run and exact range."""
        start_ns = self._last_sent_ns.get((gap.producer, gap.run_id), gap.at_ns)
        # on the pipeline's clock (wall time would put a session clock's marker on the wrong day);
        # the span before the detection is the wall-clock time since the last message sent
        end = self.clock.now()
        start = end - timedelta(microseconds=max(0, gap.at_ns - start_ns) / 1_000)
        marker = seq_gap(gap, provider=self.cfg.archive_provider, detected_by=self.name, since=start, at=end)
        self.gaps += 1
        self.log.warning(
            "archive hop gap",
            extra={"producer": gap.producer, "run_id": gap.run_id, "first": gap.first, "last": gap.last},
        )
        self.queue.put(Chunk([event_item(marker, self.cfg.archive_provider)]))

    def handle_stream_gap(self, gap: SeqGap) -> None:
        """The archive-stream sink fell behind past the replay bound: those lines are archived here
        but will never be in the stream. Said once per range, in the archive and the log."""
        ev = self.make_event(
            "archive_stream_gap",
            "ERROR",
            f"{gap.count} archived lines will not reach the archive stream (its sink fell behind)",
            run_id=gap.run_id,
            first=gap.first,
            last=gap.last,
            count=gap.count,
        )
        self.log.error(ev.message, extra={"first": gap.first, "last": gap.last})
        self.queue.put(Chunk([event_item(ev, self.cfg.archive_provider)]))

    # -- events and results
    def handle_events(self) -> None:
        while (got := self.mitigation.recv_nowait()) is not None:
            match got[1]:
                case MitigationLevel(level=level) if level != self.level:
                    self.log.info("mitigation level", extra={"from": self.level, "to": level})
                    self.level = level
                case _:
                    pass

    def handle_commits(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self._publish_acks()

    def _publish_acks(self) -> None:
        for (producer, run_id), seq in self.committer.take_acks().items():
            self.receiver.ack(producer, run_id, seq)

    def on_tick(self) -> None:
        if self.committer.failure is not None:
            raise RuntimeError("writer committer thread died") from self.committer.failure
        if self.stream_out is not None:
            self.stream_out.flush()
        self._resume_intake()
        self.receiver.republish_acks()
        assert self.events is not None
        while self.committer.alerts:
            self.events.publish(system_topic(self.name), self.committer.alerts.popleft())
        now = time.monotonic()
        if now - self._last_stats >= self.stats_interval_s:
            self._last_stats = now
            self.events.publish(stats_topic(self.name), self.worker_stats())

    def worker_stats(self) -> WriterStats:
        c = self.committer
        out = self.stream_out.sender if self.stream_out is not None else None
        commit_ms, lag_ms = list(c.commit_ms), list(c.lag_ms)
        return WriterStats(
            worker=self.name,
            at=self.clock.now(),
            written=dict(c.written),
            duplicates_skipped=c.duplicates,
            rejected=self.rejected,
            gaps=self.gaps,
            commits=c.commits,
            disk_errors=c.disk_errors,
            torn_lines_repaired=c.repairs,
            intake_pauses=self.pauses,
            malformed_envelopes=self.receiver.malformed,
            stream_sent=out.sent if out is not None else 0,
            stream_abandoned=out.abandoned if out is not None else 0,
            fsync_last_ms=commit_ms[-1] if commit_ms else None,
            fsync_p99_ms=_p99(commit_ms) if commit_ms else None,
            lag_p99_ms=_p99(lag_ms) if lag_ms else None,
            queue_bytes=self.queue.nbytes,
            queue_records=len(self.queue),
            disk_error=c.disk_error,
            intake_paused=self.paused,
            mitigation_level=self.level,
            index_ready=c.ready.is_set(),
            index_ids=len(c.window) + len(c.day_ids),
        )

    def stats(self) -> dict[str, float]:
        if not hasattr(self, "committer"):
            return {}
        return {
            "queue_bytes": float(self.queue.nbytes),
            "disk_error": 1.0 if self.committer.disk_error else 0.0,
        }

    # -- shutdown: stop intake, drain, fsync, ack, close
    def on_stop(self) -> None:
        if not hasattr(self, "committer"):
            return
        if hasattr(self, "receiver") and not self.paused:
            self.unregister(self.receiver.pull)
        self.committer.stop()
        self.committer.join(max(1.0, self.cfg.supervisor.stop_timeout_s - 3.0))
        if self.committer.is_alive():
            self.log.error(
                "shutdown: the disk did not take the queued records; they stay unacknowledged",
                extra={"queue_records": len(self.queue)},
            )
        if hasattr(self, "feed"):
            self.feed.stop()
            self.feed.join(2.0)
        stream_out: StreamForwarder | None = getattr(self, "stream_out", None)
        if stream_out is not None and not stream_out.close(1.0):
            self.log.warning("shutdown: lines not yet in the archive stream are resent by no one")
        if hasattr(self, "receiver"):
            self._publish_acks()
            self.receiver.ack_pub.close(linger=200)
            self.receiver.close()
        if hasattr(self, "mitigation"):
            self.mitigation.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self.lock.release()
