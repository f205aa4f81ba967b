"""The bus: endpoint names, socket types, HWMs, linger and (de)serialization, in one place.

Sockets (who binds is fixed here; everybody else connects):

==============  ========  =========================  =====================================
name            type      bound by                   carries
==============  ========  =========================  =====================================
ingest          PULL      core                       Envelope(IngestBody) from producers
ingest_ack      PUB       core                       Ack for ingest producers
archive         PULL      writer                     Envelope(ArchiveRecord) from the core
archive_ack     PUB       writer                     Ack after fsync
events_in       XSUB      supervisor (forwarder)     workers PUB connect here
events_out      XPUB      supervisor (forwarder)     workers SUB connect here
events_export   PUB       supervisor (forwarder)     only when configured (split hosts): this
                                                     host's own events, for the other host's
                                                     ``[bus] events_upstream``
control         REP       supervisor                 Command -> CommandReply
feed            PUB       writer                     FeedBody: every archived line (public)
archive_stream  PULL      jetstream sink             Envelope(StreamLine) from the writer (its
                                                     Acks, once JetStream acknowledged, on the
                                                     PUB ``archive_stream_ack``, same binder)
replay_feed     XPUB      ``observer replay``        FeedBody: a recorded range, same shape
==============  ========  =========================  =====================================

Topics on the PUB/SUB event bus (first frame of each message; subscriptions match by prefix).
A topic name is spelled only here: everybody else uses these constants and functions.

========================  =============================  =======================  ===========
topic                     body                           published by             subscribed by
========================  =============================  =======================  ==================
heartbeat.<worker>        Heartbeat                      every worker (base)      supervisor,
                                                                                  monitor
stats.<worker>            CoreStats / WriterStats /      observer, writer,        supervisor (status),
                          WsCollectorStats /             ws-collector, monitor    monitor
                          MonitorStats
slots                     SlotCommand                    observer                 ws-collector,
                                                                                  supervisor, monitor
mitigation                MitigationLevel                monitor                  observer, writer,
                                                                                  supervisor
ctl.<worker>              Command (pin, unpin)           supervisor               that worker
supervisor.state          SystemEvent (worker_state)     supervisor               monitor
system.<worker>           SystemEvent (live copy of      ws-collector, writer     monitor (CRITICAL
                          what is also archived)                                  -> alert)
alert.<worker>            SystemEvent to alert on        housekeeper              monitor
========================  =============================  =======================  ==================

On the ack sockets (``ingest_ack``, ``archive_ack``), not the event bus: ``ack.<producer>.`` -> Ack.

The public feed's topics (`feed_topic`): ``swing.<market>.<symbol>``, ``scalp.<market>.<symbol>``,
``raw.<market>``, ``event.<type>`` (system events by type, ``event.gap_marker`` included,
``event.overflow``, ``event.metrics``), and ``feed.stats``. Feed sockets never block: a slow
subscriber loses messages at the HWM and sees the holes in each topic's ``seq``. The feed's sockets
are in ``observer.feed_sockets``.

Defaults are ``ipc://<runtime_dir>/<name>.sock`` (the runtime dir is 0700); any of them may be
``tcp://`` through ``[bus.endpoints]``: tcp endpoints are CURVE-authenticated and encrypted
(``observer.curve``; `bind` and `connect` take the config for that). Reliable delivery on PUSH/PULL lives in ``observer.reliable``.
One zmq Context per process, created in the process that uses it (`context()`).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import zmq

from observer.config import Config, ensure_private_dir, runtime_dir
from observer.curve import CurveError, secure_client, secure_server
from observer.schema import (
    ArchiveBody,
    CommandReply,
    EventBody,
    FeedBody,
    IngestBody,
)

ENDPOINT_NAMES = (
    "ingest",
    "ingest_ack",
    "archive",
    "archive_ack",
    "events_in",
    "events_out",
    "events_export",
    "control",
    "feed",
    "replay_feed",
    "archive_stream",
    "archive_stream_ack",
)

T = TypeVar("T")

# --------------------------------------------------------------------------- topics (see the table)
HEARTBEAT = "heartbeat."
STATS = "stats."
SLOTS = "slots"
MITIGATION = "mitigation"
CTL = "ctl."
SUPERVISOR = "supervisor."
SUPERVISOR_STATE = SUPERVISOR + "state"
SYSTEM = "system."
ALERT = "alert."
ACK = "ack."


def heartbeat_topic(worker: str) -> str:
    return HEARTBEAT + worker


def stats_topic(worker: str) -> str:
    return STATS + worker


def ctl_topic(worker: str) -> str:
    return CTL + worker


def system_topic(worker: str) -> str:
    return SYSTEM + worker


def alert_topic(worker: str) -> str:
    return ALERT + worker


def ack_topic(producer: str) -> bytes:
    """The ack topic of one producer; the trailing dot keeps ``p`` from matching ``p2``."""
    return f"{ACK}{producer}.".encode()


class BusError(Exception):
    """A bus endpoint cannot be used (bad name, bind failure)."""


class Endpoints:
    """Resolves endpoint names to zmq addresses for one configuration."""

    def __init__(self, cfg: Config):
        unknown = set(cfg.bus.endpoints) - set(ENDPOINT_NAMES)
        if unknown:
            raise BusError(f"unknown bus endpoint name(s) in [bus.endpoints]: {sorted(unknown)}")
        self._cfg = cfg
        self.runtime_dir = runtime_dir(cfg)

    def __getitem__(self, name: str) -> str:
        if name not in ENDPOINT_NAMES:
            raise BusError(f"unknown bus endpoint {name!r}")
        override = self._cfg.bus.endpoints.get(name)
        if override:
            return override
        return f"ipc://{self.runtime_dir / (name + '.sock')}"

    def prepare(self) -> None:
        """Create the runtime dir (0700) for ipc endpoints."""
        ensure_private_dir(self.runtime_dir)


_ctx_lock = threading.Lock()
_ctx: zmq.Context[Any] | None = None


def context() -> zmq.Context[Any]:
    """The process's one zmq Context (created on first use, in the process that uses it)."""
    global _ctx
    with _ctx_lock:
        if _ctx is None or _ctx.closed:
            _ctx = zmq.Context()
        return _ctx


def make_socket(
    ctx: zmq.Context[Any], sock_type: int, cfg: Config, *, hwm: int | None = None
) -> zmq.Socket[Any]:
    sock = ctx.socket(sock_type)
    sock.setsockopt(zmq.LINGER, cfg.bus.linger_ms)
    if hwm is not None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


def bind(sock: zmq.Socket[Any], address: str, cfg: Config | None = None) -> None:
    """Bind `sock`; a ``tcp://`` address with `cfg` is a CURVE server (observer.curve)."""
    if address.startswith("tcp://") and cfg is not None:
        secure_server(sock, cfg, address)
    if address.startswith("ipc://"):
        path = Path(address[len("ipc://") :])
        ensure_private_dir(path.parent)
    try:
        sock.bind(address)
    except zmq.ZMQError as e:
        raise BusError(f"cannot bind {address}: {e}") from e
    if address.startswith("ipc://"):
        Path(address[len("ipc://") :]).chmod(0o600)


def connect(sock: zmq.Socket[Any], address: str, cfg: Config, server_key_file: str = "") -> None:
    """Connect `sock`; to a ``tcp://`` address as a CURVE client (observer.curve) of
    `server_key_file` (default: ``[bus] curve_server_key_file``)."""
    if address.startswith("tcp://"):
        secure_client(sock, cfg, server_key_file)
    sock.connect(address)


# --------------------------------------------------------------------------- codecs (reused)
# msgspec JSON on the wire: as fast as msgpack for these Structs (encode 0.4 us, decode 0.7 us for a
# one-tick TradeFrame) and, unlike msgpack timestamps, it keeps each datetime's UTC offset, so KST
# times stay KST from the collector to the archive line.

_encoder = msgspec.json.Encoder()
ingest_decoder: msgspec.json.Decoder[IngestBody] = msgspec.json.Decoder(IngestBody)
archive_decoder: msgspec.json.Decoder[ArchiveBody] = msgspec.json.Decoder(ArchiveBody)
event_decoder: msgspec.json.Decoder[EventBody] = msgspec.json.Decoder(EventBody)
reply_decoder: msgspec.json.Decoder[CommandReply] = msgspec.json.Decoder(CommandReply)
feed_decoder: msgspec.json.Decoder[FeedBody] = msgspec.json.Decoder(FeedBody)


def encode(msg: Any) -> bytes:
    return _encoder.encode(msg)


def decode_raw(raw: msgspec.Raw | bytes) -> Any:
    """Builtins from a Raw value produced by `encode` (e.g. ``CommandReply.data``)."""
    return msgspec.json.decode(raw)


# --------------------------------------------------------------------------- events (PUB/SUB)


class EventPublisher:
    """PUB connected to the forwarder. `publish` never blocks (drops at HWM and counts it)."""

    def __init__(self, ctx: zmq.Context[Any], cfg: Config):
        self.sock = make_socket(ctx, zmq.PUB, cfg, hwm=cfg.bus.send_hwm)
        connect(self.sock, Endpoints(cfg)["events_in"], cfg)
        self.dropped = 0

    def publish(self, topic: str, body: EventBody) -> None:
        try:
            self.sock.send_multipart([topic.encode(), encode(body)], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        self.sock.close(linger=0)


class EventSubscriber:
    """SUB connected to the forwarder, subscribed to topic prefixes."""

    def __init__(self, ctx: zmq.Context[Any], cfg: Config, topics: list[str]):
        self.sock = make_socket(ctx, zmq.SUB, cfg, hwm=cfg.bus.recv_hwm)
        for topic in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        connect(self.sock, Endpoints(cfg)["events_out"], cfg)
        self.malformed = 0

    def recv_nowait(self) -> tuple[str, EventBody] | None:
        """One event, or None when nothing is waiting. Malformed events are counted, not raised."""
        while True:
            try:
                frames = self.sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return None
            if len(frames) != 2:
                self.malformed += 1
                continue
            try:
                return frames[0].decode(), event_decoder.decode(frames[1])
            except (msgspec.DecodeError, UnicodeDecodeError):
                self.malformed += 1

    def close(self) -> None:
        self.sock.close(linger=0)


class Forwarder:
    """XSUB/XPUB proxy for the event bus, run in a thread (the supervisor owns one).

    Split hosts: with ``events_export`` in ``[bus.endpoints]`` it also publishes the events of its
    own host's workers there, and with ``[bus] events_upstream`` (the other host's export) it hands
    that host's events to its own subscribers. An export carries only what arrived from local
    workers, so two hosts may import each other's without an event going round in a loop."""

    def __init__(self, ctx: zmq.Context[Any], cfg: Config):
        self._ctx = ctx
        self._cfg = cfg
        eps = Endpoints(cfg)
        self._in_addr, self._out_addr = eps["events_in"], eps["events_out"]
        self._export_addr = cfg.bus.endpoints.get("events_export", "")
        self._ctl_addr = f"inproc://forwarder-ctl-{id(self)}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-forwarder", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error:
            raise BusError(f"event forwarder failed to start: {self._error}")

    def _run(self) -> None:
        bus = self._cfg.bus
        xsub = make_socket(self._ctx, zmq.XSUB, self._cfg, hwm=bus.recv_hwm)
        xpub = make_socket(self._ctx, zmq.XPUB, self._cfg, hwm=bus.recv_hwm)
        ctl = self._ctx.socket(zmq.PAIR)
        export = make_socket(self._ctx, zmq.PUB, self._cfg, hwm=bus.send_hwm) if self._export_addr else None
        upstream = (
            make_socket(self._ctx, zmq.SUB, self._cfg, hwm=bus.recv_hwm) if bus.events_upstream else None
        )
        sockets = [s for s in (xsub, xpub, ctl, export, upstream) if s is not None]
        try:
            bind(xsub, self._in_addr, self._cfg)
            bind(xpub, self._out_addr, self._cfg)
            if export is not None:
                bind(export, self._export_addr, self._cfg)
                xsub.send(b"\x01")  # every local event, for the other host
            if upstream is not None:
                upstream.setsockopt(zmq.SUBSCRIBE, b"")
                connect(upstream, bus.events_upstream, self._cfg, bus.events_upstream_key_file)
            ctl.bind(self._ctl_addr)
        except (BusError, CurveError) as e:
            self._error = e
            self._ready.set()
            for s in sockets:
                s.close(linger=0)
            return
        self._ready.set()
        try:
            if export is None and upstream is None:
                zmq.proxy_steerable(xsub, xpub, None, ctl)
            else:
                self._split_hosts(xsub, xpub, ctl, export, upstream)
        except zmq.ContextTerminated:
            pass
        finally:
            for s in sockets:
                s.close(linger=0)

    @staticmethod
    def _split_hosts(
        xsub: zmq.Socket[Any],
        xpub: zmq.Socket[Any],
        ctl: zmq.Socket[Any],
        export: zmq.Socket[Any] | None,
        upstream: zmq.Socket[Any] | None,
    ) -> None:
        """The proxy, plus the export of local events and the import of the other host's."""
        poller = zmq.Poller()
        for s in (xsub, xpub, ctl, upstream):
            if s is not None:
                poller.register(s, zmq.POLLIN)
        while True:
            for sock, _ in poller.poll():
                if sock is ctl:
                    if ctl.recv() == b"TERMINATE":
                        return
                elif sock is xsub:  # a local worker's event: local subscribers and the other host
                    parts = xsub.recv_multipart()
                    xpub.send_multipart(parts)
                    if export is not None:
                        export.send_multipart(parts)
                elif sock is xpub:  # a local (un)subscription, to the local publishers
                    xsub.send_multipart(xpub.recv_multipart())
                elif upstream is not None:  # the other host's event: local subscribers only
                    xpub.send_multipart(upstream.recv_multipart())

    def stop(self) -> None:
        if self._thread is None:
            return
        ctl = self._ctx.socket(zmq.PAIR)
        ctl.connect(self._ctl_addr)
        ctl.send(b"TERMINATE")
        self._thread.join(5)
        ctl.close(linger=0)  # only after the join: closing the peer at once can lose TERMINATE
        self._thread = None


# --------------------------------------------------------------------------- public feed (PUB/SUB)

FEED_STATS_TOPIC = "feed.stats"
FEED_TOPIC_PREFIXES = ("swing.", "scalp.", "raw.", "event.", "feed.")


class _EventType(msgspec.Struct):
    type: str = ""


_event_type_decoder = msgspec.json.Decoder(_EventType)
_SUBJECT_BAD = re.compile(r"[\s*>]")


def feed_topic(track: str, market: str, record_id: str, line: bytes) -> str:
    """The feed topic of one archive line (``record_id`` is ``<track>:<symbol>:...`` for swing/scalp;
    an id without its symbol goes under ``_``: the feed never stops on one odd line)."""
    match track:
        case "swing" | "scalp":
            parts = record_id.split(":", 2)
            return f"{track}.{market}.{parts[1] if len(parts) > 1 and parts[1] else '_'}"
        case "raw":
            return f"raw.{market}"
        case "system":
            try:
                kind = _event_type_decoder.decode(line).type
            except msgspec.DecodeError:
                kind = ""
            return f"event.{kind or 'unknown'}"
        case _:
            return f"event.{track}"


def stream_subject(prefix: str, track: str, market: str, record_id: str, line: bytes) -> str:
    """The JetStream subject of one archive line: ``<prefix>.<feed topic>``, with the characters
    NATS gives a meaning (space, ``*``, ``>``, empty tokens) replaced by ``_``."""
    topic = feed_topic(track, market, record_id, line)
    tokens = [_SUBJECT_BAD.sub("_", t) or "_" for t in topic.split(".")]
    return prefix + "." + ".".join(tokens)
