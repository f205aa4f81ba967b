"""``observer backup restore DAY --to DIR``: checksums first, byte-identical files, `observer verify`
clean on the restored archive, nothing overwritten, a damaged package refused."""

from __future__ import annotations

import os
import stat
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from observer.cli import cli
from observer.clock import KST
from observer.config import data_dir, load_config
from sinks.housekeeping.backup import create_package
from sinks.housekeeping.layout import archive_name, package_dir
from sinks.housekeeping.restore import RestoreError, restore_package
from sinks.writer.verify import verify_archive
from testkit.config import write_config
from tests.sinks.housekeeping.conftest import write_day

DAY = date(2026, 1, 5)
EVENING = datetime(2026, 1, 5, 21, 0, tzinfo=KST)


def restored_name(cfg_root: Path, universe_dir: Path, path: Path) -> str:
    if path.is_relative_to(universe_dir):
        return f"universe/{path.name}"
    return path.relative_to(cfg_root).as_posix()


def test_restore_into_an_empty_dir_is_byte_identical_and_verifies_clean(short_tmp: Path) -> None:
    path = write_config(short_tmp)
    cfg = load_config(path, env={})
    written = write_day(cfg, DAY)
    assert create_package(cfg, DAY, now=EVENING).status == "created"
    target = short_tmp / "restored"
    out = CliRunner().invoke(
        cli, ["--config", str(path), "backup", "restore", "20260105", "--to", str(target)]
    )
    assert out.exit_code == 0, out.output
    assert (
        "restored 8 file(s)" in out.output
        and "observer verify: OK" in out.output
        and ": 7 files" in out.output
    )
    root, universe = data_dir(cfg), Path(cfg.paths.universe_dir)
    for original in written:
        copy = target / restored_name(root, universe, original)
        assert copy.read_bytes() == original.read_bytes(), copy
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    report = verify_archive(target)
    assert report.ok and report.files == 7, report.format()  # 8 members, the universe is not archive
    # a second restore changes nothing; a file that differs is never overwritten
    again = restore_package(package_dir(cfg, DAY), target)
    assert again.written == [] and len(again.unchanged) == 8
    swing = target / "swing/kis/KOSPI/20260105/09_00.jsonl"
    swing.write_bytes(b"edited\n")
    with pytest.raises(RestoreError, match="differ from the package"):
        restore_package(package_dir(cfg, DAY), target)
    assert swing.read_bytes() == b"edited\n"


def test_a_damaged_package_is_not_restored(short_tmp: Path) -> None:
    path = write_config(short_tmp)
    cfg = load_config(path, env={})
    write_day(cfg, DAY)
    pkg = create_package(cfg, DAY, now=EVENING).path
    tar = pkg / archive_name("raw", DAY)
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0x10  # same size
    tar.write_bytes(bytes(data))
    target = short_tmp / "restored"
    out = CliRunner().invoke(
        cli, ["--config", str(path), "backup", "restore", "2026-01-05", "--to", str(target)]
    )
    assert out.exit_code == 1
    assert "raw_20260105.tar.gz: sha256 mismatch" in out.output and "nothing restored" in out.output
    assert not target.exists() or not os.listdir(target)
    out = CliRunner().invoke(
        cli, ["--config", str(path), "backup", "restore", "20260106", "--to", str(target)]
    )
    assert out.exit_code == 1 and "no package of 20260106" in out.output
