"""What each housekeeping job does. Runs on the housekeeper's job thread; every outcome is a
`SystemEvent` handed to ``emit`` (the worker sends it from its loop thread).

CRITICAL conditions are episodes (`observer.alarms`, on disk): ``backup_failed``,
``backup_unverified`` and ``retention_blocked`` are logged, archived and alerted once when the
episode starts, not at every poll or retry; the alarm stands (``observer status`` red) until the
condition is gone. Record ids are deterministic where a repeat must not be archived twice (the
writer skips ids it has committed, also across restarts): episodes by their start, receipt
outcomes once per receipt content, ``backup_skipped`` once per day. Events that CLI commands
spooled while the pipeline was down are sent from here (`spool`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta

from observer import alarms, record_ids
from observer.child_command import run_observer
from observer.clock import KST, Clock
from observer.config import Config, data_dir
from observer.days import DAY_KEY, day_key, parse_day
from observer.schema import DetailValue, Severity, SystemEvent
from observer.sessions import MarketSessions
from sinks.housekeeping import retention, spool
from sinks.housekeeping.backup import BackupCancelled, BackupError, create_package
from sinks.housekeeping.days import FilesystemProbe
from sinks.housekeeping.layout import backup_root, days_with_data
from sinks.housekeeping.manifest import read_manifest
from sinks.housekeeping.receipts import ingest_receipts, is_verified, verified_days

ALERT_SEVERITIES = ("WARNING", "ERROR", "CRITICAL")
MakeEvent = Callable[..., SystemEvent]


class Jobs:
    """Backup, retention, disk check, receipts. ``halt`` set: stop between files, leave nothing half-done."""

    def __init__(
        self,
        cfg: Config,
        clock: Clock,
        sessions: MarketSessions,
        make_event: MakeEvent,
        emit: Callable[[SystemEvent | spool.Handed], None],
        halt: threading.Event,
        log: logging.Logger,
    ):
        self.cfg = cfg
        self.hk = cfg.housekeeping
        self.clock = clock
        self.sessions = sessions
        self.make_event = make_event
        self.emit = emit
        self.halt = halt
        self.log = log
        self._receipts_seen: set[str] = set()
        self.counters: dict[str, float] = {
            "packages_created": 0,
            "backup_failures": 0,
            "days_verified": 0,
            "receipts_invalid": 0,
            "retention_deleted": 0,
            "bytes_freed": 0,
            "retention_blocked": 0,
        }

    def _event(
        self,
        type_: str,
        severity: Severity,
        message: str,
        record_id: str | None = None,
        **details: DetailValue,
    ) -> None:
        if severity in ALERT_SEVERITIES:
            self.log.warning(message, extra={"event": type_, "severity": severity})
        else:
            self.log.info(message, extra={"event": type_})
        event = self.make_event(type_, severity, message, **details)
        if record_id is not None:
            event = SystemEvent(
                record_id=record_ids.housekeeping(self.cfg.archive_provider, record_id),
                type=event.type,
                severity=event.severity,
                at=event.at,
                source=event.source,
                provider=event.provider,
                message=event.message,
                details=event.details,
            )
        self.emit(event)

    def backup(self) -> bool:
        """Package every due day; True when something must be tried again later."""
        now = self.clock.now().astimezone(KST)
        today = now.date()
        today_due = now >= self.sessions.backup_due_at(today)
        oldest = today - timedelta(days=self.hk.backup_catchup_days)
        done = verified_days(self.cfg)
        with_data = days_with_data(self.cfg)
        days = sorted(d for d in with_data if oldest <= d < today and d not in done)
        if today_due:
            if today in with_data:
                days.append(today)
            elif self.sessions.is_trading_day(today):
                self._event(
                    "backup_skipped",
                    "WARNING",
                    f"no archive files for trading day {today}: nothing to back up",
                    record_id=f"backup_skipped-{day_key(today)}",
                    day=today.isoformat(),
                )
        retry = False
        for day in days:
            if self.halt.is_set():
                return True
            try:
                result = create_package(self.cfg, day, now=self.clock.now(), should_stop=self.halt.is_set)
            except BackupCancelled:
                return True
            except BackupError as e:
                retry = True
                self.counters["backup_failures"] += 1
                message = f"backup of {day} failed: {e}"
                key = day_key(day)
                if alarms.raise_alarm(self.cfg, "backup_failed", key, message, now, "housekeeper"):
                    self._event(
                        "backup_failed",
                        "CRITICAL",
                        message,
                        record_id=f"backup_failed-{key}-{now:%Y%m%dT%H%M%S}",
                        day=day.isoformat(),
                    )
                continue
            if result.status == "created":
                alarms.clear(self.cfg, "backup_failed", day_key(day))
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
                self.research_outputs(day)
            elif result.status == "postponed":
                retry = True
                self.log.info("backup postponed", extra={"day": day.isoformat(), "reason": result.reason})
        return retry

    def research_outputs(self, day: date) -> None:
        """After the day's package: ``observer export`` and/or ``observer etl`` when configured
        (child processes; a failure is a WARNING event and never blocks the backup)."""
        rc = self.cfg.research
        key = day_key(day)
        for wanted, command in ((rc.nightly_export, "export"), (rc.nightly_etl, "etl")):
            if not wanted or self.halt.is_set():
                continue
            result = run_observer(command, "--day", key, timeout_s=rc.nightly_timeout_real_s)
            if result.ok:
                self._event(
                    f"research_{command}",
                    "INFO",
                    f"{command} of {day}: {result.stdout.strip()[-300:]}",
                    day=day.isoformat(),
                )
            else:
                self._event(
                    f"research_{command}_failed",
                    "WARNING",
                    f"{command} of {day} failed: {result.reason()}",
                    day=day.isoformat(),
                )

    def retention(self, trigger: str) -> None:
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
        new = retention.record_blocked(self.cfg, report, now, "housekeeper")
        for b in report.plan.blocked:
            self.counters["retention_blocked"] += 1
            what = day_key(b.day) if b.day is not None else "disk"
            if what not in new:
                continue  # the episode is already standing and was alerted
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

    def disk(self) -> None:
        usage = FilesystemProbe(data_dir(self.cfg)).percent()
        if usage is not None and usage > self.hk.disk_pressure_pct:
            self.retention("disk_pressure")

    def receipts(self) -> None:
        now = self.clock.now().astimezone(KST)
        spooled, handed = spool.take(self.cfg)
        for event in spooled:
            self.emit(event)
        if handed.paths:
            self.emit(handed)  # after its events: the worker removes the files once they are acked
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
                self.counters["receipts_invalid"] += 1
                self._event("backup_receipt_invalid", "WARNING", outcome.message, record_id=rid, day=day)
            else:
                self.counters["backup_failures"] += 1
                if outcome.kind == "rejected":
                    self.counters["receipts_invalid"] += 1
                if not outcome.new_episode:
                    continue
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
            message = f"backup package of {day} has no verified copy {self.hk.verify_deadline_h:g} h after it was made"
            if not alarms.raise_alarm(self.cfg, "backup_unverified", name, message, now, "housekeeper"):
                continue  # standing: alerted when it started
            self._event(
                "backup_unverified",
                "CRITICAL",
                message,
                record_id=f"backup_unverified-{name}-{now:%Y%m%dT%H%M%S}",
                day=day.isoformat(),
                created_at=manifest.created_at.isoformat(),
            )
