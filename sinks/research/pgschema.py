"""The PostgreSQL schema of the research load, versioned.

Every output table of `tables` becomes a table in schema ``observer``, partitioned by ``day``
(LIST, one partition per KST day, named ``<table>_dYYYYMMDD``), with ``day`` and the Parquet
columns (same names, Arrow types mapped below) and a primary key on ``record_id`` (trades:
``record_id, record_index``). ``observer.schema_version`` records the version and the SHA-256 of
the DDL it was created with: a database made by a different DDL is refused rather than loaded.
``observer.loads`` has one row per loaded day (row counts, the source fingerprint).
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from sinks.research.tables import SCHEMAS

SCHEMA = "observer"
VERSION = 1
PG_TABLES = {
    "swing": "swing_snapshots",
    "scalp": "scalp_samples",
    "trades": "trades",
    "gaps": "gap_markers",
    "events": "system_events",
    "metrics": "metrics",
}


def pg_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "text"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_int32(t):
        return "integer"
    if pa.types.is_int16(t):
        return "smallint"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t):
        return "timestamptz"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_list(t) and pa.types.is_string(t.value_type):
        return "text[]"
    raise TypeError(f"no PostgreSQL type for {t}")


def key_columns(table: str) -> tuple[str, ...]:
    return ("day", "record_id", "record_index") if table == "trades" else ("day", "record_id")


def columns(table: str) -> list[str]:
    return ["day", *SCHEMAS[table].names]


def columns_of(schema: pa.Schema) -> list[str]:
    return ["day", *schema.names]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def parent_ddl(table: str) -> str:
    cols = ",\n    ".join(["day date NOT NULL"] + [f"{_q(f.name)} {pg_type(f.type)}" for f in SCHEMAS[table]])
    key = ", ".join(_q(c) for c in key_columns(table))
    return (
        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PG_TABLES[table]} (\n    {cols},\n"
        f"    PRIMARY KEY ({key})\n) PARTITION BY LIST (day)"
    )


def ddl() -> list[str]:
    return [
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version "
        "(version integer PRIMARY KEY, ddl_sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.loads (day date PRIMARY KEY, loaded_at timestamptz NOT NULL, "
        "fingerprint text NOT NULL, rows jsonb NOT NULL, schema_version integer NOT NULL)",
        *(parent_ddl(t) for t in PG_TABLES),
    ]


def ddl_sha256() -> str:
    return hashlib.sha256("\n;\n".join(ddl()).encode()).hexdigest()


def quote(name: str) -> str:
    return _q(name)
