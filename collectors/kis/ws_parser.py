"""KIS WebSocket frames -> schema messages. Provider vocabulary stops here.

Two kinds of text frame arrive on the one socket:

* **data** ``<enc>|<tr_id>|<count>|<payload>``: `parse_data_frame` -> `ParsedFrame` (ticks, or a
  rejection reason for the whole frame). A real H0STCNT0 frame with one record (46 fields)::

      0|H0STCNT0|001|005930^093015^71500^2^500^0.70^71420.55^71000^71600^70900^71500^71400^10^
      1523400^108794212000^5012^6120^1108^122.11^356012^434102^1^55.01^61.23^090000^2^500^
      091522^5^-100^090011^2^600^20261126^20^N^1200^3400^812000^953000^0.03^1423000^107.05^0^^

  (one line on the wire). ``count`` records are concatenated with ``^`` too: split on ``^`` and
  cut every ``len(fields) / count`` fields; more than 46 per record (KIS appends fields over time)
  is accepted, a count that does not divide the fields rejects the whole frame.
* **control** JSON: subscription acks and ``PINGPONG`` -> `parse_control_frame` -> `ControlFrame`::

      {"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},
       "body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS","output":{"iv":"..","key":".."}}}
      {"header":{"tr_id":"PINGPONG","datetime":"20261126093015"}}

Neither function raises on bad input: the result carries the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import msgspec

from collectors.kis.normalize import int_or_zero
from observer.clock import KST
from observer.schema import Tick

TRADE_TR_IDS = frozenset({"H0STCNT0", "H0NXCNT0", "H0UNCNT0"})  # KRX, Nextrade, combined: one layout
MAX_RECORDS_PER_FRAME = 999  # the count is three digits

FieldKind = Literal["text", "int", "decimal", "time", "date"]

# H0STCNT0 fields in wire order (kis_protocol.md) with the type of their text: ``int`` KRW prices,
# quantities and counts; ``decimal`` rates and averages; ``time`` HHMMSS (KST); ``date`` YYYYMMDD;
# ``text`` codes and flags. Readers of raw/ frames (the research export) name columns from it.
TRADE_FIELDS: tuple[tuple[str, FieldKind], ...] = (
    ("MKSC_SHRN_ISCD", "text"),
    ("STCK_CNTG_HOUR", "time"),
    ("STCK_PRPR", "int"),
    ("PRDY_VRSS_SIGN", "text"),
    ("PRDY_VRSS", "int"),
    ("PRDY_CTRT", "decimal"),
    ("WGHN_AVRG_STCK_PRC", "decimal"),
    ("STCK_OPRC", "int"),
    ("STCK_HGPR", "int"),
    ("STCK_LWPR", "int"),
    ("ASKP1", "int"),
    ("BIDP1", "int"),
    ("CNTG_VOL", "int"),
    ("ACML_VOL", "int"),
    ("ACML_TR_PBMN", "int"),
    ("SELN_CNTG_CSNU", "int"),
    ("SHNU_CNTG_CSNU", "int"),
    ("NTBY_CNTG_CSNU", "int"),
    ("CTTR", "decimal"),
    ("SELN_CNTG_SMTN", "int"),
    ("SHNU_CNTG_SMTN", "int"),
    ("CCLD_DVSN", "text"),
    ("SHNU_RATE", "decimal"),
    ("PRDY_VOL_VRSS_ACML_VOL_RATE", "decimal"),
    ("OPRC_HOUR", "time"),
    ("OPRC_VRSS_PRPR_SIGN", "text"),
    ("OPRC_VRSS_PRPR", "int"),
    ("HGPR_HOUR", "time"),
    ("HGPR_VRSS_PRPR_SIGN", "text"),
    ("HGPR_VRSS_PRPR", "int"),
    ("LWPR_HOUR", "time"),
    ("LWPR_VRSS_PRPR_SIGN", "text"),
    ("LWPR_VRSS_PRPR", "int"),
    ("BSOP_DATE", "date"),
    ("NEW_MKOP_CLS_CODE", "text"),
    ("TRHT_YN", "text"),
    ("ASKP_RSQN1", "int"),
    ("BIDP_RSQN1", "int"),
    ("TOTAL_ASKP_RSQN", "int"),
    ("TOTAL_BIDP_RSQN", "int"),
    ("VOL_TNRT", "decimal"),
    ("PRDY_SMNS_HOUR_ACML_VOL", "int"),
    ("PRDY_SMNS_HOUR_ACML_VOL_RATE", "decimal"),
    ("HOUR_CLS_CODE", "text"),
    ("MRKT_TRTM_CLS_CODE", "text"),
    ("VI_STND_PRC", "int"),
)
_AT = {name: i for i, (name, _) in enumerate(TRADE_FIELDS)}
_CODE, _HOUR, _PRICE, _SIGN, _CHANGE = (
    _AT[n] for n in ("MKSC_SHRN_ISCD", "STCK_CNTG_HOUR", "STCK_PRPR", "PRDY_VRSS_SIGN", "PRDY_VRSS")
)
_OPEN, _HIGH, _LOW, _ASK1, _BID1 = (_AT[n] for n in ("STCK_OPRC", "STCK_HGPR", "STCK_LWPR", "ASKP1", "BIDP1"))
_CNTG_VOL, _ACML_VOL, _ACML_PBMN = _AT["CNTG_VOL"], _AT["ACML_VOL"], _AT["ACML_TR_PBMN"]
_CCLD_DVSN, _BSOP_DATE, _MKOP_CLS, _TRHT_YN = (
    _AT[n] for n in ("CCLD_DVSN", "BSOP_DATE", "NEW_MKOP_CLS_CODE", "TRHT_YN")
)
_ASK_RSQN1, _BID_RSQN1, _HOUR_CLS = _AT["ASKP_RSQN1"], _AT["BIDP_RSQN1"], _AT["HOUR_CLS_CODE"]
TRADE_FIELD_COUNT = len(TRADE_FIELDS)  # 46

_SIDE: dict[str, Literal["buy", "sell", "none"]] = {"1": "buy", "5": "sell"}
_NEGATIVE_SIGNS = frozenset({"4", "5"})  # lower limit, down
_ZERO_SIGNS = frozenset({"3"})  # flat
_SIGNS = frozenset({"", "1", "2", "3", "4", "5"})


@dataclass(slots=True)
class ParsedFrame:
    """What one data frame held. ``error`` non-empty: rejected whole, ``ticks`` empty."""

    tr_id: str
    ticks: list[Tick] = field(default_factory=list)
    error: str = ""
    record_count: int = 0  # the count the header announced (0 when the header is unreadable)


class _RecordError(ValueError):
    pass


class _ExchangeTimes:
    """BSOP_DATE + HHMMSS -> KST datetime, memoised (many records share a second)."""

    def __init__(self, max_entries: int = 4096):
        self._cache: dict[str, datetime] = {}
        self._max = max_entries

    def get(self, day: str, hhmmss: str) -> datetime:
        key = day + hhmmss
        at = self._cache.get(key)
        if at is None:
            if len(day) != 8 or len(hhmmss) != 6 or not key.isdigit():
                raise _RecordError(f"bad exchange time {day!r} {hhmmss!r}")
            try:
                at = datetime(
                    int(day[:4]),
                    int(day[4:6]),
                    int(day[6:]),
                    int(hhmmss[:2]),
                    int(hhmmss[2:4]),
                    int(hhmmss[4:]),
                    tzinfo=KST,
                )
            except ValueError as e:
                raise _RecordError(f"bad exchange time {day!r} {hhmmss!r}") from e
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[key] = at
        return at


_times = _ExchangeTimes()


def _int(fields: list[str], i: int, name: str) -> int:
    text = fields[i]
    try:
        return int(text)
    except ValueError:
        raise _RecordError(f"{name} not an integer: {text[:20]!r}") from None


def trade_tick(fields: list[str], received_at: datetime) -> Tick:
    """One H0STCNT0 record (its 46+ fields) -> Tick. Raises _RecordError on an unusable record."""
    symbol = fields[_CODE]
    if not symbol or len(symbol) > 12:
        raise _RecordError(f"bad symbol {symbol[:20]!r}")
    change = int_or_zero(fields[_CHANGE])
    sign = fields[_SIGN]
    if sign in _NEGATIVE_SIGNS:
        change = -abs(change)
    elif sign in _ZERO_SIGNS:
        change = 0
    elif sign:
        change = abs(change)
    price = _int(fields, _PRICE, "STCK_PRPR")
    if price <= 0:
        raise _RecordError(f"STCK_PRPR not positive: {price}")
    trade_volume = _int(fields, _CNTG_VOL, "CNTG_VOL")
    cumulative_volume = _int(fields, _ACML_VOL, "ACML_VOL")
    if trade_volume < 0 or cumulative_volume < trade_volume:
        raise _RecordError(f"inconsistent volumes: CNTG_VOL {trade_volume}, ACML_VOL {cumulative_volume}")
    if sign not in _SIGNS:
        raise _RecordError(f"bad PRDY_VRSS_SIGN {sign[:8]!r}")
    return Tick(
        symbol=symbol,
        exchange_at=_times.get(fields[_BSOP_DATE], fields[_HOUR]),
        received_at=received_at,
        price=price,
        change=change,
        open=int_or_zero(fields[_OPEN]),
        high=int_or_zero(fields[_HIGH]),
        low=int_or_zero(fields[_LOW]),
        trade_volume=trade_volume,
        cumulative_volume=cumulative_volume,
        cumulative_value=int_or_zero(fields[_ACML_PBMN]),
        ask_price=int_or_zero(fields[_ASK1]),
        bid_price=int_or_zero(fields[_BID1]),
        ask_size=int_or_zero(fields[_ASK_RSQN1]),
        bid_size=int_or_zero(fields[_BID_RSQN1]),
        side=_SIDE.get(fields[_CCLD_DVSN], "none"),
        halted=fields[_TRHT_YN] == "Y",
        session_code=fields[_MKOP_CLS],
        hour_class=fields[_HOUR_CLS],
    )


def parse_data_frame(text: str, received_at: datetime) -> ParsedFrame:
    """Split one data frame into ticks, or reject it whole with a reason. Never raises."""
    parts = text.split("|", 3)
    if len(parts) != 4:
        return ParsedFrame(tr_id="", error="bad header: expected enc|tr_id|count|payload")
    enc, tr_id, count_text, payload = parts
    tr_id = tr_id[:20]
    if enc != "0":
        reason = (
            "encrypted frame (market data is never encrypted)" if enc == "1" else f"bad enc flag {enc[:8]!r}"
        )
        return ParsedFrame(tr_id=tr_id, error=reason)
    if not count_text.isdigit() or len(count_text) > 3:
        return ParsedFrame(tr_id=tr_id, error=f"bad record count {count_text[:8]!r}")
    count = int(count_text)
    if count == 0:
        return ParsedFrame(tr_id=tr_id, error="record count 0")
    if tr_id not in TRADE_TR_IDS:
        return ParsedFrame(tr_id=tr_id, record_count=count, error=f"unsupported tr_id {tr_id!r}")
    fields = payload.split("^")
    n = len(fields)
    if n % count:
        return ParsedFrame(
            tr_id=tr_id, record_count=count, error=f"{n} fields do not divide into {count} records"
        )
    stride = n // count
    if stride < TRADE_FIELD_COUNT:
        return ParsedFrame(
            tr_id=tr_id,
            record_count=count,
            error=f"{stride} fields per record, {TRADE_FIELD_COUNT} expected",
        )
    ticks: list[Tick] = []
    try:
        for start in range(0, n, stride):
            ticks.append(trade_tick(fields[start : start + stride], received_at))
    except _RecordError as e:
        return ParsedFrame(tr_id=tr_id, record_count=count, error=f"record {len(ticks) + 1}/{count}: {e}")
    return ParsedFrame(tr_id=tr_id, ticks=ticks, record_count=count)


# --------------------------------------------------------------------------- control (JSON) frames


class _Header(msgspec.Struct, frozen=True):
    tr_id: str | None = ""  # null in KIS's OPSP8996 refusal
    tr_key: str | None = ""
    encrypt: str = ""
    datetime: str = ""


class _Body(msgspec.Struct, frozen=True):
    rt_cd: str = ""
    msg_cd: str = ""
    msg1: str = ""


class _ControlDoc(msgspec.Struct, frozen=True):
    header: _Header = _Header()
    body: _Body | None = None


_control_decoder = msgspec.json.Decoder(_ControlDoc)


@dataclass(frozen=True, slots=True)
class ControlFrame:
    """A JSON frame: ``kind`` is ``pingpong``, ``ack`` (subscription answer) or ``invalid``."""

    kind: Literal["pingpong", "ack", "invalid"]
    tr_id: str = ""
    tr_key: str = ""
    rt_cd: str = ""
    msg_cd: str = ""
    message: str = ""
    error: str = ""


def is_control_frame(text: str | bytes) -> bool:
    """JSON (control) frames start with ``{``; data frames with the enc digit."""
    return text[:1] in ("{", b"{")


def is_pingpong(data: bytes) -> bool:
    """Cheap test the socket reader uses before echoing (no JSON decode on the reader thread)."""
    return data[:1] == b"{" and b'"PINGPONG"' in data[:200]


def parse_control_frame(text: str | bytes) -> ControlFrame:
    """Decode an ack or PINGPONG. Never raises: undecodable text gives kind ``invalid``."""
    try:
        doc = _control_decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        return ControlFrame(kind="invalid", error=f"not a control frame: {str(e)[:120]}")
    header = doc.header
    tr_id, tr_key = header.tr_id or "", header.tr_key or ""
    if tr_id == "PINGPONG":
        return ControlFrame(kind="pingpong", tr_id="PINGPONG")
    if doc.body is None:
        return ControlFrame(kind="invalid", tr_id=tr_id[:20], error="control frame without body")
    return ControlFrame(
        kind="ack",
        tr_id=tr_id[:20],
        tr_key=tr_key[:20],
        rt_cd=doc.body.rt_cd,
        msg_cd=doc.body.msg_cd,
        message=doc.body.msg1.strip()[:200],
    )
