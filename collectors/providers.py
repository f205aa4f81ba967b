"""The provider interface the collectors use, and the registries that pick an adapter by name.

Collectors never speak a broker's vocabulary. Track A asks an `IMarketDataProvider` for quote
snapshots, universe candidates (the day's universe) and whether a day is open; Track B asks an
`IRealtimeStream` for sessions (a reader thread each, handing frames over as `SessionWiring`
says), the subscription requests due, parsed trade frames and what a control frame means
(`ControlOutcome`). ``[provider].name`` selects the adapters (`build_provider`, `build_stream`);
KIS is implemented, Kiwoom, Upbit and IB are declared and refuse to start with
`ProviderUnavailable`.
"""

from __future__ import annotations

import collections
import importlib
import queue
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol, runtime_checkable

import zmq

from observer.config import Config, ConfigError, Secrets
from observer.schema import QuoteSnapshot, Tick


class ProviderError(Exception):
    """A provider cannot do what was asked."""


class ProviderUnavailable(ProviderError, ConfigError):
    """The selected provider is declared but not implemented in this release (a configuration error:
    ``observer worker`` and ``observer universe`` exit 2 with the message)."""


@dataclass(frozen=True, slots=True)
class UniverseCandidate:
    """A listed instrument that may enter the day's universe (from the provider's master data)."""

    symbol: str
    name: str
    market: str
    group: str
    base_price: int  # the master file's base price: the previous close as the listing knows it
    halted: bool = False
    liquidation: bool = False


@dataclass(slots=True)
class SweepResult:
    """What one snapshot sweep achieved. ``failed`` maps a symbol to the last error code."""

    recorded: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    fallback_symbols: int = 0
    # answers (rows) for another code than the one asked for: rejected, never data
    wrong_code: int = 0
    wrong_code_examples: list[str] = field(default_factory=list)  # "asked->answered"
    # several app keys: calls per key (1-based index), and the keys that failed at key level during
    # the sweep (index -> error code); their share went to the other keys
    calls_by_key: dict[int, int] = field(default_factory=dict)
    keys_failed: dict[int, str] = field(default_factory=dict)


QuoteSink = Callable[[QuoteSnapshot], None]


@runtime_checkable
class IMarketDataProvider(Protocol):
    """What the collectors need from a market-data provider."""

    name: str

    def snapshot(
        self,
        symbols: Mapping[str, str],
        sweep_id: str,
        on_quote: QuoteSink,
        *,
        deadline_monotonic: float | None = None,
    ) -> SweepResult:
        """Quote every symbol (``symbol -> market``), calling `on_quote` from worker threads as
        answers arrive. Symbols that still fail after retries are in ``SweepResult.failed``."""
        ...

    def universe_candidates(self, market: str) -> list[UniverseCandidate]:
        """Every listed instrument of `market` (before any filtering)."""
        ...

    def prev_closes(self, symbols: Sequence[str]) -> tuple[dict[str, int], dict[str, str]]:
        """Confirmed previous closes, and the symbols that could not be confirmed (-> error code)."""
        ...

    def is_open(self, day: date) -> bool | None:
        """The broker's answer: whether the market trades on `day` (KST), None when it cannot say.
        Only `observer.sessions` (through `TradingCalendar`) reads it; workers ask the sessions."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- Track B: the stream

_STAMP = struct.Struct("<q")


def pack_frame(at_ns: int, data: bytes) -> bytes:
    """A data frame with its receive time, as a session's reader thread hands it to the loop."""
    return _STAMP.pack(at_ns) + data


def unpack_frame(msg: bytes | memoryview) -> tuple[int, bytes]:
    return _STAMP.unpack_from(msg)[0], bytes(msg[_STAMP.size :])


@dataclass(frozen=True, slots=True)
class SessionUp:
    session_id: int
    at_ns: int


@dataclass(frozen=True, slots=True)
class SessionDown:
    session_id: int
    at_ns: int
    reason: str  # approval_failed | connect_failed | closed_by_server | receive_error | closed
    detail: str = ""
    was_up: bool = False


SessionStatus = SessionUp | SessionDown


@dataclass(frozen=True, slots=True)
class OverflowEpisode:
    """Data frames dropped because the loop thread fell behind: receive times of the first and last."""

    session_id: int
    first_ns: int
    last_ns: int
    frames: int


@dataclass(frozen=True, slots=True)
class SessionWiring:
    """How a session's reader thread hands over what it reads, never waiting on the loop thread:
    data frames `pack_frame`d on an inproc PUSH to `frames_endpoint` (dropped past `frames_hwm`,
    each run of drops an `OverflowEpisode`), status changes on `status`, receive times from
    `now_ns`; control frames stay in the session's own ``control`` deque."""

    ctx: zmq.Context[Any]
    frames_endpoint: str
    frames_hwm: int
    now_ns: Callable[[], int]
    status: queue.SimpleQueue[SessionStatus]
    overflow: queue.SimpleQueue[OverflowEpisode]
    connect_timeout_s: float


ControlAction = Literal["pingpong", "invalid", "none", "event", "session_in_use", "invalid_key"]


@dataclass(frozen=True, slots=True)
class ControlOutcome:
    """What the collector must do about one control frame: count a heartbeat (``pingpong``), report
    an unreadable frame (``invalid``), nothing (``none``), report it (``event``), or give up the
    session (``session_in_use``: another holds the credentials; ``invalid_key``: fetch new ones)."""

    action: ControlAction
    symbol: str = ""
    code: str = ""
    severity: Literal["INFO", "WARNING", "ERROR"] = "INFO"
    message: str = ""


class IStreamSession(Protocol):
    """One real-time connection, read by its own thread (started by `start`, never reused)."""

    session_id: int
    frames: int  # every frame read (data and control)
    data_frames: int
    dropped_frames: int
    control: collections.deque[tuple[int, bytes]]  # (receive ns, control frame), read by the loop

    @property
    def up(self) -> bool: ...

    def start(self) -> None: ...

    def send_text(self, text: str) -> bool:
        """False when the session cannot take it (it is going down)."""
        ...

    def close(self) -> None:
        """Ask the reader to stop and wake it, without blocking."""
        ...

    def join(self, timeout_s: float) -> bool:
        """True once the reader thread has ended."""
        ...


class ISubscriptions(Protocol):
    """The desired symbols vs what the current session has registered (the provider's bookkeeping)."""

    peak_registrations: int

    def set_desired(self, symbols: Sequence[str]) -> None: ...

    def reset(self) -> None:
        """A new session: nothing is registered any more (the desired symbols stay)."""
        ...

    def note_data(self, symbol: str, now: float) -> None: ...

    def silent_symbols(self, now: float) -> list[str]:
        """Registered symbols without data for a while, each reported once."""
        ...

    @property
    def desired(self) -> list[str]: ...

    @property
    def registered(self) -> list[str]: ...

    @property
    def held(self) -> int:
        """Registrations held or in flight."""
        ...


class IParsedFrame(Protocol):
    """One data frame: its ticks, or a non-empty ``error`` (rejected whole)."""

    @property
    def tr_id(self) -> str: ...

    @property
    def ticks(self) -> list[Tick]: ...

    @property
    def error(self) -> str: ...


class IRealtimeStream(Protocol):
    """What the WS collector (Track B) needs from a provider's real-time feed."""

    name: str
    url: str  # where sessions connect (for logs; no secrets)
    key_index: int  # which app key (1..N) its sessions use

    @property
    def subscriptions(self) -> ISubscriptions: ...

    def open_session(self, session_id: int, wiring: SessionWiring) -> IStreamSession: ...

    def request_texts(self, now: float) -> list[str]:
        """The subscribe / unsubscribe frames due now (none while no credential is at hand)."""
        ...

    def parse_data(self, text: str, received_at: datetime) -> IParsedFrame: ...

    def on_control(self, data: bytes, now: float) -> ControlOutcome: ...

    def invalidate_credentials(self) -> None:
        """The server rejected the session's credential: the next session fetches a new one."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- registries

# name -> "module:factory"; a factory is called as factory(cfg, secrets, **kwargs)
PROVIDERS: dict[str, str] = {
    "kis": "collectors.kis.provider:KisProvider.from_config",
    "kiwoom": "collectors.providers:_declared",
    "upbit": "collectors.providers:_declared",
    "ib": "collectors.providers:_declared",
}
# a STREAMS factory returns one stream per app key (a list)
STREAMS: dict[str, str] = {
    "kis": "collectors.kis.stream:KisStream.each_from_config",
    "kiwoom": "collectors.providers:_declared",
    "upbit": "collectors.providers:_declared",
    "ib": "collectors.providers:_declared",
}


def _declared(cfg: Config, secrets: Secrets | None = None, **_: Any) -> Any:
    implemented = sorted(n for n, target in PROVIDERS.items() if not target.endswith(":_declared"))
    raise ProviderUnavailable(
        f"provider {cfg.provider.name!r} is declared but not implemented in this release "
        f"(implemented: {', '.join(implemented)}); set [provider].name to one of those"
    )


# Each stream's frame parser alone (no session, no credentials): ``observer replay rederive`` parses
# recorded raw frames with the WS collector's own parser.
FRAME_PARSERS: dict[str, str] = {
    "kis": "collectors.kis.ws_parser:parse_data_frame",
}


def _resolve(table: dict[str, str], name: str, what: str = "unknown provider") -> Any:
    try:
        target = table[name]
    except KeyError:
        raise ProviderError(f"{what} {name!r}; known: {', '.join(sorted(table))}") from None
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    return obj


def _build(table: dict[str, str], cfg: Config, secrets: Secrets | None, **kwargs: Any) -> Any:
    return _resolve(table, cfg.provider.name)(cfg, secrets or Secrets(), **kwargs)


def frame_parser(name: str) -> Callable[[str, datetime], IParsedFrame]:
    """The WS data-frame parser of provider `name` (`IRealtimeStream.parse_data` without a stream).
    Raises `ProviderError` for a provider without one."""
    parser: Callable[[str, datetime], IParsedFrame] = _resolve(
        FRAME_PARSERS, name, "no frame parser for provider"
    )
    return parser


def build_provider(cfg: Config, secrets: Secrets | None = None, **kwargs: Any) -> IMarketDataProvider:
    """The Track A provider ``[provider].name`` selects. Raises `ProviderUnavailable` for declared-only ones."""
    provider: IMarketDataProvider = _build(PROVIDERS, cfg, secrets, **kwargs)
    return provider


def build_streams(cfg: Config, secrets: Secrets | None = None, **kwargs: Any) -> list[IRealtimeStream]:
    """The Track B streams ``[provider].name`` selects, one per app key (session), in key order.
    Raises `ProviderUnavailable` for declared-only ones."""
    streams: list[IRealtimeStream] = _build(STREAMS, cfg, secrets, **kwargs)
    return streams


def build_stream(cfg: Config, secrets: Secrets | None = None, **kwargs: Any) -> IRealtimeStream:
    """The first of `build_streams` (the first app key's)."""
    return build_streams(cfg, secrets, **kwargs)[0]
