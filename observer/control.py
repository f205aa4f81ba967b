"""The control socket's client side: `ControlClient` sends a `Command` to the supervisor's ``control``
endpoint (REP, `supervisor.control.ControlServer`) and returns its `CommandReply`.

Shared by every process that asks the supervisor something (``observer ctl``, ``observer status``),
so none of them imports the supervisor. The client is the lazy-pirate REQ pattern: a timeout per try
and a fresh REQ socket after a timeout. ``CommandReply.data`` values are JSON-encoded builtins
(``observer.bus.encode``) (`make_reply` / `reply_data`).
"""

from __future__ import annotations

from typing import Any

import msgspec
import zmq

from observer.bus import Endpoints, connect, encode, make_socket, reply_decoder
from observer.config import Config
from observer.schema import Command, CommandReply


class NoSupervisor(Exception):
    """Nobody answered on the control endpoint."""


def make_reply(ok: bool, message: str = "", **data: Any) -> CommandReply:
    raw = {k: msgspec.Raw(encode(msgspec.to_builtins(v))) for k, v in data.items()}
    return CommandReply(ok=ok, message=message, data=raw)


def reply_data(reply: CommandReply) -> dict[str, Any]:
    return {k: msgspec.json.decode(v) for k, v in reply.data.items()}


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
                connect(sock, self.endpoint, self._cfg)
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
