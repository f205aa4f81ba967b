"""Alerts: one message per episode, delivered by the Telegram Bot API without blocking anyone.

    rule true  --set_condition(key, True)-->  new episode? --> log line + (Telegram) queue
    rule false --set_condition(key, False)--> episode closed (the next true is a new message)
    one-shot   --notify(key, ...)-------------------------> log line + (Telegram) queue

    queue (bounded, drop-oldest, counted) --> sender thread --POST {base}/bot<token>/sendMessage-->
        2xx ok: sent | 429 / 5xx / network: retried with `Backoff` (order kept, nothing skipped)
        | other 4xx: refused (bad token or chat), logged, dropped and counted

Callers never block: `set_condition` and `notify` only append to the queue. Without
``TELEGRAM_BOT_TOKEN`` / ``TELEGRAM_CHAT_ID`` every alert goes to the log only, and start-up
says so once. The token is part of the URL: it is registered with the log masker and scrubbed
from every error text this module produces.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

import requests

from observer.config import Config, Secrets
from observer.logs import MASKER
from observer.retry import Backoff, RetryCancelled, retry_call
from observer.schema import Severity

log = logging.getLogger("observer.alerts")
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


class _Unreachable(Exception):
    """Telegram did not take the message (network, 429, 5xx): retried; the server may say when."""

    def __init__(self, outcome: str, retry_after_s: float):
        super().__init__(outcome)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Alert:
    key: str
    severity: Severity
    text: str
    photo_png: bytes | None = None  # sent with sendPhoto, the text as its caption

    def message(self) -> str:
        return f"[{self.severity}] KRX observer: {self.text}"


class _ScrubToken(logging.Filter):
    """urllib3 logs request lines (``POST /bot<token>/sendMessage``) at DEBUG: scrub them at the
    source, so that not even a handler without the masker can leak the token."""

    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str) and self.secret in record.msg:
            record.msg = record.msg.replace(self.secret, "***")
        return True


def _guard_http_logs(secret: str) -> None:
    for name in ("urllib3.connectionpool", "urllib3.connection", "requests"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ScrubToken) and f.secret == secret for f in logger.filters):
            logger.addFilter(_ScrubToken(secret))


class AlertSender:
    """Episode bookkeeping (caller's thread) + delivery (one background thread)."""

    def __init__(self, cfg: Config, secrets: Secrets, *, source: str = "monitor"):
        self._cfg = cfg.alerts
        self._token = secrets.telegram_bot_token.reveal()
        self._chat_id = secrets.telegram_chat_id.reveal()
        for value in (self._token, self._chat_id):
            if value:
                MASKER.add(value)
        if self._token:
            _guard_http_logs(self._token)
        self.source = source
        self.telegram_enabled = bool(self._token and self._chat_id)
        self._url = f"{self._cfg.telegram_base_url.rstrip('/')}/bot{self._token}/sendMessage"
        self._photo_url = self._url.removesuffix("sendMessage") + "sendPhoto"
        self._queue: queue.Queue[Alert] = queue.Queue(maxsize=max(1, self._cfg.queue_size))
        self._active: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # counters (read from other threads: plain ints, updated under the GIL)
        self.episodes = 0
        self.sent = 0
        self.attempts_failed = 0
        self.refused = 0
        self.dropped = 0
        self.undelivered = 0

    # -- the caller's side (never blocks)
    def start(self) -> None:
        if not self.telegram_enabled:
            log.warning(
                "Telegram alerts disabled: TELEGRAM_BOT_TOKEN / TELEGRAM_CHAT_ID not set; alerts go to the log only"
            )
            return
        log.info("Telegram alerts enabled", extra={"base_url": self._cfg.telegram_base_url})
        self._thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)
        self._thread.start()

    def set_condition(
        self, key: str, active: bool, severity: Severity, text: str, *, telegram: bool = True
    ) -> bool:
        """Report the state of rule `key`; returns True when this starts a new episode (one message)."""
        if not active:
            if key in self._active:
                self._active.discard(key)
                log.info("alert cleared", extra={"alert": key})
            return False
        if key in self._active:
            return False
        self._active.add(key)
        self.notify(key, severity, text, telegram=telegram)
        return True

    def notify(
        self,
        key: str,
        severity: Severity,
        text: str,
        *,
        telegram: bool = True,
        photo_png: bytes | None = None,
    ) -> None:
        """A one-shot alert (e.g. a backup failure event): always one message (with a chart: sendPhoto)."""
        alert = Alert(key, severity, text, photo_png)
        self.episodes += 1
        log.log(
            _LEVELS.get(severity, logging.CRITICAL),
            "alert: " + text,
            extra={"alert": key, "severity": severity, "channel": "telegram" if telegram else "log"},
        )
        if telegram and self.telegram_enabled:
            self._enqueue(alert)

    @property
    def active(self) -> frozenset[str]:
        return frozenset(self._active)

    def resume(self, keys: list[str]) -> None:
        """Episodes already alerted by an earlier run of this monitor: not sent again."""
        self._active.update(keys)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _enqueue(self, alert: Alert) -> None:
        with self._lock:
            while True:
                try:
                    self._queue.put_nowait(alert)
                    return
                except queue.Full:
                    try:
                        lost = self._queue.get_nowait()
                    except queue.Empty:
                        continue
                    self.dropped += 1
                    log.error("alert queue full: oldest alert dropped", extra={"alert": lost.key})

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the sender; what is still queued is logged as undelivered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        undelivered = self._queue.qsize() + self.undelivered
        if undelivered:
            log.warning("alerts not delivered at stop", extra={"count": undelivered})

    # -- the sender thread
    def _run(self) -> None:
        session = requests.Session()
        # one backoff for the thread: while the API is down, the next alert waits as long
        backoff = Backoff(base_s=self._cfg.retry_initial_s, cap_s=self._cfg.retry_max_s, jitter=0.2)
        try:
            while not self._stop.is_set():
                try:
                    alert = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._deliver(session, alert, backoff)
        finally:
            session.close()

    def _deliver(self, session: requests.Session, alert: Alert, backoff: Backoff) -> None:
        body = {"chat_id": self._chat_id, "text": alert.message(), "disable_web_page_preview": True}
        if alert.photo_png is not None:
            body = {"chat_id": self._chat_id, "caption": alert.message()[:1024]}
        if self._stop.is_set():
            self.undelivered += 1
            return

        def post() -> str:
            retry_after_s, outcome = self._post(session, body, alert.photo_png)
            if outcome in ("sent", "refused"):
                return outcome
            raise _Unreachable(outcome, retry_after_s or 0.0)

        def on_retry(e: BaseException, delay_s: float) -> None:
            self.attempts_failed += 1
            log.warning(
                "Telegram unreachable; alert will be retried",
                extra={"alert": alert.key, "retry_in_s": round(delay_s, 2), "error": str(e)},
            )

        try:
            outcome = retry_call(
                post,
                retry_on=(_Unreachable,),
                tries=None,  # until delivered or stopped; order kept, nothing skipped
                backoff=backoff,
                min_delay_s=lambda e: e.retry_after_s if isinstance(e, _Unreachable) else 0.0,
                on_retry=on_retry,
                stop=self._stop,
                what="telegram sendMessage",
            )
        except RetryCancelled:
            self.undelivered += 1  # stopped while still retrying it
            return
        if outcome == "sent":
            self.sent += 1
            backoff.reset()
        else:
            self.refused += 1

    def _post(
        self, session: requests.Session, body: dict[str, Any], photo_png: bytes | None = None
    ) -> tuple[float | None, str]:
        """(retry_after_s, outcome): outcome is 'sent', 'refused' or a masked error text (retry)."""
        timeout = self._cfg.request_timeout_s
        try:
            if photo_png is None:
                resp = session.post(self._url, json=body, timeout=timeout)
            else:
                files = {"photo": ("summary.png", photo_png, "image/png")}
                resp = session.post(self._photo_url, data=body, files=files, timeout=timeout)
        except requests.RequestException as e:
            return None, self._scrub(f"{type(e).__name__}: {e}")
        if 200 <= resp.status_code < 300:
            return None, "sent"
        retry_after_s: float | None = None
        try:
            doc = resp.json()
            retry_after_s = float(doc.get("parameters", {}).get("retry_after", 0)) or None
            description = str(doc.get("description", ""))
        except (ValueError, AttributeError, TypeError):
            description = ""
        if resp.status_code == 429 or resp.status_code >= 500:
            return retry_after_s, f"HTTP {resp.status_code} {self._scrub(description)}".strip()
        log.error(
            "Telegram refused the alert; check TELEGRAM_BOT_TOKEN / TELEGRAM_CHAT_ID",
            extra={"status": resp.status_code, "description": self._scrub(description)},
        )
        return None, "refused"

    def _scrub(self, text: str) -> str:
        for value in (self._token, self._chat_id):
            if value:
                text = text.replace(value, "***")
        return text
