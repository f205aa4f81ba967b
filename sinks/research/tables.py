"""Archive lines -> typed Arrow record batches, one schema per output table, and back.

Column conventions (the Parquet files and the PostgreSQL tables share them): timestamps are
``timestamp[us, tz=Asia/Seoul]``, prices, volumes and sizes ``int64`` (KRW / shares), every table
keeps ``record_id``; nested JSON that has no fixed shape (``details``, metrics ``records``/``gaps``)
is kept as JSON text. A pattern record holds one instrument; its fields are flattened
(``observation.instruments[0].price.close`` -> ``close``, ``timestamp`` -> ``exchange_at``).

`rebuild` turns rows back into the archive's JSON shape: the round trip a test checks field by field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from observer.schema import GapMarker, MetricsSnapshot, PatternRecord, SystemEvent
from sinks.research.day import Group, read_lines
from sinks.research.errors import DamagedArchive
from sinks.research.trades import TRADES_SCHEMA, text_rows, to_batch

TZ = "Asia/Seoul"
TS = pa.timestamp("us", tz=TZ)
BATCH_ROWS = 50_000

_PATTERN_HEAD = [
    ("record_id", pa.string()),
    ("session_id", pa.string()),
    ("generated_at", TS),
    ("schema_version", pa.string()),
    ("field_count", pa.int32()),
    ("validation_passed", pa.bool_()),
    ("guard_passed", pa.bool_()),
    ("quality_flag", pa.string()),
    ("mitigation_level", pa.int16()),
    ("track", pa.string()),
    ("slot_number", pa.int16()),
    ("source", pa.string()),
    ("market", pa.string()),
    ("captured_at", TS),
    ("meta_schema_version", pa.string()),
]
# instrument fields in Instrument order; ``price`` is split into open/high/low/close
_INSTRUMENT = [
    ("symbol", pa.string()),
    ("exchange_at", TS),
    ("received_at", TS),
    ("open", pa.int64()),
    ("high", pa.int64()),
    ("low", pa.int64()),
    ("close", pa.int64()),
    ("volume", pa.int64()),
    ("bid_price", pa.int64()),
    ("ask_price", pa.int64()),
    ("bid_size", pa.int64()),
    ("ask_size", pa.int64()),
    ("prev_close", pa.int64()),
    ("trade_count", pa.int64()),
    ("window_volume", pa.int64()),
    ("window_high", pa.int64()),
    ("window_low", pa.int64()),
    ("vwap", pa.float64()),
    ("window_start", TS),
    ("window_end", TS),
    ("sweep_id", pa.string()),
]
PATTERN_SCHEMA = pa.schema(_PATTERN_HEAD + _INSTRUMENT)
EVENTS_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("type", pa.string()),
        ("severity", pa.string()),
        ("at", TS),
        ("source", pa.string()),
        ("provider", pa.string()),
        ("message", pa.string()),
        ("details", pa.string()),
    ]
)
GAPS_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("track", pa.string()),
        ("provider", pa.string()),
        ("market", pa.string()),
        ("symbols", pa.list_(pa.string())),
        ("start", TS),
        ("end", TS),
        ("reason", pa.string()),
        ("detected_by", pa.string()),
        ("details", pa.string()),
    ]
)
METRICS_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("at", TS),
        ("track_a_collection_rate", pa.float64()),
        ("track_b_collection_rate", pa.float64()),
        ("ws_reconnect_count", pa.int64()),
        ("slot_utilization", pa.float64()),
        ("mitigation_level", pa.int16()),
        ("disk_usage_percent", pa.float64()),
        ("cpu_usage_percent", pa.float64()),
        ("memory_usage_percent", pa.float64()),
        ("latency_p50_ms", pa.float64()),
        ("latency_p95_ms", pa.float64()),
        ("latency_p99_ms", pa.float64()),
        ("records", pa.string()),
        ("gaps", pa.string()),
    ]
)
SCHEMAS: dict[str, pa.Schema] = {
    "swing": PATTERN_SCHEMA,
    "scalp": PATTERN_SCHEMA,
    "trades": TRADES_SCHEMA,
    "gaps": GAPS_SCHEMA,
    "events": EVENTS_SCHEMA,
    "metrics": METRICS_SCHEMA,
}
TABLES = tuple(SCHEMAS)

_pattern = msgspec.json.Decoder(PatternRecord)
_system = msgspec.json.Decoder(SystemEvent | GapMarker)
_metrics = msgspec.json.Decoder(MetricsSnapshot)
_json = msgspec.json.Encoder(order="sorted")


def _text(value: object) -> str:
    return _json.encode(value).decode()


def _pattern_row(rec: PatternRecord) -> tuple[Any, ...]:
    obs = rec.observation
    if len(obs.instruments) != 1:
        raise ValueError(f"{len(obs.instruments)} instruments (one expected)")
    i = obs.instruments[0]
    p = i.price
    return (
        rec.record_id, rec.session_id, rec.generated_at, rec.schema.version, rec.schema.field_count,
        rec.quality.validation_passed, rec.quality.guard_passed, rec.quality.quality_flag,
        rec.interpretation.mitigation_level, rec.interpretation.track, rec.interpretation.slot_number,
        obs.meta.source, obs.meta.market, obs.meta.captured_at, obs.meta.schema_version,
        i.symbol, i.timestamp, i.received_at, p["open"], p["high"], p["low"], p["close"], i.volume,
        i.bid_price, i.ask_price, i.bid_size, i.ask_size, i.prev_close, i.trade_count, i.window_volume,
        i.window_high, i.window_low, i.vwap, i.window_start, i.window_end, i.sweep_id,
    )  # fmt: skip


def _rows(group: Group) -> Iterator[tuple[Any, ...]]:
    """Row tuples in the table's schema order, strictly: a bad line raises `DamagedArchive`."""
    for path in group.files:
        for number, line in read_lines(path):
            try:
                if group.table in ("swing", "scalp"):
                    yield _pattern_row(_pattern.decode(line))
                elif group.table == "trades":
                    yield from text_rows(line)
                elif group.table == "metrics":
                    m = _metrics.decode(line)
                    yield (
                        m.record_id, m.at, m.track_a_collection_rate, m.track_b_collection_rate,
                        m.ws_reconnect_count, m.slot_utilization, m.mitigation_level, m.disk_usage_percent,
                        m.cpu_usage_percent, m.memory_usage_percent, m.latency_p50_ms, m.latency_p95_ms,
                        m.latency_p99_ms, _text(m.records), _text(m.gaps),
                    )  # fmt: skip
                else:
                    e = _system.decode(line)
                    if group.table == "gaps" and isinstance(e, GapMarker):
                        yield (
                            e.record_id, e.track, e.provider, e.market, e.symbols, e.start, e.end,
                            e.reason, e.detected_by, _text(e.details),
                        )  # fmt: skip
                    elif group.table == "events" and isinstance(e, SystemEvent):
                        yield (
                            e.record_id, e.type, e.severity, e.at, e.source, e.provider, e.message,
                            _text(e.details),
                        )  # fmt: skip
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError, KeyError) as err:
                raise DamagedArchive(f"{path}:{number}: not a {group.table} line: {str(err)[:200]}") from err


def batches(group: Group, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The group's rows as record batches of at most `batch_rows` rows."""
    if group.table in ("swing", "scalp"):
        for path in group.files:
            table = _pattern_file(path)
            if table is None:  # let the line-by-line decoder say which line is wrong
                yield from _batches_of(Group(group.table, group.provider, group.market, (path,)), batch_rows)
            else:
                yield from table.to_batches(max_chunksize=batch_rows)
        return
    yield from _batches_of(group, batch_rows)


def _batches_of(group: Group, batch_rows: int) -> Iterator[pa.RecordBatch]:
    rows: list[tuple[Any, ...]] = []
    for row in _rows(group):
        rows.append(row)
        if len(rows) == batch_rows:
            yield _batch(group.table, rows)
            rows = []
    if rows:
        yield _batch(group.table, rows)


_UTC = pa.timestamp("us", tz="UTC")
_JSON_INSTRUMENT = pa.struct(
    [
        (n, _UTC if t == TS else t)
        for n, t in _INSTRUMENT
        if n not in ("open", "high", "low", "close", "exchange_at")
    ]
    + [("timestamp", _UTC), ("price", pa.struct([(k, pa.int64()) for k in ("open", "high", "low", "close")]))]
)
_JSON_PATTERN = pa.schema(
    [
        ("record_id", pa.string()),
        ("session_id", pa.string()),
        ("generated_at", _UTC),
        ("observation", pa.struct([
            ("meta", pa.struct([("source", pa.string()), ("market", pa.string()), ("captured_at", _UTC),
                                ("schema_version", pa.string())])),
            ("instruments", pa.list_(_JSON_INSTRUMENT)),
        ])),
        ("schema", pa.struct([("version", pa.string()), ("field_count", pa.int32())])),
        ("quality", pa.struct([("validation_passed", pa.bool_()), ("guard_passed", pa.bool_()),
                               ("quality_flag", pa.string())])),
        ("interpretation", pa.struct([("mitigation_level", pa.int16()), ("track", pa.string()),
                                      ("slot_number", pa.int16())])),
    ]
)  # fmt: skip
_JSON_OPTIONS = pajson.ParseOptions(explicit_schema=_JSON_PATTERN, unexpected_field_behavior="error")


def _pattern_file(path: Path) -> pa.Table | None:
    """A whole swing/scalp file parsed by Arrow's JSON reader (C++, strict: an unknown field is an
    error), flattened to PATTERN_SCHEMA; None when anything is off (the caller re-reads it line by line)."""
    with path.open("rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return pa.Table.from_batches([], PATTERN_SCHEMA)
        f.seek(-1, 2)
        if f.read(1) != b"\n":
            return None
    try:
        t = pajson.read_json(path, parse_options=_JSON_OPTIONS)
    except pa.ArrowInvalid:
        return None
    obs = t.column("observation").combine_chunks()
    instruments = obs.field("instruments")
    if t.num_rows and pc.min_max(pc.list_value_length(instruments)).as_py() != {"min": 1, "max": 1}:
        return None
    inst = pc.list_element(instruments, 0)
    meta = obs.field("meta")
    price = inst.field("price")

    def part(struct: str, name: str) -> pa.Array:
        return t.column(struct).combine_chunks().field(name)

    head = {
        "record_id": t.column("record_id"),
        "session_id": t.column("session_id"),
        "generated_at": t.column("generated_at"),
        "schema_version": part("schema", "version"),
        "field_count": part("schema", "field_count"),
        "validation_passed": part("quality", "validation_passed"),
        "guard_passed": part("quality", "guard_passed"),
        "quality_flag": part("quality", "quality_flag"),
        "mitigation_level": part("interpretation", "mitigation_level"),
        "track": part("interpretation", "track"),
        "slot_number": part("interpretation", "slot_number"),
        "source": meta.field("source"),
        "market": meta.field("market"),
        "captured_at": meta.field("captured_at"),
        "meta_schema_version": meta.field("schema_version"),
        "exchange_at": inst.field("timestamp"),
        **{k: price.field(k) for k in ("open", "high", "low", "close")},
    }
    arrays = [(head[f.name] if f.name in head else inst.field(f.name)).cast(f.type) for f in PATTERN_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=PATTERN_SCHEMA)


def _batch(table: str, rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    if table == "trades":
        return to_batch(rows)
    schema = SCHEMAS[table]
    columns = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )


# --------------------------------------------------------------------------- the way back


def rebuild(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of `table` (``pa.Table.to_pylist()``) -> archive-shaped dicts (timestamps as datetimes;
    trades: one dict of named fields per record)."""
    out: list[dict[str, Any]] = []
    head = [name for name, _ in _PATTERN_HEAD]
    for r in rows:
        if table in ("swing", "scalp"):
            inst = {name: r[name] for name, _ in _INSTRUMENT}
            inst["timestamp"] = inst.pop("exchange_at")
            inst["price"] = {k: inst.pop(k) for k in ("open", "high", "low", "close")}
            h = {k: r[k] for k in head}
            out.append(
                {
                    "record_id": h["record_id"],
                    "session_id": h["session_id"],
                    "generated_at": h["generated_at"],
                    "observation": {
                        "meta": {
                            "source": h["source"],
                            "market": h["market"],
                            "captured_at": h["captured_at"],
                            "schema_version": h["meta_schema_version"],
                        },
                        "instruments": [inst],
                    },
                    "schema": {"version": h["schema_version"], "field_count": h["field_count"]},
                    "quality": {k: h[k] for k in ("validation_passed", "guard_passed", "quality_flag")},
                    "interpretation": {k: h[k] for k in ("mitigation_level", "track", "slot_number")},
                }
            )
        elif table == "events":
            out.append({"kind": "system_event", **r, "details": json.loads(r["details"])})
        elif table == "gaps":
            out.append({"kind": "gap_marker", **r, "details": json.loads(r["details"]), "type": "gap_marker"})
        elif table == "metrics":
            out.append(
                {"kind": "metrics", **r, "records": json.loads(r["records"]), "gaps": json.loads(r["gaps"])}
            )
        else:
            out.append(dict(r))
    return out
