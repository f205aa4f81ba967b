"""``observer etl``: one KST day of the archive -> PostgreSQL, in one transaction.

    connect (timeout) -> advisory lock -> schema (create, or check version + DDL hash)
      -> loads[D].fingerprint == the archive's?  yes: nothing to do (a repeat changes nothing)
      -> per table: CREATE <t>_dD_new (LIKE parent) + CHECK (day = D) -> COPY FREEZE (CSV from
         the Arrow batches of `tables`, the same rows the Parquet export writes) -> drop the day's
         old partition -> primary key -> rename -> ATTACH PARTITION
      -> loads[D] = counts, fingerprint -> COMMIT

Readers see the old day or the new day, never a part of one: a load killed at any point rolls
back whole (the server aborts the transaction of a vanished client), and the next run loads the
day again from the start. ``record_id`` (trades: with ``record_index``) is the primary key, so a
duplicate cannot get in either.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.copy import QueuedLibpqWriter

from observer.days import day_key
from sinks.research import pgschema as S
from sinks.research.day import Group, day_groups
from sinks.research.errors import DatabaseError
from sinks.research.tables import batches

COPY_BATCH_ROWS = 8_192  # small enough that the server parses one batch while the next is built
_LOCK_KEY = 0x0B5E12E7  # pg_advisory_xact_lock: one load or migration at a time
_CSV = pacsv.WriteOptions(include_header=False)
_UTC = pa.timestamp("us", tz="UTC")
_NAIVE = pa.timestamp("us")


def safe_dsn(dsn: str) -> str:
    """The DSN as it may appear in a message: no password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    params.pop("password", None)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def fingerprint(data_dir: Path, groups: list[Group]) -> str:
    """The day's source files (path, size): archive files are append-only, so a change shows."""
    h = hashlib.sha256(f"schema {S.VERSION}\n".encode())
    for path in sorted({p for g in groups for p in g.files}):
        h.update(f"{path.relative_to(data_dir)} {path.stat().st_size}\n".encode())
    return h.hexdigest()


def _pg_array(values: list[str] | None) -> str | None:
    if values is None:
        return None
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def csv_of(batch: pa.RecordBatch, day: date) -> bytes:
    """One batch as COPY CSV rows, ``day`` first; text[] columns as array literals; timestamps as
    naive UTC (read them with ``TimeZone = 'UTC'``)."""
    arrays: list[pa.Array] = [pa.array([day] * batch.num_rows, pa.date32())]
    for column, f in zip(batch.columns, batch.schema, strict=True):
        if pa.types.is_list(f.type):
            column = pa.array([_pg_array(v) for v in column.to_pylist()], pa.string())
        elif pa.types.is_timestamp(f.type):
            # rendered as naive UTC (20x faster than with a zone); the load session's TimeZone is UTC
            column = column.cast(_UTC).cast(_NAIVE)
        arrays.append(column)
    out = io.BytesIO()
    pacsv.write_csv(pa.RecordBatch.from_arrays(arrays, names=S.columns_of(batch.schema)), out, _CSV)
    return out.getvalue()


@dataclass
class LoadResult:
    day: date
    status: str  # "loaded" | "unchanged"
    rows: dict[str, int] = field(default_factory=dict)


class Loader:
    def __init__(
        self, dsn: str, connect_timeout_s: float = 10.0, progress: Callable[[str], None] = lambda _: None
    ):
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self.progress = progress

    def connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.dsn, connect_timeout=max(1, int(self.connect_timeout_s)), application_name="observer-etl"
            )
        except psycopg.Error as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DatabaseError(f"cannot reach PostgreSQL at {safe_dsn(self.dsn)}: {reason}") from None

    def load_day(self, data_dir: Path, day: date, *, force: bool = False) -> LoadResult:
        groups = day_groups(data_dir, day)
        mark = fingerprint(data_dir, groups)
        conn = self.connect()
        try:
            with conn:
                return self._load(conn, day, groups, mark, force)
        except psycopg.Error as e:
            raise DatabaseError(
                f"load of {day.isoformat()} failed and was rolled back: {str(e).strip()[:300]}"
            ) from e
        finally:
            conn.close()

    def _load(
        self, conn: psycopg.Connection[Any], day: date, groups: list[Group], mark: str, force: bool
    ) -> LoadResult:
        cur = conn.cursor()
        if conn.info.server_version >= 140000:
            cur.execute("SET client_connection_check_interval = '1s'")  # a killed client's load aborts soon
        cur.execute("SET LOCAL TimeZone = 'UTC'")  # csv_of renders timestamps as naive UTC
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        self._ensure_schema(cur)
        cur.execute(f"SELECT fingerprint, rows FROM {S.SCHEMA}.loads WHERE day = %s", (day,))
        found = cur.fetchone()
        if found is not None and found[0] == mark and not force:
            self.progress(f"{day.isoformat()}: already loaded from the same archive files; nothing to do")
            return LoadResult(day, "unchanged", dict(found[1]))
        rows: dict[str, int] = {}
        for table, parent in S.PG_TABLES.items():
            rows[parent] = self._load_table(cur, day, table, [g for g in groups if g.table == table])
            self.progress(f"{S.SCHEMA}.{parent}: {rows[parent]} rows copied")
        cur.execute(
            f"INSERT INTO {S.SCHEMA}.loads (day, loaded_at, fingerprint, rows, schema_version) "
            "VALUES (%s, now(), %s, %s, %s) ON CONFLICT (day) DO UPDATE SET loaded_at = now(), "
            "fingerprint = EXCLUDED.fingerprint, rows = EXCLUDED.rows, schema_version = EXCLUDED.schema_version",
            (day, mark, msgspec.json.encode(rows).decode(), S.VERSION),
        )
        return LoadResult(day, "loaded", rows)

    def _ensure_schema(self, cur: psycopg.Cursor[Any]) -> None:
        cur.execute("SELECT to_regclass(%s)", (f"{S.SCHEMA}.schema_version",))
        row = cur.fetchone()
        if row is not None and row[0] is not None:
            cur.execute(
                f"SELECT version, ddl_sha256 FROM {S.SCHEMA}.schema_version ORDER BY version DESC LIMIT 1"
            )
            have = cur.fetchone()
            if have is not None and have != (S.VERSION, S.ddl_sha256()):
                raise DatabaseError(
                    f"the database has research schema version {have[0]} (DDL {have[1][:12]}), this observer "
                    f"writes version {S.VERSION} (DDL {S.ddl_sha256()[:12]}): migrate the database first"
                )
            if have is not None:
                return
        for statement in S.ddl():
            cur.execute(statement)  # type: ignore[arg-type]  # built from constants, no user input
        cur.execute(
            f"INSERT INTO {S.SCHEMA}.schema_version (version, ddl_sha256) VALUES (%s, %s)",
            (S.VERSION, S.ddl_sha256()),
        )

    def _load_table(self, cur: psycopg.Cursor[Any], day: date, table: str, groups: list[Group]) -> int:
        parent = f"{S.SCHEMA}.{S.PG_TABLES[table]}"
        name = f"{S.PG_TABLES[table]}_d{day_key(day)}"
        stage = f"{name}_new"
        cur.execute(f"DROP TABLE IF EXISTS {S.SCHEMA}.{stage}")  # type: ignore[arg-type]
        cur.execute(f"CREATE TABLE {S.SCHEMA}.{stage} (LIKE {parent} INCLUDING DEFAULTS)")  # type: ignore[arg-type]
        # checked row by row while copying (no second scan); ATTACH trusts it instead of scanning
        check = f"CHECK (day = DATE '{day.isoformat()}')"
        cur.execute(f"ALTER TABLE {S.SCHEMA}.{stage} ADD CONSTRAINT {name}_day {check}")  # type: ignore[arg-type]
        cols = ", ".join(S.quote(c) for c in S.columns(table))
        count = 0
        # a queued writer sends from its own thread: the next batch is built while the server parses this one
        # FREEZE: the table is new in this transaction, so rows are written frozen (no later hint-bit pass)
        sql = f"COPY {S.SCHEMA}.{stage} ({cols}) FROM STDIN (FORMAT csv, FREEZE true)"
        with cur.copy(sql, writer=QueuedLibpqWriter(cur)) as copy:  # type: ignore[arg-type]
            for group in groups:
                for batch in batches(group, COPY_BATCH_ROWS):
                    copy.write(csv_of(batch, day))
                    count += batch.num_rows
        keys = ", ".join(S.quote(c) for c in S.key_columns(table))
        statements = [
            f"DROP TABLE IF EXISTS {S.SCHEMA}.{name}",  # the day's previous load, if any
            f"ALTER TABLE {S.SCHEMA}.{stage} ADD CONSTRAINT {name}_pkey PRIMARY KEY ({keys})",
            f"ALTER TABLE {S.SCHEMA}.{stage} RENAME TO {name}",
            f"ALTER TABLE {parent} ATTACH PARTITION {S.SCHEMA}.{name} FOR VALUES IN (DATE '{day.isoformat()}')",
        ]
        for statement in statements:
            cur.execute(statement)  # type: ignore[arg-type]
        return count
