"""The backup PC's pull over a real OpenSSH server (SFTP on loopback): verified end to end, host key
refused, corruption detected, and what the observer host makes of the receipts."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
from datetime import date, datetime
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from observer import alarms
from observer.cli import cli
from observer.clock import KST
from observer.config import Config, data_dir
from sinks.housekeeping.backup import create_package
from sinks.housekeeping.backup_pull import HostKeyError, PullError, PullTarget, pull
from sinks.housekeeping.layout import archive_name, backup_root, ensure_dir, package_dir, receipts_dir
from sinks.housekeeping.manifest import (
    Receipt,
    encode_doc,
    read_manifest,
    receipt_decoder,
    sha256_bytes,
    verify_package,
)
from sinks.housekeeping.receipts import ReceiptOutcome, ingest_receipts, is_verified, read_marker
from sinks.housekeeping.signing import SigningKey, proof_of_file
from testkit.config import make_config, write_config
from tests.conftest import free_port
from tests.sinks.housekeeping.conftest import ReceiptKey, SshServer, write_day

DAY = date(2026, 1, 5)
EVENING = datetime(2026, 1, 5, 21, 0, tzinfo=KST)


def _target(sshd: SshServer, cfg: Config, key: ReceiptKey, known_hosts: Path | None = None) -> PullTarget:
    ensure_dir(receipts_dir(cfg))
    return PullTarget(
        sshd.host,
        sshd.port,
        sshd.user,
        sshd.client_key,
        known_hosts or sshd.known_hosts,
        str(backup_root(cfg)),
        str(receipts_dir(cfg)),
        key.private,
        timeout_s=10.0,
    )


def test_pulled_package_is_verified_listed_and_restorable_without_the_housekeeper(
    sshd: SshServer, cfg: Config, short_tmp: Path, receipt_key: ReceiptKey
) -> None:
    path = write_config(short_tmp, receipt_key.toml())  # the same paths as `cfg`
    written = write_day(cfg, DAY)
    create_package(cfg, DAY, now=EVENING)
    dest = short_tmp / "backup-pc"
    [result] = pull(_target(sshd, cfg, receipt_key), dest)
    assert result.status == "verified" and result.ok and result.receipt_uploaded, result.problems
    assert result.members == 8 and result.files == 5
    assert verify_package(dest / "20260105").ok
    assert not list(dest.glob(".*partial"))
    kept = dest / "20260105.receipt.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    receipt = receipt_decoder.decode((receipts_dir(cfg) / "20260105.json").read_bytes())
    assert receipt.status == "verified" and receipt.members_checked == 8
    assert receipt.signature and receipt.key_id.startswith("SHA256:")
    assert len(receipt.proof) == 6  # 5 tars and the manifest
    # the observer host, no housekeeper running: `backup list` reads the receipt on demand
    assert not is_verified(cfg, DAY)
    out = CliRunner().invoke(cli, ["--config", str(path), "backup", "list"])
    assert out.exit_code == 0, out.output
    assert "receipt verified: backup of 2026-01-05 verified by" in out.output
    assert re.search(r"20260105 +[\d,]+ bytes +verified by ", out.output), out.output
    marker = read_marker(cfg, DAY)
    assert marker is not None and marker.manifest_sha256 == receipt.manifest_sha256
    assert marker.key_id == receipt.key_id
    assert ingest_receipts(cfg, EVENING) == []  # handled once
    # nothing new on the server: a second pull does nothing
    assert pull(_target(sshd, cfg, receipt_key), dest) == []
    # restore of the pulled copy into an empty dir: byte-identical, `observer verify` clean
    target = short_tmp / "restored"
    out = CliRunner().invoke(cli, ["backup", "restore", "20260105", "--from", str(dest), "--to", str(target)])
    assert out.exit_code == 0 and "observer verify: OK" in out.output and ": 7 files" in out.output, (
        out.output
    )
    universe = Path(cfg.paths.universe_dir)
    for original in written:
        rel = (
            f"universe/{original.name}"
            if original.is_relative_to(universe)
            else original.relative_to(data_dir(cfg))
        )
        assert (target / rel).read_bytes() == original.read_bytes()


def test_a_wrong_or_unknown_host_key_is_refused(
    sshd: SshServer, cfg: Config, short_tmp: Path, receipt_key: ReceiptKey
) -> None:
    write_day(cfg, DAY)
    create_package(cfg, DAY, now=EVENING)
    dest = short_tmp / "backup-pc"
    with pytest.raises(HostKeyError, match="does not match"):
        pull(_target(sshd, cfg, receipt_key, sshd.wrong_known_hosts()), dest)
    empty = short_tmp / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match="not in"):
        pull(_target(sshd, cfg, receipt_key, empty), dest)
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
            "--sign-key",
            str(receipt_key.private),
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
    sshd: SshServer, cfg: Config, short_tmp: Path, receipt_key: ReceiptKey
) -> None:
    write_day(cfg, DAY)
    pkg = create_package(cfg, DAY, now=EVENING).path
    scalp = pkg / archive_name("scalp", DAY)
    data = bytearray(scalp.read_bytes())
    data[40] ^= 0x01  # same size, one bit flipped
    scalp.write_bytes(bytes(data))
    dest = short_tmp / "backup-pc"
    ensure_dir(receipts_dir(cfg))
    path = write_config(short_tmp, receipt_key.toml())
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
            "--sign-key",
            str(receipt_key.private),
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


def _forged(cfg: Config, **fields: object) -> Receipt:
    """A ``verified`` receipt built from what the SFTP user can read: the manifest alone."""
    manifest, raw = read_manifest(package_dir(cfg, DAY))
    base: dict[str, object] = {
        "day": "20260105",
        "status": "verified",
        "manifest_sha256": sha256_bytes(raw),
        "files": {f.name: f.sha256 for f in manifest.files},
        "members_checked": sum(len(f.members) for f in manifest.families),
        "checked_at": EVENING,
        "checked_by": "forger",
    }
    return Receipt(**{**base, **fields})  # type: ignore[arg-type]


def _ingest(cfg: Config, receipt: Receipt | bytes) -> ReceiptOutcome:
    data = receipt if isinstance(receipt, bytes) else encode_doc(receipt)
    (receipts_dir(cfg) / "20260105.json").write_bytes(data)
    [outcome] = ingest_receipts(cfg, EVENING)
    return outcome


def test_a_receipt_forged_from_the_manifest_alone_is_rejected(
    cfg: Config, receipt_key: ReceiptKey, short_tmp: Path
) -> None:
    write_day(cfg, DAY)
    create_package(cfg, DAY, now=EVENING)
    ensure_dir(receipts_dir(cfg))
    unsigned = _forged(cfg)
    outcome = _ingest(cfg, unsigned)
    assert outcome.kind == "rejected" and "not signed" in outcome.message
    # signed, but by a key the observer host does not know
    other = short_tmp / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    os.chmod(other, 0o600)
    assert "unknown key" in _ingest(cfg, SigningKey.load(other).sign(unsigned)).message
    # signed with the right key, then edited
    key = SigningKey.load(receipt_key.private)
    edited = msgspec.structs.replace(key.sign(_forged(cfg, status="failed")), status="verified")
    assert "does not verify" in _ingest(cfg, edited).message
    # even with the backup PC's key: no download, no proof (the manifest's proof is all it can make)
    nonce = "ab" * 16
    manifest_proof = proof_of_file(nonce, package_dir(cfg, DAY) / "manifest.json")
    guessed = {name: sha for name, sha in unsigned.files.items()} | {"manifest.json": manifest_proof}
    outcome = _ingest(cfg, key.sign(_forged(cfg, nonce=nonce, proof=guessed)))
    assert outcome.kind == "rejected" and "download proof does not match" in outcome.message
    assert outcome.new_episode is False  # one backup_failed episode for the day, not one per receipt
    # a signed receipt for other content is a mismatch; garbage is invalid
    outcome = _ingest(cfg, key.sign(_forged(cfg, manifest_sha256="0" * 64)))
    assert outcome.kind == "mismatch" and "manifest sha256 differs" in outcome.message
    assert _ingest(cfg, b"\x00garbage").kind == "invalid"
    assert not is_verified(cfg, DAY) and package_dir(cfg, DAY).exists()
    [alarm] = alarms.standing(cfg)
    assert (alarm.kind, alarm.key) == ("backup_failed", "20260105") and "not signed" in alarm.message
    # the standing CRITICAL turns `observer status` red, with or without a running pipeline
    path = write_config(short_tmp, receipt_key.toml())
    out = CliRunner().invoke(cli, ["--config", str(path), "status", "--once", "--json", "--timeout-s", "0.2"])
    health = json.loads(out.output)["health"]
    assert health["status"] == "red", health
    assert (
        health["reasons"][0]["key"] == "backup_failed.20260105"
        and "not signed" in health["reasons"][0]["text"]
    )
    out = CliRunner().invoke(cli, ["--config", str(path), "backup", "list"])
    assert out.exit_code == 1 and "CRITICAL backup_failed 20260105" in out.output
    # no key configured on the observer host: nothing can be authenticated
    keyless = make_config(short_tmp)
    outcome = _ingest(keyless, key.sign(_forged(keyless)))
    assert outcome.kind == "rejected" and "no [housekeeping] receipt_public_key" in outcome.message


def test_a_receipt_that_cannot_be_uploaded_is_retried_by_the_next_pull(
    sshd: SshServer, cfg: Config, short_tmp: Path, receipt_key: ReceiptKey
) -> None:
    write_day(cfg, DAY)
    create_package(cfg, DAY, now=EVENING)
    dest = short_tmp / "backup-pc"
    target = _target(sshd, cfg, receipt_key)
    receipts_dir(cfg).rmdir()  # the server's receipts dir is missing
    [first] = pull(target, dest)
    assert first.status == "verified" and not first.receipt_uploaded and not first.ok
    assert "receipt not uploaded" in first.problems[0]
    assert ingest_receipts(cfg, EVENING) == [] and not is_verified(cfg, DAY)
    ensure_dir(receipts_dir(cfg))
    [second] = pull(target, dest)  # not counted as pulled: it is pulled again and the receipt sent
    assert second.ok and second.receipt_uploaded
    assert [o.kind for o in ingest_receipts(cfg, EVENING)] == ["verified"]


def test_sftp_errors_name_host_port_and_cause(
    sshd: SshServer, cfg: Config, short_tmp: Path, receipt_key: ReceiptKey
) -> None:
    def target(port: int) -> PullTarget:
        t = _target(sshd, cfg, receipt_key)
        return PullTarget(
            t.host,
            port,
            t.user,
            t.key_path,
            t.known_hosts,
            t.remote_dir,
            t.receipt_dir,
            t.sign_key,
            timeout_s=1.0,
        )

    down = free_port()  # nothing listens
    with pytest.raises(PullError) as refused:
        pull(target(down), short_tmp / "pc")
    assert str(refused.value) == f"cannot reach {sshd.user}@127.0.0.1:{down}: Connection refused"
    with socket.socket() as silent:  # accepts connections (kernel backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(PullError) as mute:
            pull(target(port), short_tmp / "pc")
    assert str(mute.value).startswith(f"ssh to {sshd.user}@127.0.0.1:{port} failed: ")
    assert "accepted the connection but did not complete the SSH handshake within 1 s" in str(mute.value)
    # through the command line, as the systemd unit runs it
    out = CliRunner().invoke(
        cli,
        [
            "backup", "pull", "--host", "127.0.0.1", "--port", str(down), "--user", "krx-backup",
            "--key", str(sshd.client_key), "--known-hosts", str(sshd.known_hosts),
            "--sign-key", str(receipt_key.private), "--dest", str(short_tmp / "pc"),
        ],
    )  # fmt: skip
    assert out.exit_code == 1
    assert (
        f"CRITICAL backup pull failed: cannot reach krx-backup@127.0.0.1:{down}: Connection refused"
        in out.output
    )
    # a signing key others can read is refused before anything is pulled
    os.chmod(receipt_key.private, 0o644)
    try:
        with pytest.raises(PullError, match="readable by others"):
            pull(_target(sshd, cfg, receipt_key), short_tmp / "pc")
    finally:
        os.chmod(receipt_key.private, 0o600)
