"""Where a KST day's files are, and where packages, receipts and verified markers go.

Families of a package (``<family>_YYYYMMDD.tar.gz``), member names relative to the data dir:

=========  ======================================================================================
swing      ``swing/{provider}/{market}/YYYYMMDD/*.jsonl``
scalp      ``scalp/{provider}/{market}/YYYYMMDD/*.jsonl``
raw        ``raw/{provider}/{market}/YYYYMMDD/*.jsonl``
system     ``system/events/{provider}/YYYYMMDD.jsonl``, ``system/overflow/{provider}/YYYYMMDD_overflow.jsonl``
           and the day's universe snapshots as ``universe/YYYYMMDD_{market}.json``
metrics    ``metrics/YYYYMMDD.jsonl``
=========  ======================================================================================

Only regular files are taken; symlinks are never followed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from observer.atomic import write_atomic
from observer.config import Config, data_dir, state_dir
from observer.days import DAY_KEY, day_key, parse_day

FAMILIES = ("swing", "scalp", "raw", "system", "metrics")
MARKET_FAMILIES = ("swing", "scalp", "raw")
MANIFEST_NAME = "manifest.json"
FILE_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class DayFile:
    """One archive file of a day: where it is, and its name inside the package."""

    path: Path
    name: str


def archive_name(family: str, day: date) -> str:
    return f"{family}_{day_key(day)}.tar.gz"


def backup_root(cfg: Config) -> Path:
    return data_dir(cfg) / "backup"


def package_dir(cfg: Config, day: date) -> Path:
    return backup_root(cfg) / day_key(day)


def verified_dir(cfg: Config) -> Path:
    return state_dir(cfg) / "backup_verified"


def verified_marker_path(cfg: Config, day: date) -> Path:
    return verified_dir(cfg) / f"{day_key(day)}.json"


def receipts_dir(cfg: Config) -> Path:
    configured = cfg.housekeeping.receipts_dir
    return Path(configured) if configured else data_dir(cfg) / "backup_receipts"


def _subdirs(path: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]


def _regular_files(path: Path, pattern: re.Pattern[str] | None = None) -> list[Path]:
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        Path(e.path)
        for e in entries
        if e.is_file(follow_symlinks=False) and (pattern is None or pattern.match(e.name))
    ]


def _regular_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def market_day_dirs(cfg: Config, family: str, day: date) -> list[Path]:
    """``<family>/{provider}/{market}/YYYYMMDD`` directories that exist (no symlinks)."""
    key = day_key(day)
    out: list[Path] = []
    for provider in _subdirs(data_dir(cfg) / family):
        for market in _subdirs(provider):
            candidate = market / key
            if candidate.is_dir() and not candidate.is_symlink():
                out.append(candidate)
    return out


def family_files(cfg: Config, family: str, day: date) -> list[DayFile]:
    """Every file of `family` for `day`, sorted by package name."""
    root = data_dir(cfg)
    key = day_key(day)
    out: list[DayFile] = []
    if family in MARKET_FAMILIES:
        jsonl = re.compile(r"^[^.].*\.jsonl$")
        for day_dir in market_day_dirs(cfg, family, day):
            out += [DayFile(p, p.relative_to(root).as_posix()) for p in _regular_files(day_dir, jsonl)]
    elif family == "system":
        for provider in _subdirs(root / "system" / "events"):
            p = provider / f"{key}.jsonl"
            if _regular_file(p):
                out.append(DayFile(p, p.relative_to(root).as_posix()))
        for provider in _subdirs(root / "system" / "overflow"):
            p = provider / f"{key}_overflow.jsonl"
            if _regular_file(p):
                out.append(DayFile(p, p.relative_to(root).as_posix()))
        snapshot = re.compile(rf"^{key}_[A-Za-z0-9_-]+\.json$")
        for p in _regular_files(Path(cfg.paths.universe_dir), snapshot):
            out.append(DayFile(p, f"universe/{p.name}"))
    elif family == "metrics":
        p = root / "metrics" / f"{key}.jsonl"
        if _regular_file(p):
            out.append(DayFile(p, p.relative_to(root).as_posix()))
    else:
        raise ValueError(f"unknown family {family!r}")
    return sorted(out, key=lambda f: f.name)


def event_files(cfg: Config, day: date) -> list[Path]:
    """``system/events/{provider}/YYYYMMDD.jsonl`` of every provider."""
    key = day_key(day)
    return [
        p
        for p in (provider / f"{key}.jsonl" for provider in _subdirs(data_dir(cfg) / "system" / "events"))
        if _regular_file(p)
    ]


def days_with_data(cfg: Config) -> set[date]:
    """KST days that have market files (swing, scalp, raw) or system events on disk."""
    root = data_dir(cfg)
    keys: set[str] = set()
    for family in MARKET_FAMILIES:
        for provider in _subdirs(root / family):
            for market in _subdirs(provider):
                keys.update(d.name for d in _subdirs(market) if DAY_KEY.match(d.name))
    day_file = re.compile(r"^(\d{8})\.jsonl$")
    for provider in _subdirs(root / "system" / "events"):
        keys.update(p.name[:8] for p in _regular_files(provider, day_file))
    out: set[date] = set()
    for key in keys:
        try:
            out.add(parse_day(key))
        except ValueError:
            continue
    return out


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (symlinks are not followed)."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            total += st.st_size
    return total


def ensure_dir(path: Path, mode: int = DIR_MODE, gid: int | None = None) -> Path:
    """Create `path` (parents 0700) and set its mode (and group) exactly."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    return path


def write_file_atomic(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Write `data` to `path` through a temporary file in the same dir, fsynced, renamed, dir fsynced."""
    write_atomic(path, data, mode=mode, sync_dir=True)
