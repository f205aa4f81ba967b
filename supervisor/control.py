"""The control socket: `Command` in, `CommandReply` out, on the ``control`` endpoint (REP).

Server side (`ControlServer`) lives in the supervisor's loop: it is read only when poll says it is
readable and always answers at once, so it never blocks the loop. Client side (`ControlClient`) is
the lazy-pirate REQ pattern: a timeout per try, and a fresh REQ socket after a timeout.
``CommandReply.data`` values are JSON-encoded builtins (``observer.bus.encode``) (`make_reply` / `reply_data`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from observer.bus import Endpoints, bind, encode, event_decoder, make_socket, reply_decoder
from observer.config import Config
from observer.schema import Command, CommandReply

log = logging.getLogger("observer.supervisor.control")


class NoSupervisor(Exception):
    """Nobody answered on the control endpoint."""


def make_reply(ok: bool, message: str = "", **data: Any) -> CommandReply:
    raw = {k: msgspec.Raw(encode(msgspec.to_builtins(v))) for k, v in data.items()}
    return CommandReply(ok=ok, message=message, data=raw)


def reply_data(reply: CommandReply) -> dict[str, Any]:
    return {k: msgspec.json.decode(v) for k, v in reply.data.items()}


class ControlServer:
    """REP socket bound on ``control``; `handle_ready` answers every waiting request."""

    def __init__(self, ctx: zmq.Context[Any], cfg: Config, handler: Callable[[Command], CommandReply]):
        self.sock = make_socket(ctx, zmq.REP, cfg)
        bind(self.sock, Endpoints(cfg)["control"])
        self._handler = handler
        self.malformed = 0

    def handle_ready(self) -> None:
        while True:
            try:
                frame = self.sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            self.sock.send(encode(self._answer(frame)))

    def _answer(self, frame: bytes) -> CommandReply:
        try:
            cmd = event_decoder.decode(frame)
        except msgspec.DecodeError:
            cmd = None
        if not isinstance(cmd, Command):
            self.malformed += 1
            log.warning("malformed control request dropped", extra={"bytes": len(frame)})
            return make_reply(False, "malformed request: expected a Command")
        try:
            return self._handler(cmd)
        except Exception as e:  # a bug in one command must not take the workers down with the supervisor
            log.exception("control command failed", extra={"action": cmd.action, "target": cmd.target})
            return make_reply(False, f"internal error handling {cmd.action!r}: {type(e).__name__}")

    def close(self) -> None:
        self.sock.close(linger=0)


class ControlClient:
    """REQ client with a timeout per try; raises `NoSupervisor` when no try is answered."""

    def __init__(
        self, cfg: Config, *, timeout_s: float = 2.0, tries: int = 2, ctx: zmq.Context[Any] | None = None
    ):
        self._cfg = cfg
        self._ctx = ctx or zmq.Context.instance()
        self.endpoint = Endpoints(cfg)["control"]
        self.timeout_s = timeout_s
        self.tries = tries

    def request(self, cmd: Command) -> CommandReply:
        payload = encode(cmd)
        for _ in range(self.tries):
            sock = make_socket(self._ctx, zmq.REQ, self._cfg)
            try:
                sock.connect(self.endpoint)
                sock.send(payload)
                if sock.poll(int(self.timeout_s * 1000), zmq.POLLIN):
                    frame = sock.recv()
                    try:
                        return reply_decoder.decode(frame)
                    except msgspec.DecodeError as e:
                        raise NoSupervisor(
                            f"{self.endpoint} answered with something that is not a reply"
                        ) from e
            finally:
                sock.close(linger=0)  # a REQ that timed out is unusable: the next try gets a new one
        raise NoSupervisor(
            f"no supervisor answered on {self.endpoint} within {self.tries} x {self.timeout_s:g}s "
            "(is `observer run` running with this config?)"
        )
