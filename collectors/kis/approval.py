"""The WebSocket approval key: ``POST /oauth2/Approval`` once per session, kept in memory.

KIS names the secret ``secretkey`` here (``appsecret`` everywhere else)::

    POST /oauth2/Approval {"grant_type":"client_credentials","appkey":"..","secretkey":".."}
    -> {"approval_key": "<36 chars>"}

The key is fetched on first use and reused until a subscription answer says it is invalid
(``OPSP0011``): then `invalidate` and the next `get` fetches a new one. Thread-safe: the session
thread fetches, the loop thread reads. Neither the key nor the credentials ever appear in a log
line or an exception message.
"""

from __future__ import annotations

import threading

import msgspec
import requests

from collectors.kis.settings import KisSettings
from observer.config import Secret


class ApprovalError(Exception):
    """No approval key could be obtained (the message never carries a credential)."""


class _ApprovalAnswer(msgspec.Struct, frozen=True):
    approval_key: str = ""
    error_code: str = ""
    error_description: str = ""


_answer_decoder = msgspec.json.Decoder(_ApprovalAnswer)
_encoder = msgspec.json.Encoder()


class ApprovalKeyProvider:
    """Fetches and caches the approval key of one app key."""

    path = "/oauth2/Approval"

    def __init__(self, settings: KisSettings, *, session: requests.Session | None = None):
        self._settings = settings
        self._http = session or requests.Session()
        self._lock = threading.Lock()
        self._key: Secret | None = None
        self.fetches = 0
        self.failures = 0

    @property
    def cached(self) -> Secret | None:
        return self._key

    def get(self) -> Secret:
        """The cached key, or a freshly fetched one. Raises ApprovalError."""
        with self._lock:
            if self._key is None:
                self._key = self._fetch()
            return self._key

    def invalidate(self) -> None:
        """Forget the key (after OPSP0011); the next `get` fetches a new one."""
        with self._lock:
            self._key = None

    def _fetch(self) -> Secret:
        self.fetches += 1
        body = _encoder.encode(
            {
                "grant_type": "client_credentials",
                "appkey": self._settings.app_key.reveal(),
                "secretkey": self._settings.app_secret.reveal(),
            }
        )
        url = self._settings.rest_url + self.path
        try:
            resp = self._http.post(
                url,
                data=body,
                headers={"content-type": "application/json; charset=utf-8"},
                timeout=self._settings.request_timeout_s,
            )
        except requests.RequestException as e:
            self.failures += 1
            # the exception text may quote the request; name only its class
            raise ApprovalError(f"approval request to {url} failed: {type(e).__name__}") from None
        try:
            answer = _answer_decoder.decode(resp.content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.failures += 1
            raise ApprovalError(f"approval answer not understood (HTTP {resp.status_code})") from None
        if not answer.approval_key:
            self.failures += 1
            code = answer.error_code[:20] or "no approval_key"
            raise ApprovalError(f"approval refused (HTTP {resp.status_code}, {code})")
        return Secret(answer.approval_key)

    def close(self) -> None:
        self._http.close()
