"""The control socket's server side: `Command` in, `CommandReply` out, on the ``control`` endpoint (REP).

`ControlServer` lives in the supervisor's loop: it is read only when poll says it is readable and
always answers at once, so it never blocks the loop. The client side (`observer.control`) is shared
with every process that asks the supervisor something (``observer ctl``, ``observer status``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from observer.bus import Endpoints, bind, encode, event_decoder, make_socket
from observer.config import Config
from observer.control import make_reply
from observer.schema import Command, CommandReply

log = logging.getLogger("observer.supervisor.control")


class ControlServer:
    """REP socket bound on ``control``; `handle_ready` answers every waiting request."""

    def __init__(self, ctx: zmq.Context[Any], cfg: Config, handler: Callable[[Command], CommandReply]):
        self.sock = make_socket(ctx, zmq.REP, cfg)
        bind(self.sock, Endpoints(cfg)["control"], cfg)
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
