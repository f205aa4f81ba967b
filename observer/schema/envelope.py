"""The reliable hop's wrapping: ``Envelope`` and ``EnvelopeBatch``; and ``StreamLine``, a committed line
on its way from the writer to the archive stream."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from observer.schema.base import ArchiveKind, _Msg


class StreamLine(_Msg, frozen=True, tag="stream_line"):
    """One committed archive line on its way to the archive stream (writer -> jetstream sink, after
    the fsync): ``path`` (relative to the data dir) and ``offset`` say where it is in the writer's
    archive, so a copy rebuilt from the stream is byte-identical whatever the stream's order."""

    path: str
    offset: int
    track: ArchiveKind
    market: str
    record_id: str
    line: msgspec.Raw


class Envelope(msgspec.Struct, frozen=True, array_like=True):
    """One reliable message as a receiver hands it on. ``floor``: every seq below it is acknowledged
    or abandoned (the producer's replay bound overflowed); a receiver that expected less reports the
    hole."""

    producer: str
    run_id: str
    seq: int
    floor: int
    sent_at_ns: int
    body: msgspec.Raw


BodyT = TypeVar("BodyT")


class EnvelopeBatch(msgspec.Struct, Generic[BodyT], frozen=True, array_like=True):
    """What travels on a reliable hop: consecutive messages ``seq, seq+1, ...`` of one producer run
    in one bus message (one message per send costs ~8x more per record, PERF.md). Each body keeps its
    own seq, so acks, resends, holes and de-duplication stay per message. Decoded as
    ``EnvelopeBatch[msgspec.Raw]``, or with the receiver's body type in one pass."""

    producer: str
    run_id: str
    seq: int
    floor: int
    sent_at_ns: int
    bodies: list[BodyT]
