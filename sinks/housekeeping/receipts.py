"""From the backup PC's receipt to the observer's verified marker.

The backup PC uploads ``<receipts_dir>/YYYYMMDD.json`` (a `Receipt`) over the same SFTP session it
pulled with. A receipt is untrusted input (the SFTP user can read every manifest and write
receipts). It counts only when, in this order:

1. it is signed by a key listed in ``[housekeeping] receipt_public_key`` (`signing`): otherwise
   ``rejected`` (unsigned, unknown key, bad signature, or no key configured);
2. its status is ``verified`` (a ``failed`` receipt is a backup failure);
3. its manifest SHA-256 and per-file SHA-256 sums equal those of the package on this host
   (``mismatch`` otherwise: a stale or different package);
4. its download proof ``SHA-256(nonce || bytes)`` of every file equals the one computed here over
   the local package (``rejected`` otherwise: the author did not have the bytes).

Then ``state/backup_verified/YYYYMMDD.json`` is written (retention trusts only that marker) and the
day's ``backup_failed``/``backup_unverified`` alarms end. A failed, rejected or mismatching receipt
raises the day's ``backup_failed`` alarm (`observer.alarms`; CRITICAL upstream, once per episode).

`ingest_receipts` is what the housekeeper polls and what ``observer backup list`` runs on demand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import msgspec

from observer import alarms
from observer.clock import KST
from observer.config import Config
from observer.days import parse_day
from sinks.housekeeping.layout import (
    MANIFEST_NAME,
    ensure_dir,
    package_dir,
    receipts_dir,
    verified_dir,
    verified_marker_path,
    write_file_atomic,
)
from sinks.housekeeping.manifest import (
    MAX_RECEIPT_BYTES,
    Receipt,
    VerifiedMarker,
    encode_doc,
    marker_decoder,
    read_manifest,
    receipt_decoder,
    sha256_bytes,
)
from sinks.housekeeping.signing import SigningError, check_signature, load_public_keys, proof_of_file

_RECEIPT_NAME = re.compile(r"^(\d{8})\.json$")
OutcomeKind = Literal["verified", "failed", "mismatch", "rejected", "invalid"]


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    """What one new receipt meant. ``receipt_sha256`` identifies it (events are deduplicated by it)."""

    day: date | None
    kind: OutcomeKind
    message: str
    receipt_sha256: str
    checked_by: str = ""
    problems: tuple[str, ...] = ()
    new_episode: bool = True  # False: the day's backup_failed alarm was already standing


def read_marker(cfg: Config, day: date) -> VerifiedMarker | None:
    path = verified_marker_path(cfg, day)
    try:
        return marker_decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


def is_verified(cfg: Config, day: date) -> bool:
    return read_marker(cfg, day) is not None


def verified_days(cfg: Config) -> set[date]:
    out: set[date] = set()
    try:
        names = os.listdir(verified_dir(cfg))
    except FileNotFoundError:
        return out
    for name in names:
        m = _RECEIPT_NAME.match(name)
        if m:
            day = parse_day(m.group(1))
            if is_verified(cfg, day):
                out.add(day)
    return out


def check_receipt(cfg: Config, day: date, receipt: Receipt) -> list[str]:
    """Why `receipt` does not match the package of `day` on this host ([] when it does)."""
    problems: list[str] = []
    if receipt.day != f"{day:%Y%m%d}":
        problems.append(f"receipt is for day {receipt.day}")
    try:
        manifest, raw = read_manifest(package_dir(cfg, day))
    except ValueError as e:
        return [*problems, f"no local package to compare with: {e}"]
    if sha256_bytes(raw) != receipt.manifest_sha256:
        problems.append("manifest sha256 differs from the local package")
    expected = {f.name: f.sha256 for f in manifest.files}
    if receipt.files != expected:
        problems.append("file sha256 sums differ from the local manifest")
    return problems


def check_proof(cfg: Config, day: date, receipt: Receipt) -> list[str]:
    """Why the download proof of `receipt` does not hold for the local package ([] when it does).
    Reads the whole package once."""
    package = package_dir(cfg, day)
    try:
        manifest, _ = read_manifest(package)
    except ValueError as e:
        return [f"no local package to check the download proof with: {e}"]
    names = {MANIFEST_NAME, *(f.name for f in manifest.files)}
    if not receipt.nonce or set(receipt.proof) != names:
        return ["receipt carries no download proof of every file: it does not show the bytes were pulled"]
    try:
        bad = [n for n in sorted(names) if proof_of_file(receipt.nonce, package / n) != receipt.proof[n]]
    except (OSError, ValueError) as e:
        return [f"download proof not checked: {e}"]
    if bad:
        return [f"download proof does not match the local bytes of {', '.join(bad[:5])}"]
    return []


def _authenticate(cfg: Config, receipt: Receipt) -> str | None:
    path = cfg.housekeeping.receipt_public_key
    if not path:
        return "no [housekeeping] receipt_public_key configured: receipts cannot be authenticated"
    try:
        keys = load_public_keys(Path(path))
    except SigningError as e:
        return str(e)
    return check_signature(receipt, keys)


def ingest_receipts(cfg: Config, now: datetime, seen: set[str] | None = None) -> list[ReceiptOutcome]:
    """Turn every new receipt into an outcome; write the verified marker for the good ones.

    `seen` (receipt SHA-256s already handled) is updated; receipts of already-verified days are
    skipped. Never raises for bad receipt content."""
    seen = set() if seen is None else seen
    directory = receipts_dir(cfg)
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out: list[ReceiptOutcome] = []
    for name in names:
        m = _RECEIPT_NAME.match(name)
        if not m:
            continue
        try:
            day = parse_day(m.group(1))
        except ValueError:
            continue
        if is_verified(cfg, day):
            continue
        outcome = _one(cfg, day, directory / name, now, seen)
        if outcome is not None:
            out.append(outcome)
    return out


def _one(cfg: Config, day: date, path: Path, now: datetime, seen: set[str]) -> ReceiptOutcome | None:
    try:
        data = b"" if path.is_symlink() or path.stat().st_size > MAX_RECEIPT_BYTES else path.read_bytes()
    except OSError:
        return None  # being replaced; the next poll sees it
    digest = sha256_bytes(data)
    if digest in seen:
        return None
    seen.add(digest)
    try:
        receipt = receipt_decoder.decode(data)
    except msgspec.DecodeError as e:
        return ReceiptOutcome(day, "invalid", f"receipt {path.name} is not a valid receipt: {e}", digest)
    refused = _authenticate(cfg, receipt)
    if refused is not None:
        return _bad(
            cfg, now, day, "rejected", f"receipt for {day} rejected: {refused}", digest, receipt, (refused,)
        )
    if receipt.status == "failed":
        message = f"backup of {day} failed on {receipt.checked_by}: " + "; ".join(receipt.problems[:5])
        return _bad(cfg, now, day, "failed", message, digest, receipt, tuple(receipt.problems))
    problems = check_receipt(cfg, day, receipt)
    if problems:
        message = f"receipt for {day} does not match the local package: " + "; ".join(problems)
        return _bad(cfg, now, day, "mismatch", message, digest, receipt, tuple(problems))
    problems = check_proof(cfg, day, receipt)
    if problems:
        message = f"receipt for {day} rejected: " + "; ".join(problems)
        return _bad(cfg, now, day, "rejected", message, digest, receipt, tuple(problems))
    marker = VerifiedMarker(
        day=receipt.day,
        manifest_sha256=receipt.manifest_sha256,
        files=len(receipt.files),
        members_checked=receipt.members_checked,
        checked_at=receipt.checked_at,
        checked_by=receipt.checked_by,
        recorded_at=now.astimezone(KST),
        key_id=receipt.key_id,
    )
    ensure_dir(verified_dir(cfg))
    write_file_atomic(verified_marker_path(cfg, day), encode_doc(marker))
    key = f"{day:%Y%m%d}"
    alarms.clear(cfg, "backup_failed", key)
    alarms.clear(cfg, "backup_unverified", key)
    return ReceiptOutcome(
        day,
        "verified",
        f"backup of {day} verified by {receipt.checked_by}",
        digest,
        receipt.checked_by,
    )


def _bad(
    cfg: Config,
    now: datetime,
    day: date,
    kind: OutcomeKind,
    message: str,
    digest: str,
    receipt: Receipt,
    problems: tuple[str, ...],
) -> ReceiptOutcome:
    new = alarms.raise_alarm(cfg, "backup_failed", f"{day:%Y%m%d}", message, now, "receipts")
    return ReceiptOutcome(day, kind, message, digest, receipt.checked_by, problems, new)
