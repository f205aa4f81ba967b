"""Messages on the event bus that coordinate workers: heartbeats, acks, mitigation level, slot
commands, and the control socket's ``Command`` / ``CommandReply``."""

from __future__ import annotations

from datetime import datetime

import msgspec

from observer.schema.base import _Msg, _Plain


class Heartbeat(_Msg, frozen=True, tag="heartbeat"):
    worker: str
    pid: int
    run_id: str
    at: datetime
    stats: dict[str, float] = {}


class Ack(_Msg, frozen=True, tag="ack"):
    """Cumulative: everything from (producer, run_id) up to ``seq`` is durable downstream;
    ``received``: up to which seq the receiver has taken the messages in (durable or not), so a
    producer resends only what is missing, not what is merely waiting for a slow fsync (0: unknown)."""

    receiver: str
    producer: str
    run_id: str
    seq: int
    at_ns: int = 0
    received: int = 0


class MitigationLevel(_Msg, frozen=True, tag="mitigation"):
    level: int  # 0, 1, 2
    at: datetime
    reasons: list[str] = []


class SlotAssignment(_Plain, frozen=True):
    slot_number: int
    symbol: str
    rule: str
    since: datetime
    pinned: bool = False


class SlotCommand(_Msg, frozen=True, tag="slots"):
    """The full desired slot table (idempotent state, re-published periodically)."""

    version: int
    at: datetime
    slots: list[SlotAssignment]
    paused: bool = False


class Command(_Msg, frozen=True, tag="command"):
    """Control request (ctl socket, or ctl topic on the event bus)."""

    action: str  # status | start | stop | restart | slots_list | pin | unpin
    target: str = ""
    args: dict[str, str] = {}


class CommandReply(_Msg, frozen=True, tag="reply"):
    """Answer on the control socket. ``data`` values are encoded with ``observer.bus.encode`` (``msgspec.Raw(encode(x))``)."""

    ok: bool
    message: str = ""
    data: dict[str, msgspec.Raw] = {}
