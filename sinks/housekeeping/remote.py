"""The backup PC's copies: weekly re-check and retention (``observer backup check|prune --dest DIR``).

Layout under ``--dest`` (written by `sinks.housekeeping.pull`)::

    YYYYMMDD/                 a verified copy of the day's package (0700, files 0600)
    YYYYMMDD.receipt.json     the signed receipt sent for it (0600): the copy was verified on pull
    YYYYMMDD.check.json       the last re-check of the copy (0600): when, and its problems

A copy is *good* when it was verified on pull and its last re-check (if any) found nothing.

* `recheck` verifies every kept copy again (every file's SHA-256 and every archive file in the
  tars), records the outcome, and reports the bad ones (CRITICAL, exit 1). A bad copy stops
  counting as pulled, so the next pull fetches it again while the observer host still has it.
* `prune` deletes the copy of day D when ``today - D > keep_days`` (30) **and** a newer copy is
  good: a backup PC whose pulls have stopped working keeps what it has instead of ageing out
  its last good copies. Receipts and check records go with their copy.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import msgspec

from observer.days import DAY_KEY, parse_day
from sinks.housekeeping.layout import MANIFEST_NAME, tree_bytes, write_file_atomic
from sinks.housekeeping.manifest import encode_doc, verify_package

RECEIPT_SUFFIX = ".receipt.json"
CHECK_SUFFIX = ".check.json"


class CopyCheck(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    day: str
    checked_at: datetime
    ok: bool
    files_checked: int = 0
    members_checked: int = 0
    problems: list[str] = []


_check_decoder = msgspec.json.Decoder(CopyCheck)


@dataclass(slots=True)
class Copy:
    day: date
    path: Path
    pulled_verified: bool
    last_check: CopyCheck | None

    @property
    def good(self) -> bool:
        return self.pulled_verified and (self.last_check is None or self.last_check.ok)


@dataclass(slots=True)
class PruneReport:
    today: date
    deleted: list[tuple[date, int]] = field(default_factory=list)  # day, bytes freed
    kept_old: list[tuple[date, str]] = field(default_factory=list)  # older than keep_days, and why


def read_check(dest: Path, day_key: str) -> CopyCheck | None:
    try:
        return _check_decoder.decode((dest / f"{day_key}{CHECK_SUFFIX}").read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


def copies(dest: Path) -> list[Copy]:
    """Every ``YYYYMMDD`` copy under `dest`, oldest first."""
    try:
        names = sorted(e.name for e in os.scandir(dest) if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out: list[Copy] = []
    for name in names:
        if not DAY_KEY.match(name):
            continue
        try:
            day = parse_day(name)
        except ValueError:
            continue
        path = dest / name
        pulled = (path / MANIFEST_NAME).is_file() and (dest / f"{name}{RECEIPT_SUFFIX}").is_file()
        out.append(Copy(day, path, pulled, read_check(dest, name)))
    return out


def is_good(dest: Path, day_key: str) -> bool:
    """The copy of `day_key` is there, was verified on pull, and its last re-check passed."""
    return any(c.good for c in copies(dest) if f"{c.day:%Y%m%d}" == day_key)


def recheck(dest: Path, now: datetime) -> list[CopyCheck]:
    """Verify every copy again and record each outcome (see the module docstring)."""
    out: list[CopyCheck] = []
    for copy in copies(dest):
        report = verify_package(copy.path)
        key = f"{copy.day:%Y%m%d}"
        problems = list(report.problems)
        if not copy.pulled_verified:
            problems.append("no receipt: this copy was never verified on pull")
        check = CopyCheck(
            day=key,
            checked_at=now,
            ok=not problems,
            files_checked=report.files_checked,
            members_checked=report.members_checked,
            problems=problems[:50],
        )
        write_file_atomic(dest / f"{key}{CHECK_SUFFIX}", encode_doc(check))
        out.append(check)
    return out


def prune(dest: Path, today: date, keep_days: int = 30) -> PruneReport:
    """Delete copies older than `keep_days` that have a newer good copy (module docstring)."""
    report = PruneReport(today)
    all_copies = copies(dest)
    newest_good = max((c.day for c in all_copies if c.good), default=None)
    for copy in all_copies:
        age = (today - copy.day).days
        if age <= keep_days:
            continue
        if newest_good is None or newest_good <= copy.day:
            report.kept_old.append((copy.day, f"age {age} > {keep_days} days but no newer good copy"))
            continue
        key = f"{copy.day:%Y%m%d}"
        freed = tree_bytes(copy.path)
        shutil.rmtree(copy.path)
        for suffix in (RECEIPT_SUFFIX, CHECK_SUFFIX):
            (dest / f"{key}{suffix}").unlink(missing_ok=True)
        report.deleted.append((copy.day, freed))
    return report
