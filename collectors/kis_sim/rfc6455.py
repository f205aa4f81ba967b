"""A small RFC 6455 WebSocket server on stdlib sockets and threads (no TLS, no extensions).

Promises:

* handshake: any path; ``Upgrade: websocket``, ``Sec-WebSocket-Key`` and version 13 required,
  answered with ``Sec-WebSocket-Accept``; anything else gets HTTP 400 and is closed;
* frames: client frames must be masked (else close 1002); 7/16/64-bit lengths; fragmented
  messages are reassembled (control frames may arrive between fragments); messages larger than
  `max_message_bytes` close with 1009; invalid UTF-8 in a text message closes with 1007;
* ping is answered with pong automatically; pong and close are reported to the caller; a close
  frame is echoed once;
* sends are serialised by a lock, so several threads may send on one connection;
* `WsServer.stop()` closes the listener and every connection and joins every thread it started.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from collectors.kis_sim.errors import ConnectionClosed, WebSocketProtocolError

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_HANDSHAKE_BYTES = 16_384


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked (server-to-client) frame."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(n)
    elif n < 1 << 16:
        head.append(126)
        head += struct.pack("!H", n)
    else:
        head.append(127)
        head += struct.pack("!Q", n)
    return bytes(head) + payload


@dataclass(frozen=True, slots=True)
class Message:
    """A complete inbound message: kind is ``text``, ``binary``, ``pong`` or ``close``."""

    kind: str
    data: bytes
    close_code: int | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


class WsConnection:
    """One accepted, upgraded connection."""

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        path: str,
        headers: dict[str, str],
        max_message_bytes: int = 1 << 20,
    ):
        self.sock = sock
        self.peer = peer
        self.path = path
        self.headers = headers
        self.max_message_bytes = max_message_bytes
        self._send_lock = threading.Lock()
        self._buf = b""
        self._closed = threading.Event()
        self._close_sent = False

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # ------------------------------------------------------------------ send
    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """Write one frame; raises ConnectionClosed if the socket is gone."""
        data = encode_frame(opcode, payload)
        with self._send_lock:
            if self._closed.is_set():
                raise ConnectionClosed("connection already closed")
            try:
                self.sock.sendall(data)
            except OSError as e:
                self._closed.set()
                raise ConnectionClosed(f"send failed: {e}") from e

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once) and shut the socket down."""
        with self._send_lock:
            if not self._closed.is_set() and not self._close_sent:
                self._close_sent = True
                try:
                    self.sock.sendall(encode_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120]))
                except OSError:
                    pass  # the peer is already gone: nothing more to tell it
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (what a network failure looks like)."""
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already shut down or reset
        self.sock.close()

    # ------------------------------------------------------------------ receive
    def recv(self) -> Message:
        """The next complete message (pings are answered here). Raises ConnectionClosed / protocol errors."""
        fragments: list[bytes] = []
        first_op: int | None = None
        size = 0
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                return Message("pong", payload)
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close(1000 if code == 1005 else code)
                return Message("close", payload[2:], close_code=code)
            if opcode == OP_CONT:
                if first_op is None:
                    raise WebSocketProtocolError("continuation frame without a start", 1002)
            elif opcode in (OP_TEXT, OP_BINARY):
                if first_op is not None:
                    raise WebSocketProtocolError("new data frame inside a fragmented message", 1002)
                first_op = opcode
            else:
                raise WebSocketProtocolError(f"unknown opcode {opcode:#x}", 1002)
            size += len(payload)
            if size > self.max_message_bytes:
                raise WebSocketProtocolError("message too big", 1009)
            fragments.append(payload)
            if fin:
                data = b"".join(fragments)
                if first_op == OP_TEXT:
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise WebSocketProtocolError("invalid UTF-8 in a text message", 1007) from e
                return Message("text" if first_op == OP_TEXT else "binary", data)

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(max(65_536, n - len(self._buf)))
            except OSError as e:
                self._closed.set()
                raise ConnectionClosed(f"recv failed: {e}") from e
            if not chunk:
                self._closed.set()
                raise ConnectionClosed("peer closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2)
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        if b0 & 0x70:
            raise WebSocketProtocolError("reserved bits set without an extension", 1002)
        if not b1 & 0x80:
            raise WebSocketProtocolError("client frame not masked", 1002)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        if opcode >= 0x8 and (n > 125 or not fin):
            raise WebSocketProtocolError("bad control frame", 1002)
        if n > self.max_message_bytes:
            raise WebSocketProtocolError("frame too big", 1009)
        mask = self._read_exact(4)
        payload = self._read_exact(n)
        if n:
            full = (mask * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(n, "big")
        return fin, opcode, payload


def read_handshake(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Read an HTTP upgrade request: (path, lower-cased headers, bytes read past the request)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionClosed("peer closed during the handshake")
        data += chunk
        if len(data) > _MAX_HANDSHAKE_BYTES:
            raise WebSocketProtocolError("handshake too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 3 or parts[0] != "GET":
        raise WebSocketProtocolError(f"not a GET request: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "websocket" not in headers.get("upgrade", "").lower() or "sec-websocket-key" not in headers:
        raise WebSocketProtocolError("not a WebSocket upgrade")
    if headers.get("sec-websocket-version", "13") != "13":
        raise WebSocketProtocolError("unsupported WebSocket version")
    return parts[1], headers, rest


Handler = Callable[[WsConnection], None]
Gate = Callable[[], bool]


class WsServer:
    """Accepts connections on (host, port) and runs `handler(conn)` in one thread per connection.

    `gate()` is asked before each upgrade; False answers HTTP 503 (used by the drop fault).
    """

    def __init__(self, host: str, port: int, handler: Handler, gate: Gate | None = None):
        self._handler = handler
        self._gate = gate or (lambda: True)
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.settimeout(0.2)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._conns: set[WsConnection] = set()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="ws-accept", daemon=True)

    def start(self) -> None:
        self._accept_thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._accept_thread.join(timeout_s)
        self._listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            conn.abort()
        for t in threads:
            t.join(timeout_s)

    def connections(self) -> list[WsConnection]:
        with self._lock:
            return list(self._conns)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            t = threading.Thread(
                target=self._serve, args=(sock, f"{addr[0]}:{addr[1]}"), name="ws-conn", daemon=True
            )
            with self._lock:
                self._threads.add(t)
            t.start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        conn: WsConnection | None = None
        try:
            sock.settimeout(10.0)
            try:
                path, headers, rest = read_handshake(sock)
            except WebSocketProtocolError as e:
                sock.sendall(_http_error(400, str(e)))
                return
            if not self._gate() or self._stop.is_set():
                sock.sendall(_http_error(503, "service unavailable"))
                return
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}\r\n\r\n".encode()
            )
            sock.settimeout(None)
            conn = WsConnection(sock, peer, path, headers)
            conn._buf = rest
            with self._lock:
                self._conns.add(conn)
            self._handler(conn)
        except (ConnectionClosed, OSError):
            pass  # the peer went away; the handler has recorded what it needed to
        finally:
            if conn is not None:
                conn.abort()
                with self._lock:
                    self._conns.discard(conn)
            else:
                sock.close()
            with self._lock:
                self._threads.discard(threading.current_thread())


def _http_error(status: int, reason: str) -> bytes:
    body = reason.encode()
    phrase = {400: "Bad Request", 503: "Service Unavailable"}.get(status, "Error")
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
