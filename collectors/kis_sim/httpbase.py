"""A ThreadingHTTPServer that can be stopped cleanly, and JSON helpers for its handlers.

`StoppableHTTPServer.stop()` stops accepting, shuts down every open (keep-alive) connection so
the handler threads return, and joins them; `serve_in_thread` runs it on a named thread.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


class StoppableHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def serve_in_thread(self, name: str) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        with self._open_lock:
            conns = list(self._open)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        self.server_close()
        if self._thread is not None:
            self._thread.join(5.0)


class JsonHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler with helpers to answer JSON or bytes; quiet logging."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle on, each answer waited for the client's
    # delayed ACK (~40 ms on loopback), capping a sequential client near 20 requests/s
    disable_nagle_algorithm = True
    timeout = 30  # an idle keep-alive connection is closed after this many seconds

    def log_message(self, format: str, *args: Any) -> None:
        return

    def read_body(self) -> bytes:
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send_json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, _encoder.encode(doc), "application/json; charset=UTF-8", headers)

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
