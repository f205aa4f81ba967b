"""One simulated KIS WebSocket session: its registrations, its outbound queue and writer thread.

Every frame a session sends (acks, data, PINGPONG) goes through its one bounded queue; the session's
**writer** thread applies the frame faults (delay, black hole, truncate, corrupt), writes the frame
and counts it in the ground truth (`truth.Ledger`) only once it is on the socket. The service that
owns the sessions (registrations, pump, PINGPONG) is `ws_service`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collectors.kis_sim.errors import ConnectionClosed
from collectors.kis_sim.rfc6455 import OP_TEXT, WsConnection
from collectors.kis_sim.schema import BlackHole, CorruptFrames, DelayFrames, TruncateFrames
from collectors.kis_sim.state import Trade

if TYPE_CHECKING:
    from collectors.kis_sim.ws_service import KisWsService

TRADE_TR = "H0STCNT0"
BOOK_TR = "H0STASP0"
# Known tr_ids: these are acked; only TRADE_TR and BOOK_TR carry data in the simulator.
KNOWN_TR_IDS = frozenset(
    {
        TRADE_TR,
        BOOK_TR,
        "H0UNCNT0",
        "H0NXCNT0",
        "H0UNASP0",
        "H0NXASP0",
        "H0STANC0",
        "H0STMKO0",
        "H0UNMKO0",
        "H0STCNI0",
        "H0STCNI9",
    }
)


@dataclass(frozen=True, slots=True)
class WsOptions:
    max_registrations: int = 41
    max_records_per_frame: int = 20
    pump_interval_s: float = 0.05
    ping_idle_s: float = 15.0
    ping_max_unanswered: int = 3
    queue_max_frames: int = 20_000


@dataclass(slots=True)
class OutFrame:
    text: str
    kind: str  # H0STCNT0, H0STASP0, ack, PINGPONG
    trades: list[Trade] | None = None
    not_before: float = 0.0


def ack(
    tr_id: str | None, tr_key: str, rt_cd: str, msg_cd: str, msg1: str, output: dict[str, str] | None = None
) -> str:
    """A subscription answer in the real shape (`tr_id` None: a JSON null, as in the OPSP8996 refusal)."""
    body: dict[str, object] = {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1}
    if output is not None:
        body["output"] = output
    return json.dumps(
        {"header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": "N"}, "body": body}, ensure_ascii=False
    )


class KisSession:
    """One WebSocket session: its registrations, its outbound queue and writer thread."""

    def __init__(self, session_id: int, conn: WsConnection, service: KisWsService):
        self.id = session_id
        self.conn = conn
        self.service = service
        self.app_key: str | None = None
        self.subs: set[tuple[str, str]] = set()
        # virtual second (of day) each H0STCNT0 registration took effect: the next pump drops the
        # symbol's trades up to it (they were made before this session subscribed), then forgets it
        self.subscribed_at_s: dict[str, float] = {}
        self.book_versions: dict[str, int] = {}
        self.unanswered = 0
        self.last_write_mono = time.monotonic()
        self.last_ping_mono = 0.0
        self.frames_seen = 0
        self.queue: queue.Queue[OutFrame | None] = queue.Queue(service.options.queue_max_frames)
        self.writer = threading.Thread(target=self._write_loop, name=f"ws-writer-{session_id}", daemon=True)
        self.close_reason: str | None = None
        self._iv_key = (f"{session_id:016x}"[-16:], f"{session_id:032x}"[-32:])

    @property
    def crypto_output(self) -> dict[str, str]:
        return {"iv": self._iv_key[0], "key": self._iv_key[1]}

    def offer(self, frame: OutFrame) -> bool:
        """Queue a frame without blocking; False when the queue is full (the caller closes)."""
        delay = self.service.faults.active(DelayFrames)
        if delay:
            frame.not_before = time.monotonic() + max(d.delay_ms for d in delay) / 1000.0
        try:
            self.queue.put_nowait(frame)
            return True
        except queue.Full:
            return False

    def enqueue(self, frame: OutFrame) -> bool:
        """Queue a frame; False (and the session is closed) when the client cannot keep up."""
        if self.offer(frame):
            return True
        self.service.close_session(self, "send_queue_overflow", abort=True)
        return False

    def _write_loop(self) -> None:
        svc = self.service
        while True:
            frame = self.queue.get()
            if frame is None:
                return
            wait = frame.not_before - time.monotonic()
            if wait > 0 and svc.stopping.wait(wait):
                return
            if svc.faults.active(BlackHole):
                continue
            text, damaged = frame.text, False
            if frame.kind in (TRADE_TR, BOOK_TR):
                if svc.faults.tick(TruncateFrames):
                    text, damaged = text[: max(len(text) // 2, 1)], True
                elif svc.faults.tick(CorruptFrames):
                    text, damaged = _corrupt(text), True
            try:
                self.conn.send_frame(OP_TEXT, text.encode("utf-8"))
            except ConnectionClosed:
                svc.close_session(self, "connection_lost", abort=True)
                return
            self.last_write_mono = time.monotonic()
            if frame.kind == "PINGPONG":
                self.unanswered += 1
            svc.ledger.frame_sent(self.id, frame.kind, frame.trades, damaged)


def _corrupt(text: str) -> str:
    chars = list(text)
    for i in range(len("0|H0STCNT0|"), len(chars), 7):
        chars[i] = "?"
    return "".join(chars)
