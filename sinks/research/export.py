"""``observer export``: one KST day of the archive -> typed Parquet (zstd), checked, with a manifest.

    day_groups(D) -> tables.batches(group) -> ParquetWriter  (in OUT/.D.partial-<pid>/)
                  -> rows of every file == what the archive holds (counted independently)
                  -> manifest.json (counts, SHA-256 of every file) -> rename to OUT/D/

Output: ``OUT/YYYYMMDD/{table}_{provider}_{market}.parquet`` (swing, scalp, trades per market;
gaps, events per provider; metrics) and ``manifest.json``. The day appears whole or not at all:
a failure (torn line, count mismatch, full disk) removes the partial directory and leaves a
previous export of the day untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import msgspec
import pyarrow.parquet as pq

from observer.clock import KST
from observer.days import day_key
from sinks.research.day import Group, count_lines, day_groups, read_lines
from sinks.research.errors import CountMismatch, ResearchError
from sinks.research.tables import SCHEMAS, TABLES, batches
from sinks.research.trades import frame_record_count

MANIFEST = "manifest.json"
FILE_MODE, DIR_MODE = 0o600, 0o700


class TableFile(msgspec.Struct, frozen=True):
    file: str
    table: str
    provider: str
    market: str
    rows: int
    archive_count: int  # lines (trades: records in the raw/ frames) the archive holds
    sha256: str
    bytes: int
    sources: list[str]


class Manifest(msgspec.Struct, frozen=True):
    day: str
    created_at: datetime
    data_dir: str
    compression: str
    files: list[TableFile]

    def rows(self, table: str) -> int:
        return sum(f.rows for f in self.files if f.table == table)


class _Kind(msgspec.Struct):
    kind: str = ""


class _Frame(msgspec.Struct):
    frame: str


_kind = msgspec.json.Decoder(_Kind)
_frame = msgspec.json.Decoder(_Frame)


def archive_count(group: Group) -> int:
    """What the archive says the table must hold, counted without the table builders."""
    if group.table == "trades":
        return sum(
            frame_record_count(_frame.decode(line).frame) for p in group.files for _, line in read_lines(p)
        )
    if group.table in ("gaps", "events"):
        gap = group.table == "gaps"
        return sum(
            (_kind.decode(line).kind == "gap_marker") == gap for p in group.files for _, line in read_lines(p)
        )
    return sum(count_lines(p) for p in group.files)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Export:
    data_dir: Path
    out_dir: Path
    tables: tuple[str, ...] = TABLES
    compression: str = "zstd"
    written: list[TableFile] = field(default_factory=list)

    def run(self, day: date) -> Manifest:
        unknown = set(self.tables) - set(TABLES)
        if unknown:
            raise ResearchError(f"unknown table(s) {sorted(unknown)}; choose from {', '.join(TABLES)}")
        groups = [g for g in day_groups(self.data_dir, day) if g.table in self.tables]
        if not groups:
            raise ResearchError(f"{day.isoformat()} has none of the tables {', '.join(self.tables)}")
        self.out_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        final = self.out_dir / day_key(day)
        partial = self.out_dir / f".{day_key(day)}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(mode=DIR_MODE)
        try:
            files = [self._write(group, partial) for group in groups]
            manifest = Manifest(
                day=day.isoformat(),
                created_at=datetime.now(KST),
                data_dir=str(self.data_dir),
                compression=self.compression,
                files=files,
            )
            path = partial / MANIFEST
            path.write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
            path.chmod(FILE_MODE)
            _fsync(path)
            _fsync(partial)
            self._publish(partial, final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return manifest

    def _write(self, group: Group, into: Path) -> TableFile:
        path = into / f"{group.name}.parquet"
        with pq.ParquetWriter(path, SCHEMAS[group.table], compression=self.compression) as writer:
            for batch in batches(group):
                writer.write_batch(batch)
        path.chmod(FILE_MODE)
        _fsync(path)
        rows = pq.read_metadata(path).num_rows
        expected = archive_count(group)
        if rows != expected:
            raise CountMismatch(
                f"{group.name}: {rows} rows written, the archive holds {expected}; nothing was published"
            )
        return TableFile(
            file=path.name,
            table=group.table,
            provider=group.provider,
            market=group.market,
            rows=rows,
            archive_count=expected,
            sha256=sha256_of(path),
            bytes=path.stat().st_size,
            sources=[str(p.relative_to(self.data_dir)) for p in group.files],
        )

    @staticmethod
    def _publish(partial: Path, final: Path) -> None:
        """Swap the finished directory in; a previous export of the day goes only once the new one is in."""
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if final.exists():
            final.rename(old)
        partial.rename(final)
        _fsync(final.parent)
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(day_dir: Path) -> Manifest:
    return msgspec.json.decode((day_dir / MANIFEST).read_bytes(), type=Manifest)
