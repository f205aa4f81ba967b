"""Retention with an injected 'today' on real files: the 3/7/10-day rules, the verified-backup rule,
disk pressure, and `plan` deleting nothing."""

from __future__ import annotations

from datetime import date, datetime

from click.testing import CliRunner

from observer.cli import cli
from observer.clock import KST
from observer.config import Config, data_dir
from sinks.housekeeping import retention
from sinks.housekeeping.backup import create_package
from sinks.housekeeping.days import anomalous_days
from sinks.housekeeping.layout import (
    ensure_dir,
    package_dir,
    verified_dir,
    verified_marker_path,
    write_file_atomic,
)
from sinks.housekeeping.manifest import VerifiedMarker, encode_doc
from testkit.config import write_config
from tests.sinks.housekeeping.conftest import days_ago, write_day

TODAY = date(2026, 3, 20)


def _raw(cfg: Config, day: date) -> bool:
    return (data_dir(cfg) / f"raw/kis/KOSPI/{day:%Y%m%d}").exists()


def mark_verified(cfg: Config, day: date) -> None:
    ensure_dir(verified_dir(cfg))
    marker = VerifiedMarker(
        day=f"{day:%Y%m%d}",
        manifest_sha256="0" * 64,
        files=1,
        members_checked=1,
        checked_at=datetime(2026, 3, 1, tzinfo=KST),
        checked_by="backup-pc",
        recorded_at=datetime(2026, 3, 1, tzinfo=KST),
    )
    write_file_atomic(verified_marker_path(cfg, day), encode_doc(marker))


class FixedProbe:
    def __init__(self, percent: float):
        self.value = percent

    def percent(self) -> float | None:
        return self.value

    def total_bytes(self) -> int:
        return 10**12


def test_a_normal_day_goes_after_three_days_only_when_verified(cfg: Config) -> None:
    d3, d4, d4u = days_ago(TODAY, 3), days_ago(TODAY, 4), days_ago(TODAY, 5)
    for d in (d3, d4, d4u):
        write_day(cfg, d)
    mark_verified(cfg, d3)
    mark_verified(cfg, d4)
    deleted: list[retention.Deletion] = []
    report = retention.run(cfg, TODAY, FixedProbe(10.0), on_deleted=deleted.append)
    assert [(d.day, d.what) for d in deleted] == [(d4, "raw")]
    assert deleted[0].bytes > 0 and "verified" in deleted[0].reason
    assert _raw(cfg, d3) and not _raw(cfg, d4) and _raw(cfg, d4u)
    # only raw/ goes: the research archive of that day stays
    assert (data_dir(cfg) / f"swing/kis/KOSPI/{d4:%Y%m%d}").exists()
    assert (data_dir(cfg) / f"scalp/kis/KOSPI/{d4:%Y%m%d}").exists()
    assert (data_dir(cfg) / f"system/events/kis/{d4:%Y%m%d}.jsonl").exists()
    kept = {(k.day, k.what): k.reason for k in report.plan.kept}
    assert 'no backup package: run "observer backup create --day' in kept[(d4u, "raw")]
    assert report.plan.blocked == []


def test_an_anomalous_day_is_kept_seven_days(cfg: Config) -> None:
    d5, d8 = days_ago(TODAY, 5), days_ago(TODAY, 8)
    write_day(cfg, d5, anomalous=True)
    write_day(cfg, d8, anomalous=True)
    mark_verified(cfg, d5)
    mark_verified(cfg, d8)
    report = retention.run(cfg, TODAY, FixedProbe(10.0))
    assert [(d.day, d.what) for d in report.deleted] == [(d8, "raw")]
    assert "anomalous day, age 8 > 7" in report.deleted[0].reason
    assert _raw(cfg, d5)


def test_an_unverified_day_past_ten_days_is_kept_and_escalated(cfg: Config) -> None:
    old = days_ago(TODAY, 11)
    write_day(cfg, old)
    report = retention.run(cfg, TODAY, FixedProbe(10.0))
    assert report.deleted == [] and _raw(cfg, old)
    assert [(b.day, b.reason, b.age_days) for b in report.plan.blocked] == [(old, "unverified_past_max", 11)]


def test_verified_packages_go_after_their_keep_period_unverified_never(cfg: Config) -> None:
    verified_day, unverified_day = days_ago(TODAY, 4), days_ago(TODAY, 6)
    for d in (verified_day, unverified_day):
        write_day(cfg, d)
        create_package(cfg, d, now=datetime(2026, 3, 20, 21, 0, tzinfo=KST))
    mark_verified(cfg, verified_day)
    report = retention.run(cfg, TODAY, FixedProbe(10.0))
    assert sorted((d.day, d.what) for d in report.deleted) == [
        (verified_day, "package"),
        (verified_day, "raw"),
    ]
    assert not package_dir(cfg, verified_day).exists() and package_dir(cfg, unverified_day).exists()


def test_anomalous_days_are_read_from_system_events(cfg: Config) -> None:
    normal, odd = days_ago(TODAY, 2), days_ago(TODAY, 3)
    write_day(cfg, normal)
    write_day(cfg, odd, anomalous=True)
    events = data_dir(cfg) / f"system/events/kis/{normal:%Y%m%d}.jsonl"
    with events.open("ab") as fh:
        fh.write(b'{"broken line day_anomalous\n')  # bad input: ignored, not a crash
    assert anomalous_days(cfg, {normal, odd}) == {odd}


def test_plan_cli_deletes_nothing_and_run_cli_does(cfg: Config, short_tmp) -> None:  # type: ignore[no-untyped-def]
    path = write_config(short_tmp)
    old = days_ago(TODAY, 4)
    write_day(cfg, old)
    mark_verified(cfg, old)
    runner = CliRunner()
    planned = runner.invoke(cli, ["--config", str(path), "retention", "plan", "--today", TODAY.isoformat()])
    assert planned.exit_code == 0, planned.output
    assert f"DELETE {old} raw" in planned.output and _raw(cfg, old)
    ran = runner.invoke(
        cli, ["--config", str(path), "retention", "run", "--today", TODAY.isoformat(), "--no-events"]
    )
    assert ran.exit_code == 0, ran.output
    assert f"deleted {old} raw" in ran.output and not _raw(cfg, old)
