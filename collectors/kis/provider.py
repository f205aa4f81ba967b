"""`KisProvider`: the KIS implementation of `collectors.providers.IMarketDataProvider`.

Sweep data flow: universe symbols -> chunks of 30 -> ``intstock-multprice`` (rows matched by
``inter_shrn_iscd``) -> `normalize.quote_from_multprice_row` -> ``on_quote``; a chunk whose call
fails, and every symbol a successful call left out, falls back to ``inquire-price`` one symbol at
a time; mock accounts (no multprice) use ``inquire-price`` throughout. A few worker threads keep
requests in flight; the shared rate limiter, not the thread count, sets the pace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from collectors.kis.call_stats import CallStats
from collectors.kis.errors import KisApiError, KisError
from collectors.kis.normalize import (
    MASTER_FILES,
    CodeMismatch,
    NormalizeError,
    check_code,
    parse_master,
    prev_close_of_price_output,
    prev_close_of_row,
    quote_from_inquire_price,
    quote_from_multprice_row,
)
from collectors.kis.ratelimit import limiter_for
from collectors.kis.rest import KisRestClient
from collectors.kis.settings import KisSettings, resolve_kis_settings
from collectors.kis.token import TokenManager
from collectors.providers import QuoteSink, SweepResult, UniverseCandidate
from observer.clock import Clock, SystemClock
from observer.config import Config, Secrets
from observer.retry import RetriesExhausted
from observer.schema import QuoteSnapshot

log = logging.getLogger(__name__)


def _error_code(e: BaseException) -> str:
    cause = e.__cause__ if isinstance(e, RetriesExhausted) else e
    return cause.code if isinstance(cause, KisError) else type(cause).__name__


class KisProvider:
    """KIS REST quotations, master files and holiday checks for the collectors."""

    name = (
        "kis"  # the archive's provider id per instance: `Config.archive_provider` (kis-sim on the simulator)
    )
    concurrency = 4  # requests in flight; the limiter sets the rate

    def __init__(
        self,
        cfg: Config,
        settings: KisSettings,
        client: KisRestClient,
        *,
        clock: Clock | None = None,
    ):
        self.cfg = cfg
        self.name = cfg.archive_provider
        self.settings = settings
        self.client = client
        self.clock = clock or SystemClock()
        self.chunk_size = min(max(cfg.track_a.symbols_per_call, 1), KisRestClient.MULTPRICE_MAX_SYMBOLS)
        self._multiprice_ok = settings.multiprice_available
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Config, secrets: Secrets, *, clock: Clock | None = None) -> KisProvider:
        settings = resolve_kis_settings(cfg, secrets)
        limiter = limiter_for(cfg, settings.app_key.reveal(), settings.rate_limit_per_s)
        client = KisRestClient(settings, limiter, max_tries=cfg.kis.max_tries)
        client.bind_tokens(TokenManager.for_key(cfg, settings.app_key.reveal(), client.issue_token))
        return cls(cfg, settings, client, clock=clock)

    # -- quotes
    def snapshot(
        self,
        symbols: Mapping[str, str],
        sweep_id: str,
        on_quote: QuoteSink,
        *,
        deadline_monotonic: float | None = None,
    ) -> SweepResult:
        stats = CallStats()
        result = SweepResult()
        codes = list(symbols)
        chunks = [codes[i : i + self.chunk_size] for i in range(0, len(codes), self.chunk_size)]

        def expired() -> bool:
            return deadline_monotonic is not None and time.monotonic() >= deadline_monotonic

        def deliver(quote: QuoteSnapshot) -> None:
            on_quote(quote)
            with self._lock:
                result.recorded += 1

        def fail(symbol: str, code: str) -> None:
            with self._lock:
                result.failed[symbol] = code

        def one_by_one(chunk: Sequence[str]) -> None:
            for symbol in chunk:
                if expired():
                    fail(symbol, "deadline")
                    continue
                with self._lock:
                    result.fallback_symbols += 1
                try:
                    output = self.client.inquire_price(symbol, stats)
                    quote = quote_from_inquire_price(
                        output,
                        symbol=symbol,
                        provider=self.name,
                        market=symbols[symbol],
                        sweep_id=sweep_id,
                        received_at=self.clock.now(),
                    )
                except (KisError, RetriesExhausted) as e:
                    fail(symbol, _error_code(e))
                except CodeMismatch as e:
                    stats.wrong_code(e.asked, e.answered)
                    fail(symbol, "wrong_code")
                except NormalizeError:
                    stats.error("bad_answer")
                    fail(symbol, "bad_answer")
                else:
                    deliver(quote)

        def sweep_chunk(chunk: list[str]) -> None:
            if expired():
                for symbol in chunk:
                    fail(symbol, "deadline")
                return
            if not self._multiprice_ok:
                one_by_one(chunk)
                return
            try:
                rows = self.client.multprice(chunk, stats)
            except KisApiError as e:
                self._maybe_disable_multiprice(e)
                one_by_one(chunk)
                return
            except RetriesExhausted:
                one_by_one(chunk)
                return
            received_at = self.clock.now()
            missing: list[str] = []
            for symbol in chunk:
                row = rows.get(symbol)
                if row is None:
                    missing.append(symbol)
                    continue
                try:
                    quote = quote_from_multprice_row(
                        row,
                        provider=self.name,
                        market=symbols[symbol],
                        sweep_id=sweep_id,
                        received_at=received_at,
                    )
                except NormalizeError:
                    stats.error("bad_row")
                    missing.append(symbol)
                    continue
                deliver(quote)
            if missing:
                one_by_one(missing)

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="kis-sweep") as pool:
            for future in [pool.submit(sweep_chunk, chunk) for chunk in chunks]:
                future.result()  # a bug in a chunk surfaces here, not silently
        result.calls = stats.calls
        result.rate_limited = stats.rate_limited
        result.errors_by_code = stats.errors_by_code()
        result.wrong_code = result.errors_by_code.get("wrong_code", 0)
        result.wrong_code_examples = list(stats.wrong_codes)
        return result

    def _maybe_disable_multiprice(self, e: KisApiError) -> None:
        # an endpoint the server does not have (mock servers) fails the same way every time
        if e.status in (404, 405) or e.code in ("EGW00002", "OPSQ0002", "http_404"):
            if self._multiprice_ok:
                log.warning("intstock-multprice unavailable; using inquire-price", extra={"code": e.code})
            self._multiprice_ok = False

    # -- universe
    def universe_candidates(self, market: str) -> list[UniverseCandidate]:
        file_name = MASTER_FILES.get(market)
        if file_name is None:
            raise KisApiError("unknown_market", f"no KRX master file for market {market!r}")
        data = self.client.download_master(file_name + ".zip")
        entries, bad = parse_master(data, market)
        if bad:
            log.warning("master file lines skipped", extra={"market": market, "bad_lines": bad})
        return [
            UniverseCandidate(
                symbol=e.symbol,
                name=e.name,
                market=e.market,
                group=e.group,
                base_price=e.base_price,
                halted=e.halted,
                liquidation=e.liquidation,
            )
            for e in entries
        ]

    def prev_closes(self, symbols: Sequence[str]) -> tuple[dict[str, int], dict[str, str]]:
        closes: dict[str, int] = {}
        failed: dict[str, str] = {}
        lock = threading.Lock()
        stats = CallStats()

        def by_price(symbol: str) -> None:
            try:
                output = self.client.inquire_price(symbol, stats)
                check_code(output, "stck_shrn_iscd", symbol)
                close = prev_close_of_price_output(output)
            except (KisError, RetriesExhausted) as e:
                with lock:
                    failed[symbol] = _error_code(e)
                return
            except CodeMismatch as e:
                stats.wrong_code(e.asked, e.answered)
                with lock:
                    failed[symbol] = "wrong_code"
                return
            with lock:
                if close > 0:
                    closes[symbol] = close
                else:
                    failed[symbol] = "no_prev_close"

        def confirm(chunk: list[str]) -> None:
            if self._multiprice_ok:
                try:
                    rows = self.client.multprice(chunk, stats)
                except KisApiError as e:
                    self._maybe_disable_multiprice(e)
                    rows = {}
                except RetriesExhausted:
                    rows = {}
                for symbol in chunk:
                    close = prev_close_of_row(rows[symbol]) if symbol in rows else 0
                    if close > 0:
                        with lock:
                            closes[symbol] = close
                    else:
                        by_price(symbol)
            else:
                for symbol in chunk:
                    by_price(symbol)

        codes = list(symbols)
        chunks = [codes[i : i + self.chunk_size] for i in range(0, len(codes), self.chunk_size)]
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="kis-closes") as pool:
            for future in [pool.submit(confirm, chunk) for chunk in chunks]:
                future.result()
        return closes, failed

    # -- calendar
    def is_open(self, day: date) -> bool | None:
        return self.client.chk_holiday(day)

    def close(self) -> None:
        self.client.close()
        self.client.limiter.close()
