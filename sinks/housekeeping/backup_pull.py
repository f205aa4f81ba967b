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
   `Receipt` (the SHA-256 of the manifest as received and of every file, the download proof
   ``SHA-256(nonce || bytes)`` of each, signed with the backup PC's Ed25519 key: see
   `sinks.housekeeping.signing`) to ``<receipt-dir>/YYYYMMDD.json`` over the same session
   (temporary name, then rename), and keep it as ``<dest>/YYYYMMDD.receipt.json`` (0600). The
   observer host accepts it only if the signature and the proof hold and it matches its own
   package (`sinks.housekeeping.receipts`); then it records the day as verified, which is what
   retention waits for;
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

from observer.atomic import fsync_dir
from observer.clock import KST
from observer.days import DAY_KEY
from sinks.housekeeping.layout import MANIFEST_NAME, write_file_atomic
from sinks.housekeeping.manifest import (
    CHUNK_BYTES,
    MAX_MANIFEST_BYTES,
    Receipt,
    encode_doc,
    manifest_decoder,
    verify_package,
)
from sinks.housekeeping.remote import CHECK_SUFFIX, RECEIPT_SUFFIX, is_good
from sinks.housekeeping.signing import ProofHasher, SigningError, SigningKey, new_nonce

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
    sign_key: Path  # the backup PC's Ed25519 receipt signing key (OpenSSH private key, 0600)
    timeout_s: float = 15.0

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


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
    where = target.where
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
                f"host key of {where} is not in {target.known_hosts} (a non-22 port is written "
                f"[{target.host}]:{target.port} there): refusing to connect"
            ) from None
        raise PullError(f"ssh to {where} failed: {_ssh_cause(e, target)}") from None
    except paramiko.ssh_exception.NoValidConnectionsError as e:
        client.close()
        causes = sorted({getattr(err, "strerror", None) or str(err) for err in e.errors.values()})
        raise PullError(f"cannot reach {where}: {', '.join(causes) or 'connection refused'}") from None
    except TimeoutError:
        client.close()
        raise PullError(f"cannot reach {where}: no answer within {target.timeout_s:g} s") from None
    except OSError as e:
        client.close()
        raise PullError(f"cannot reach {where}: {e.strerror or e}") from None
    return client


def _ssh_cause(e: paramiko.SSHException, target: PullTarget) -> str:
    """What went wrong, in words an operator can act on (paramiko's are often not)."""
    text = str(e)
    # paramiko says "Error reading SSH protocol banner" or, as often, "No existing session" when
    # its transport thread gave up on a server that accepted the TCP connection but never answered
    if "banner" in text or "No existing session" in text:
        return (
            f"the server accepted the connection but did not complete the SSH handshake within "
            f"{target.timeout_s:g} s (not an SSH server, or a hung one)"
        )
    return text or type(e).__name__


def open_sftp(client: paramiko.SSHClient, target: PullTarget) -> paramiko.SFTPClient:
    try:
        sftp = client.open_sftp()
        # every SFTP request waits at most timeout_s for an answer (a stalled server is an error, not a hang)
        sftp.get_channel().settimeout(target.timeout_s)  # type: ignore[union-attr]
        return sftp
    except (paramiko.SSHException, OSError) as e:
        raise PullError(
            f"SFTP subsystem on {target.where} not available: {e} (is ForceCommand internal-sftp set?)"
        ) from None


def remote_days(sftp: paramiko.SFTPClient, target: PullTarget) -> list[str]:
    """Package days on the server (``YYYYMMDD`` directories), oldest first."""
    try:
        entries = sftp.listdir_attr(target.remote_dir)
    except OSError as e:
        raise PullError(f"cannot list {target.remote_dir} on {target.where}: {e}") from e
    return sorted(e.filename for e in entries if DAY_KEY.match(e.filename) and stat.S_ISDIR(e.st_mode or 0))


def _download(
    sftp: paramiko.SFTPClient, remote: str, local: Path, nonce: str, limit: int | None = None
) -> tuple[str, str, int]:
    """(SHA-256, download proof, bytes) of `remote`, copied to `local` (0600, fsynced)."""
    h = hashlib.sha256()
    proof = ProofHasher(nonce)
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
            proof.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest(), proof.hexdigest(), size


def pull_day(
    sftp: paramiko.SFTPClient, target: PullTarget, key: SigningKey, day: str, dest: Path
) -> PullResult:
    """Download, verify, and record one day (see the module docstring). Never raises for bad
    content: a mismatch is a ``failed`` result with its problems."""
    t0 = time.monotonic()
    result = PullResult(day, "failed")
    remote = str(PurePosixPath(target.remote_dir) / day)
    partial = dest / f".{day}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    nonce = new_nonce()
    proof: dict[str, str] = {}
    try:
        _, proof[MANIFEST_NAME], _ = _download(
            sftp, f"{remote}/{MANIFEST_NAME}", partial / MANIFEST_NAME, nonce, MAX_MANIFEST_BYTES
        )
        try:
            manifest = manifest_decoder.decode((partial / MANIFEST_NAME).read_bytes())
        except msgspec.DecodeError as e:
            raise PullError(f"manifest of {day} is not valid: {e}") from e
        for entry in manifest.files:
            if "/" in entry.name or entry.name.startswith(".") or entry.name == MANIFEST_NAME:
                raise PullError(f"manifest of {day} names an unsafe file {entry.name!r}")
            _, proof[entry.name], size = _download(
                sftp, f"{remote}/{entry.name}", partial / entry.name, nonce
            )
            result.bytes += size
        fsync_dir(partial)
    except (OSError, PullError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        result.problems.append(f"download from {target.where} failed: {e}")
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
        nonce=nonce,
        proof=proof,
    )
    receipt = key.sign(receipt)
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
            write_file_atomic(dest / f"{day}{RECEIPT_SUFFIX}", encode_doc(receipt))
            (dest / f"{day}{CHECK_SUFFIX}").unlink(missing_ok=True)  # a fresh copy
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
    """A good local copy: verified on pull, its receipt sent, its last re-check (if any) clean."""
    return is_good(dest, day)


def pull(target: PullTarget, dest: Path, days: list[str] | None = None) -> list[PullResult]:
    """Pull `days` (default: every package on the server not pulled yet). Raises `PullError`
    (and `HostKeyError`) when the server cannot be used at all."""
    try:
        key = SigningKey.load(target.sign_key)
    except SigningError as e:
        raise PullError(str(e)) from None
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    client = connect(target)
    try:
        sftp = open_sftp(client, target)
        try:
            available = remote_days(sftp, target)
            wanted = days if days is not None else [d for d in available if not already_pulled(dest, d)]
            results: list[PullResult] = []
            for day in wanted:
                if day not in available:
                    results.append(
                        PullResult(day, "failed", problems=[f"no package for {day} on the server"])
                    )
                    continue
                results.append(pull_day(sftp, target, key, day, dest))
            return results
        finally:
            sftp.close()
    finally:
        client.close()
