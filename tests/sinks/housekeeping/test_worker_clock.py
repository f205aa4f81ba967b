"""The housekeeper's schedule under an injected ManualClock (the worker runs in a thread on a real
bus): nothing for today before 21:00, the package right after, retries after a failure."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from observer import alarms
from observer.bus import alert_topic
from observer.clock import KST, ManualClock
from observer.config import Config
from observer.schema import SystemEvent
from observer.sessions import MarketSessions
from sinks.housekeeping import spool
from sinks.housekeeping.layout import package_dir
from sinks.housekeeping.worker import HousekeeperWorker
from testkit.config import make_config
from tests.conftest import wait_for
from tests.sinks.housekeeping.conftest import write_day
from tests.sinks.housekeeping.harness import HkBus

MONDAY = date(2026, 1, 5)


def _at(hh: int, mm: int, day: date = MONDAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST)


class Running:
    def __init__(self, cfg: Config, clock: ManualClock):
        self.bus = HkBus(cfg)
        self.worker = HousekeeperWorker(cfg, clock=clock)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.worker.request_stop()
        self.thread.join(10)
        self.bus.close()
        assert not self.thread.is_alive()


@pytest.fixture
def run_worker() -> Iterator[object]:
    started: list[Running] = []

    def start(cfg: Config, clock: ManualClock) -> Running:
        started.append(Running(cfg, clock))
        return started[-1]

    yield start
    for r in started:
        r.stop()


TOML = "[calendar]\nuse_chk_holiday = false\n[housekeeping]\nreceipt_poll_real_s = 0.1\n"


def test_today_is_packaged_only_once_21_00_has_come(short_tmp: Path, run_worker) -> None:  # type: ignore[no-untyped-def]
    cfg = make_config(short_tmp, TOML)
    write_day(cfg, MONDAY)
    clock = ManualClock(_at(20, 0))
    r = run_worker(cfg, clock)
    wait_for(lambda: r.worker.next_backup_at == _at(21, 0), 10, what="first run done, next due at 21:00")
    assert not package_dir(cfg, MONDAY).exists()
    assert r.bus.events_of("backup_created") == []
    clock.set(_at(21, 0))
    [created] = wait_for(lambda: r.bus.events_of("backup_created"), 10, what="backup_created at 21:00")
    assert created.at == _at(21, 0) and created.details["day"] == "2026-01-05"
    assert (package_dir(cfg, MONDAY) / "manifest.json").exists()
    wait_for(
        lambda: r.worker.next_backup_at == _at(21, 0, MONDAY + timedelta(days=1)), 10, what="next: tomorrow"
    )


def test_a_failed_backup_is_critical_and_retried(short_tmp: Path, run_worker) -> None:  # type: ignore[no-untyped-def]
    cfg = make_config(short_tmp, TOML + 'backup_group = "no-such-group-krx"\nbackup_retry_s = 600.0\n')
    write_day(cfg, MONDAY)
    clock = ManualClock(_at(21, 5))
    r = run_worker(cfg, clock)
    [failed] = wait_for(lambda: r.bus.events_of("backup_failed"), 10, what="backup_failed")
    assert failed.severity == "CRITICAL" and "no-such-group-krx" in failed.message
    wait_for(lambda: r.worker.next_backup_at == _at(21, 15), 10, what="retry in backup_retry_s")
    assert any(t == alert_topic("housekeeper") for t, _ in r.bus.alerts)
    [alarm] = alarms.standing(cfg, "backup_failed")
    assert alarm.key == "20260105" and alarm.since == _at(21, 5)
    clock.set(_at(21, 15))
    wait_for(
        lambda: r.worker.next_backup_at == _at(21, 35), 10, what="the retry fails again; backing off: 20 min"
    )
    # one episode: alerted and archived once, not at every retry; the alarm stands (status red)
    assert len(r.bus.events_of("backup_failed")) == 1
    assert [a.key for a in alarms.standing(cfg, "backup_failed")] == ["20260105"]


def test_a_trading_day_without_data_is_reported(short_tmp: Path, run_worker) -> None:  # type: ignore[no-untyped-def]
    cfg = make_config(short_tmp, TOML)
    r = run_worker(cfg, ManualClock(_at(21, 0)))
    [skipped] = wait_for(lambda: r.bus.events_of("backup_skipped"), 10, what="backup_skipped")
    assert skipped.severity == "WARNING" and skipped.details["day"] == "2026-01-05"


def test_next_retention_is_strictly_after_now(short_tmp: Path) -> None:
    sessions = MarketSessions.from_config(make_config(short_tmp, '[housekeeping]\nretention_at = "21:00"\n'))
    assert sessions.next_retention_at(_at(20, 0)) == _at(21, 0)
    assert sessions.next_retention_at(_at(21, 0)) == _at(21, 0, date(2026, 1, 6))


def test_an_unverified_package_is_one_critical_episode_on_the_workers_clock(
    short_tmp: Path, run_worker
) -> None:  # type: ignore[no-untyped-def]
    cfg = make_config(short_tmp, TOML)
    write_day(cfg, MONDAY)
    clock = ManualClock(_at(21, 5))
    r = run_worker(cfg, clock)
    wait_for(lambda: r.bus.events_of("backup_created"), 10, what="the package")
    manifest = (package_dir(cfg, MONDAY) / "manifest.json").read_text()
    assert '"created_at":"2026-01-05T21:05:00+09:00"' in manifest.replace(" ", "")  # the worker's clock

    def poll_passes(marker: str) -> None:
        """Hand the housekeeper a spooled CLI event and wait until it is sent: a receipts poll ran."""
        spool.put(cfg, [cli_event(cfg, marker)])
        wait_for(lambda: [e for e in r.bus.events_of("cli_marker") if e.message == marker], 10, what=marker)
        # the core (the test bus) acknowledged it: the spool file goes
        wait_for(lambda: r.bus.events_of("cli_marker") and not list(spool.spool_dir(cfg).iterdir()), 10)

    clock.set(_at(21, 4, MONDAY + timedelta(days=1)))  # 23 h 59 min later: not yet
    poll_passes("before the deadline")
    assert r.bus.events_of("backup_unverified") == [] and alarms.standing(cfg) == []
    clock.set(_at(21, 6, MONDAY + timedelta(days=1)))
    [late] = wait_for(lambda: r.bus.events_of("backup_unverified"), 10, what="backup_unverified")
    assert late.severity == "CRITICAL" and late.details["day"] == "2026-01-05"
    for n in range(3):  # the condition stands through further polls: no repeat
        clock.advance(600)
        poll_passes(f"poll {n}")
    assert len(r.bus.events_of("backup_unverified")) == 1
    assert sum(1 for t, b in r.bus.alerts if getattr(b, "type", "") == "backup_unverified") == 1
    [alarm] = alarms.standing(cfg)
    assert (alarm.kind, alarm.key, alarm.since) == (
        "backup_unverified",
        "20260105",
        _at(21, 6, MONDAY + timedelta(days=1)),
    )


def cli_event(cfg: Config, message: str) -> SystemEvent:
    return SystemEvent(
        record_id=f"evt-test-{message}",
        type="cli_marker",
        severity="INFO",
        at=_at(12, 0),
        source="housekeeping-cli",
        provider=cfg.provider.name,
        message=message,
    )


def test_spooled_events_stay_on_disk_until_acknowledged(short_tmp: Path) -> None:
    cfg = make_config(short_tmp)
    spool.put(cfg, [cli_event(cfg, "one"), cli_event(cfg, "two")])
    events, handed = spool.take(cfg)
    assert [e.message for e in events] == ["one", "two"] and spool.pending(cfg) == []
    assert [p.name.endswith(".jsonl.sent") for p in handed.paths] == [True]
    # the housekeeper died before the core acknowledged them: the next one sends them again
    assert spool.requeue(cfg) == 1
    events, handed = spool.take(cfg)
    assert [e.message for e in events] == ["one", "two"]
    spool.settle(handed.paths)
    assert list(spool.spool_dir(cfg).iterdir()) == []
