"""`KisProvider`: the KIS implementation of `collectors.providers.IMarketDataProvider`.

Sweep data flow: universe symbols -> chunks of 30 -> a queue the app keys share -> per key, a few
threads take the next chunk -> ``intstock-multprice`` (rows matched by ``inter_shrn_iscd``) ->
`normalize.quote_from_multprice_row` -> ``on_quote``; a chunk whose call fails, and every symbol a
successful call left out, falls back to ``inquire-price`` one symbol at a time; mock accounts (no
multprice) use ``inquire-price`` throughout. Each app key has its own client, rate limiter and
token, so N keys sweep in about 1/N of the time; the limiters, not the thread counts, set the pace,
and a key that is free takes the next chunk, so the keys stay balanced.

A key that fails at key level (`KEY_FAILURES`: app key or secret refused, token rejected after a
re-issue, no new token allowed yet) leaves the sweep with a warning naming it by index; the
symbols it had not done go back to the queue for the other keys. Only when every key has failed
do the symbols left fail, with that code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
from collectors.kis.settings import KisSettings, resolve_kis_keys
from collectors.kis.token import TokenManager
from collectors.providers import QuoteSink, SweepResult, UniverseCandidate
from observer.clock import Clock, SystemClock
from observer.config import Config, Secrets
from observer.retry import RetriesExhausted
from observer.schema import QuoteSnapshot

log = logging.getLogger(__name__)

# what a key's own failure looks like once the client has done its part (a token re-issue, retries):
# app key / secret refused, token rejected again after a re-issue, a new token refused (one per minute)
KEY_FAILURES = frozenset({"EGW00103", "EGW00105", "EGW00121", "EGW00123", "EGW00133"})


def _error_code(e: BaseException) -> str:
    cause = e.__cause__ if isinstance(e, RetriesExhausted) else e
    return cause.code if isinstance(cause, KisError) else type(cause).__name__


class _KeyDown(Exception):
    """An app key failed at key level; `rest` are the symbols of its chunk it did not do."""

    def __init__(self, code: str, error: BaseException, rest: Sequence[str]):
        cause = error.__cause__ if isinstance(error, RetriesExhausted) else error
        super().__init__(code)
        self.code = code
        self.detail = str(cause)  # KisError / TokenError messages never carry a credential
        self.rest = list(rest)


def _check_key(e: KisError | RetriesExhausted, rest: Sequence[str]) -> str:
    """The error code of `e`; raises `_KeyDown` when it says the key itself failed."""
    code = _error_code(e)
    if code in KEY_FAILURES:
        raise _KeyDown(code, e, rest) from None
    return code


ChunkWork = Callable[[KisRestClient, list[str]], None]


class KisProvider:
    """KIS REST quotations, master files and holiday checks for the collectors."""

    name = (
        "kis"  # the archive's provider id per instance: `Config.archive_provider` (kis-sim on the simulator)
    )
    concurrency = 4  # requests in flight per app key; its limiter sets the rate

    def __init__(self, cfg: Config, clients: Sequence[KisRestClient], *, clock: Clock | None = None):
        if not clients:
            raise ValueError("KisProvider needs at least one client (one per app key)")
        self.cfg = cfg
        self.name = cfg.archive_provider
        self.clients = list(clients)
        self.client = self.clients[0]  # universe files and the calendar: the first key
        self.settings: KisSettings = self.client.settings
        self.clock = clock or SystemClock()
        self.chunk_size = min(max(cfg.track_a.symbols_per_call, 1), KisRestClient.MULTPRICE_MAX_SYMBOLS)
        self._multiprice_ok = self.settings.multiprice_available
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Config, secrets: Secrets, *, clock: Clock | None = None) -> KisProvider:
        keys = resolve_kis_keys(cfg, secrets)
        clients = []
        for settings in keys:
            app_key = settings.app_key.reveal()
            client = KisRestClient(
                settings, limiter_for(cfg, app_key, settings.rate_limit_per_s), max_tries=cfg.kis.max_tries
            )
            # one key waits for KIS's next token; of several, a key without one sits the sweep out
            tokens = TokenManager.for_key(
                cfg, app_key, client.issue_token, key_index=settings.key_index, wait_to_issue=len(keys) == 1
            )
            client.bind_tokens(tokens)
            clients.append(client)
        return cls(cfg, clients, clock=clock)

    # -- spreading work over the keys
    def _spread(
        self, chunks: list[list[str]], work: ChunkWork, what: str
    ) -> tuple[dict[int, str], list[str]]:
        """Run ``work(client, chunk)`` for every chunk, `concurrency` chunks at a time per key, a
        key with a free slot taking the next one. A key whose work raises `_KeyDown` takes no more
        chunks (a warning names it by index) and its unfinished symbols go back to the queue.

        Returns the failed keys (index -> code) and the symbols left when every key had failed."""
        queue = deque(chunks)
        failed: dict[int, str] = {}
        free = {c.settings.key_index: self.concurrency for c in self.clients}
        running: dict[Future[_KeyDown | None], KisRestClient] = {}
        workers = self.concurrency * len(self.clients)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=what) as pool:
            while True:
                handed = True
                while queue and handed:  # round the keys, one chunk each, so a small sweep uses them all
                    handed = False
                    for client in self.clients:
                        index = client.settings.key_index
                        if queue and free[index] and index not in failed:
                            running[pool.submit(_run_chunk, work, client, queue.popleft())] = client
                            free[index] -= 1
                            handed = True
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    index = running.pop(future).settings.key_index
                    free[index] += 1
                    down = future.result()  # a bug in a chunk surfaces here, not silently
                    if down is None:
                        continue
                    if index not in failed:
                        failed[index] = down.code
                        log.warning(
                            "KIS app key failed; the other keys take its share",
                            extra={"key_index": index, "code": down.code, "error": down.detail, "work": what},
                        )
                    if down.rest:
                        queue.append(down.rest)
        left = [symbol for chunk in queue for symbol in chunk]
        if left:
            log.error(
                "every KIS app key failed; symbols left undone",
                extra={"keys": len(self.clients), "symbols": len(left), "work": what},
            )
        return failed, left

    def _chunks(self, symbols: Sequence[str]) -> list[list[str]]:
        codes = list(symbols)
        return [codes[i : i + self.chunk_size] for i in range(0, len(codes), self.chunk_size)]

    # -- quotes
    def snapshot(
        self,
        symbols: Mapping[str, str],
        sweep_id: str,
        on_quote: QuoteSink,
        *,
        deadline_monotonic: float | None = None,
    ) -> SweepResult:
        stats_of = {c.settings.key_index: CallStats() for c in self.clients}
        result = SweepResult()

        def expired() -> bool:
            return deadline_monotonic is not None and time.monotonic() >= deadline_monotonic

        def deliver(quote: QuoteSnapshot) -> None:
            on_quote(quote)
            with self._lock:
                result.recorded += 1

        def fail(symbol: str, code: str) -> None:
            with self._lock:
                result.failed[symbol] = code

        def one_by_one(client: KisRestClient, chunk: Sequence[str]) -> None:
            stats = stats_of[client.settings.key_index]
            for n, symbol in enumerate(chunk):
                if expired():
                    fail(symbol, "deadline")
                    continue
                try:
                    output = client.inquire_price(symbol, stats)
                    quote = quote_from_inquire_price(
                        output,
                        symbol=symbol,
                        provider=self.name,
                        market=symbols[symbol],
                        sweep_id=sweep_id,
                        received_at=self.clock.now(),
                    )
                except (KisError, RetriesExhausted) as e:
                    fail(symbol, _check_key(e, chunk[n:]))
                except CodeMismatch as e:
                    stats.wrong_code(e.asked, e.answered)
                    fail(symbol, "wrong_code")
                except NormalizeError:
                    stats.error("bad_answer")
                    fail(symbol, "bad_answer")
                else:
                    deliver(quote)
                with self._lock:
                    result.fallback_symbols += 1

        def sweep_chunk(client: KisRestClient, chunk: list[str]) -> None:
            if expired():
                for symbol in chunk:
                    fail(symbol, "deadline")
                return
            if not self._multiprice_ok:
                one_by_one(client, chunk)
                return
            stats = stats_of[client.settings.key_index]
            try:
                rows = client.multprice(chunk, stats)
            except (KisApiError, RetriesExhausted) as e:
                _check_key(e, chunk)
                if isinstance(e, KisApiError):
                    self._maybe_disable_multiprice(e)
                one_by_one(client, chunk)
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
                one_by_one(client, missing)

        keys_failed, left = self._spread(self._chunks(list(symbols)), sweep_chunk, "kis-sweep")
        for symbol in left:
            fail(symbol, list(keys_failed.values())[-1])
        stats = CallStats.merged(stats_of.values())
        result.calls = stats.calls
        result.rate_limited = stats.rate_limited
        result.errors_by_code = stats.errors_by_code()
        result.wrong_code = result.errors_by_code.get("wrong_code", 0)
        result.wrong_code_examples = list(stats.wrong_codes)
        result.calls_by_key = {index: s.calls for index, s in stats_of.items()}
        result.keys_failed = keys_failed
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
        stats_of = {c.settings.key_index: CallStats() for c in self.clients}

        def by_price(client: KisRestClient, todo: Sequence[str]) -> None:
            stats = stats_of[client.settings.key_index]
            for n, symbol in enumerate(todo):
                try:
                    output = client.inquire_price(symbol, stats)
                    check_code(output, "stck_shrn_iscd", symbol)
                    close = prev_close_of_price_output(output)
                except (KisError, RetriesExhausted) as e:
                    code = _check_key(e, todo[n:])
                    with lock:
                        failed[symbol] = code
                    continue
                except CodeMismatch as e:
                    stats.wrong_code(e.asked, e.answered)
                    with lock:
                        failed[symbol] = "wrong_code"
                    continue
                with lock:
                    if close > 0:
                        closes[symbol] = close
                    else:
                        failed[symbol] = "no_prev_close"

        def confirm(client: KisRestClient, chunk: list[str]) -> None:
            if not self._multiprice_ok:
                by_price(client, chunk)
                return
            try:
                rows = client.multprice(chunk, stats_of[client.settings.key_index])
            except (KisApiError, RetriesExhausted) as e:
                _check_key(e, chunk)
                if isinstance(e, KisApiError):
                    self._maybe_disable_multiprice(e)
                rows = {}
            todo: list[str] = []
            for symbol in chunk:
                close = prev_close_of_row(rows[symbol]) if symbol in rows else 0
                if close > 0:
                    with lock:
                        closes[symbol] = close
                else:
                    todo.append(symbol)
            by_price(client, todo)

        keys_failed, left = self._spread(self._chunks(symbols), confirm, "kis-closes")
        for symbol in left:
            failed[symbol] = list(keys_failed.values())[-1]
        return closes, failed

    # -- calendar
    def is_open(self, day: date) -> bool | None:
        return self.client.chk_holiday(day)

    def close(self) -> None:
        for client in self.clients:
            client.close()
            client.limiter.close()


def _run_chunk(work: ChunkWork, client: KisRestClient, chunk: list[str]) -> _KeyDown | None:
    try:
        work(client, chunk)
    except _KeyDown as down:
        return down
    return None
