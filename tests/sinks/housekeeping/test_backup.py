"""The backup package: contents, checksums, modes, idempotence, what is refused or postponed."""

from __future__ import annotations

import grp
import hashlib
import os
import shutil
import stat
import tarfile
from datetime import date, datetime
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from observer import alarms
from observer.cli import cli
from observer.clock import KST
from observer.config import Config, data_dir, load_config
from sinks.housekeeping.backup import BackupError, PackageDamaged, create_package
from sinks.housekeeping.layout import archive_name, package_dir
from sinks.housekeeping.manifest import manifest_decoder, verify_package
from testkit.config import make_config, write_config
from tests.sinks.housekeeping.conftest import write_day

DAY = date(2026, 1, 5)
EVENING = datetime(2026, 1, 5, 21, 0, tzinfo=KST)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_package_lists_every_file_and_member_with_the_right_checksums(cfg: Config) -> None:
    written = write_day(cfg, DAY, families=("swing", "scalp", "raw", "system"))
    result = create_package(cfg, DAY, now=EVENING)
    assert result.status == "created"
    pkg = package_dir(cfg, DAY)
    assert pkg == data_dir(cfg) / "backup" / "20260105"
    manifest = manifest_decoder.decode((pkg / "manifest.json").read_bytes())
    assert manifest.day == "20260105"
    assert manifest.created_at.utcoffset().total_seconds() == 9 * 3600  # type: ignore[union-attr]
    assert manifest.observer_version
    # a tar per non-empty family, and the empty one said so
    assert sorted(os.listdir(pkg)) == sorted(
        [
            "manifest.json",
            archive_name("swing", DAY),
            archive_name("scalp", DAY),
            archive_name("raw", DAY),
            archive_name("system", DAY),
        ]
    )
    metrics = next(f for f in manifest.families if f.family == "metrics")
    assert metrics.archive is None and metrics.note and result.empty_families == ["metrics"]
    # independent check: every file of the package and every member against the manifest
    for entry in manifest.files:
        data = (pkg / entry.name).read_bytes()
        assert (len(data), _sha(data)) == (entry.size, entry.sha256)
    members: dict[str, bytes] = {}
    for fam in manifest.families:
        if fam.archive is None:
            continue
        with tarfile.open(pkg / fam.archive, "r:gz") as tar:
            for info in tar:
                fh = tar.extractfile(info)
                assert fh is not None
                members[info.name] = fh.read()
        for m in fam.members:
            assert (_sha(members[m.name]), len(members[m.name]), members[m.name].count(b"\n")) == (
                m.sha256,
                m.size,
                m.lines,
            )
    # every archive file of the day is in, byte for byte; the universe snapshot under universe/
    root = data_dir(cfg)
    for path in written:
        name = (
            f"universe/{path.name}"
            if path.name.endswith("_KOSPI.json")
            else path.relative_to(root).as_posix()
        )
        assert members[name] == path.read_bytes(), name
    assert verify_package(pkg).ok


def test_modes_are_private_and_a_second_run_does_nothing(cfg: Config) -> None:
    write_day(cfg, DAY)
    first = create_package(cfg, DAY, now=EVENING)
    pkg = first.path
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in pkg.iterdir()}
    for d in (pkg, pkg.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for p in pkg.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    second = create_package(cfg, DAY, now=EVENING)
    assert second.status == "exists"
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in pkg.iterdir()} == before
    assert [p.name for p in pkg.parent.iterdir()] == ["20260105"]  # no tmp dirs left behind


def test_backup_group_makes_the_package_group_readable(short_tmp: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    cfg = make_config(short_tmp, f'[housekeeping]\nbackup_group = "{group}"\n')
    write_day(cfg, DAY)
    pkg = create_package(cfg, DAY, now=EVENING).path
    for d in (pkg, pkg.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o750 and d.stat().st_gid == os.getgid()
    for p in pkg.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.stat().st_gid == os.getgid()
    # the archive itself stays private
    assert stat.S_IMODE((data_dir(cfg) / "swing/kis/KOSPI/20260105/09_00.jsonl").stat().st_mode) == 0o600


def test_unknown_backup_group_fails_without_leaving_anything(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, '[housekeeping]\nbackup_group = "no-such-group-krx"\n')
    write_day(cfg, DAY)
    with pytest.raises(BackupError, match="no-such-group-krx"):
        create_package(cfg, DAY, now=EVENING)
    assert not package_dir(cfg, DAY).exists()


def test_a_day_still_being_written_is_postponed_and_the_future_refused(cfg: Config) -> None:
    write_day(cfg, DAY, age_s=1.0)
    result = create_package(cfg, DAY, now=EVENING, quiet_real_s=60.0)
    assert result.status == "postponed" and "written" in result.reason
    assert not package_dir(cfg, DAY).exists()
    with pytest.raises(BackupError, match="after today"):
        create_package(cfg, date(2026, 1, 6), now=EVENING)
    assert create_package(cfg, date(2026, 1, 2), now=EVENING).status == "empty"


def test_only_complete_lines_of_a_file_being_appended_are_packed(cfg: Config) -> None:
    write_day(cfg, DAY, families=("system",))
    events = data_dir(cfg) / "system/events/kis/20260105.jsonl"
    complete = events.read_bytes()
    with events.open("ab") as fh:
        fh.write(b'{"record_id":"half-writ')  # an append in progress
    create_package(cfg, DAY, now=EVENING)
    pkg = package_dir(cfg, DAY)
    with tarfile.open(pkg / archive_name("system", DAY), "r:gz") as tar:
        member = tar.extractfile("system/events/kis/20260105.jsonl")
        assert member is not None and member.read() == complete
    assert verify_package(pkg).ok


def test_verify_reports_corruption_extra_and_missing_files(cfg: Config) -> None:
    write_day(cfg, DAY)
    pkg = create_package(cfg, DAY, now=EVENING).path
    swing = pkg / archive_name("swing", DAY)
    data = bytearray(swing.read_bytes())
    data[len(data) // 2] ^= 0xFF
    swing.write_bytes(bytes(data))
    (pkg / "stray.txt").write_text("x")
    (pkg / archive_name("raw", DAY)).unlink()
    report = verify_package(pkg)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "swing_20260105.tar.gz: sha256 mismatch" in text
    assert "stray.txt: not listed" in text
    assert "raw_20260105.tar.gz: missing" in text
    (pkg / "manifest.json").write_bytes(b"{not json")
    assert "not a valid manifest" in verify_package(pkg).problems[0]


def test_a_damaged_package_is_rebuilt(cfg: Config) -> None:
    write_day(cfg, DAY)
    pkg = create_package(cfg, DAY, now=EVENING).path
    (pkg / archive_name("scalp", DAY)).write_bytes(b"truncated")
    again = create_package(cfg, DAY, now=EVENING)
    assert again.status == "created" and again.replaced_damaged
    assert verify_package(pkg).ok
    assert sorted(os.listdir(pkg.parent)) == ["20260105"]
    assert msgspec.json.decode((pkg / "manifest.json").read_bytes())["day"] == "20260105"


def test_a_same_size_corruption_is_found_and_rebuilt_while_the_data_is_here(short_tmp: Path) -> None:
    path = write_config(short_tmp)
    cfg = load_config(path, env={})
    write_day(cfg, DAY)
    pkg = create_package(cfg, DAY, now=EVENING).path
    tar = pkg / archive_name("swing", DAY)
    data = bytearray(tar.read_bytes())
    data[len(data) // 3] ^= 0x01  # same size: a size check alone would say "exists"
    tar.write_bytes(bytes(data))
    out = CliRunner().invoke(
        cli, ["--config", str(path), "backup", "create", "--day", "20260105", "--no-events"]
    )
    assert out.exit_code == 0, out.output
    assert "replaced a damaged package (swing_20260105.tar.gz: sha256 mismatch)" in out.output
    assert verify_package(pkg).ok


def test_a_damaged_package_whose_data_is_gone_is_critical_not_rebuilt(short_tmp: Path) -> None:
    path = write_config(short_tmp)
    cfg = load_config(path, env={})
    write_day(cfg, DAY)
    pkg = create_package(cfg, DAY, now=EVENING).path
    shutil.rmtree(data_dir(cfg) / "raw/kis/KOSPI/20260105")  # retention took raw/ after verification
    tar = pkg / archive_name("scalp", DAY)
    data = bytearray(tar.read_bytes())
    data[100] ^= 0x01
    tar.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in pkg.iterdir()}
    out = CliRunner().invoke(
        cli, ["--config", str(path), "backup", "create", "--day", "20260105", "--no-events"]
    )
    assert out.exit_code == 1
    assert "cannot be rebuilt: 1 archive file(s) it holds are gone" in out.output
    assert "raw/kis/KOSPI/20260105/09_00.jsonl" in out.output and "observer backup restore" in out.output
    assert {p.name: p.read_bytes() for p in pkg.iterdir()} == before  # nothing replaced by less
    [alarm] = alarms.standing(cfg)
    assert (alarm.kind, alarm.key) == ("backup_failed", "20260105")
    with pytest.raises(PackageDamaged):
        create_package(cfg, DAY, now=EVENING)


def test_modes_follow_the_current_config(short_tmp: Path) -> None:
    cfg = make_config(short_tmp)
    write_day(cfg, DAY)
    pkg = create_package(cfg, DAY, now=EVENING).path
    assert stat.S_IMODE(pkg.stat().st_mode) == 0o700
    group = grp.getgrgid(os.getgid()).gr_name
    grouped = make_config(short_tmp, f'[housekeeping]\nbackup_group = "{group}"\n')
    assert create_package(grouped, DAY, now=EVENING).status == "exists"  # set after the package was made
    for d in (pkg, pkg.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o750 and d.stat().st_gid == os.getgid()
    for p in pkg.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.stat().st_gid == os.getgid()
    assert create_package(cfg, DAY, now=EVENING).status == "exists"  # and cleared again
    assert stat.S_IMODE(pkg.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in pkg.iterdir()} == {0o600}
