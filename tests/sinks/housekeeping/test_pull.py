"""The backup PC's pull over a real OpenSSH server (SFTP on loopback): verified end to end, host key
refused, corruption detected, and what the observer host makes of the receipts."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from observer.cli import cli
from observer.clock import KST
from observer.config import Config
from sinks.housekeeping.backup import create_package
from sinks.housekeeping.backup_pull import HostKeyError, PullTarget, pull
from sinks.housekeeping.layout import archive_name, backup_root, ensure_dir, package_dir, receipts_dir
from sinks.housekeeping.manifest import receipt_decoder, verify_package
from sinks.housekeeping.receipts import ingest_receipts, is_verified, read_marker
from testkit.config import write_config
from tests.sinks.housekeeping.conftest import SshServer, write_day

DAY = date(2026, 1, 5)
EVENING = datetime(2026, 1, 5, 21, 0, tzinfo=KST)


def _target(sshd: SshServer, cfg: Config, known_hosts: Path | None = None) -> PullTarget:
    ensure_dir(receipts_dir(cfg))
    return PullTarget(
        sshd.host,
        sshd.port,
        sshd.user,
        sshd.client_key,
        known_hosts or sshd.known_hosts,
        str(backup_root(cfg)),
        str(receipts_dir(cfg)),
        timeout_s=10.0,
    )


def test_pulled_package_is_verified_and_the_observer_records_it(
    sshd: SshServer, cfg: Config, short_tmp: Path
) -> None:
    write_day(cfg, DAY)
    create_package(cfg, DAY, now=EVENING)
    dest = short_tmp / "backup-pc"
    [result] = pull(_target(sshd, cfg), dest)
    assert result.status == "verified" and result.ok and result.receipt_uploaded, result.problems
    assert result.members == 8 and result.files == 5
    assert verify_package(dest / "20260105").ok
    assert not list(dest.glob(".*partial"))
    receipt = receipt_decoder.decode((receipts_dir(cfg) / "20260105.json").read_bytes())
    assert receipt.status == "verified" and receipt.members_checked == 8
    # the observer host: the receipt matches its own package -> the day is verified
    assert not is_verified(cfg, DAY)
    [outcome] = ingest_receipts(cfg, EVENING)
    assert outcome.kind == "verified" and outcome.day == DAY
    marker = read_marker(cfg, DAY)
    assert marker is not None and marker.manifest_sha256 == receipt.manifest_sha256
    assert ingest_receipts(cfg, EVENING) == []  # handled once
    # nothing new on the server: a second pull does nothing
    assert pull(_target(sshd, cfg), dest) == []


def test_a_wrong_or_unknown_host_key_is_refused(sshd: SshServer, cfg: Config, short_tmp: Path) -> None:
    write_day(cfg, DAY)
    create_package(cfg, DAY, now=EVENING)
    dest = short_tmp / "backup-pc"
    with pytest.raises(HostKeyError, match="does not match"):
        pull(_target(sshd, cfg, sshd.wrong_known_hosts()), dest)
    empty = short_tmp / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match="not in"):
        pull(_target(sshd, cfg, empty), dest)
    assert not any(dest.iterdir())
    assert not any(receipts_dir(cfg).iterdir())
    runner = CliRunner()
    out = runner.invoke(
        cli,
        [
            "backup",
            "pull",
            "--host",
            sshd.host,
            "--port",
            str(sshd.port),
            "--user",
            sshd.user,
            "--key",
            str(sshd.client_key),
            "--known-hosts",
            str(sshd.wrong_known_hosts()),
            "--remote-dir",
            str(backup_root(cfg)),
            "--receipt-dir",
            str(receipts_dir(cfg)),
            "--dest",
            str(dest),
        ],
    )
    assert out.exit_code == 1 and "does not match" in out.output


def test_a_corrupted_file_on_the_server_is_not_verified(
    sshd: SshServer, cfg: Config, short_tmp: Path
) -> None:
    write_day(cfg, DAY)
    pkg = create_package(cfg, DAY, now=EVENING).path
    scalp = pkg / archive_name("scalp", DAY)
    data = bytearray(scalp.read_bytes())
    data[40] ^= 0x01  # same size, one bit flipped
    scalp.write_bytes(bytes(data))
    dest = short_tmp / "backup-pc"
    ensure_dir(receipts_dir(cfg))
    path = write_config(short_tmp)
    out = CliRunner().invoke(
        cli,
        [
            "--config",
            str(path),
            "backup",
            "pull",
            "--host",
            sshd.host,
            "--port",
            str(sshd.port),
            "--user",
            sshd.user,
            "--key",
            str(sshd.client_key),
            "--known-hosts",
            str(sshd.known_hosts),
            "--remote-dir",
            str(backup_root(cfg)),
            "--receipt-dir",
            str(receipts_dir(cfg)),
            "--dest",
            str(dest),
            "--day",
            "2026-01-05",
        ],
    )
    assert out.exit_code == 1, out.output
    assert "CRITICAL backup 20260105 NOT verified" in out.output
    assert "scalp_20260105.tar.gz: sha256 mismatch" in out.output
    assert not (dest / "20260105").exists() and not list(dest.glob(".*"))
    receipt = receipt_decoder.decode((receipts_dir(cfg) / "20260105.json").read_bytes())
    assert receipt.status == "failed" and receipt.problems
    [outcome] = ingest_receipts(cfg, EVENING)
    assert outcome.kind == "failed" and "sha256 mismatch" in outcome.message
    assert not is_verified(cfg, DAY)


def test_receipts_that_do_not_match_the_local_package_do_not_count(cfg: Config) -> None:
    write_day(cfg, DAY)
    create_package(cfg, DAY, now=EVENING)
    ensure_dir(receipts_dir(cfg))
    forged = {
        "day": "20260105",
        "status": "verified",
        "manifest_sha256": "0" * 64,
        "files": {},
        "members_checked": 0,
        "checked_at": "2026-01-05T22:00:00+09:00",
        "checked_by": "someone",
    }
    (receipts_dir(cfg) / "20260105.json").write_bytes(msgspec.json.encode(forged))
    (receipts_dir(cfg) / "20260106.json").write_bytes(b"\x00garbage")
    outcomes = {o.day: o for o in ingest_receipts(cfg, EVENING)}
    assert outcomes[DAY].kind == "mismatch" and "manifest sha256 differs" in outcomes[DAY].message
    assert outcomes[date(2026, 1, 6)].kind == "invalid"
    assert not is_verified(cfg, DAY) and package_dir(cfg, DAY).exists()


def test_a_receipt_that_cannot_be_uploaded_is_retried_by_the_next_pull(
    sshd: SshServer, cfg: Config, short_tmp: Path
) -> None:
    write_day(cfg, DAY)
    create_package(cfg, DAY, now=EVENING)
    dest = short_tmp / "backup-pc"
    target = _target(sshd, cfg)
    receipts_dir(cfg).rmdir()  # the server's receipts dir is missing
    [first] = pull(target, dest)
    assert first.status == "verified" and not first.receipt_uploaded and not first.ok
    assert "receipt not uploaded" in first.problems[0]
    assert ingest_receipts(cfg, EVENING) == [] and not is_verified(cfg, DAY)
    ensure_dir(receipts_dir(cfg))
    [second] = pull(target, dest)  # not counted as pulled: it is pulled again and the receipt sent
    assert second.ok and second.receipt_uploaded
    assert [o.kind for o in ingest_receipts(cfg, EVENING)] == ["verified"]
