"""KIS credentials: access tokens (/oauth2/tokenP), WebSocket approval keys, token checks.

Rules, as the real gateway applies them (see kis_protocol.md):

* a token lives `token_ttl_s` (24 h); asking again within `token_reuse_s` (6 h) returns the same
  token; more than one tokenP call per app key within `token_min_interval_s` (60 s) is refused
  with HTTP 403 ``EGW00133``; an unknown app key gets 403 ``EGW00103``, a wrong secret ``EGW00105``;
* a /uapi call with a token that was revoked, never issued or belongs to another app key gets
  ``EGW00121``; an expired one ``EGW00123`` (both HTTP 500, as KIS answers);
* approval keys (36 chars) map back to their app key; the WS session uses that mapping.

Times are real wall-clock time (tokens do not follow the virtual market clock).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from collectors.kis_sim.errors import KisApiError, OAuthError
from observer.clock import KST, Clock

EXPIRED_TOKEN = ("EGW00123", "기간이 만료된 token 입니다.")
INVALID_TOKEN = ("EGW00121", "유효하지 않은 token 입니다.")


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """An issued access token."""

    token: str
    app_key: str
    issued_at: datetime
    expires_at: datetime

    def body(self, now: datetime) -> dict[str, object]:
        """The tokenP answer (``expires_in`` counts down for a re-served token, as KIS does)."""
        return {
            "access_token": self.token,
            "access_token_token_expired": self.expires_at.astimezone(KST).strftime("%Y-%m-%d %H:%M:%S"),
            "token_type": "Bearer",
            "expires_in": max(int((self.expires_at - now).total_seconds()), 0),
        }


def key_id(app_key: str) -> str:
    """A stable, non-secret name for an app key (what the ground truth and logs show)."""
    return "key-" + hashlib.sha256(app_key.encode()).hexdigest()[:10]


class AuthRegistry:
    """Thread-safe store of accounts, tokens and approval keys."""

    def __init__(
        self,
        accounts: dict[str, str],
        wall_clock: Clock,
        *,
        token_ttl_s: float = 86_400.0,
        token_reuse_s: float = 6 * 3_600.0,
        token_min_interval_s: float = 60.0,
        seed: int = 0,
    ):
        self._accounts = dict(accounts)
        self.key_order = list(accounts)  # app keys by number (1-based): what `RevokeKey` names
        self._clock = wall_clock
        self.token_ttl_s = token_ttl_s
        self.token_reuse_s = token_reuse_s
        self.token_min_interval_s = token_min_interval_s
        self._secret = hashlib.sha256(f"kis-sim-token:{seed}".encode()).digest()
        self._lock = threading.Lock()
        self._tokens: dict[str, TokenGrant] = {}
        self._current: dict[str, TokenGrant] = {}
        self._last_issue_call: dict[str, datetime] = {}
        self._expired: set[str] = set()
        self._approvals: dict[str, str] = {}
        self._serial = 0

    def knows(self, app_key: str) -> bool:
        return app_key in self._accounts

    def check_account(self, app_key: str, app_secret: str) -> None:
        """Raise OAuthError 403 for an unknown key (EGW00103) or a wrong secret (EGW00105)."""
        if app_key not in self._accounts:
            raise OAuthError(403, "EGW00103", "유효하지 않은 AppKey입니다.")
        if not hmac.compare_digest(self._accounts[app_key], app_secret):
            raise OAuthError(403, "EGW00105", "유효하지 않은 AppSecret입니다.")

    def issue_token(self, app_key: str, app_secret: str) -> tuple[TokenGrant, datetime]:
        """The current token of `app_key` (or a new one) and the time of the answer."""
        self.check_account(app_key, app_secret)
        now = self._clock.now()
        with self._lock:
            last = self._last_issue_call.get(app_key)
            if last is not None and (now - last).total_seconds() < self.token_min_interval_s:
                raise OAuthError(403, "EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
            self._last_issue_call[app_key] = now
            current = self._current.get(app_key)
            if (
                current is not None
                and current.token in self._tokens
                and current.token not in self._expired
                and (now - current.issued_at).total_seconds() < self.token_reuse_s
                and now < current.expires_at
            ):
                return current, now
            grant = TokenGrant(
                self._new_token(app_key, now), app_key, now, now + timedelta(seconds=self.token_ttl_s)
            )
            self._tokens[grant.token] = grant
            self._current[app_key] = grant
            return grant, now

    def revoke(self, app_key: str, app_secret: str, token: str) -> None:
        self.check_account(app_key, app_secret)
        with self._lock:
            grant = self._tokens.get(token)
            if grant is None or grant.app_key != app_key:
                raise OAuthError(403, *INVALID_TOKEN)
            del self._tokens[token]
            if self._current.get(app_key) is grant:
                del self._current[app_key]

    def remove_account(self, app_key: str) -> None:
        """The app key is deleted (as on the KIS portal): its tokens stop working at once and every
        later call with it gets ``EGW00103``."""
        with self._lock:
            self._accounts.pop(app_key, None)
            for approval in [a for a, key in self._approvals.items() if key == app_key]:
                del self._approvals[approval]
            for token in [t for t, grant in self._tokens.items() if grant.app_key == app_key]:
                del self._tokens[token]
            self._current.pop(app_key, None)

    def check_token(self, token: str, app_key: str) -> None:
        """Raise KisApiError 500 EGW00121 (invalid) or EGW00123 (expired) unless `token` is good."""
        now = self._clock.now()
        with self._lock:
            grant = self._tokens.get(token)
            if grant is None or grant.app_key != app_key:
                raise KisApiError(500, *INVALID_TOKEN)
            if token in self._expired or now >= grant.expires_at:
                raise KisApiError(500, *EXPIRED_TOKEN)

    def expire_all(self) -> int:
        """Expire every token issued so far (a fault); returns how many."""
        with self._lock:
            self._expired.update(self._tokens)
            return len(self._tokens)

    def issue_approval(self, app_key: str, secret_key: str) -> str:
        self.check_account(app_key, secret_key)
        with self._lock:
            self._serial += 1
            approval = str(
                uuid.UUID(bytes=hashlib.sha256(self._secret + f"a{self._serial}".encode()).digest()[:16])
            )
            self._approvals[approval] = app_key
            return approval

    def app_key_for_approval(self, approval_key: str) -> str | None:
        with self._lock:
            return self._approvals.get(approval_key)

    def _new_token(self, app_key: str, now: datetime) -> str:
        self._serial += 1
        header = {"typ": "JWT", "alg": "HS256"}
        payload = {
            "sub": "tokenP",
            "aud": key_id(app_key),
            "prdt_cd": "",
            "iss": "unisecurity",
            "exp": int(now.timestamp() + self.token_ttl_s),
            "iat": int(now.timestamp()),
            "jti": f"sim{self._serial:08d}",
        }
        parts = [_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode())]
        signature = hmac.new(self._secret, ".".join(parts).encode(), hashlib.sha256).digest()
        return ".".join([*parts, _b64(signature)])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
