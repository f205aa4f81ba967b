"""One KIS WebSocket session, read by its own thread.

`WsSession` (KIS's `collectors.providers.IStreamSession`) owns the socket. Its thread fetches the
approval key, connects, then only receives: each frame is stamped with its receive time and handed
to the worker's loop thread (as `collectors.providers.SessionWiring` says) without ever waiting
on it —

* data frames go over an ``inproc`` PUSH socket (bounded by its HWM, sent non-blocking, which
  also wakes the loop's poller); when the loop falls behind, frames are dropped, counted, and
  every contiguous run of drops is reported as an `OverflowEpisode` (the worker turns it into a
  gap marker);
* JSON control frames (acks) go to a bounded deque, read by the loop on its next turn;
* ``PINGPONG`` is echoed right here, so a busy loop can never get the session closed;
* status changes (`SessionUp`, `SessionDown`) go to an unbounded but tiny queue (a few per session).

The loop thread sends subscription requests with `send_text` (websocket-client serialises sends
with its own lock) and ends the session with `close` + `join`: the socket is shut down, which
wakes the reader at once. A session is never reused; the worker opens a new one (and only after
the old thread has ended: exactly one session per app key).
"""

from __future__ import annotations

import collections
import socket
import threading
from typing import Any

import websocket
import zmq

from collectors.kis.approval import ApprovalError, ApprovalKeyProvider
from collectors.kis.ws_parser import is_pingpong
from collectors.providers import OverflowEpisode, SessionDown, SessionUp, SessionWiring, pack_frame

_RECV_POLL_S = 1.0  # the reader re-checks its stop flag at least this often


class WsSession:
    """A single WebSocket session and its reader thread (see the module docstring)."""

    def __init__(
        self,
        session_id: int,
        url: str,
        approval: ApprovalKeyProvider,
        wiring: SessionWiring,
        *,
        control_max: int = 10_000,
    ):
        self.session_id = session_id
        self.url = url
        self._approval = approval
        self._wiring = wiring
        self._now_ns = wiring.now_ns
        self.control: collections.deque[tuple[int, bytes]] = collections.deque()
        self._control_max = control_max
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._thread = threading.Thread(target=self._run, name=f"ws-session-{session_id}", daemon=True)
        # counters (written by the reader thread only)
        self.frames = 0
        self.data_frames = 0
        self.dropped_frames = 0
        self.control_dropped = 0
        self.pingpongs = 0
        self.up = False

    # -- loop-thread API
    def start(self) -> None:
        self._thread.start()

    def send_text(self, text: str) -> bool:
        """Send one text frame; False when the session cannot take it (it is going down)."""
        ws = self._ws
        if ws is None or not self.up:
            return False
        try:
            ws.send(text)
        except (websocket.WebSocketException, OSError):
            self._shutdown_socket()
            return False
        return True

    def close(self) -> None:
        """Ask the reader to stop and wake it (non-blocking)."""
        self._stop.set()
        self._shutdown_socket()

    def join(self, timeout_s: float) -> bool:
        """Wait for the reader thread; True when it has ended."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _shutdown_socket(self) -> None:
        ws = self._ws
        sock = ws.sock if ws is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- reader thread
    def _run(self) -> None:
        push = self._wiring.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.SNDHWM, self._wiring.frames_hwm)
        push.connect(self._wiring.frames_endpoint)
        down = SessionDown(self.session_id, self._now_ns(), "closed")
        try:
            down = self._session(push)
        finally:
            push.close(linger=0)
            ws, self._ws = self._ws, None
            self.up = False
            if ws is not None:
                try:
                    ws.close(timeout=0)
                except (websocket.WebSocketException, OSError):
                    pass
            self._wiring.status.put(down)

    def _session(self, push: zmq.Socket[Any]) -> SessionDown:
        sid = self.session_id
        try:
            self._approval.get()
        except ApprovalError as e:
            return SessionDown(sid, self._now_ns(), "approval_failed", str(e))
        if self._stop.is_set():
            return SessionDown(sid, self._now_ns(), "closed")
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        self._ws = ws
        try:
            ws.connect(self.url, timeout=self._wiring.connect_timeout_s, suppress_origin=True)
            ws.settimeout(_RECV_POLL_S)
        except (websocket.WebSocketException, OSError) as e:
            return SessionDown(sid, self._now_ns(), "connect_failed", f"{type(e).__name__}: {e}"[:200])
        if self._stop.is_set():
            return SessionDown(sid, self._now_ns(), "closed")
        self.up = True
        self._wiring.status.put(SessionUp(sid, self._now_ns()))
        return self._read(ws, push)

    def _read(self, ws: websocket.WebSocket, push: zmq.Socket[Any]) -> SessionDown:
        sid = self.session_id
        now_ns = self._now_ns
        control = self.control
        episode: list[int] | None = None  # [first_ns, last_ns, frames] while dropping
        try:
            while not self._stop.is_set():
                try:
                    opcode, data = ws.recv_data()
                except websocket.WebSocketTimeoutException:
                    continue
                at_ns = now_ns()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return SessionDown(sid, at_ns, "closed_by_server", "close frame", was_up=True)
                self.frames += 1
                if data[:1] == b"{":
                    if is_pingpong(data):
                        self.pingpongs += 1
                        ws.send(data.decode("utf-8", "replace"))
                    if len(control) >= self._control_max:
                        self.control_dropped += 1
                    else:
                        control.append((at_ns, data))
                    continue
                self.data_frames += 1
                try:
                    push.send(pack_frame(at_ns, data), flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    self.dropped_frames += 1
                    if episode is None:
                        episode = [at_ns, at_ns, 1]
                    else:
                        episode[1] = at_ns
                        episode[2] += 1
                    continue
                if episode is not None:
                    self._wiring.overflow.put(OverflowEpisode(sid, episode[0], episode[1], episode[2]))
                    episode = None
        except (websocket.WebSocketConnectionClosedException, ConnectionError) as e:
            if self._stop.is_set():
                return SessionDown(sid, now_ns(), "closed", was_up=True)
            return SessionDown(sid, now_ns(), "closed_by_server", type(e).__name__, was_up=True)
        except (websocket.WebSocketException, OSError) as e:
            if self._stop.is_set():
                return SessionDown(sid, now_ns(), "closed", was_up=True)
            return SessionDown(sid, now_ns(), "receive_error", f"{type(e).__name__}: {e}"[:200], was_up=True)
        finally:
            if episode is not None:
                self._wiring.overflow.put(OverflowEpisode(sid, episode[0], episode[1], episode[2]))
        return SessionDown(sid, now_ns(), "closed", was_up=True)
