"""The KIS real-time WebSocket service on top of `rfc6455`: sessions, registrations, feed, PINGPONG.

Data flow: a connection thread reads client messages (subscribe / unsubscribe / PINGPONG echoes)
and answers acks; the **pump** thread, every `pump_interval_s`, advances the watched symbols of the
market, packs their new trades into ``0|H0STCNT0|NNN|...`` frames (1-20 records, per symbol) and
orderbook changes into ``0|H0STASP0|001|...`` frames, and queues them per session; each session's
**writer** thread (`ws_session`) applies the frame faults, writes the frame and counts it in the
ground truth (`truth.Ledger`) only once it is on the socket.

Ordering promise: acks and data go through the same per-session queue, and registrations change
under the service lock that the pump dispatches under, so once a client has read an
UNSUBSCRIBE SUCCESS ack it has read every frame of that symbol the session will ever send.

Session rules: the first valid approval key binds the session to its app key; a second live
session of the same app key gets ``OPSP8996`` (rt_cd 9, header tr_id null) and is closed; 41 registrations per session,
counted per (tr_id, tr_key); an idle session (nothing written for `ping_idle_s` real seconds) gets
a PINGPONG; a session that leaves `ping_max_unanswered` PINGPONGs unanswered is closed.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from datetime import datetime

from collectors.kis_sim.auth import AuthRegistry, key_id
from collectors.kis_sim.errors import ConnectionClosed, WebSocketProtocolError
from collectors.kis_sim.faults import FaultBoard, stamp
from collectors.kis_sim.market import Market
from collectors.kis_sim.records import h0stasp0
from collectors.kis_sim.rfc6455 import WsConnection
from collectors.kis_sim.schema import BlackHole, DropSessions, KeyInUse, RevokeKey, Silence
from collectors.kis_sim.state import Quote, Trade
from collectors.kis_sim.truth import Ledger
from collectors.kis_sim.ws_session import (
    BOOK_TR,
    KNOWN_TR_IDS,
    TRADE_TR,
    KisSession,
    OutFrame,
    WsOptions,
    ack,
)
from observer.clock import KST, Clock

log = logging.getLogger(__name__)


class KisWsService:
    """All sessions, the pump thread, and the KIS message handling."""

    def __init__(
        self,
        market: Market,
        auth: AuthRegistry,
        faults: FaultBoard,
        ledger: Ledger,
        wall_clock: Clock,
        options: WsOptions | None = None,
    ):
        self.market = market
        self.auth = auth
        self.faults = faults
        self.ledger = ledger
        self.wall = wall_clock
        self.options = options or WsOptions()
        self.stopping = threading.Event()
        self._lock = threading.RLock()
        self._sessions: dict[int, KisSession] = {}
        self._bound: dict[str, KisSession] = {}
        self._ids = itertools.count(1)
        self.pump_errors = 0  # sessions the pump failed on (each logged and closed)
        self._pump = threading.Thread(target=self._pump_loop, name="ws-pump", daemon=True)
        faults.on_add(self._on_fault)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._pump.start()

    def pump_alive(self) -> bool:
        return self._pump.is_alive()

    def stop(self) -> None:
        self.stopping.set()
        self._pump.join(5.0)
        for s in self.sessions():
            self.close_session(s, "simulator_stopped", abort=False)

    def sessions(self) -> list[KisSession]:
        with self._lock:
            return list(self._sessions.values())

    def accepting(self) -> bool:
        """False while a drop fault refuses new connections."""
        return not self.faults.active(DropSessions)

    # ------------------------------------------------------------------ connection thread
    def handle(self, conn: WsConnection) -> None:
        """Run one session until the connection ends (called by `WsServer` in its own thread)."""
        session = KisSession(next(self._ids), conn, self)
        self.ledger.session_opened(session.id, stamp(self.wall.now(), self.market.now()))
        with self._lock:
            self._sessions[session.id] = session
        session.writer.start()
        reason = "client_closed"
        try:
            while not self.stopping.is_set():
                msg = conn.recv()
                if msg.kind == "close":
                    break
                if msg.kind == "pong":
                    session.unanswered = 0
                    continue
                if self.faults.active(BlackHole):
                    continue
                if msg.kind == "text":
                    self._on_text(session, msg.text)
        except WebSocketProtocolError as e:
            reason = f"protocol_error: {e}"
            conn.close(e.close_code, str(e))
        except ConnectionClosed:
            reason = "connection_lost"
        finally:
            self.close_session(session, session.close_reason or reason, abort=True)
            session.writer.join(5.0)

    def close_session(self, session: KisSession, reason: str, abort: bool) -> None:
        """Close `session` once: unregister everything, stop its writer, record why."""
        with self._lock:
            if self._sessions.pop(session.id, None) is None:
                return
            session.close_reason = reason
            if session.app_key is not None and self._bound.get(session.app_key) is session:
                del self._bound[session.app_key]
            for tr_id, tr_key in session.subs:
                if tr_id == TRADE_TR:
                    self.market.unwatch(tr_key)
            session.subs.clear()
        self.ledger.session_closed(session.id, stamp(self.wall.now(), self.market.now()), reason)
        try:
            session.queue.put_nowait(None)
        except queue.Full:
            pass  # the writer stops anyway once the socket is closed
        if abort:
            session.conn.abort()
        else:
            session.conn.close(1000, reason)

    def _on_text(self, session: KisSession, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self._reply(session, ack("", "", "9", "OPSP9999", "JSON PARSING ERROR : invalid json format"))
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("header"), dict):
            self._reply(session, ack("", "", "9", "OPSP9998", "JSON PARSING ERROR : header not found"))
            return
        header = msg["header"]
        if header.get("tr_id") == "PINGPONG":
            session.unanswered = 0
            return
        body = msg.get("body")
        inp = body.get("input") if isinstance(body, dict) else None
        if not isinstance(inp, dict):
            self._reply(session, ack("", "", "9", "OPSP9997", "JSON PARSING ERROR : body.input not found"))
            return
        tr_id, tr_key = str(inp.get("tr_id", "")), str(inp.get("tr_key", ""))
        approval = str(header.get("approval_key", ""))
        app_key = self.auth.app_key_for_approval(approval)
        if app_key is None:
            self._reply(session, ack(tr_id, tr_key, "1", "OPSP0011", "invalid approval : NOT FOUND"))
            return
        if not self._bind(session, app_key):
            # as recorded from KIS: rt_cd 9 and a null header tr_id
            self._reply(session, ack(None, tr_key, "9", "OPSP8996", "ALREADY IN USE appkey"))
            session.queue.put(None)
            session.writer.join(2.0)
            self.close_session(session, "appkey_in_use", abort=False)
            return
        if tr_id not in KNOWN_TR_IDS:
            self._reply(session, ack(tr_id, tr_key, "9", "OPSP8991", "invalid tr_id"))
            return
        if not tr_key or len(tr_key) > 12 or not tr_key.isalnum():
            self._reply(session, ack(tr_id, tr_key, "9", "OPSP8992", "invalid tr_key"))
            return
        tr_type = str(header.get("tr_type", ""))
        if tr_type == "1":
            self._subscribe(session, tr_id, tr_key)
        elif tr_type == "2":
            self._unsubscribe(session, tr_id, tr_key)
        else:
            self._reply(session, ack(tr_id, tr_key, "9", "OPSP8993", "JSON PARSING ERROR : invalid tr_type"))

    def _bind(self, session: KisSession, app_key: str) -> bool:
        with self._lock:
            if session.app_key is not None:
                return True
            holder = self._bound.get(app_key)
            if holder is not None and holder is not session and holder.id in self._sessions:
                return False
            if self._taken_elsewhere(app_key):
                return False
            self._bound[app_key] = session
            session.app_key = app_key
        self.ledger.session_bound(session.id, key_id(app_key))
        return True

    def _subscribe(self, session: KisSession, tr_id: str, tr_key: str) -> None:
        with self._lock:
            if (tr_id, tr_key) in session.subs:
                self._reply(session, ack(tr_id, tr_key, "1", "OPSP0002", "ALREADY IN SUBSCRIBE"))
                return
            if len(session.subs) >= self.options.max_registrations:
                self._reply(session, ack(tr_id, tr_key, "1", "OPSP0008", "MAX SUBSCRIBE OVER"))
                return
            session.subs.add((tr_id, tr_key))
            if tr_id == TRADE_TR:
                since_s = self.market.watch(tr_key)
                if since_s is not None:
                    session.subscribed_at_s[tr_key] = since_s
            self._reply(
                session, ack(tr_id, tr_key, "0", "OPSP0000", "SUBSCRIBE SUCCESS", session.crypto_output)
            )

    def _unsubscribe(self, session: KisSession, tr_id: str, tr_key: str) -> None:
        with self._lock:
            if (tr_id, tr_key) not in session.subs:
                self._reply(session, ack(tr_id, tr_key, "1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)"))
                return
            session.subs.discard((tr_id, tr_key))
            session.book_versions.pop(tr_key, None)
            if tr_id == TRADE_TR:
                session.subscribed_at_s.pop(tr_key, None)
            if tr_id == TRADE_TR:
                self.market.unwatch(tr_key)
            self._reply(
                session, ack(tr_id, tr_key, "0", "OPSP0001", "UNSUBSCRIBE SUCCESS", session.crypto_output)
            )

    @staticmethod
    def _reply(session: KisSession, text: str) -> None:
        session.enqueue(OutFrame(text, "ack"))

    # ------------------------------------------------------------------ pump thread
    def _pump_loop(self) -> None:
        interval = self.options.pump_interval_s
        try:
            while not self.stopping.wait(interval):
                self.pump_once()
        except Exception:
            # not a session's trouble (those are contained in pump_once): a bug; health turns degraded
            log.exception("ws pump died: no feed is served any more")
            raise

    def pump_once(self, at: datetime | None = None) -> None:
        """One pump step: publish new trades and orderbook changes, send due PINGPONGs.

        One session's trouble never stops the feed of the others: a full queue closes that session
        (``send_queue_overflow``) once the dispatch is over; an unexpected error while serving a
        session is counted in `pump_errors`, logged, and closes that session (``internal_error``).
        """
        overflowed: list[KisSession] = []
        failed: list[KisSession] = []
        with self._lock:
            trades = self.market.pump(at)
            silenced = self._silenced()
            sessions = list(self._sessions.values())
            frames_by_code: dict[str, list[OutFrame]] = {}
            for code, batch in trades.items():
                if silenced is not None and (not silenced or code in silenced):
                    continue
                frames_by_code[code] = self._trade_frames(batch)
            book_codes = {k for s in sessions for (t, k) in s.subs if t == BOOK_TR}
            quotes = self.market.quotes(book_codes) if book_codes else {}
            for session in sessions:
                try:
                    if not self._dispatch(session, frames_by_code, quotes):
                        overflowed.append(session)
                except Exception:
                    self.pump_errors += 1
                    log.exception("ws pump: serving session %d failed; closing it", session.id)
                    failed.append(session)
            for session in overflowed:
                self._close_quietly(session, "send_queue_overflow")
            for session in failed:
                self._close_quietly(session, "internal_error")
        self._pingpong(sessions)

    def _dispatch(
        self, session: KisSession, frames_by_code: dict[str, list[OutFrame]], quotes: dict[str, Quote]
    ) -> bool:
        """Queue this step's frames for `session`; False when its queue overflowed."""
        if session.close_reason is not None:
            return True
        since = session.subscribed_at_s
        session.subscribed_at_s = {}
        for tr_id, code in list(session.subs):
            if tr_id == TRADE_TR:
                frames = frames_by_code.get(code, ())
                since_s = since.get(code)
                if (
                    since_s is not None
                    and frames
                    and frames[0].trades
                    and frames[0].trades[0].at_s <= since_s
                ):
                    later = [t for f in frames for t in f.trades or () if t.at_s > since_s]
                    frames = self._trade_frames(later) if later else []
                for frame in frames:
                    if not session.offer(OutFrame(frame.text, frame.kind, frame.trades)):
                        return False
            elif tr_id == BOOK_TR and code in quotes:
                q = quotes[code]
                if q.trades and session.book_versions.get(code) != q.quote_version:
                    session.book_versions[code] = q.quote_version
                    fields = h0stasp0(q, q.last_trade_s)
                    if not session.offer(OutFrame(f"0|{BOOK_TR}|001|" + "^".join(fields), BOOK_TR)):
                        return False
        return True

    def _close_quietly(self, session: KisSession, reason: str) -> None:
        try:
            self.close_session(session, reason, abort=True)
        except Exception:
            self.pump_errors += 1
            log.exception("ws pump: closing session %d failed", session.id)

    def _silenced(self) -> set[str] | None:
        """None: nothing silenced; empty set: everything; else the silenced codes."""
        specs = self.faults.active(Silence)
        if not specs:
            return None
        codes: set[str] = set()
        for spec in specs:
            if not spec.symbols:
                return set()
            codes.update(spec.symbols)
        return codes

    def _trade_frames(self, batch: list[Trade]) -> list[OutFrame]:
        n = self.options.max_records_per_frame
        out = []
        for i in range(0, len(batch), n):
            chunk = batch[i : i + n]
            payload = "^".join("^".join(t.fields) for t in chunk)
            out.append(OutFrame(f"0|{TRADE_TR}|{len(chunk):03d}|{payload}", TRADE_TR, chunk))
        return out

    def _pingpong(self, sessions: list[KisSession]) -> None:
        now = time.monotonic()
        for s in sessions:
            try:
                self._ping_one(s, now)
            except Exception:
                self.pump_errors += 1
                log.exception("ws pump: PINGPONG for session %d failed; closing it", s.id)
                self._close_quietly(s, "internal_error")

    def _ping_one(self, s: KisSession, now: float) -> None:
        if (
            s.close_reason is not None
            or now - max(s.last_write_mono, s.last_ping_mono) < self.options.ping_idle_s
        ):
            return
        if s.unanswered >= self.options.ping_max_unanswered:
            self.close_session(s, "pingpong_unanswered", abort=False)
            return
        s.last_ping_mono = now
        stamp_text = self.wall.now().astimezone(KST).strftime("%Y%m%d%H%M%S")
        s.enqueue(OutFrame(json.dumps({"header": {"tr_id": "PINGPONG", "datetime": stamp_text}}), "PINGPONG"))

    # ------------------------------------------------------------------ faults
    def _on_fault(self, spec: object) -> None:
        if isinstance(spec, DropSessions):
            for s in self.sessions():
                self.close_session(s, "dropped_by_fault", abort=True)
        elif isinstance(spec, RevokeKey | KeyInUse) and 1 <= spec.key <= len(self.auth.key_order):
            app_key = self.auth.key_order[spec.key - 1]
            if isinstance(spec, RevokeKey):
                self.auth.remove_account(app_key)
            for s in self.sessions():
                if s.app_key == app_key:
                    self.close_session(
                        s, "key_revoked" if isinstance(spec, RevokeKey) else "key_in_use", abort=True
                    )

    def _taken_elsewhere(self, app_key: str) -> bool:
        """A `KeyInUse` window holds `app_key`'s session for another client."""
        order = self.auth.key_order
        return any(
            1 <= f.key <= len(order) and order[f.key - 1] == app_key for f in self.faults.active(KeyInUse)
        )
