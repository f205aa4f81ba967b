"""`housekeeper`: the daily backup package, receipts from the backup PC, and retention.

Data flow::

    on_tick (loop thread, injected clock)
      -> due? backup (at start: catch-up; then daily at backup_at), retention (daily at retention_at),
         disk check (every disk_check_interval_s), receipts (every receipt_poll_real_s, wall clock)
      -> job queue -> one job thread: sinks.housekeeping.jobs (sinks.housekeeping.backup, .receipts, sinks.housekeeping.retention)
      -> inbox -> loop thread: SystemEvent -> ReliableSender(ingest) (the core archives it in
         system/events); WARNING and above also on the event bus as ``alert.housekeeper`` (Telegram
         via the monitor)

Due times come from `observer.sessions` (APScheduler triggers evaluated at the injected clock's
``now``), compared with the clock every loop turn, so a ManualClock or a sped-up SessionClock drives
them. Jobs run in one background thread (`Worker.spawn`; results through the worker's inbox) so the
loop keeps heartbeating while a day of data is compressed; a job checks the stop flag between
archive chunks and leaves nothing half-written.

Events: ``backup_created`` (INFO), ``backup_failed`` (CRITICAL: package not written or damaged
beyond rebuild, a failed, mismatching or rejected (unsigned, forged) receipt), ``backup_verified``
(INFO), ``backup_unverified`` (CRITICAL: no valid receipt ``verify_deadline_h`` after the package),
``backup_skipped`` (WARNING: a trading day with no archive files), ``backup_receipt_invalid``
(WARNING), ``retention_deleted`` (INFO; WARNING under disk pressure), ``retention_blocked``
(CRITICAL), ``retention_failed`` (ERROR). CRITICAL ones once per episode (`observer.alarms`);
the receipts poll also sends the events CLI commands spooled while the pipeline was down.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from observer.bus import alert_topic
from observer.clock import KST, Clock
from observer.config import Config, Secrets
from observer.gap_markers import seq_gap
from observer.reliable import ReliableSender, SeqGap, hop_endpoints
from observer.retry import Backoff
from observer.schema import SystemEvent
from observer.sessions import MarketSessions
from observer.worker_base import Worker
from sinks.housekeeping import spool
from sinks.housekeeping.jobs import ALERT_SEVERITIES, Jobs

_REPLAY_BYTES = 8 * 1024 * 1024
_SENT_IDS = 2_000
_RETRY_CAP_S = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class _Job:
    kind: str  # backup | retention | disk | receipts
    at: datetime


@dataclass(frozen=True, slots=True)
class _Done:
    kind: str
    retry: bool = False


class HousekeeperWorker(Worker):
    """See the module docstring."""

    name = "housekeeper"
    tick_interval_s = 0.1

    def __init__(self, cfg: Config, *, clock: Clock | None = None, secrets: Secrets | None = None):
        super().__init__(cfg, clock=clock, secrets=secrets)
        self.hk = cfg.housekeeping
        self.sender: ReliableSender | None = None
        self.jobs: queue.Queue[_Job] = queue.Queue(maxsize=16)
        self.sessions = MarketSessions.from_config(cfg)
        self._queued: set[str] = set()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._sent_ids: OrderedDict[str, None] = OrderedDict()
        self._receipts_polled = 0.0
        self._spool_unacked: list[Path] = []
        self.next_backup_at: datetime | None = None
        self.next_retention_at: datetime | None = None
        self.next_disk_check_at: datetime | None = None
        self.bus_gaps = 0
        self._gaps_waiting: list[SeqGap] = []
        retry_s = self.hk.backup_retry_s
        self._backup_backoff = Backoff(base_s=retry_s, factor=2.0, cap_s=max(retry_s, _RETRY_CAP_S))
        self.tasks = Jobs(cfg, self.clock, self.sessions, self.make_event, self._post, self._halt, self.log)

    # -- lifecycle
    def on_start(self) -> None:
        assert self.ctx is not None
        data, ack = hop_endpoints(self.cfg, "ingest")
        self.sender = ReliableSender(
            self.ctx,
            self.cfg,
            self.name,
            data,
            ack,
            run_id=self.run_id,
            on_gap=self._on_gap,
            replay_buffer_bytes=_REPLAY_BYTES,
        )
        self.register(self.sender.ack_sub, self.sender.handle_acks)
        now = self.clock.now().astimezone(KST)
        self.next_backup_at = now  # catch-up of past days (and today if already due)
        # a restart after today's retention time runs it now (it is idempotent)
        today_run = self.sessions.retention_at(now.date())
        self.next_retention_at = now if now >= today_run else today_run
        self.next_disk_check_at = now
        spool.requeue(self.cfg)
        self._thread = self.spawn("housekeeping-jobs", self._job_loop)

    def on_tick(self) -> None:
        assert self.sender is not None
        self._drain()
        now = self.clock.now().astimezone(KST)
        if self.next_backup_at is not None and now >= self.next_backup_at and self._enqueue("backup", now):
            self.next_backup_at = None  # set again when the job reports back
        due = self.next_retention_at
        if due is not None and now >= due and self._enqueue("retention", now):
            self.next_retention_at = self.sessions.next_retention_at(now)
        if self.next_disk_check_at is not None and now >= self.next_disk_check_at:
            self.next_disk_check_at = now + timedelta(seconds=self.hk.disk_check_interval_s)
            self._enqueue("disk", now)
        real = time.monotonic()
        if real - self._receipts_polled >= self.hk.receipt_poll_real_s:
            self._receipts_polled = real
            self._enqueue("receipts", now)
        while self._gaps_waiting:
            gap = self._gaps_waiting.pop(0)
            self.sender.send(
                seq_gap(gap, provider=self.cfg.archive_provider, detected_by=self.name, at=self.clock.now())
            )
        self.sender.pump()
        if self._spool_unacked and self.sender.unacked == 0:
            spool.settle(self._spool_unacked)
            self._spool_unacked.clear()

    def on_stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=self.cfg.supervisor.stop_timeout_s / 2)
        self._drain(raise_crash=False)
        if self.sender is not None:
            if not self.sender.wait_all_acked(min(3.0, self.cfg.supervisor.stop_timeout_s / 3)):
                self.log.warning(
                    "housekeeper events not acknowledged at stop", extra={"unacked": self.sender.unacked}
                )
            self.sender.close()

    def stats(self) -> dict[str, float]:
        out = dict(self.tasks.counters)
        out["bus_gaps"] = float(self.bus_gaps)
        if self.sender is not None:
            out["unacked"] = float(self.sender.unacked)
        return out

    # -- loop thread
    def _enqueue(self, kind: str, now: datetime) -> bool:
        if kind in self._queued:
            return False
        try:
            self.jobs.put_nowait(_Job(kind, now))
        except queue.Full:
            return False
        self._queued.add(kind)
        return True

    def _drain(self, raise_crash: bool = True, limit: int = 1_000) -> None:
        self.drain_inbox(self._handle, limit, raise_crash=raise_crash)

    def _handle(self, item: object) -> None:
        match item:
            case SystemEvent():
                self._send(item)
            case spool.Handed():
                self._spool_unacked.extend(item.paths)
            case _Done():
                self._queued.discard(item.kind)
                if item.kind == "backup":
                    self._schedule_backup(item.retry)

    def _schedule_backup(self, retry: bool) -> None:
        """Next run: the next due time; after a failure or a postponement sooner, backing off
        (``backup_retry_s`` doubling up to 6 h, so a persistent failure is not a CRITICAL every
        10 minutes) but never later than the next due time."""
        now = self.clock.now().astimezone(KST)
        due = self.sessions.next_backup_at(now + timedelta(microseconds=1))  # strictly after now
        if retry:
            due = min(due, now + timedelta(seconds=self._backup_backoff.next_delay()))
        else:
            self._backup_backoff.reset()
        self.next_backup_at = due

    def backup_due_at(self, day: date) -> datetime:
        return self.sessions.backup_due_at(day)

    def _send(self, event: SystemEvent) -> None:
        assert self.sender is not None and self.events is not None
        if event.record_id in self._sent_ids:
            return
        self._sent_ids[event.record_id] = None
        while len(self._sent_ids) > _SENT_IDS:
            self._sent_ids.popitem(last=False)
        self.sender.send(event)
        if event.severity in ALERT_SEVERITIES:
            self.events.publish(alert_topic(self.name), event)

    def _on_gap(self, gap: SeqGap) -> None:
        """Called from inside sender.send: its marker is sent from on_tick, never re-entrantly."""
        self.bus_gaps += 1
        self._gaps_waiting.append(gap)
        self.log.error(
            "housekeeper events abandoned (replay buffer full)",
            extra={"first": gap.first, "last": gap.last, "count": gap.count},
        )

    # -- job thread
    def _post(self, item: SystemEvent | spool.Handed | _Done) -> None:
        self.post(item, timeout_s=5.0)

    def _job_loop(self) -> None:
        while not self._halt.is_set():
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            retry = False
            match job.kind:  # an exception (a bug) crashes the worker from the loop thread
                case "backup":
                    retry = self.tasks.backup()
                case "retention":
                    self.tasks.retention("daily")
                case "disk":
                    self.tasks.disk()
                case "receipts":
                    self.tasks.receipts()
            self._post(_Done(job.kind, retry))
