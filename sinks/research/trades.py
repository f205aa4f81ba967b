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
from datetime import date, datetime, time
from typing import Any

import msgspec
import pyarrow as pa

from collectors.kis.ws_parser import TRADE_FIELDS, TRADE_TR_IDS
from observer.clock import KST
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


def trade_rows(line: bytes) -> Iterator[tuple[Any, ...]]:
    """Rows (TRADES_SCHEMA order) of one raw/ line: one per record, or one for an unusable frame."""
    raw = _decoder.decode(line)
    head = (raw.provider, raw.market, raw.received_at)
    tr_id, records, error = cut_frame(raw.frame)
    if not records:
        reason = raw.parse_error or error
        yield (raw.record_id, 0, *head, raw.tr_id or tr_id, None, *([None] * _WIDTH), None, reason)
        return
    for index, fields in enumerate(records):
        values: list[Any] = []
        problems: list[str] = [raw.parse_error] if raw.parse_error else []
        for (name, kind), text in zip(FIELD_COLUMNS, fields, strict=False):
            try:
                values.append(_convert(kind, text))
            except ValueError:
                values.append(None)
                problems.append(f"{name.upper()} not {kind}: {text[:20]!r}")
        day, hour = values[_DATE], values[_TIME]
        exchange_at = datetime.combine(day, hour, KST) if day is not None and hour is not None else None
        extra = fields[_WIDTH:] or None
        error_text = "; ".join(problems) or None
        yield (raw.record_id, index, *head, tr_id, exchange_at, *values, extra, error_text)


def frame_record_count(frame: str) -> int:
    """How many trade rows a frame gives (its records, or 1 when it cannot be cut)."""
    return max(1, len(cut_frame(frame)[1]))
