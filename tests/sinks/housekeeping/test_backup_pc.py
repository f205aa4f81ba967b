"""The backup PC over 40 simulated days against a real sshd: a pull per day (signed receipts), 30-day
retention of the copies (only when a newer copy is good), a weekly re-check of every kept copy that
finds a damaged one, which the next pull fetches again."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from observer.cli import cli
from observer.clock import KST
from observer.config import Config
from sinks.housekeeping.backup import create_package
from sinks.housekeeping.backup_pull import PullTarget, pull
from sinks.housekeeping.layout import archive_name, backup_root, ensure_dir, receipts_dir
from sinks.housekeeping.receipts import ingest_receipts, is_verified
from sinks.housekeeping.remote import copies, prune, recheck
from tests.sinks.housekeeping.conftest import ReceiptKey, SshServer, write_day

START = date(2026, 2, 2)  # a Monday


def _evening(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 21, 0, tzinfo=KST)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_forty_days_of_pulls_retention_and_weekly_rechecks(
    sshd: SshServer, cfg: Config, short_tmp: Path, receipt_key: ReceiptKey
) -> None:
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
        timeout_s=10.0,
    )
    dest = short_tmp / "pc"
    damaged = START + timedelta(days=15)
    refetched = False
    for i in range(40):
        day = START + timedelta(days=i)
        write_day(cfg, day, lines=3, families=("swing", "system"))
        create_package(cfg, day, now=_evening(day))
        results = {r.day: r for r in pull(target, dest)}  # every package not pulled yet (or not good)
        assert f"{day:%Y%m%d}" in results and all(r.status == "verified" and r.ok for r in results.values())
        if f"{damaged:%Y%m%d}" in results and day != damaged:
            refetched = True  # the damaged copy, pulled again while the observer host still has it
        assert {o.kind for o in ingest_receipts(cfg, _evening(day))} == {"verified"} and is_verified(cfg, day)
        report = prune(dest, day, keep_days=30)
        assert all((day - d).days > 30 for d, _ in report.deleted)
        if i == 22:  # a Wednesday: the Sunday re-check finds it
            _flip(dest / f"{damaged:%Y%m%d}" / archive_name("swing", damaged))
        if day.weekday() == 6:  # the weekly re-check (Sunday)
            checks = {c.day: c for c in recheck(dest, _evening(day))}
            bad = {k for k, c in checks.items() if not c.ok}
            assert bad == ({f"{damaged:%Y%m%d}"} if i == 27 else set()), (i, bad)
    assert refetched
    last = START + timedelta(days=39)
    kept = [c.day for c in copies(dest)]
    assert kept == [START + timedelta(days=n) for n in range(9, 40)]  # 30 days back from the last, inclusive
    assert all(c.good for c in copies(dest))
    assert all(is_verified(cfg, d) for d in kept)
    assert not (dest / f"{START:%Y%m%d}.receipt.json").exists()  # receipts go with their copy

    # the observer host stops producing (or pulls fail) for 40 days: the newest good copy and what is
    # newer stay, whatever their age; a damaged newer copy does not count as good
    for n in range(35, 40):
        _flip(dest / f"{START + timedelta(days=n):%Y%m%d}" / archive_name("swing", START + timedelta(days=n)))
    runner = CliRunner()
    out = runner.invoke(cli, ["backup", "check", "--dest", str(dest)])
    assert out.exit_code == 1 and "31 copies checked, 5 damaged" in out.output
    assert f"CRITICAL copy {START + timedelta(days=35):%Y%m%d} is damaged" in out.output
    later = last + timedelta(days=40)
    out = runner.invoke(cli, ["backup", "prune", "--dest", str(dest), "--today", later.isoformat()])
    assert out.exit_code == 0, out.output
    assert "25 copies deleted" in out.output
    assert [c.day for c in copies(dest)] == [START + timedelta(days=n) for n in range(34, 40)]
    assert f"kept {START + timedelta(days=34):%Y%m%d}: age 45 > 30 days but no newer good copy" in out.output
