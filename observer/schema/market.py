"""Market data as collectors push it to the core: ``TradeFrame`` (a WS trade frame) and
``QuoteSnapshot`` (a REST quote), and the ``Tick`` the core keeps per symbol."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from observer.schema.base import _Msg, _Plain


class Tick(_Plain, frozen=True):
    """One real-time trade (KIS H0STCNT0 record), normalised at the collector edge."""

    symbol: str
    exchange_at: datetime  # BSOP_DATE + STCK_CNTG_HOUR, KST
    received_at: datetime  # local receive time of the frame that carried it
    price: int
    change: int  # price - previous close
    open: int
    high: int
    low: int
    trade_volume: int  # CNTG_VOL
    cumulative_volume: int  # ACML_VOL
    cumulative_value: int  # ACML_TR_PBMN, KRW
    ask_price: int
    bid_price: int
    ask_size: int = 0
    bid_size: int = 0
    side: Literal["buy", "sell", "none"] = "none"
    halted: bool = False
    session_code: str = ""  # NEW_MKOP_CLS_CODE
    hour_class: str = ""  # HOUR_CLS_CODE


class TradeFrame(_Msg, frozen=True, tag="trade_frame"):
    """One WebSocket data frame exactly as received, with what the parser made of it."""

    provider: str
    market: str
    received_at: datetime
    raw: str  # the frame text, untouched
    tr_id: str
    ticks: list[Tick] = []
    parse_error: str = ""  # non-empty: the frame was rejected whole (kept in raw/, no ticks)
    key_index: int = 0  # the app key's session it came in on, with several keys (0: the only one)


class QuoteSnapshot(_Msg, frozen=True, tag="quote_snapshot"):
    """One symbol's REST snapshot in a Track A sweep."""

    provider: str
    market: str
    symbol: str
    sweep_id: str  # e.g. 20261126T0910 (KST sweep slot)
    exchange_at: datetime | None  # exchange time if the answer carries one
    received_at: datetime
    price: int
    open: int
    high: int
    low: int
    volume: int  # accumulated volume
    value_krw: int = 0
    prev_close: int = 0
    upper_limit: int = 0
    lower_limit: int = 0
    bid_price: int = 0
    ask_price: int = 0
    bid_size: int = 0
    ask_size: int = 0
    halted: bool = False
    name: str = ""
