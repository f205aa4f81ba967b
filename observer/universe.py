"""The day's universe: which symbols Track A sweeps and the core accepts.

On disk: ``<universe_dir>/YYYYMMDD_{market}.json`` — one `UniverseSnapshot`, written atomically
once and never rewritten. `load_universe` falls back to the latest earlier snapshot and says so
(the caller turns ``fallback_from`` into a system event). Building it lives with the collectors.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import msgspec

from observer.atomic import write_atomic


class UniverseError(Exception):
    """No usable universe snapshot."""


class UniverseEntry(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    name: str
    market: str
    prev_close: int


class UniverseSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    date: date
    market: str
    provider: str
    created_at: datetime
    source: str
    min_prev_close_krw: int
    symbols: list[UniverseEntry]


class LoadedUniverse(msgspec.Struct, frozen=True, kw_only=True):
    snapshot: UniverseSnapshot
    path: str
    fallback_from: date | None = None  # set when the day's own snapshot was missing


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(UniverseSnapshot)


def snapshot_path(directory: Path, day: date, market: str) -> Path:
    return directory / f"{day:%Y%m%d}_{market}.json"


def encode_snapshot(snap: UniverseSnapshot) -> bytes:
    return msgspec.json.format(_encoder.encode(snap), indent=1) + b"\n"


def write_snapshot_once(directory: Path, snap: UniverseSnapshot) -> tuple[Path, bool]:
    """Write the snapshot atomically unless one exists for that day. Returns (path, written)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = snapshot_path(directory, snap.date, snap.market)
    if path.exists():
        return path, False
    # exclusive: if another builder won the race, its snapshot is never rewritten
    written = write_atomic(path, encode_snapshot(snap), sync_dir=True, exclusive=True)
    return path, written


def read_snapshot(path: Path) -> UniverseSnapshot:
    try:
        return _decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as e:
        raise UniverseError(f"{path}: unreadable universe snapshot: {e}") from e


def load_universe(directory: Path, day: date, market: str) -> LoadedUniverse:
    """The day's snapshot, or the latest earlier one (``fallback_from`` = the day asked for)."""
    path = snapshot_path(directory, day, market)
    if path.exists():
        return LoadedUniverse(snapshot=read_snapshot(path), path=str(path))
    earlier = sorted(
        p for p in directory.glob(f"*_{market}.json") if p.name[:8].isdigit() and p.name[:8] < f"{day:%Y%m%d}"
    )
    if not earlier:
        raise UniverseError(f"no universe snapshot for {market} on or before {day} in {directory}")
    return LoadedUniverse(snapshot=read_snapshot(earlier[-1]), path=str(earlier[-1]), fallback_from=day)
