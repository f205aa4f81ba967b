"""The subscription manager: the desired slot symbols vs what one KIS session has registered.

Pure bookkeeping, no I/O: the worker feeds it the desired symbols (from the core's `SlotCommand`),
the acks and the data it sees, and sends the requests `next_requests` returns.

Promises:

* never more than ``max_registrations`` (41) symbols registered *or in flight*: a symbol counts from
  the moment its subscribe is sent until its unsubscribe is acknowledged, so a replacement is only
  subscribed after the symbol it replaces is unsubscribed (``tr_type`` "2");
* every ack code is handled (`handle_ack` returns what the worker must do about it):
  OPSP0000/OPSP0002 registered, OPSP0001/OPSP0003 released, OPSP0008 cap reached (the symbol backs
  off for ``cap_backoff_s``), OPSP8996 session in use, OPSP0011 approval key invalid,
  OPSP8991/8992 and rt_cd 9 errors reported;
* an unanswered request is sent again after ``ack_timeout_s`` (re-subscribing is harmless:
  OPSP0002; re-unsubscribing too: OPSP0003);
* a symbol registered but silent for ``silent_after_s`` is reported once (`silent_symbols`), again
  only after it has streamed in between.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import msgspec

from collectors.kis.ws_parser import ControlFrame
from collectors.providers import ControlOutcome
from observer.config import Secret

TrType = Literal["1", "2"]
SUBSCRIBE: TrType = "1"
UNSUBSCRIBE: TrType = "2"

_encoder = msgspec.json.Encoder()


class _State(enum.Enum):
    SUBSCRIBING = "subscribing"
    REGISTERED = "registered"
    UNSUBSCRIBING = "unsubscribing"


@dataclass(slots=True)
class _Entry:
    state: _State
    sent_at: float
    registered_at: float = 0.0
    last_data_at: float = 0.0
    silent_reported: bool = False
    resends: int = 0


@dataclass(frozen=True, slots=True)
class Request:
    tr_type: TrType
    symbol: str


def request_text(approval_key: Secret, tr_id: str, req: Request) -> str:
    """The subscribe / unsubscribe text frame (the only place the approval key is revealed)."""
    return _encoder.encode(
        {
            "header": {
                "approval_key": approval_key.reveal(),
                "custtype": "P",
                "tr_type": req.tr_type,
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": tr_id, "tr_key": req.symbol}},
        }
    ).decode()


class SubscriptionManager:
    """Desired vs registered symbols of one session (see the module docstring)."""

    def __init__(
        self,
        *,
        max_registrations: int = 41,
        tr_id: str = "H0STCNT0",
        ack_timeout_s: float = 5.0,
        cap_backoff_s: float = 60.0,
        silent_after_s: float = 60.0,
    ):
        self.max_registrations = max_registrations
        self.tr_id = tr_id
        self.ack_timeout_s = ack_timeout_s
        self.cap_backoff_s = cap_backoff_s
        self.silent_after_s = silent_after_s
        self._desired: list[str] = []
        self._desired_set: frozenset[str] = frozenset()
        self._entries: dict[str, _Entry] = {}
        self._blocked_until: dict[str, float] = {}
        self.peak_registrations = 0
        self.resends = 0
        self.unmatched_acks = 0

    # -- inputs
    def set_desired(self, symbols: Iterable[str]) -> None:
        """The symbols wanted, most important first (duplicates ignored)."""
        seen: dict[str, None] = {}
        for s in symbols:
            seen.setdefault(s, None)
        self._desired = list(seen)
        self._desired_set = frozenset(self._desired)

    def reset(self) -> None:
        """A new session: nothing is registered any more (the desired set stays)."""
        self._entries.clear()

    def note_data(self, symbol: str, now: float) -> None:
        entry = self._entries.get(symbol)
        if entry is not None:
            entry.last_data_at = now
            entry.silent_reported = False

    # -- outputs
    def next_requests(self, now: float) -> list[Request]:
        """Requests to send now: unsubscribes first, resends of unanswered ones, then subscribes."""
        out: list[Request] = []
        for symbol, entry in self._entries.items():
            if entry.state is _State.REGISTERED and symbol not in self._desired_set:
                entry.state = _State.UNSUBSCRIBING
                entry.sent_at = now
                out.append(Request(UNSUBSCRIBE, symbol))
            elif entry.state is not _State.REGISTERED and now - entry.sent_at >= self.ack_timeout_s:
                entry.sent_at = now
                entry.resends += 1
                self.resends += 1
                tr_type: TrType = SUBSCRIBE if entry.state is _State.SUBSCRIBING else UNSUBSCRIBE
                out.append(Request(tr_type, symbol))
        for symbol in self._desired:
            if len(self._entries) >= self.max_registrations:
                break
            if symbol in self._entries:
                continue
            blocked = self._blocked_until.get(symbol)
            if blocked is not None:
                if now < blocked:
                    continue
                del self._blocked_until[symbol]
            self._entries[symbol] = _Entry(_State.SUBSCRIBING, sent_at=now)
            out.append(Request(SUBSCRIBE, symbol))
        self.peak_registrations = max(self.peak_registrations, len(self._entries))
        return out

    def silent_symbols(self, now: float) -> list[str]:
        """Registered symbols with no data for ``silent_after_s``, each reported once."""
        out = []
        for symbol, entry in self._entries.items():
            if entry.state is not _State.REGISTERED or entry.silent_reported:
                continue
            if now - max(entry.registered_at, entry.last_data_at) >= self.silent_after_s:
                entry.silent_reported = True
                out.append(symbol)
        return out

    # -- acks
    def handle_ack(self, ack: ControlFrame, now: float) -> ControlOutcome:
        code = ack.msg_cd.strip()
        symbol = ack.tr_key
        if code in ("OPSP0000", "OPSP0002"):
            _, entry = self._match(symbol, _State.SUBSCRIBING)
            if entry is not None and entry.state is _State.SUBSCRIBING:
                entry.state = _State.REGISTERED
                entry.registered_at = now
            return ControlOutcome("none", symbol, code)
        if code in ("OPSP0001", "OPSP0003"):
            key, entry = self._match(symbol, _State.UNSUBSCRIBING)
            if entry is not None and entry.state is _State.UNSUBSCRIBING:
                del self._entries[key]
            return ControlOutcome("none", symbol, code)
        if code == "OPSP0008":
            self._release(symbol, _State.SUBSCRIBING, now + self.cap_backoff_s)
            return ControlOutcome(
                "event",
                symbol,
                code,
                "WARNING",
                f"registration cap reached at {len(self._entries)} registrations; {symbol} backs off",
            )
        if code == "OPSP8996":
            return ControlOutcome(
                "session_in_use", symbol, code, "WARNING", "another session holds this app key"
            )
        if code == "OPSP0011":
            return ControlOutcome("invalid_key", symbol, code, "WARNING", "approval key rejected")
        if code in ("OPSP8991", "OPSP8992"):
            self._release(symbol, _State.SUBSCRIBING, now + self.cap_backoff_s)
            return ControlOutcome("event", symbol, code, "ERROR", f"subscription refused: {ack.message}")
        if ack.rt_cd == "0":
            return ControlOutcome("event", symbol, code, "INFO", f"unknown success code: {ack.message}")
        # rt_cd 9 (JSON parsing errors, OPSP899x/999x) and anything else: the request is lost;
        # the ack timeout resends it.
        return ControlOutcome(
            "event", symbol, code, "ERROR", f"request rejected (rt_cd {ack.rt_cd}): {ack.message}"
        )

    def _match(self, symbol: str, state: _State) -> tuple[str, _Entry | None]:
        """The entry an ack answers: by tr_key, or the oldest request in `state` when it has none."""
        key = symbol or self._oldest(state) or ""
        entry = self._entries.get(key)
        if entry is None:
            self.unmatched_acks += 1
        return key, entry

    def _oldest(self, state: _State) -> str | None:
        best: tuple[float, str] | None = None
        for symbol, entry in self._entries.items():
            if entry.state is state and (best is None or entry.sent_at < best[0]):
                best = (entry.sent_at, symbol)
        return best[1] if best else None

    def _release(self, symbol: str, state: _State, blocked_until: float) -> None:
        key = symbol or self._oldest(state) or ""
        entry = self._entries.get(key)
        if entry is not None and entry.state is state:
            del self._entries[key]
            self._blocked_until[key] = blocked_until

    # -- views
    @property
    def desired(self) -> list[str]:
        return list(self._desired)

    @property
    def registered(self) -> list[str]:
        """Acknowledged registrations."""
        return [s for s, e in self._entries.items() if e.state is _State.REGISTERED]

    @property
    def held(self) -> int:
        """Registrations held or in flight (what counts against the cap)."""
        return len(self._entries)

    @property
    def settled(self) -> bool:
        """Every desired symbol registered (or backing off) and nothing else held."""
        want = [s for s in self._desired if s not in self._blocked_until][: self.max_registrations]
        regs = self.registered
        return len(regs) == len(self._entries) and set(regs) == set(want)
