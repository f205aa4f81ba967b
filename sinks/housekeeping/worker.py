"""`housekeeper`: the daily backup package, receipts from the backup PC, and retention.

Data flow::

    on_tick (loop thread, injected clock)
      -> due? backup (at start: catch-up; then daily at backup_at), retention (daily at retention_at),
         disk check (every disk_check_interval_s), receipts (every receipt_poll_real_s, wall clock)
      -> job queue -> one job thread: sinks.backup / sinks.housekeeping.receipts / sinks.retention
      -> inbox -> loop thread: SystemEvent -> ReliableSender(ingest) (the core archives it in
         system/events); WARNING and above also on the event bus as ``alert.housekeeper`` (Telegram
         via the monitor)

Schedules are pure comparisons of the injected clock with the due time, checked every loop turn,
like the Track A collector: apscheduler runs on wall time and could not follow a ManualClock or a
sped-up SessionClock. Jobs run in one thread so the loop keeps heartbeating while a day of data is
compressed; a job checks the stop flag between archive chunks and leaves nothing half-written.

Events: ``backup_created`` (INFO), ``backup_failed`` (CRITICAL: package not written, a failed
or mismatching receipt), ``backup_verified`` (INFO), ``backup_unverified`` (CRITICAL: no valid
receipt ``verify_deadline_h`` after the package), ``backup_skipped`` (WARNING: a trading day with
no archive files), ``backup_receipt_invalid`` (WARNING), ``retention_deleted`` (INFO; WARNING
under disk pressure), ``retention_blocked`` (CRITICAL), ``retention_failed`` (ERROR).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from observer.calendar import TradingCalendar, at_kst
from observer.clock import KST, Clock
from observer.config import Config, Secrets, data_dir
from observer.reliable import ReliableSender, SeqGap, hop_endpoints
from observer.schema import DetailValue, Severity, SystemEvent
from observer.worker import Worker
from sinks import retention
from sinks.backup import BackupCancelled, BackupError, create_package
from sinks.housekeeping.layout import DAY_KEY, backup_root, day_key, days_with_data, parse_day
from sinks.housekeeping.manifest import read_manifest
from sinks.housekeeping.receipts import ingest_receipts, is_verified, verified_days

_REPLAY_BYTES = 8 * 1024 * 1024
_SENT_IDS = 2_000
_ALERT = ("WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class _Job:
    kind: str  # backup | retention | disk | receipts
    at: datetime


@dataclass(frozen=True, slots=True)
class _Done:
    kind: str
    retry: bool = False


@dataclass(frozen=True, slots=True)
class _Crashed:
    kind: str
    error: BaseException


def next_daily(now: datetime, hhmm: str) -> datetime:
    """The first ``hhmm`` KST strictly after `now`."""
    local = now.astimezone(KST)
    at = at_kst(local.date(), hhmm)
    return at if at > local else at_kst(local.date() + timedelta(days=1), hhmm)


class HousekeeperWorker(Worker):
    """See the module docstring."""

    name = "housekeeper"
    tick_interval_s = 0.1

    def __init__(self, cfg: Config, *, clock: Clock | None = None, secrets: Secrets | None = None):
        super().__init__(cfg, clock=clock, secrets=secrets)
        self.hk = cfg.housekeeping
        self.sender: ReliableSender | None = None
        self.jobs: queue.Queue[_Job] = queue.Queue(maxsize=16)
        self.inbox: queue.Queue[SystemEvent | _Done | _Crashed] = queue.Queue(maxsize=10_000)
        self._queued: set[str] = set()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._sent_ids: OrderedDict[str, None] = OrderedDict()
        self._receipts_seen: set[str] = set()
        self._receipts_polled = 0.0
        self.next_backup_at: datetime | None = None
        self.next_retention_at: datetime | None = None
        self.next_disk_check_at: datetime | None = None
        self.counters: dict[str, float] = {
            "packages_created": 0,
            "backup_failures": 0,
            "days_verified": 0,
            "retention_deleted": 0,
            "bytes_freed": 0,
            "retention_blocked": 0,
            "bus_gaps": 0,
        }

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
        self.next_retention_at = now if now >= at_kst(now.date(), self.hk.retention_at) else None
        if self.next_retention_at is None:
            self.next_retention_at = next_daily(now, self.hk.retention_at)
        self.next_disk_check_at = now
        self._thread = threading.Thread(target=self._job_loop, name="housekeeping-jobs", daemon=True)
        self._thread.start()

    def on_tick(self) -> None:
        assert self.sender is not None
        self._drain()
        now = self.clock.now().astimezone(KST)
        if self.next_backup_at is not None and now >= self.next_backup_at and self._enqueue("backup", now):
            self.next_backup_at = None  # set again when the job reports back
        due = self.next_retention_at
        if due is not None and now >= due and self._enqueue("retention", now):
            self.next_retention_at = next_daily(now, self.hk.retention_at)
        if self.next_disk_check_at is not None and now >= self.next_disk_check_at:
            self.next_disk_check_at = now + timedelta(seconds=self.hk.disk_check_interval_s)
            self._enqueue("disk", now)
        real = time.monotonic()
        if real - self._receipts_polled >= self.hk.receipt_poll_real_s:
            self._receipts_polled = real
            self._enqueue("receipts", now)
        self.sender.pump()

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
        out = dict(self.counters)
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
        for _ in range(limit):
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            match item:
                case SystemEvent():
                    self._send(item)
                case _Done():
                    self._queued.discard(item.kind)
                    if item.kind == "backup":
                        self._schedule_backup(item.retry)
                case _Crashed():
                    self._queued.discard(item.kind)
                    if raise_crash:
                        raise RuntimeError(f"housekeeping job {item.kind} crashed") from item.error

    def _schedule_backup(self, retry: bool) -> None:
        now = self.clock.now().astimezone(KST)
        if retry:
            self.next_backup_at = now + timedelta(seconds=self.hk.backup_retry_s)
            return
        today_due = self.backup_due_at(now.date())
        self.next_backup_at = (
            today_due if now < today_due else self.backup_due_at(now.date() + timedelta(days=1))
        )

    def backup_due_at(self, day: date) -> datetime:
        """When `day` may be packaged: ``backup_at``, and never before both sessions have ended."""
        return max(
            at_kst(day, self.hk.backup_at),
            at_kst(day, self.cfg.track_a.end),
            at_kst(day, self.cfg.track_b.end),
        )

    def _send(self, event: SystemEvent) -> None:
        assert self.sender is not None and self.events is not None
        if event.record_id in self._sent_ids:
            return
        self._sent_ids[event.record_id] = None
        while len(self._sent_ids) > _SENT_IDS:
            self._sent_ids.popitem(last=False)
        self.sender.send(event)
        if event.severity in _ALERT:
            self.events.publish(f"alert.{self.name}", event)

    def _on_gap(self, gap: SeqGap) -> None:
        self.counters["bus_gaps"] += 1
        self.log.error(
            "housekeeper events abandoned (replay buffer full)",
            extra={"first": gap.first, "last": gap.last, "count": gap.count},
        )

    # -- job thread
    def _post(self, item: SystemEvent | _Done | _Crashed) -> None:
        try:
            self.inbox.put(item, timeout=5.0)
        except queue.Full:
            self.log.error("housekeeper inbox full; event dropped", extra={"item": repr(item)[:200]})

    def _event(
        self,
        type_: str,
        severity: Severity,
        message: str,
        record_id: str | None = None,
        **details: DetailValue,
    ) -> None:
        if severity in _ALERT:
            self.log.warning(message, extra={"event": type_, "severity": severity})
        else:
            self.log.info(message, extra={"event": type_})
        event = self.make_event(type_, severity, message, **details)
        if record_id is not None:
            event = SystemEvent(
                record_id=f"hk-{self.cfg.provider.name}-{record_id}",
                type=event.type,
                severity=event.severity,
                at=event.at,
                source=event.source,
                provider=event.provider,
                message=event.message,
                details=event.details,
            )
        self._post(event)

    def _job_loop(self) -> None:
        while not self._halt.is_set():
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            retry = False
            try:
                match job.kind:
                    case "backup":
                        retry = self._backup_job(job.at)
                    case "retention":
                        self._retention_job("daily")
                    case "disk":
                        self._disk_job()
                    case "receipts":
                        self._receipts_job()
            except Exception as e:  # a bug: crash the worker visibly from the loop thread
                self._post(_Crashed(job.kind, e))
                return
            self._post(_Done(job.kind, retry))

    def _backup_job(self, at: datetime) -> bool:
        """Package every due day; True when something must be tried again later."""
        now = self.clock.now().astimezone(KST)
        today = now.date()
        today_due = now >= self.backup_due_at(today)
        oldest = today - timedelta(days=self.hk.backup_catchup_days)
        done = verified_days(self.cfg)
        with_data = days_with_data(self.cfg)
        days = sorted(d for d in with_data if oldest <= d < today and d not in done)
        if today_due:
            if today in with_data:
                days.append(today)
            elif TradingCalendar.from_config(self.cfg).is_trading_day(today):
                self._event(
                    "backup_skipped",
                    "WARNING",
                    f"no archive files for trading day {today}: nothing to back up",
                    record_id=f"backup_skipped-{day_key(today)}",
                    day=today.isoformat(),
                )
        retry = False
        for day in days:
            if self._halt.is_set():
                return True
            try:
                result = create_package(self.cfg, day, now=self.clock.now(), should_stop=self._halt.is_set)
            except BackupCancelled:
                return True
            except BackupError as e:
                retry = True
                self.counters["backup_failures"] += 1
                self._event("backup_failed", "CRITICAL", f"backup of {day} failed: {e}", day=day.isoformat())
                continue
            if result.status == "created":
                self.counters["packages_created"] += 1
                self._event(
                    "backup_created",
                    "INFO",
                    f"backup package of {day} created: {result.bytes_out} bytes, {result.members} files",
                    record_id=f"backup_created-{day_key(day)}-{result.path.stat().st_mtime_ns}",
                    day=day.isoformat(),
                    path=str(result.path.relative_to(data_dir(self.cfg))),
                    files=result.files,
                    members=result.members,
                    lines=result.lines,
                    bytes_in=result.bytes_in,
                    bytes_out=result.bytes_out,
                    duration_s=round(result.duration_s, 3),
                    empty_families=result.empty_families,
                    replaced_damaged=result.replaced_damaged,
                )
            elif result.status == "postponed":
                retry = True
                self.log.info("backup postponed", extra={"day": day.isoformat(), "reason": result.reason})
        return retry

    def _retention_job(self, trigger: str) -> None:
        now = self.clock.now().astimezone(KST)
        today = now.date()

        def deleted(d: retention.Deletion) -> None:
            self.counters["retention_deleted"] += 1
            self.counters["bytes_freed"] += d.bytes
            pressure = d.reason.startswith(retention.PRESSURE)
            self._event(
                "retention_deleted",
                "WARNING" if pressure else "INFO",
                f"retention deleted {d.what} of {d.day}: {d.bytes} bytes ({d.reason})",
                day=d.day.isoformat(),
                what=d.what,
                bytes_freed=d.bytes,
                reason=d.reason,
                paths=[str(p.relative_to(data_dir(self.cfg))) for p in d.paths],
                trigger=trigger,
            )

        report = retention.run(self.cfg, today, on_deleted=deleted)
        for b in report.plan.blocked:
            self.counters["retention_blocked"] += 1
            what = day_key(b.day) if b.day is not None else "disk"
            self._event(
                "retention_blocked",
                "CRITICAL",
                b.message,
                record_id=f"retention_blocked-{what}-{day_key(today)}",
                day=b.day.isoformat() if b.day is not None else None,
                reason=b.reason,
                age_days=b.age_days,
                disk_percent=report.disk_percent_after,
            )
        for err in report.errors:
            self._event("retention_failed", "ERROR", f"retention could not delete {err}")

    def _disk_job(self) -> None:
        usage = retention.FilesystemProbe(data_dir(self.cfg)).percent()
        if usage is not None and usage > self.hk.disk_pressure_pct:
            self._retention_job("disk_pressure")

    def _receipts_job(self) -> None:
        now = self.clock.now().astimezone(KST)
        for outcome in ingest_receipts(self.cfg, now, self._receipts_seen):
            day = outcome.day.isoformat() if outcome.day else None
            rid = f"receipt-{outcome.kind}-{outcome.receipt_sha256[:16]}"
            if outcome.kind == "verified":
                self.counters["days_verified"] += 1
                self._event(
                    "backup_verified",
                    "INFO",
                    outcome.message,
                    record_id=rid,
                    day=day,
                    checked_by=outcome.checked_by,
                )
            elif outcome.kind == "invalid":
                self._event("backup_receipt_invalid", "WARNING", outcome.message, record_id=rid, day=day)
            else:
                self.counters["backup_failures"] += 1
                self._event(
                    "backup_failed",
                    "CRITICAL",
                    outcome.message,
                    record_id=rid,
                    day=day,
                    checked_by=outcome.checked_by,
                    problems=list(outcome.problems[:20]),
                )
        self._check_deadlines(now)

    def _check_deadlines(self, now: datetime) -> None:
        deadline = timedelta(hours=self.hk.verify_deadline_h)
        root = backup_root(self.cfg)
        try:
            names = sorted(p.name for p in root.iterdir() if DAY_KEY.match(p.name))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            try:
                day = parse_day(name)
                manifest, _ = read_manifest(root / name)
            except ValueError:
                continue
            if now - manifest.created_at < deadline or is_verified(self.cfg, day):
                continue
            self._event(
                "backup_unverified",
                "CRITICAL",
                f"backup package of {day} has no verified copy {self.hk.verify_deadline_h:g} h after it was made",
                record_id=f"backup_unverified-{name}-{day_key(now.date())}",
                day=day.isoformat(),
                created_at=manifest.created_at.isoformat(),
            )
