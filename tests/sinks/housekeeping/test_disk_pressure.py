"""Disk pressure on a small real filesystem (a 16 MB tmpfs mounted for the test): ``observer retention
run`` deletes the oldest *verified* days across every family, never an unverified one, and when
nothing verified is left raises CRITICAL (exit 1) before the disk is full, leaving its record on
disk although no pipeline runs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from observer import alarms
from observer.cli import cli
from observer.config import Config, data_dir, load_config
from sinks.housekeeping import spool
from sinks.housekeeping.days import FilesystemProbe
from sinks.housekeeping.layout import FAMILIES, family_files, tree_bytes
from testkit.config import write_config
from tests.sinks.housekeeping.conftest import days_ago, write_day
from tests.sinks.housekeeping.test_retention import mark_verified

TODAY = date(2026, 3, 20)
FS_BYTES = 16 * 1024 * 1024


@pytest.fixture
def small_fs(short_tmp: Path) -> Iterator[Path]:
    mount = short_tmp / "fs"
    mount.mkdir(mode=0o700)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES},mode=0700", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _files(cfg: Config, day: date) -> int:
    return sum(len(family_files(cfg, f, day)) for f in FAMILIES if f != "system") + len(
        [f for f in family_files(cfg, "system", day) if not f.name.startswith("universe/")]
    )


def _fill_to(fs: Path, cfg: Config, percent: float) -> None:
    """Grow (or shrink) a filler file outside the data dir until usage is about `percent`."""
    filler = fs / "filler"
    filler.unlink(missing_ok=True)
    probe = FilesystemProbe(data_dir(cfg))
    used_pct = probe.percent()
    assert used_pct is not None
    want = int((percent - used_pct) / 100.0 * probe.total_bytes())
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(want, 0))


def test_pressure_deletes_oldest_verified_days_of_every_family_then_critical(small_fs: Path) -> None:
    path = write_config(small_fs)
    cfg = load_config(path, env={})
    days = [days_ago(TODAY, n) for n in (6, 5, 4, 3, 2, 1)]  # all within their normal keep periods
    d1, d2, d3, d4, d5, d6 = days
    for d in days:
        write_day(cfg, d, lines=900)
    for d in (d1, d2, d4):
        mark_verified(cfg, d)
    day_bytes = tree_bytes(data_dir(cfg) / "raw") // 6 * 8  # about one day, every family
    # over the 80 % threshold by 1.5 days: all of d1 and part of d2 must go
    _fill_to(small_fs, cfg, 80.0 + 150.0 * day_bytes / FS_BYTES)
    before = {d: _files(cfg, d) for d in days}
    assert all(n == 7 for n in before.values()), before
    runner = CliRunner()
    out = runner.invoke(cli, ["--config", str(path), "retention", "run", "--today", TODAY.isoformat()])
    assert out.exit_code == 0, out.output
    lines = [line for line in out.output.splitlines() if line.startswith("deleted ")]
    daily = [line.split()[1:3] for line in lines if "disk pressure" not in line]
    pressure = [line.split()[1:3] for line in lines if "disk pressure" in line]
    assert daily == [[str(d1), "raw:"], [str(d2), "raw:"]]  # the normal 3-day rule comes first
    assert pressure[:4] == [[str(d1), f"{w}:"] for w in ("scalp", "swing", "metrics", "system")], out.output
    assert pressure[4:] and all(day == str(d2) for day, _ in pressure[4:])
    assert _files(cfg, d1) == 0 and 0 < _files(cfg, d2) < 7
    assert [_files(cfg, d) for d in (d3, d4, d5, d6)] == [7, 7, 7, 7]  # unverified d3 before d4: kept
    usage = FilesystemProbe(data_dir(cfg)).percent()
    assert usage is not None and usage <= 80.0
    assert alarms.standing(cfg) == []
    # more pressure than verified days can relieve: the rest of d2 and d4 go, then CRITICAL at 80 %,
    # well before the disk is full; unverified days are untouched
    _fill_to(small_fs, cfg, 94.0)
    out = runner.invoke(cli, ["--config", str(path), "retention", "run", "--today", TODAY.isoformat()])
    assert out.exit_code == 1, out.output
    assert "CRITICAL disk usage" in out.output and "no verified day is left to delete" in out.output
    assert _files(cfg, d2) == 0 and _files(cfg, d4) == 0
    assert [_files(cfg, d) for d in (d3, d5, d6)] == [7, 7, 7]
    # the record stays on disk although no pipeline runs: the standing alarm and the spooled events
    [alarm] = alarms.standing(cfg)
    assert (alarm.kind, alarm.key) == ("retention_blocked", "disk") and "80%" in alarm.message
    spooled = [e for p in spool.pending(cfg) for e in spool.read(p)]
    assert any(e.type == "retention_blocked" and e.severity == "CRITICAL" for e in spooled)
    assert "not delivered now" in out.output
    plan = runner.invoke(cli, ["--config", str(path), "retention", "plan", "--today", TODAY.isoformat()])
    assert plan.exit_code == 1 and "CRITICAL" in plan.output
    # pressure gone: the next run ends the episode
    (small_fs / "filler").unlink()
    out = runner.invoke(cli, ["--config", str(path), "retention", "run", "--today", TODAY.isoformat()])
    assert out.exit_code == 0, out.output
    assert alarms.standing(cfg) == []
    shutil.rmtree(data_dir(cfg) / "state" / "events_spool")
