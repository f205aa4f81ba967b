"""Stand-alone processes for the reliable-chain test: source -> middle -> sink.

``python -m tests.observer.chain_procs ROLE CONFIG WORKDIR [COUNT RATE]``

* source: sends records 0..COUNT-1 (record_id = index) at RATE/s on the ingest hop; it keeps its
  own acknowledged watermark in WORKDIR/source.acked so a restarted source resumes after it.
* middle: ingest -> archive, acking upstream only what the sink has acknowledged (like the core).
* sink: appends each new record_id to WORKDIR/sink.log, fsyncs, then acks (like the writer);
  duplicates by record_id are skipped but acked; a torn last line is cut on start.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import deque
from datetime import datetime
from pathlib import Path

import msgspec
import zmq

from observer.bus import archive_decoder, context, ingest_decoder
from observer.clock import KST
from observer.config import load_config
from observer.reliable import ReliableReceiver, ReliableSender, hop_endpoints
from observer.schema import ArchiveRecord, SystemEvent

AT = datetime(2026, 11, 26, 10, 0, tzinfo=KST)
stop = False


def _stop(*_: object) -> None:
    global stop
    stop = True


def source(cfg_path: str, work: Path, count: int, rate: float) -> None:
    cfg = load_config(cfg_path)
    ctx = context()
    ep, ack = hop_endpoints(cfg, "ingest")
    sender = ReliableSender(ctx, cfg, "source", ep, ack)
    mark = work / "source.acked"
    start = int(mark.read_text()) + 1 if mark.exists() else 0
    seq_to_index: dict[int, int] = {}
    nxt = start
    interval = 1.0 / rate
    t0 = time.monotonic()
    acked_written = sender.acked
    while not stop:
        due = start + int((time.monotonic() - t0) / interval) + 1
        while nxt < min(due, count):
            ev = SystemEvent(record_id=str(nxt), type="test", severity="INFO", at=AT, source="source")
            seq_to_index[sender.send(ev)] = nxt
            nxt += 1
        sender.pump()
        if sender.acked > acked_written:
            acked_written = sender.acked
            idx = seq_to_index[acked_written]
            tmp = work / "source.acked.tmp"
            tmp.write_text(str(idx))
            os.replace(tmp, mark)
            for s in [s for s in seq_to_index if s <= acked_written]:
                del seq_to_index[s]
        time.sleep(0.002)


def middle(cfg_path: str) -> None:
    cfg = load_config(cfg_path)
    ctx = context()
    receiver = ReliableReceiver(ctx, cfg, "middle", *hop_endpoints(cfg, "ingest"))
    sender = ReliableSender(ctx, cfg, "middle", *hop_endpoints(cfg, "archive"))
    pending: deque[tuple[int, str, str, int]] = deque()  # (archive seq, producer, run, ingest seq)
    poller = zmq.Poller()
    poller.register(receiver.pull, zmq.POLLIN)
    poller.register(sender.ack_sub, zmq.POLLIN)
    while not stop:
        poller.poll(20)
        for env in receiver.receive():
            body = ingest_decoder.decode(env.body)
            assert isinstance(body, SystemEvent)
            rec = ArchiveRecord(
                track="system",
                provider="t",
                market="t",
                partition_at=AT,
                record_id=body.record_id,
                line=msgspec.Raw(body.record_id.encode()),  # digits: a JSON number
            )
            pending.append((sender.send(rec), env.producer, env.run_id, env.seq))
        sender.pump()
        last: dict[tuple[str, str], int] = {}
        while pending and pending[0][0] <= sender.acked:
            _, producer, run, seq = pending.popleft()
            last[(producer, run)] = seq
        for (producer, run), seq in last.items():
            receiver.ack(producer, run, seq)
        receiver.republish_acks()


def sink(cfg_path: str, work: Path) -> None:
    cfg = load_config(cfg_path)
    ctx = context()
    receiver = ReliableReceiver(ctx, cfg, "sink", *hop_endpoints(cfg, "archive"))
    log = work / "sink.log"
    seen: set[str] = set()
    if log.exists():
        data = log.read_bytes()
        if data and not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
            with open(log, "r+b") as fh:
                fh.truncate(len(data))
        seen = set(data.decode().split())
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    poller = zmq.Poller()
    poller.register(receiver.pull, zmq.POLLIN)
    while not stop:
        poller.poll(20)
        lines: list[bytes] = []
        last: dict[tuple[str, str], int] = {}
        for env in receiver.receive():
            rec = archive_decoder.decode(env.body)
            if rec.record_id not in seen:
                seen.add(rec.record_id)
                lines.append(bytes(rec.line) + b"\n")
            last[(env.producer, env.run_id)] = env.seq
        if lines:
            os.write(fd, b"".join(lines))
            os.fsync(fd)
        for (producer, run), seq in last.items():
            receiver.ack(producer, run, seq)
        receiver.republish_acks()


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    role, cfg_path, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if role == "source":
        source(cfg_path, work, int(sys.argv[4]), float(sys.argv[5]))
    elif role == "middle":
        middle(cfg_path)
    else:
        sink(cfg_path, work)


if __name__ == "__main__":
    main()
