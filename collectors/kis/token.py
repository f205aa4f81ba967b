"""The KIS access token: one per app key, cached on disk, shared by every process.

KIS issues at most one token per minute per app key (more → HTTP 403 ``EGW00133``) and a token
lives 24 h, so the token is cached in a 0600 file per app key (``kis.token_cache_path``, default
``<data_dir>/state/kis_token.json``; key n > 1 of several: ``kis_token_<n>.json``) and reused until
``token_refresh_margin_s`` before it expires. Every read-or-issue happens under an fcntl lock on ``<cache>.lock``: when several
processes start together, one issues and the others read its token. The file records the key's
fingerprint (never the key), so a different app key never picks up a foreign token.

`invalidate(token)` is what a caller does on ``EGW00123`` (expired) / ``EGW00121`` (invalid): the
next `get` issues a new token — unless another process has already replaced it — and still no
sooner than one minute after the previous issuance: the manager waits for it, or, with
``wait_to_issue=False`` (several keys, where another key can do the work), raises
`TokenRateLimited` at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import msgspec

from collectors.kis.ratelimit import key_fingerprint
from observer.atomic import write_atomic
from observer.clock import KST
from observer.config import Config, ensure_private_dir, state_dir

log = logging.getLogger(__name__)
ISSUE_INTERVAL_S = 61.0  # KIS: at most one issuance per minute (a second of margin)


class TokenError(Exception):
    """No token could be obtained. ``code`` is KIS's refusal code when KIS refused (EGW00103 bad app
    key, EGW00105 bad secret...), else empty. The message never carries a credential."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class TokenRateLimited(TokenError):
    """KIS refused an issuance: one per minute (``EGW00133``)."""

    def __init__(self, message: str, code: str = "EGW00133"):
        super().__init__(message, code)


class CachedToken(msgspec.Struct, frozen=True, kw_only=True):
    key_fingerprint: str
    access_token: str
    expires_at_epoch_s: float
    issued_at_epoch_s: float
    invalidated: bool = False


_decoder = msgspec.json.Decoder(CachedToken)
_encoder = msgspec.json.Encoder()

# issue() returns (access_token, expires_in_s); it raises TokenError (or a subclass) on failure.
IssueFn = Callable[[], tuple[str, float]]


def token_cache_path(cfg: Config, key_index: int = 1) -> Path:
    """The token cache of app key `key_index` (1-based; the first keeps the single key's file)."""
    path = Path(cfg.kis.token_cache_path) if cfg.kis.token_cache_path else state_dir(cfg) / "kis_token.json"
    return path if key_index == 1 else path.with_name(f"{path.stem}_{key_index}{path.suffix}")


def parse_expiry(body: Mapping[str, object], now_epoch_s: float) -> float:
    """Expiry (epoch s) of a tokenP answer: ``expires_in``, else ``access_token_token_expired`` (KST)."""
    expires_in = body.get("expires_in")
    try:
        if expires_in is not None and str(expires_in).strip():
            return now_epoch_s + float(str(expires_in))
    except ValueError:
        pass
    text = str(body.get("access_token_token_expired", "")).strip()
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=KST).timestamp()
    except ValueError:
        return now_epoch_s + 86_400.0


class TokenManager:
    """Hands out a valid access token, issuing one only when the shared cache has none."""

    def __init__(
        self,
        path: Path,
        app_key_fingerprint: str,
        issue: IssueFn,
        *,
        refresh_margin_s: float = 3_600.0,
        issue_interval_s: float = ISSUE_INTERVAL_S,
        wait_to_issue: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        wall_time: Callable[[], float] = time.time,
    ):
        self.path = path
        self._fp = app_key_fingerprint
        self._issue = issue
        self._margin_s = refresh_margin_s
        self._issue_interval_s = issue_interval_s
        self._wait_to_issue = wait_to_issue
        self._sleep = sleep
        self._time = wall_time
        self._thread_lock = threading.Lock()
        self._current: CachedToken | None = None
        self.issued = 0  # tokens this process obtained from KIS
        self.cache_hits = 0

    @classmethod
    def for_key(
        cls, cfg: Config, app_key: str, issue: IssueFn, *, key_index: int = 1, wait_to_issue: bool = True
    ) -> TokenManager:
        return cls(
            token_cache_path(cfg, key_index),
            key_fingerprint(app_key),
            issue,
            refresh_margin_s=cfg.kis.token_refresh_margin_s,
            wait_to_issue=wait_to_issue,
        )

    def get(self) -> str:
        """A token valid for at least the refresh margin (or the freshest KIS allows right now)."""
        current = self._current
        if current is not None and self._usable(current):
            return current.access_token
        with self._thread_lock, self._file_lock():
            cached = self._read()
            if cached is not None and self._usable(cached):
                self._current = cached
                self.cache_hits += 1
                return cached.access_token
            self._current = self._issue_respecting_interval(cached)
            return self._current.access_token

    def invalidate(self, token: str) -> None:
        """KIS rejected `token` (expired / invalid): the next `get` replaces it (at most 1/min)."""
        with self._thread_lock, self._file_lock():
            if self._current is not None and self._current.access_token == token:
                self._current = None
            cached = self._read()
            if cached is not None and cached.access_token == token and not cached.invalidated:
                self._write(msgspec.structs.replace(cached, invalidated=True))

    # -- internals
    def _usable(self, tok: CachedToken) -> bool:
        return (
            not tok.invalidated
            and tok.key_fingerprint == self._fp
            and (tok.expires_at_epoch_s - self._margin_s > self._time())
        )

    def _issue_respecting_interval(self, cached: CachedToken | None) -> CachedToken:
        if cached is not None and cached.key_fingerprint == self._fp:
            wait_s = cached.issued_at_epoch_s + self._issue_interval_s - self._time()
            if wait_s > 0:
                if not cached.invalidated and cached.expires_at_epoch_s > self._time() + 1:
                    return cached  # inside the refresh margin but still valid: use it for now
                if not self._wait_to_issue:
                    raise TokenRateLimited(f"no new token for {wait_s:.0f} s (KIS: one issuance per minute)")
                log.info(
                    "waiting before a new token issuance (KIS allows one per minute)",
                    extra={"wait_s": round(wait_s, 1)},
                )
                self._sleep(wait_s)
        now = self._time()
        try:
            access_token, expires_in_s = self._issue()
        except TokenRateLimited:
            if not self._wait_to_issue:
                raise
            # another host (or a lost cache) issued recently: KIS says wait, so wait once
            log.warning(
                "KIS refused a token issuance (one per minute); waiting", extra={"wait_s": ISSUE_INTERVAL_S}
            )
            self._sleep(ISSUE_INTERVAL_S)
            now = self._time()
            access_token, expires_in_s = self._issue()
        fresh = CachedToken(
            key_fingerprint=self._fp,
            access_token=access_token,
            expires_at_epoch_s=now + expires_in_s,
            issued_at_epoch_s=now,
        )
        self._write(fresh)
        self.issued += 1
        log.info("issued a KIS access token", extra={"key": self._fp, "expires_in_s": expires_in_s})
        return fresh

    def _file_lock(self) -> _FileLock:
        return _FileLock(Path(f"{self.path}.lock"))

    def _read(self) -> CachedToken | None:
        try:
            return _decoder.decode(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as e:
            log.warning(
                "token cache unreadable; ignoring it",
                extra={"path": str(self.path), "error": type(e).__name__},
            )
            return None

    def _write(self, tok: CachedToken) -> None:
        ensure_private_dir(self.path.parent)
        write_atomic(self.path, _encoder.encode(tok))


class _FileLock:
    def __init__(self, path: Path):
        self.path = path
        self.fd = -1

    def __enter__(self) -> _FileLock:
        ensure_private_dir(self.path.parent)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
