"""The KIS REST client: one place that sends requests, reads answers and decides what to retry.

Every call goes through `KisRestClient._call`:

* waits for the shared per-app-key rate limiter (`ratelimit.SharedRateLimiter`);
* sends with ``kis.request_timeout_s`` (2 s): a call answers in time or is retried;
* parses the body **whatever the HTTP status** (KIS reports rate limits and token errors as 500);
* ``EGW00201`` (rate limit) backs off with jitter and is *not* a failed try (bounded, though: a
  call that meets only rate-limit answers for `max_rate_limited` rounds gives up);
* ``EGW00123`` / ``EGW00121`` (expired / invalid token) re-issue the token (at most 1/min,
  `token.TokenManager`) and retry once, not counted;
* 5xx, ``EGW00300`` and timeouts / connection errors are failed tries, retried up to
  ``kis.max_tries`` (3) with exponential backoff and jitter (`observer.retry.retry_call`, one
  budget for failures and one for rate-limit rounds); then
  `observer.retry.RetriesExhausted` whose ``__cause__`` is a `KisError` naming the last code;
* any other ``rt_cd != "0"`` answer is a `KisApiError` (not retried).

No credential ever reaches a log line or an exception: requests' own exceptions (which carry URLs
and, for some adapters, headers) are replaced by a `KisTransportError` naming only the endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

import requests

from collectors.kis.call_stats import CallStats
from collectors.kis.errors import KisApiError, KisError, KisTransportError
from collectors.kis.ratelimit import SharedRateLimiter
from collectors.kis.settings import KisSettings
from collectors.kis.token import TokenError, TokenManager, TokenRateLimited, parse_expiry
from observer.retry import Backoff, Budget, RetriesExhausted, retry_call

log = logging.getLogger(__name__)

RATE_LIMITED = "EGW00201"
TOKEN_CODES = frozenset({"EGW00123", "EGW00121"})
TRANSIENT_CODES = frozenset({"EGW00300"})


class KisRestClient:
    """Synchronous, thread-safe KIS REST client (one `requests.Session` per thread)."""

    PRICE = ("/uapi/domestic-stock/v1/quotations/inquire-price", "FHKST01010100")
    MULTPRICE = ("/uapi/domestic-stock/v1/quotations/intstock-multprice", "FHKST11300006")
    CHK_HOLIDAY = ("/uapi/domestic-stock/v1/quotations/chk-holiday", "CTCA0903R")
    TOKEN_PATH = "/oauth2/tokenP"
    MULTPRICE_MAX_SYMBOLS = 30
    MARKET_CODE = "J"  # KRX
    MASTER_TIMEOUT_S = 30.0

    def __init__(
        self,
        settings: KisSettings,
        limiter: SharedRateLimiter,
        tokens: TokenManager | None = None,
        *,
        max_tries: int = 3,
        max_rate_limited: int = 12,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        self.limiter = limiter
        self.tokens = tokens
        self.max_tries = max_tries
        self.max_rate_limited = max_rate_limited
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self._local = threading.local()
        self.stats = CallStats()  # lifetime counters of this client

    def bind_tokens(self, tokens: TokenManager) -> None:
        self.tokens = tokens

    # -- sessions and auth
    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def issue_token(self) -> tuple[str, float]:
        """POST /oauth2/tokenP. Returns (access_token, expires_in_s). Used by `TokenManager` only."""
        self.limiter.acquire()
        self.stats.count("calls")
        payload = {
            "grant_type": "client_credentials",
            "appkey": self.settings.app_key.reveal(),
            "appsecret": self.settings.app_secret.reveal(),
        }
        url = self.settings.rest_url + self.TOKEN_PATH
        try:
            resp = self._session().post(url, json=payload, timeout=self.settings.request_timeout_s)
        except requests.RequestException as e:
            # requests' message may carry the request; we keep only its kind
            raise TokenError(f"tokenP: {type(e).__name__}") from None
        body = _json_body(resp) or {}
        token = str(body.get("access_token", ""))
        if resp.status_code == 200 and token:
            now = time.time()
            return token, max(parse_expiry(body, now) - now, 0.0)
        code = str(body.get("error_code") or body.get("msg_cd") or f"http_{resp.status_code}")
        if code == "EGW00133":
            raise TokenRateLimited("tokenP: EGW00133 (one issuance per minute)")
        raise TokenError(f"tokenP refused: {code}", code)

    def _headers(self, tr_id: str, token: str) -> dict[str, str]:
        return {
            "authorization": f"Bearer {token}",
            "appkey": self.settings.app_key.reveal(),
            "appsecret": self.settings.app_secret.reveal(),
            "tr_id": tr_id,
            "custtype": "P",
            "content-type": "application/json; charset=utf-8",
        }

    # -- the one call path
    def call(
        self, path: str, tr_id: str, params: Mapping[str, str], stats: CallStats | None = None
    ) -> dict[str, Any]:
        """GET `path` and return the parsed body of a successful answer (``rt_cd == "0"``).

        Raises `KisApiError` (not retryable) or `RetriesExhausted` (from the last `KisError`).
        """
        if self.tokens is None:
            raise KisApiError("no_token_manager", "the client has no token manager")
        tokens = self.tokens
        url = self.settings.rest_url + path
        token_retried = False

        def attempt() -> dict[str, Any]:
            nonlocal token_retried
            while True:
                outcome = self._attempt(url, path, tr_id, params, stats)
                if isinstance(outcome, dict):
                    return outcome
                if isinstance(outcome, _TokenRejected):
                    self._record(stats, "token_reissues", outcome.code)
                    if not token_retried:  # re-issued once, not counted as a try
                        token_retried = True
                        tokens.invalidate(outcome.token)
                        continue
                    outcome = KisTransportError(outcome.code, "token rejected again after re-issue")
                if outcome.code == RATE_LIMITED:
                    self._record(stats, "rate_limited", RATE_LIMITED)
                else:
                    self._record_error(stats, outcome.code)
                raise _Retryable(outcome)

        def kind_of(e: BaseException) -> str:
            return "rate_limited" if isinstance(e, _Retryable) and e.error.code == RATE_LIMITED else "error"

        def on_retry(e: BaseException, _delay_s: float) -> None:
            if kind_of(e) == "error":
                self._record(stats, "retries")

        budgets = {
            "error": Budget(
                self.max_tries, Backoff(base_s=self._backoff_base_s, cap_s=self._backoff_cap_s, jitter=0.5)
            ),
            # rate-limit answers back off without counting as failures, up to max_rate_limited rounds
            "rate_limited": Budget(
                self.max_rate_limited + 1, Backoff(base_s=0.1, cap_s=self._backoff_cap_s, jitter=0.5)
            ),
        }
        try:
            return retry_call(
                attempt,
                retry_on=(_Retryable,),
                kind_of=kind_of,
                budgets=budgets,
                on_retry=on_retry,
                sleep=self._sleep,
                what=tr_id,
            )
        except RetriesExhausted as e:
            assert isinstance(e.__cause__, _Retryable)
            last = e.__cause__.error
            raise RetriesExhausted(
                f"{tr_id} failed after {e.attempts} tries: {last.code}", e.attempts
            ) from last

    def _attempt(
        self, url: str, path: str, tr_id: str, params: Mapping[str, str], stats: CallStats | None
    ) -> dict[str, Any] | KisError | _TokenRejected:
        """One request: the body of a success, a retryable error, or a rejected token; raises
        `KisApiError` for what is not retryable."""
        assert self.tokens is not None
        try:
            token = self.tokens.get()
        except TokenError as e:
            return KisTransportError(e.code or "token_unavailable", str(e))
        self.limiter.acquire()
        self._record(stats, "calls")
        try:
            resp = self._session().get(
                url,
                params=dict(params),
                headers=self._headers(tr_id, token),
                timeout=self.settings.request_timeout_s,
            )
        except requests.Timeout:
            return KisTransportError(
                "timeout", f"{path} did not answer in {self.settings.request_timeout_s}s"
            )
        except requests.RequestException as e:
            # requests' message carries the request line (and some adapters the headers): keep the kind only
            return KisTransportError("connection", f"{path}: {type(e).__name__}")
        body = _json_body(resp)
        status = resp.status_code
        if body is None:
            if status >= 500:
                return KisTransportError(f"http_{status}", f"{path}: no JSON body", status)
            raise KisApiError(f"http_{status}", f"{path}: no JSON body", status)
        rt_cd = str(body.get("rt_cd", "")).strip()
        code = str(body.get("msg_cd") or body.get("error_code") or "").strip()
        if rt_cd == "0" and status < 400:
            return body
        if code in TOKEN_CODES:
            return _TokenRejected(code, token)
        message = str(body.get("msg1") or body.get("error_description") or "").strip()
        if code == RATE_LIMITED or code in TRANSIENT_CODES or status >= 500:
            return KisTransportError(code or f"http_{status}", message, status)
        raise KisApiError(code or f"http_{status}", message, status)

    def _record(self, stats: CallStats | None, field: str, code: str = "") -> None:
        self.stats.count(field, code)
        if stats is not None:
            stats.count(field, code)

    def _record_error(self, stats: CallStats | None, code: str) -> None:
        self.stats.error(code)
        if stats is not None:
            stats.error(code)

    # -- endpoints
    def inquire_price(self, symbol: str, stats: CallStats | None = None) -> dict[str, str]:
        """``output`` of inquire-price (FHKST01010100) for one symbol."""
        path, tr_id = self.PRICE
        body = self.call(
            path, tr_id, {"FID_COND_MRKT_DIV_CODE": self.MARKET_CODE, "FID_INPUT_ISCD": symbol}, stats
        )
        output = body.get("output")
        if not isinstance(output, dict):
            raise KisApiError("bad_output", f"inquire-price {symbol}: output is not an object")
        return {str(k): str(v) for k, v in output.items()}

    def multprice(self, symbols: Sequence[str], stats: CallStats | None = None) -> dict[str, dict[str, str]]:
        """intstock-multprice (FHKST11300006): rows keyed by ``inter_shrn_iscd``, never by position.

        Unknown codes come back as blank rows and are simply absent from the result. A row for a
        code not asked for, or a second row for one code, is a wrong answer: rejected and counted
        (`CallStats.wrong_code`); the codes it displaced are absent, so they are asked again."""
        if not 0 < len(symbols) <= self.MULTPRICE_MAX_SYMBOLS:
            raise ValueError(f"multprice takes 1..{self.MULTPRICE_MAX_SYMBOLS} symbols, got {len(symbols)}")
        params: dict[str, str] = {}
        for n, symbol in enumerate(symbols, start=1):
            params[f"FID_COND_MRKT_DIV_CODE_{n}"] = self.MARKET_CODE
            params[f"FID_INPUT_ISCD_{n}"] = symbol
        path, tr_id = self.MULTPRICE
        body = self.call(path, tr_id, params, stats)
        output = body.get("output")
        rows = output if isinstance(output, list) else [output] if isinstance(output, dict) else []
        wanted = set(symbols)
        positional = len(rows) == len(symbols)
        out: dict[str, dict[str, str]] = {}
        for n, row in enumerate(rows):
            if not isinstance(row, dict):
                continue
            code = str(row.get("inter_shrn_iscd", "")).strip()
            if not code:
                continue
            if code not in wanted or code in out:
                if stats is not None:
                    stats.wrong_code(symbols[n] if positional else "?", code)
                continue
            out[code] = {str(k): str(v) for k, v in row.items()}
        return out

    def chk_holiday(self, day: date, stats: CallStats | None = None) -> bool | None:
        """Whether KRX opens on `day` (``opnd_yn``); None when KIS cannot say."""
        path, tr_id = self.CHK_HOLIDAY
        params = {"BASS_DT": f"{day:%Y%m%d}", "CTX_AREA_NK": "", "CTX_AREA_FK": ""}
        try:
            body = self.call(path, tr_id, params, stats)
        except (KisError, RetriesExhausted) as e:
            log.warning("chk-holiday failed", extra={"day": str(day), "error": str(e)})
            return None
        output = body.get("output")
        rows = output if isinstance(output, list) else [output] if isinstance(output, dict) else []
        for row in rows:
            if isinstance(row, dict) and str(row.get("bass_dt", "")).strip() == f"{day:%Y%m%d}":
                answer = str(row.get("opnd_yn", "")).strip().upper()
                if answer in ("Y", "N"):
                    return answer == "Y"
        return None

    def download_master(self, file_name: str) -> bytes:
        """A KRX master file (``kospi_code.mst.zip``...) from ``master_url``; no auth, no quota."""
        url = f"{self.settings.master_url}/{file_name}"

        def download() -> bytes:
            try:
                resp = self._session().get(url, timeout=self.MASTER_TIMEOUT_S)
            except requests.RequestException as e:
                raise KisTransportError("master_download", f"{file_name}: {type(e).__name__}") from e
            if resp.status_code == 200 and resp.content:
                return resp.content
            raise KisTransportError("master_download", f"{file_name}: http_{resp.status_code}")

        try:
            return retry_call(
                download,
                retry_on=(KisTransportError,),
                tries=self.max_tries,
                backoff=Backoff(base_s=0.5, cap_s=5.0, jitter=0.5),
                sleep=self._sleep,
                what=f"download of {file_name}",
            )
        except RetriesExhausted as e:
            assert isinstance(e.__cause__, KisTransportError)
            raise e.__cause__ from None

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()


class _Retryable(Exception):
    """A `KisError` a retry may fix, carried through `retry_call` (a raised `KisApiError` is not)."""

    def __init__(self, error: KisError):
        super().__init__(error.code)
        self.error = error


class _TokenRejected:
    __slots__ = ("code", "token")

    def __init__(self, code: str, token: str):
        self.code = code
        self.token = token

    def __repr__(self) -> str:
        return f"_TokenRejected({self.code})"  # never the token


def _json_body(resp: requests.Response) -> dict[str, Any] | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
