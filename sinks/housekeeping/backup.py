"""The daily backup package: ``backup/YYYYMMDD/{manifest.json, <family>_YYYYMMDD.tar.gz ...}``.

`create_package` packs each family of a KST day (see `sinks.housekeeping.layout`) into its own
tar.gz, hashing every archive file as it streams it into the tar and every tar as it is written,
and writes the manifest last. Everything is built in ``backup/.YYYYMMDD.tmp-*`` and renamed into
place, so a package directory that exists is complete. A second call checks the one that exists
(its manifest, and every file's size and SHA-256: a same-size corruption is found) and does
nothing when it is sound, apart from setting its modes from the current config. A damaged package
is rebuilt while every archive file it held is still on this host; when some are gone (retention
deleted them after the backup PC verified its copy) `PackageDamaged` says so, and the backup PC's
copy is the reference (``observer backup restore``).

When is a day safe to package (the caller decides *when*, this module refuses what is unsafe):

* a day after today (KST) never;
* the swing/scalp/raw files of the day must be quiet: none modified within ``quiet_real_s``
  (wall-clock seconds), otherwise the result is ``postponed``. The housekeeper packages today only
  after ``backup_at`` (which must be after both sessions end), past days at any time;
* system/ and metrics/ files of today are still appended to (events, the 5-minute metrics line):
  the package takes each file's content up to its last complete line at packaging time. Events
  written after that (the backup's own ``backup_created``, retention) are not in the package.

Modes: files 0600, dirs 0700. With ``[housekeeping] backup_group`` set, ``backup/`` and the package
dirs are 0750 and their files 0640, group ``backup_group``, so the SFTP backup user (a member of
that group) can read them; the archive itself keeps 0600/0700. Modes follow the config in force:
setting (or clearing) ``backup_group`` later re-applies them to existing packages on the next run.
"""

from __future__ import annotations

import grp
import os
import shutil
import socket
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import Literal

from observer.atomic import fsync_dir
from observer.clock import KST
from observer.config import Config
from observer.days import day_key
from sinks.housekeeping.layout import (
    DIR_MODE,
    FAMILIES,
    FILE_MODE,
    MANIFEST_NAME,
    MARKET_FAMILIES,
    archive_name,
    backup_root,
    ensure_dir,
    family_files,
    package_dir,
    write_file_atomic,
)
from sinks.housekeeping.manifest import (
    FamilyEntry,
    FileEntry,
    Manifest,
    encode_doc,
    hash_file,
    read_manifest,
)
from sinks.housekeeping.packing import PackingStopped, pack_family

PackageStatus = Literal["created", "exists", "empty", "postponed"]


class BackupError(Exception):
    """The package could not be built; nothing was left behind."""


class BackupCancelled(BackupError):
    """Stopped on request (the worker is stopping); nothing was left behind."""


class PackageDamaged(BackupError):
    """The package on disk is damaged and cannot be rebuilt: archive files it held are gone."""


@dataclass(slots=True)
class PackageResult:
    day: date
    status: PackageStatus
    path: Path
    files: int = 0
    members: int = 0
    lines: int = 0
    bytes_in: int = 0  # archive bytes packed
    bytes_out: int = 0  # package bytes written
    empty_families: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    reason: str = ""
    replaced_damaged: bool = False


@dataclass(frozen=True, slots=True)
class Modes:
    file: int
    dir: int
    gid: int | None

    @classmethod
    def from_config(cls, cfg: Config) -> Modes:
        group = cfg.housekeeping.backup_group
        if not group:
            return cls(FILE_MODE, DIR_MODE, None)
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise BackupError(f"[housekeeping] backup_group {group!r} does not exist") from None
        return cls(0o640, 0o750, gid)


def observer_version() -> str:
    try:
        return metadata.version("krx-market-observer")
    except metadata.PackageNotFoundError:
        return "unknown"


def newest_market_mtime(cfg: Config, day: date) -> float | None:
    newest: float | None = None
    for family in MARKET_FAMILIES:
        for f in family_files(cfg, family, day):
            try:
                mtime = f.path.stat().st_mtime
            except FileNotFoundError:
                continue
            newest = mtime if newest is None else max(newest, mtime)
    return newest


def package_problems(package: Path) -> list[str]:
    """What is wrong with an existing package: its manifest, and every listed file's size and
    SHA-256 (the tars are not decompressed: their members were hashed when they were written)."""
    try:
        manifest, _ = read_manifest(package)
    except ValueError as e:
        return [str(e)]
    problems: list[str] = []
    for entry in manifest.files:
        try:
            digest, size = hash_file(package / entry.name)
        except OSError as e:
            problems.append(f"{entry.name}: {e.strerror}")
            continue
        if (digest, size) != (entry.sha256, entry.size):
            problems.append(
                f"{entry.name}: sha256 mismatch"
                if size == entry.size
                else f"{entry.name}: size {size} != {entry.size}"
            )
    return problems


def _gone_members(cfg: Config, package: Path, day: date) -> list[str] | None:
    """Archive files the package's manifest lists that are no longer on disk at their full size
    (None: the manifest is unreadable, so nobody can tell)."""
    try:
        manifest, _ = read_manifest(package)
    except ValueError:
        return None
    present = {f.name: f.path for family in FAMILIES for f in family_files(cfg, family, day)}
    gone: list[str] = []
    for fam in manifest.families:
        for m in fam.members:
            path = present.get(m.name)
            try:
                if path is None or path.stat().st_size < m.size:
                    gone.append(m.name)
            except OSError:
                gone.append(m.name)
    return gone


def apply_modes(cfg: Config, package: Path, modes: Modes) -> None:
    """Set ``backup/``, `package` and its files to the modes (and group) of the current config."""
    ensure_dir(backup_root(cfg), modes.dir, modes.gid)
    ensure_dir(package, modes.dir, modes.gid)
    for entry in os.scandir(package):
        if entry.is_file(follow_symlinks=False):
            if modes.gid is not None:
                os.chown(entry.path, -1, modes.gid)
            os.chmod(entry.path, modes.file)


def create_package(
    cfg: Config,
    day: date,
    *,
    now: datetime,
    quiet_real_s: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PackageResult:
    """Build the package of `day` unless it exists (idempotent). See the module docstring.

    Raises `BackupError` (and `BackupCancelled`) with nothing left behind."""
    t0 = time.monotonic()
    today = now.astimezone(KST).date()
    final = package_dir(cfg, day)
    result = PackageResult(day, "created", final)
    if day > today:
        raise BackupError(f"{day} is after today ({today} KST): nothing to package yet")
    modes = Modes.from_config(cfg)
    if final.exists():
        problems = package_problems(final)
        if not problems:
            try:
                apply_modes(cfg, final, modes)
            except OSError as e:
                raise BackupError(f"package {day_key(day)}: modes not set: {e}") from e
            result.status = "exists"
            return result
        _refuse_unrebuildable(cfg, final, day, problems)
        result.reason = "; ".join(problems[:3])
    by_family = {family: family_files(cfg, family, day) for family in FAMILIES}
    if not any(by_family.values()):
        result.status = "empty"
        result.reason = "no archive files for this day"
        return result
    quiet_s = cfg.housekeeping.backup_quiet_real_s if quiet_real_s is None else quiet_real_s
    newest = newest_market_mtime(cfg, day)
    if newest is not None and time.time() - newest < quiet_s:
        result.status = "postponed"
        result.reason = (
            f"market files of {day} were written {time.time() - newest:.0f} s ago (< {quiet_s:.0f} s)"
        )
        return result
    root = backup_root(cfg)
    tmp = root / f".{day_key(day)}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        ensure_dir(root, modes.dir, modes.gid)
        ensure_dir(tmp, modes.dir, modes.gid)
        families: list[FamilyEntry] = []
        files: list[FileEntry] = []
        for family in FAMILIES:
            listed = by_family[family]
            if not listed:
                families.append(FamilyEntry(family=family, archive=None, note="no files for this day"))
                result.empty_families.append(family)
                continue
            fam, entry, packed = pack_family(
                family,
                listed,
                tmp / archive_name(family, day),
                modes.file,
                modes.gid,
                cfg.housekeeping.backup_compress_level,
                should_stop,
            )
            families.append(fam)
            files.append(entry)
            result.members += len(fam.members)
            result.lines += sum(m.lines for m in fam.members)
            result.bytes_in += packed
            result.bytes_out += entry.size
        manifest = Manifest(
            day=day_key(day),
            created_at=now.astimezone(KST),
            observer_version=observer_version(),
            host=socket.gethostname(),
            families=families,
            files=files,
        )
        write_file_atomic(tmp / MANIFEST_NAME, encode_doc(manifest), modes.file)
        if modes.gid is not None:
            os.chown(tmp / MANIFEST_NAME, -1, modes.gid)
        fsync_dir(tmp)
        replaced = _set_aside_damaged(final)
        os.rename(tmp, final)
        fsync_dir(root)
        if replaced is not None:
            shutil.rmtree(replaced, ignore_errors=True)
            result.replaced_damaged = True
    except BackupError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except PackingStopped as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BackupCancelled("stop requested") from e
    except (OSError, tarfile.TarError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BackupError(f"package {day_key(day)} not written: {e}") from e
    result.files = len(files) + 1
    result.duration_s = time.monotonic() - t0
    return result


def _refuse_unrebuildable(cfg: Config, final: Path, day: date, problems: list[str]) -> None:
    from sinks.housekeeping.receipts import is_verified

    gone = _gone_members(cfg, final, day)
    what = "; ".join(problems[:3])
    if gone is None and is_verified(cfg, day):
        raise PackageDamaged(
            f"package {day_key(day)} is damaged ({what}) and its manifest unreadable: it cannot be "
            "rebuilt safely; the backup PC holds the verified copy (observer backup restore)"
        )
    if gone:
        raise PackageDamaged(
            f"package {day_key(day)} is damaged ({what}) and cannot be rebuilt: {len(gone)} archive "
            f"file(s) it holds are gone from this host (e.g. {gone[0]}); the backup PC holds the "
            "verified copy (observer backup restore)"
        )


def _set_aside_damaged(final: Path) -> Path | None:
    """An incomplete or damaged package dir (not made by us: ours are renamed in whole) is moved
    aside so the new one can take its name; the caller removes it after the rename."""
    if not final.exists():
        return None
    aside = final.with_name(f".{final.name}.damaged-{time.time_ns()}")
    os.rename(final, aside)
    return aside
