"""raw/ WebSocket frames -> one row per H0STCNT0 record, every field named and typed.

Field names and types come from the parser's table (`collectors.kis.ws_parser.TRADE_FIELDS`),
lower-cased: ``stck_prpr`` int64, ``prdy_ctrt`` float64, ``stck_cntg_hour`` time32[s],
``bsop_date`` date32, codes as text; ``exchange_at`` is BSOP_DATE + STCK_CNTG_HOUR in KST.
A frame is cut like the collector cuts it (``<enc>|<tr_id>|<count>|<payload>``, records every
``len(fields) / count`` fields). Nothing is dropped: a frame that cannot be cut gives one row
with empty fields and the reason in ``parse_error``; a field that is not what its type says is
null with its text quoted in ``parse_error``; fields past the 46th go to ``extra_fields``.
Each row keeps the frame's ``record_id`` and its position ``record_index`` (0-based).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from collectors.kis.ws_parser import TRADE_FIELDS, TRADE_TR_IDS
from observer.schema import RawFrameRecord

_TS = pa.timestamp("us", tz="Asia/Seoul")
_ARROW = {
    "text": pa.string(),
    "int": pa.int64(),
    "decimal": pa.float64(),
    "time": pa.time32("s"),
    "date": pa.date32(),
}
FIELD_COLUMNS = [(name.lower(), kind) for name, kind in TRADE_FIELDS]
TRADES_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("record_index", pa.int32()),
        ("provider", pa.string()),
        ("market", pa.string()),
        ("received_at", _TS),
        ("tr_id", pa.string()),
        ("exchange_at", _TS),
    ]
    + [(name, _ARROW[kind]) for name, kind in FIELD_COLUMNS]
    + [("extra_fields", pa.list_(pa.string())), ("parse_error", pa.string())]
)
_WIDTH = len(TRADE_FIELDS)
_DATE = next(i for i, (name, _) in enumerate(TRADE_FIELDS) if name == "BSOP_DATE")
_TIME = next(i for i, (name, _) in enumerate(TRADE_FIELDS) if name == "STCK_CNTG_HOUR")
_decoder = msgspec.json.Decoder(RawFrameRecord)


def _convert(kind: str, text: str) -> Any:
    """Typed value of one field; None when empty; ValueError when it is not of its type."""
    if text == "":
        return None
    if kind == "int":
        return int(text)
    if kind == "decimal":
        return float(text)
    if kind == "time":
        if len(text) != 6 or not text.isdigit():
            raise ValueError
        return time(int(text[:2]), int(text[2:4]), int(text[4:]))
    if kind == "date":
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return text


def cut_frame(frame: str) -> tuple[str, list[list[str]], str]:
    """(tr_id, records as field lists, error); an error means no records."""
    parts = frame.split("|", 3)
    if len(parts) != 4:
        return "", [], "bad header: expected enc|tr_id|count|payload"
    enc, tr_id, count_text, payload = parts
    if enc != "0":
        return tr_id, [], f"enc flag {enc[:8]!r}: not a plain data frame"
    if not count_text.isdigit() or len(count_text) > 3 or int(count_text) == 0:
        return tr_id, [], f"bad record count {count_text[:8]!r}"
    if tr_id not in TRADE_TR_IDS:
        return tr_id, [], f"unsupported tr_id {tr_id[:20]!r}"
    count = int(count_text)
    fields = payload.split("^")
    if len(fields) % count or len(fields) // count < _WIDTH:
        return tr_id, [], f"{len(fields)} fields do not make {count} records of >= {_WIDTH}"
    stride = len(fields) // count
    return tr_id, [fields[i : i + stride] for i in range(0, len(fields), stride)], ""


def text_rows(line: bytes) -> Iterator[tuple[Any, ...]]:
    """(record_id, record_index, provider, market, received_at, tr_id, 46 field texts or None,
    extra fields or None, frame error or None) of one raw/ line: one per record, or one for an
    unusable frame. `to_batch` types them column by column."""
    raw = _decoder.decode(line)
    tr_id, records, error = cut_frame(raw.frame)
    if not records:
        yield (raw.record_id, 0, raw.provider, raw.market, raw.received_at, raw.tr_id or tr_id, None, None,
               raw.parse_error or error)  # fmt: skip
        return
    for index, fields in enumerate(records):
        yield (raw.record_id, index, raw.provider, raw.market, raw.received_at, tr_id, fields[:_WIDTH],
               fields[_WIDTH:] or None, raw.parse_error or None)  # fmt: skip


_NULL_TEXT = pa.scalar(None, pa.string())


def _typed(kind: str, texts: pa.Array) -> pa.Array:
    """The column in its type, all at once (Arrow); raises when any value is not of its type."""
    if kind == "text":
        return texts
    if kind == "int":
        return texts.cast(pa.int64())
    if kind == "decimal":
        return texts.cast(pa.float64())
    if not pc.all(pc.match_substring_regex(texts, r"^\d{6}$" if kind == "time" else r"^\d{8}$")).as_py():
        raise ValueError(kind)
    if kind == "date":
        return pc.strptime(texts, format="%Y%m%d", unit="s").cast(pa.date32())
    n = texts.cast(pa.int32())
    hours = pc.divide(n, 10000)  # integer division
    minutes = pc.subtract(pc.divide(n, 100), pc.multiply(hours, 100))
    seconds = pc.subtract(n, pc.multiply(pc.divide(n, 100), 100))
    if not pc.all(pc.and_(pc.less(hours, 24), pc.and_(pc.less(minutes, 60), pc.less(seconds, 60)))).as_py():
        raise ValueError(kind)
    total = pc.add(pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)), seconds)
    return total.cast(pa.int32()).view(pa.time32("s"))


def _column(name: str, kind: str, texts: tuple[str | None, ...], problems: dict[int, list[str]]) -> pa.Array:
    column = pa.array(texts, pa.string())
    column = pc.if_else(pc.equal(column, ""), _NULL_TEXT, column)  # an empty field is null
    try:
        return _typed(kind, column)
    except (pa.ArrowInvalid, ValueError):
        pass
    values: list[Any] = []  # some value is not of its type: find which, keep the rest
    for i, text in enumerate(texts):
        try:
            values.append(_convert(kind, text or ""))
        except ValueError:
            values.append(None)
            problems.setdefault(i, []).append(f"{name.upper()} not {kind}: {(text or '')[:20]!r}")
    return pa.array(values, _ARROW[kind])


def to_batch(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """`text_rows` rows -> one TRADES_SCHEMA batch."""
    ids, indexes, providers, markets, received, tr_ids, fields, extras, errors = zip(*rows, strict=True)
    blank = (None,) * _WIDTH
    matrix = list(zip(*(f if f is not None else blank for f in fields), strict=True))
    problems: dict[int, list[str]] = {}
    typed = [
        _column(name, kind, texts, problems)
        for (name, kind), texts in zip(FIELD_COLUMNS, matrix, strict=True)
    ]
    days = typed[_DATE].view(pa.int32()).cast(pa.int64())
    seconds = typed[_TIME].view(pa.int32()).cast(pa.int64())
    utc_s = pc.subtract(pc.add(pc.multiply(days, 86400), seconds), 9 * 3600)  # KST wall time -> UTC
    exchange_at = pc.multiply(utc_s, 1_000_000).cast(pa.timestamp("us", tz="UTC")).cast(_TS)
    if problems:
        errors = tuple(
            "; ".join(p for p in ([errors[i]] if errors[i] else []) + problems.get(i, [])) or None
            for i in range(len(rows))
        )
    head = [
        pa.array(ids, pa.string()),
        pa.array(indexes, pa.int32()),
        pa.array(providers, pa.string()),
        pa.array(markets, pa.string()),
        pa.array(received, _TS),
        pa.array(tr_ids, pa.string()),
        exchange_at,
    ]
    tail = [pa.array(extras, pa.list_(pa.string())), pa.array(errors, pa.string())]
    return pa.RecordBatch.from_arrays(head + typed + tail, schema=TRADES_SCHEMA)


def frame_record_count(frame: str) -> int:
    """How many trade rows a frame gives (its records, or 1 when it cannot be cut)."""
    return max(1, len(cut_frame(frame)[1]))
