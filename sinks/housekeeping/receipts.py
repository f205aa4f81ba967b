"""From the backup PC's receipt to the observer's verified marker.

The backup PC uploads ``<receipts_dir>/YYYYMMDD.json`` (a `Receipt`) over the same SFTP session it
pulled with. A receipt is untrusted input: it counts only when its status is ``verified`` *and*
its manifest SHA-256 and per-file SHA-256 sums equal those of the package on this host (so a
receipt for a stale or different package, or a hand-made one, does not count). Then
``state/backup_verified/YYYYMMDD.json`` is written; retention trusts only that marker. A
``failed`` receipt, or one that does not match, is a backup failure (CRITICAL upstream).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import msgspec

from observer.clock import KST
from observer.config import Config
from sinks.housekeeping.layout import (
    ensure_dir,
    package_dir,
    parse_day,
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

_RECEIPT_NAME = re.compile(r"^(\d{8})\.json$")
OutcomeKind = Literal["verified", "failed", "mismatch", "invalid"]


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    """What one new receipt meant. ``receipt_sha256`` identifies it (events are deduplicated by it)."""

    day: date | None
    kind: OutcomeKind
    message: str
    receipt_sha256: str
    checked_by: str = ""
    problems: tuple[str, ...] = ()


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
    """Why `receipt` does not prove the package of `day` on this host ([] when it does)."""
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
    if receipt.status == "failed":
        return ReceiptOutcome(
            day,
            "failed",
            f"backup of {day} failed on {receipt.checked_by}: " + "; ".join(receipt.problems[:5]),
            digest,
            receipt.checked_by,
            tuple(receipt.problems),
        )
    problems = check_receipt(cfg, day, receipt)
    if problems:
        return ReceiptOutcome(
            day,
            "mismatch",
            f"receipt for {day} does not match the local package: " + "; ".join(problems),
            digest,
            receipt.checked_by,
            tuple(problems),
        )
    marker = VerifiedMarker(
        day=receipt.day,
        manifest_sha256=receipt.manifest_sha256,
        files=len(receipt.files),
        members_checked=receipt.members_checked,
        checked_at=receipt.checked_at,
        checked_by=receipt.checked_by,
        recorded_at=now.astimezone(KST),
    )
    ensure_dir(verified_dir(cfg))
    write_file_atomic(verified_marker_path(cfg, day), encode_doc(marker))
    return ReceiptOutcome(
        day,
        "verified",
        f"backup of {day} verified by {receipt.checked_by}",
        digest,
        receipt.checked_by,
    )
