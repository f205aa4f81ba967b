"""CURVE on ``tcp://`` bus endpoints: key files, socket options, and who may connect.

``observer keys gen`` writes a key pair (``NAME.key`` public, ``NAME.key_secret`` both; 0600, dir
0700). ``[bus]`` names this host's pair (``curve_secret_key_file``), the public key of the host its
tcp connects go to (``curve_server_key_file``) and a directory of the public keys allowed to connect
to its tcp binds (``curve_authorized_dir``). A binding socket is a CURVE server checked by one ZAP
authenticator per process (`zmq.auth.thread.ThreadAuthenticator`); a connecting socket is a CURVE
client. A peer with a wrong key (ZAP refuses it) or none (the handshake fails) never gets a message
through, and each refusal is logged (WARNING ``bus peer refused``) by a monitor thread. ipc
endpoints stay as they are: their directory is 0700.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import parse_monitor_message

from observer.config import Config, ensure_private_dir

log = logging.getLogger("observer.bus")
ZAP_DOMAIN = "observer"
_WARN_EVERY_S = 60.0  # a peer retrying every 100 ms is logged once a minute, with a count
_REFUSALS = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_MONITOR_STOPPED  # the watched socket was closed
)


class CurveError(Exception):
    """A CURVE key is missing or unreadable where a tcp endpoint needs it."""


def generate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write the key pair `name` into `directory`: (public file, secret file), both 0600."""
    ensure_private_dir(directory)
    public, secret = (Path(p) for p in zmq.auth.create_certificates(str(directory), name))
    for path in (public, secret):
        os.chmod(path, 0o600)
    return public, secret


@lru_cache(maxsize=16)
def _load(path: str, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise CurveError(f"cannot read CURVE key file {path}: {e}") from None
    if secret and secret_key is None:
        raise CurveError(f"{path} holds no secret key (give the .key_secret file)")
    return public, secret_key


def _own_keys(cfg: Config) -> tuple[bytes, bytes]:
    path = cfg.bus.curve_secret_key_file
    if not path:
        raise CurveError("a tcp:// endpoint needs [bus] curve_secret_key_file (observer keys gen)")
    public, secret = _load(path, True)
    assert secret is not None
    return public, secret


_warned: dict[str, tuple[float, int]] = {}
_warned_lock = threading.Lock()


def _refused(key: str, message: str, **extra: object) -> None:
    """Log a refusal, at most once per `_WARN_EVERY_S` per `key`, with how many were not logged."""
    now = time.monotonic()
    with _warned_lock:
        last, suppressed = _warned.get(key, (-_WARN_EVERY_S, 0))
        if now - last < _WARN_EVERY_S:
            _warned[key] = (last, suppressed + 1)
            return
        _warned[key] = (now, 0)
    log.warning(message, extra={**extra, "suppressed_since_last": suppressed})


class _Authenticator(ThreadAuthenticator):
    """Logs the peer address of every ZAP refusal (a wrong key)."""

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self._peer = msg[3].decode(errors="replace") if len(msg) > 3 else "?"
        await super().handle_zap_message(msg)

    def _send_zap_reply(
        self, request_id: bytes, status_code: bytes, status_text: bytes, user_id: str = "anonymous"
    ) -> None:
        if status_code != b"200":
            peer = getattr(self, "_peer", "?")
            reason = status_text.decode(errors="replace")
            _refused("zap " + peer, "bus peer refused: CURVE key not authorized", peer=peer, reason=reason)
        super()._send_zap_reply(request_id, status_code, status_text, user_id)


class _Guard:
    """The process's authenticator (per context) and the thread that logs failed handshakes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._auth: dict[int, _Authenticator] = {}
        self._monitors: queue.Queue[tuple[Any, str] | None] = queue.Queue()  # None: stop
        self._thread: threading.Thread | None = None
        self._addresses: dict[Any, str] = {}  # monitor socket -> endpoint, the thread's own

    def authenticator(self, ctx: zmq.Context[Any], authorized_dir: str) -> None:
        with self._lock:
            if id(ctx) in self._auth:
                return
            if not authorized_dir or not Path(authorized_dir).is_dir():
                raise CurveError("a bound tcp:// endpoint needs [bus] curve_authorized_dir (public keys)")
            auth = _Authenticator(ctx, log=logging.getLogger("observer.bus.zap"))
            auth.start()
            auth.configure_curve(domain=ZAP_DOMAIN, location=authorized_dir)
            self._auth[id(ctx)] = auth

    def watch(self, sock: zmq.Socket[Any], address: str) -> None:
        self._monitors.put((sock.get_monitor_socket(_REFUSALS), address))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="curve-refusals", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop the authenticators and the monitor thread (a process's guard lives as long as it)."""
        with self._lock:
            for auth in self._auth.values():
                auth.stop()
            self._auth.clear()
            if self._thread is not None:
                self._monitors.put(None)
                self._thread.join(5)
                self._thread = None

    def watching(self) -> int:
        """How many sockets the thread watches now."""
        return len(self._addresses)

    def _run(self) -> None:
        poller = zmq.Poller()
        addresses = self._addresses
        while True:
            # every watched socket closed: wait for the next one (an empty poll returns at once)
            pending = [self._monitors.get()] if not addresses else []
            while not self._monitors.empty():
                pending.append(self._monitors.get_nowait())
            for item in pending:
                if item is None:
                    for mon in addresses:
                        mon.close(linger=0)
                    addresses.clear()
                    return
                mon, address = item
                poller.register(mon, zmq.POLLIN)
                addresses[mon] = address
            try:
                ready = poller.poll(200)
            except zmq.ContextTerminated:
                return
            except zmq.ZMQError as e:
                if e.errno != zmq.ENOTSOCK:
                    raise
                if not _drop_closed(poller, addresses):  # a watched socket was closed
                    logging.getLogger("observer.bus.zap").warning("refusal monitor stopped: %s", e)
                    return
                continue
            for mon, _ in ready:
                problem = ""
                if mon not in addresses:  # closed under the poll (its context destroyed): an fd came back
                    problem = f"poll returned {mon!r}"
                else:
                    try:
                        event = parse_monitor_message(mon.recv_multipart(zmq.NOBLOCK))
                    except (zmq.Again, zmq.ContextTerminated):
                        continue
                    except zmq.ZMQError as e:
                        if e.errno != zmq.ENOTSOCK:
                            raise
                        problem = str(e)  # closed between the poll and the read
                if problem:
                    if not _drop_closed(poller, addresses):
                        logging.getLogger("observer.bus.zap").warning("refusal monitor stopped: %s", problem)
                        return
                    break
                if event["event"] == zmq.EVENT_MONITOR_STOPPED:
                    poller.unregister(mon)
                    del addresses[mon]
                    mon.close(linger=0)
                    continue
                _refused(
                    f"handshake {addresses[mon]} {int(event['event'])}",
                    "bus peer refused: CURVE handshake failed (no key, or a wrong server key)",
                    endpoint=addresses[mon],
                    event=int(event["event"]),
                    code=event["value"],
                )


def _drop_closed(poller: zmq.Poller, addresses: dict[Any, str]) -> bool:
    """Stop watching every monitor socket that is closed (a worker destroys its context last, under
    the thread's poll). Returns whether there was one."""
    gone = [m for m in addresses if not _alive(m)]
    for mon in gone:
        poller.unregister(mon)
        del addresses[mon]
    return bool(gone)


def _alive(sock: Any) -> bool:
    try:
        sock.getsockopt(zmq.TYPE)
    except zmq.ZMQError:
        return False
    return True


_guard = _Guard()


def secure_server(sock: zmq.Socket[Any], cfg: Config, address: str) -> None:
    """Before `bind`: make `sock` a CURVE server whose clients the authenticator checks."""
    public, secret = _own_keys(cfg)
    _guard.authenticator(sock.context, cfg.bus.curve_authorized_dir)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    sock.zap_domain = ZAP_DOMAIN.encode()
    _guard.watch(sock, address)


def secure_client(sock: zmq.Socket[Any], cfg: Config, server_key_file: str = "") -> None:
    """Before `connect`: make `sock` a CURVE client of `server_key_file` (default: the configured
    ``curve_server_key_file``)."""
    public, secret = _own_keys(cfg)
    server_key_file = server_key_file or cfg.bus.curve_server_key_file
    if not server_key_file:
        raise CurveError("connecting to a tcp:// endpoint needs [bus] curve_server_key_file")
    server_public, _ = _load(server_key_file, False)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public
