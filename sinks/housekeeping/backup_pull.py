"""The backup PC's side: pull daily packages over SFTP, verify them, and tell the observer.

Security: key authentication only (no password, no agent, no ``~/.ssh`` key search) and the
server's host key is checked against the given known_hosts file with paramiko's `RejectPolicy`:
an unknown or changed host key ends the pull with `HostKeyError` before anything is read.

For each day (``--day``, or every ``YYYYMMDD`` package on the server not yet pulled):

1. read ``<remote-dir>/YYYYMMDD/manifest.json`` and download every file it lists into
   ``<dest>/.YYYYMMDD.partial/`` (0700/0600), hashing while writing;
2. `verify_package` the local copy: every file's size and SHA-256, every archive file inside
   every tar (name, size, SHA-256, lines), nothing missing, nothing extra;
3. only when everything matches: rename to ``<dest>/YYYYMMDD/`` and upload a ``verified``
   `Receipt` (the SHA-256 of the manifest as received and of every file) to
   ``<receipt-dir>/YYYYMMDD.json`` over the same session (temporary name, then rename). The
   observer host accepts it only if it matches its own package (`sinks.housekeeping.receipts`)
   and then records the day as verified, which is what retention waits for;
4. on any mismatch nothing is marked verified: the partial copy is removed, a ``failed`` receipt
   with the problems is uploaded (the observer raises a CRITICAL ``backup_failed``), a CRITICAL
   line is logged, and the command exits 1.

Why a receipt instead of the observer pulling a result: the observer exposes nothing; the backup
user may write only into its receipts directory (see deploy/README.md), packages stay read-only.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import socket
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Literal

import msgspec
import paramiko

from observer.clock import KST
from sinks.housekeeping.layout import DAY_KEY, MANIFEST_NAME, fsync_dir
from sinks.housekeeping.manifest import (
    CHUNK_BYTES,
    MAX_MANIFEST_BYTES,
    Receipt,
    encode_doc,
    manifest_decoder,
    verify_package,
)

log = logging.getLogger(__name__)


class PullError(Exception):
    """The pull could not be done (connection, authentication, remote layout)."""


class HostKeyError(PullError):
    """The server's host key is unknown to, or differs from, the known_hosts file."""


@dataclass(frozen=True, slots=True)
class PullTarget:
    host: str
    port: int
    user: str
    key_path: Path
    known_hosts: Path
    remote_dir: str  # holds the YYYYMMDD package dirs
    receipt_dir: str  # where receipts are uploaded
    timeout_s: float = 15.0


@dataclass(slots=True)
class PullResult:
    day: str
    status: Literal["verified", "failed", "skipped"]
    path: Path | None = None
    bytes: int = 0
    files: int = 0
    members: int = 0
    duration_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    receipt_uploaded: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("verified", "skipped") and not self.problems


def connect(target: PullTarget) -> paramiko.SSHClient:
    """An authenticated SSH client, or `HostKeyError` / `PullError` with a readable message."""
    if not target.known_hosts.is_file():
        raise PullError(f"known_hosts file {target.known_hosts} not found: the host key must be verified")
    if not target.key_path.is_file():
        raise PullError(f"private key {target.key_path} not found")
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(target.known_hosts))
    except (OSError, paramiko.SSHException) as e:
        raise PullError(f"known_hosts file {target.known_hosts} unreadable: {e}") from e
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    where = f"{target.host}:{target.port}"
    try:
        client.connect(
            target.host,
            port=target.port,
            username=target.user,
            key_filename=str(target.key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=target.timeout_s,
            banner_timeout=target.timeout_s,
            auth_timeout=target.timeout_s,
        )
    except paramiko.BadHostKeyException as e:
        client.close()
        raise HostKeyError(
            f"host key of {where} does not match {target.known_hosts} "
            f"(got {e.key.get_name()} {e.key.fingerprint}): refusing to connect"
        ) from None
    except paramiko.AuthenticationException as e:
        client.close()
        raise PullError(f"authentication as {target.user} on {where} failed: {e}") from None
    except paramiko.SSHException as e:
        client.close()
        if "known_hosts" in str(e):
            raise HostKeyError(
                f"host key of {where} is not in {target.known_hosts}: refusing to connect"
            ) from None
        raise PullError(f"ssh to {where} failed: {e}") from None
    except OSError as e:
        client.close()
        raise PullError(f"cannot reach {where}: {e}") from None
    return client


def remote_days(sftp: paramiko.SFTPClient, remote_dir: str) -> list[str]:
    """Package days on the server (``YYYYMMDD`` directories), oldest first."""
    try:
        entries = sftp.listdir_attr(remote_dir)
    except OSError as e:
        raise PullError(f"cannot list {remote_dir} on the server: {e}") from e
    return sorted(e.filename for e in entries if DAY_KEY.match(e.filename) and stat.S_ISDIR(e.st_mode or 0))


def _download(
    sftp: paramiko.SFTPClient, remote: str, local: Path, limit: int | None = None
) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out, sftp.open(remote, "rb") as src:
        remote_size = src.stat().st_size or 0
        if limit is not None and remote_size > limit:
            raise PullError(f"{remote} is larger than {limit} bytes")
        src.prefetch(remote_size)
        while True:
            chunk = src.read(CHUNK_BYTES)
            if not chunk:
                break
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest(), size


def pull_day(sftp: paramiko.SFTPClient, target: PullTarget, day: str, dest: Path) -> PullResult:
    """Download, verify, and record one day (see the module docstring). Never raises for bad
    content: a mismatch is a ``failed`` result with its problems."""
    t0 = time.monotonic()
    result = PullResult(day, "failed")
    remote = str(PurePosixPath(target.remote_dir) / day)
    partial = dest / f".{day}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    try:
        _download(sftp, f"{remote}/{MANIFEST_NAME}", partial / MANIFEST_NAME, MAX_MANIFEST_BYTES)
        try:
            manifest = manifest_decoder.decode((partial / MANIFEST_NAME).read_bytes())
        except msgspec.DecodeError as e:
            raise PullError(f"manifest of {day} is not valid: {e}") from e
        for entry in manifest.files:
            if "/" in entry.name or entry.name.startswith(".") or entry.name == MANIFEST_NAME:
                raise PullError(f"manifest of {day} names an unsafe file {entry.name!r}")
            _, size = _download(sftp, f"{remote}/{entry.name}", partial / entry.name)
            result.bytes += size
        fsync_dir(partial)
    except (OSError, PullError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        result.problems.append(f"download failed: {e}")
        result.duration_s = time.monotonic() - t0
        log.critical("backup pull failed", extra={"day": day, "problems": result.problems})
        return result
    report = verify_package(partial)
    result.files = report.files_checked
    result.members = report.members_checked
    result.problems = list(report.problems)
    receipt = Receipt(
        day=day,
        status="verified" if report.ok else "failed",
        manifest_sha256=report.manifest_sha256,
        files=report.file_sha256,
        members_checked=report.members_checked,
        checked_at=datetime.now(KST),
        checked_by=socket.gethostname(),
        problems=result.problems[:50],
    )
    if report.ok:
        final = dest / day
        if final.exists():
            shutil.rmtree(final)
        os.rename(partial, final)
        fsync_dir(dest)
        result.status = "verified"
        result.path = final
    else:
        shutil.rmtree(partial, ignore_errors=True)
        log.critical(
            "backup checksum mismatch; not verified", extra={"day": day, "problems": result.problems[:20]}
        )
    try:
        upload_receipt(sftp, target.receipt_dir, receipt)
        result.receipt_uploaded = True
        if report.ok:  # only now is the day done here; otherwise the next run pulls and tells again
            (dest / f"{day}.receipt.json").write_bytes(encode_doc(receipt))
    except OSError as e:
        result.problems.append(f"receipt not uploaded to {target.receipt_dir}: {e}")
        log.critical("receipt not uploaded: the observer will not count this backup", extra={"day": day})
    result.duration_s = time.monotonic() - t0
    return result


def upload_receipt(sftp: paramiko.SFTPClient, receipt_dir: str, receipt: Receipt) -> None:
    final = str(PurePosixPath(receipt_dir) / f"{receipt.day}.json")
    tmp = str(PurePosixPath(receipt_dir) / f".{receipt.day}.json.{os.getpid()}.tmp")
    sftp.putfo(io.BytesIO(encode_doc(receipt)), tmp, confirm=True)
    try:
        sftp.posix_rename(tmp, final)
    except OSError:
        sftp.remove(tmp)
        raise


def already_pulled(dest: Path, day: str) -> bool:
    """A verified local copy whose receipt reached the observer (``<dest>/YYYYMMDD.receipt.json``)."""
    return (dest / day / MANIFEST_NAME).is_file() and (dest / f"{day}.receipt.json").is_file()


def pull(target: PullTarget, dest: Path, days: list[str] | None = None) -> list[PullResult]:
    """Pull `days` (default: every package on the server not pulled yet). Raises `PullError`
    (and `HostKeyError`) when the server cannot be used at all."""
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    client = connect(target)
    try:
        sftp = client.open_sftp()
        try:
            available = remote_days(sftp, target.remote_dir)
            wanted = days if days is not None else [d for d in available if not already_pulled(dest, d)]
            results: list[PullResult] = []
            for day in wanted:
                if day not in available:
                    results.append(
                        PullResult(day, "failed", problems=[f"no package for {day} on the server"])
                    )
                    continue
                results.append(pull_day(sftp, target, day, dest))
            return results
        finally:
            sftp.close()
    finally:
        client.close()
