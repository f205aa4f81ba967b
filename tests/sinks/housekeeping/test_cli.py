"""``observer backup create|verify|list`` through click's CliRunner, on real files."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from observer.cli import cli
from observer.clock import KST
from observer.config import load_config
from sinks.housekeeping.layout import archive_name, package_dir
from testkit.config import write_config
from tests.sinks.housekeeping.conftest import write_day
from tests.sinks.housekeeping.test_retention import mark_verified

DAY = date(2026, 1, 5)


def test_create_verify_and_list(short_tmp: Path) -> None:
    path = write_config(short_tmp)
    cfg = load_config(path, env={})
    write_day(cfg, DAY)
    runner = CliRunner()
    base = ["--config", str(path), "backup"]
    out = runner.invoke(cli, [*base, "create", "--day", "20260105", "--no-events"])
    assert out.exit_code == 0, out.output
    assert "created" in out.output and "8 archive files" in out.output
    out = runner.invoke(cli, [*base, "create", "--day", "2026-01-05", "--no-events"])
    assert out.exit_code == 0 and "exists and checks out: nothing to do" in out.output
    pkg = package_dir(cfg, DAY)
    out = runner.invoke(cli, [*base, "verify", str(pkg)])
    assert out.exit_code == 0 and out.output.startswith("OK ")
    out = runner.invoke(cli, [*base, "list"])
    assert "20260105" in out.output and "NOT verified" in out.output
    mark_verified(cfg, DAY)
    assert "verified by backup-pc" in runner.invoke(cli, [*base, "list"]).output
    (pkg / archive_name("metrics", DAY)).write_bytes(b"x")
    out = runner.invoke(cli, [*base, "verify", str(pkg)])
    assert out.exit_code == 1 and "metrics_20260105.tar.gz: size 1" in out.output


def test_create_refuses_a_day_still_being_written_and_bad_days(short_tmp: Path) -> None:
    path = write_config(short_tmp)
    write_day(load_config(path, env={}), DAY, age_s=0.0)
    runner = CliRunner()
    out = runner.invoke(cli, ["--config", str(path), "backup", "create", "--day", "20260105", "--no-events"])
    assert out.exit_code == 1 and "not packaged" in out.output
    out = runner.invoke(cli, ["--config", str(path), "backup", "create", "--day", "yesterday"])
    assert out.exit_code == 2 and "not a day" in out.output


def test_old_unpackaged_days_are_named_by_the_plan_and_packaged_on_request(short_tmp: Path) -> None:
    path = write_config(short_tmp)
    cfg = load_config(path, env={})
    today = datetime.now(KST).date()
    old, older = today - timedelta(days=12), today - timedelta(days=20)  # beyond backup_catchup_days
    for d in (old, older):
        write_day(cfg, d)
    runner = CliRunner()
    base = ["--config", str(path)]
    plan = runner.invoke(cli, [*base, "retention", "plan"])
    assert plan.exit_code == 1  # CRITICAL: raw/ past 10 days, unverified
    assert f'no backup package: run "observer backup create --day {older:%Y%m%d}"' in plan.output
    assert f"CRITICAL raw/ of {older} is 20 days old" in plan.output
    made = runner.invoke(cli, [*base, "backup", "create", "--missing", "--no-events"])
    assert made.exit_code == 0, made.output
    assert made.output.count("created ") == 2 and f"backup/{older:%Y%m%d}" in made.output
    assert package_dir(cfg, old).exists() and package_dir(cfg, older).exists()
    plan = runner.invoke(cli, [*base, "retention", "plan"])
    assert "backup not verified: no valid receipt from the backup PC yet" in plan.output
    again = runner.invoke(cli, [*base, "backup", "create", "--missing", "--no-events"])
    assert again.exit_code == 0 and "no past day without a package" in again.output
