"""The housekeeper as a real process with a fast session clock: catch-up at start, the 21:00
package, the backup PC's receipts (good and corrupted, over a real sshd), the daily retention run,
every outcome a SystemEvent on the ingest hop and WARNING+ also on ``alert.housekeeper``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from observer.bus import alert_topic
from observer.clock import KST, SystemClock, parse_start_at
from observer.config import Config, data_dir, load_config
from observer.schema import SystemEvent
from sinks.housekeeping import spool
from sinks.housekeeping.backup_pull import PullTarget, pull
from sinks.housekeeping.layout import archive_name, backup_root, ensure_dir, package_dir, receipts_dir
from sinks.housekeeping.receipts import is_verified
from testkit.config import write_config
from tests.conftest import wait_for
from tests.sinks.housekeeping.conftest import ReceiptKey, SshServer, write_day
from tests.sinks.housekeeping.harness import HkBus, HkProcess
from tests.sinks.housekeeping.test_retention import mark_verified
from tests.sinks.housekeeping.test_worker_clock import cli_event

SPEED = 30.0  # virtual seconds per real second
CONFIG = f"""
[clock]
mode = "session"
start_at = "20:57:00"  # 6 s of real time before 21:00: room for a loaded machine
speed = {SPEED}

[calendar]
use_chk_holiday = false

[housekeeping]
retention_at = "21:01"
backup_quiet_real_s = 0.5
receipt_poll_real_s = 0.2
"""


@dataclass
class Setup:
    cfg: Config
    bus: HkBus
    today: date
    path: Path
    procs: list[HkProcess] = field(default_factory=list)

    def start(self) -> HkProcess:
        self.procs.append(HkProcess(self.path, time.time()))
        return self.procs[-1]


@pytest.fixture
def housekeeper(short_tmp: Path, receipt_key: ReceiptKey) -> Iterator[Setup]:
    path = write_config(short_tmp, CONFIG + f'receipt_public_key = "{receipt_key.public}"\n')
    cfg = load_config(path, env={})
    today = parse_start_at("20:57:00", SystemClock().now().date()).date()
    setup = Setup(cfg, HkBus(cfg), today, path)
    yield setup
    for p in setup.procs:
        p.stop()
    setup.bus.close()


def test_housekeeper_process_backs_up_at_21_records_receipts_and_applies_retention(
    housekeeper: Setup, sshd: SshServer, short_tmp: Path, receipt_key: ReceiptKey
) -> None:
    cfg, bus, today = housekeeper.cfg, housekeeper.bus, housekeeper.today
    yesterday, old_verified, too_old = (today - timedelta(days=n) for n in (1, 4, 11))
    for day in (today, yesterday, old_verified, too_old):
        write_day(cfg, day, lines=20)
    mark_verified(cfg, old_verified)
    proc = housekeeper.start()

    # at start (20:57 virtual): catch-up of yesterday; today must wait for 21:00
    [catch_up] = wait_for(lambda: bus.events_of("backup_created"), 20, what="catch-up package of yesterday")
    assert catch_up.details["day"] == yesterday.isoformat()
    assert catch_up.at < datetime(today.year, today.month, today.day, 21, 0, tzinfo=KST)
    assert not package_dir(cfg, today).exists()

    wait_for(lambda: len(bus.events_of("backup_created")) == 2, 30, what="the 21:00 package")
    todays = bus.events_of("backup_created")[1]
    assert todays.details["day"] == today.isoformat() and todays.severity == "INFO"
    assert todays.at >= datetime(today.year, today.month, today.day, 21, 0, tzinfo=KST)
    assert todays.details["members"] == 8 and todays.details["empty_families"] == []
    assert (package_dir(cfg, today) / "manifest.json").exists()

    # the backup PC pulls today's package and a corrupted copy of yesterday's
    ensure_dir(receipts_dir(cfg))
    target = PullTarget(
        sshd.host,
        sshd.port,
        sshd.user,
        sshd.client_key,
        sshd.known_hosts,
        str(backup_root(cfg)),
        str(receipts_dir(cfg)),
        receipt_key.private,
    )
    broken = package_dir(cfg, yesterday) / archive_name("raw", yesterday)
    data = bytearray(broken.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    results = {r.day: r for r in pull(target, short_tmp / "backup-pc")}
    assert results[f"{today:%Y%m%d}"].status == "verified"
    assert results[f"{yesterday:%Y%m%d}"].status == "failed"

    [verified] = wait_for(lambda: bus.events_of("backup_verified"), 10, what="backup_verified event")
    assert verified.details["day"] == today.isoformat()
    assert is_verified(cfg, today)
    [failed] = wait_for(lambda: bus.events_of("backup_failed"), 10, what="backup_failed event")
    assert failed.severity == "CRITICAL" and failed.details["day"] == yesterday.isoformat()
    assert "raw_" in failed.message and not is_verified(cfg, yesterday)

    # 21:01: retention. The verified 4-day-old raw/ goes; the unverified 11-day-old one stays, CRITICAL
    [deleted] = wait_for(lambda: bus.events_of("retention_deleted"), 30, what="retention_deleted event")
    assert deleted.details["day"] == old_verified.isoformat() and deleted.details["what"] == "raw"
    assert isinstance(deleted.details["bytes_freed"], int) and deleted.details["bytes_freed"] > 0
    assert not (data_dir(cfg) / f"raw/kis/KOSPI/{old_verified:%Y%m%d}").exists()
    [blocked] = wait_for(lambda: bus.events_of("retention_blocked"), 10, what="retention_blocked event")
    assert blocked.severity == "CRITICAL" and blocked.details["day"] == too_old.isoformat()
    assert (data_dir(cfg) / f"raw/kis/KOSPI/{too_old:%Y%m%d}").exists()

    # WARNING and above also went out as alerts (the monitor sends them to Telegram)
    def alert_types() -> set[str]:
        bus.drain()
        return {
            b.type for t, b in bus.alerts if t == alert_topic("housekeeper") and isinstance(b, SystemEvent)
        }

    wait_for(lambda: {"backup_failed", "retention_blocked"} <= alert_types(), 5, what="alerts")
    assert "backup_created" not in alert_types() and "backup_verified" not in alert_types()

    # the corrupted pull stays one episode while the package waits for a good one: receipts are
    # polled every 0.2 s, yet each warning is logged once
    def arrived(marker: str) -> list[SystemEvent]:
        return [e for e in bus.events_of("cli_marker") if e.message == marker]

    for n in range(5):
        spool.put(cfg, [cli_event(cfg, f"marker {n}")])
        wait_for(partial(arrived, f"marker {n}"), 10, what="a poll")
    assert proc.stop() == 0, proc.stderr()
    warnings = [
        json.loads(line)["message"]
        for line in proc.stderr().splitlines()
        if line.startswith("{") and json.loads(line).get("level") in ("WARNING", "ERROR", "CRITICAL")
    ]
    assert warnings and len(warnings) == len(set(warnings)), warnings
