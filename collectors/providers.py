"""The provider interface the collectors use, and the registry that picks one by name.

Collectors never speak a broker's vocabulary: they ask an `IMarketDataProvider` for quote
snapshots (Track A sweeps), universe candidates (the day's universe), whether a day is open, and a
real-time stream factory (Track B). ``[provider].name`` selects the adapter; KIS is implemented,
Kiwoom, Upbit and IB are declared and refuse to start with `ProviderUnavailable`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, runtime_checkable

from observer.config import Config, Secrets
from observer.schema import QuoteSnapshot


class ProviderError(Exception):
    """A provider cannot do what was asked."""


class ProviderUnavailable(ProviderError):
    """The selected provider is declared but not implemented in this release."""


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


QuoteSink = Callable[[QuoteSnapshot], None]
StreamFactory = Callable[..., Any]


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

    def stream_factory(self) -> StreamFactory | None:
        """The real-time stream constructor Track B uses, or None when the provider has none."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- registry

# name -> "module:factory"; a factory is called as factory(cfg, secrets, **kwargs)
PROVIDERS: dict[str, str] = {
    "kis": "collectors.kis.provider:KisProvider.from_config",
    "kiwoom": "collectors.providers:_declared",
    "upbit": "collectors.providers:_declared",
    "ib": "collectors.providers:_declared",
}
_stream_factories: dict[str, StreamFactory] = {}


def register_stream_factory(provider: str, factory: StreamFactory) -> None:
    """Track B plugs its real-time stream constructor in here (per provider name)."""
    _stream_factories[provider] = factory


def registered_stream_factory(provider: str) -> StreamFactory | None:
    return _stream_factories.get(provider)


def _declared(cfg: Config, secrets: Secrets | None = None, **_: Any) -> IMarketDataProvider:
    raise ProviderUnavailable(f"{cfg.provider.name} is not available in this release")


def build_provider(cfg: Config, secrets: Secrets | None = None, **kwargs: Any) -> IMarketDataProvider:
    """The provider ``[provider].name`` selects. Raises `ProviderUnavailable` for declared-only ones."""
    name = cfg.provider.name
    try:
        target = PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    provider: IMarketDataProvider = obj(cfg, secrets or Secrets(), **kwargs)
    return provider
