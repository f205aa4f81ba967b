"""What crosses the admin boundary (CLI / tests <-> simulator): fault requests and reports.

Fault requests are one tagged union (``kind``); ``duration_s`` None means "until cleared".
Every time in a report is RFC 3339 with the KST offset, given both as real wall time
(``*_real``) and as the simulator's virtual market time (``*_virtual``).
"""

from __future__ import annotations

import msgspec


class _Fault(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", forbid_unknown_fields=True):
    duration_s: float | None = None


class DropSessions(_Fault, frozen=True, tag="drop_sessions"):
    """Drop every WS session now (no close frame); refuse new WS connections for `duration_s`."""

    duration_s: float | None = 0.0


class BlackHole(_Fault, frozen=True, tag="blackhole"):
    """Sessions stay open but nothing is sent (data, acks, PINGPONG) and nothing is answered."""


class DelayFrames(_Fault, frozen=True, tag="delay"):
    """Every outgoing WS frame is held back `delay_ms`."""

    delay_ms: int = 500


class TruncateFrames(_Fault, frozen=True, tag="truncate"):
    """Every `every_n`-th data frame is cut in half."""

    every_n: int = 1


class CorruptFrames(_Fault, frozen=True, tag="corrupt"):
    """Every `every_n`-th data frame has characters overwritten."""

    every_n: int = 1


class RestError(_Fault, frozen=True, tag="rest_5xx"):
    """Every REST call answers `status` (500: the EGW00300 gateway error body; others: plain text)."""

    status: int = 500


class RestTimeout(_Fault, frozen=True, tag="rest_timeout"):
    """Every REST call is answered only after `sleep_s` (past a 2 s client timeout)."""

    sleep_s: float = 3.0


class RateLimit(_Fault, frozen=True, tag="rate_limit"):
    """Every /uapi call answers EGW00201 (HTTP 500)."""


class ExpireTokens(_Fault, frozen=True, tag="expire_tokens"):
    """Tokens issued so far expire now; during `duration_s` every token is answered EGW00123."""

    duration_s: float | None = 0.0


class RevokeKey(_Fault, frozen=True, tag="revoke_key"):
    """App key number `key` (1-based, in ``[sim] keys`` order) is deleted, as on the KIS portal: its
    tokens and approval keys stop working at once, its WebSocket session is dropped and every later
    call with it gets ``EGW00103``. For good: `duration_s` is ignored."""

    key: int = 1


class KeyInUse(_Fault, frozen=True, tag="key_in_use"):
    """Another client takes app key number `key`'s WebSocket session for `duration_s`: the session
    here is dropped and every new one with that key is refused with ``OPSP8996`` until then."""

    key: int = 1
    duration_s: float | None = 30.0


class Silence(_Fault, frozen=True, tag="silence"):
    """Trades of `symbols` (empty: all) are not published on the WS feed."""

    symbols: list[str] = []


FaultSpec = (
    DropSessions
    | BlackHole
    | DelayFrames
    | TruncateFrames
    | CorruptFrames
    | RestError
    | RestTimeout
    | RateLimit
    | ExpireTokens
    | Silence
    | RevokeKey
    | KeyInUse
)
FAULT_KINDS: tuple[str, ...] = (
    "drop_sessions",
    "blackhole",
    "delay",
    "truncate",
    "corrupt",
    "rest_5xx",
    "rest_timeout",
    "rate_limit",
    "expire_tokens",
    "silence",
    "revoke_key",
    "key_in_use",
)


class Stamp(msgspec.Struct, frozen=True, kw_only=True):
    """One instant on both clocks."""

    real: str
    virtual: str


class FaultWindow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: str
    spec: FaultSpec
    start: Stamp
    end: Stamp | None  # None while the window is open-ended and active
    planned_end: Stamp | None
    active: bool


class SymbolTruth(msgspec.Struct, frozen=True, kw_only=True):
    """What the WS feed published for one symbol (all sessions), and the market's own totals."""

    published_records: int = 0
    published_volume: int = 0
    first_acml_vol: int = 0
    last_acml_vol: int = 0
    damaged_records: int = 0
    market_trades: int = 0
    market_acml_vol: int = 0


class SymbolTrades(msgspec.Struct, frozen=True, kw_only=True):
    """Every H0STCNT0 record written for one symbol, in order: ACML_VOL (identifies the trade) and
    the trade's virtual time in ms since KST midnight; damaged (truncated/corrupted) ones apart."""

    acml_vol: list[int]
    at_ms: list[int]
    damaged_acml_vol: list[int]
    damaged_at_ms: list[int]


class PublishedTrades(msgspec.Struct, frozen=True, kw_only=True):
    at: Stamp
    day: str  # the virtual KST date the times belong to (YYYY-MM-DD)
    symbols: dict[str, SymbolTrades]


class SessionTruth(msgspec.Struct, frozen=True, kw_only=True):
    session_id: int
    key_id: str | None
    opened: Stamp
    closed: Stamp | None
    close_reason: str | None
    frames: dict[str, int]  # by kind: H0STCNT0, H0STASP0, ack, PINGPONG, damaged
    records: int
    symbols: dict[str, SymbolTruth]


class RestKeyTruth(msgspec.Struct, frozen=True, kw_only=True):
    requests: int
    accepted: int
    rate_limited: int
    max_per_s: int  # the most requests seen in one wall-clock second
    max_accepted_per_s: int
    per_second: dict[str, int]  # RFC 3339 second -> requests (the latest hour)


class Truth(msgspec.Struct, frozen=True, kw_only=True):
    at: Stamp
    symbols: dict[str, SymbolTruth]
    sessions: list[SessionTruth]
    faults: list[FaultWindow]
    rest: dict[str, RestKeyTruth]  # by key id


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    at: Stamp
    market_open: bool
    sessions: int
    symbols: int
    account: str
    urls: dict[str, str]
    pump_alive: bool = True  # the WS pump thread is running
    pump_errors: int = 0  # sessions the WS pump failed on (each logged and closed)
    warmed_up: int = 0  # symbols given their first look by the start-up warm-up so far
