"""JetStream sink benchmark: the writer alone next to the writer + JetStream sink, in one run.

    .venv/bin/python bench/bench_jetstream.py [--records 30000] [--latency-s 15] [--rate 200]

A real ``nats-server -js`` on loopback (store in a temp dir), a writer process and (second mode) the
``jetstream`` sink process; this process plays the core (ReliableSender, batched like the core).

1. throughput: ``--records`` records as fast as the hop takes them; records/s to the last writer ack
   (archived) in both modes, and records/s to the last line in the stream with the sink;
2. latency at ``--rate`` records/s for ``--latency-s``: send -> writer ack (archived, fsynced) p50/p99
   in both modes, and send -> line seen on the stream's subjects (a core NATS subscriber on
   ``<prefix>.>``) with the sink; "added" is stream time minus writer-ack time per record.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import zmq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from observer.bus import context  # noqa: E402
from observer.reliable import ReliableSender, hop_endpoints  # noqa: E402
from observer.schema import ArchiveRecord  # noqa: E402
from testkit.config import make_config, write_config  # noqa: E402
from testkit.records import DAY, record  # noqa: E402
from testkit.wait import poll_until  # noqa: E402

STREAM = "BENCH_ARCHIVE"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rec(i: int) -> ArchiveRecord:
    return record("scalp", f"scalp:005930:{i}", DAY + timedelta(milliseconds=500 * i))


class Rig:
    """Temp dirs, a nats-server, a writer and (optionally) the sink."""

    def __init__(self, with_sink: bool):
        self.base = Path(tempfile.mkdtemp(prefix="obs-bj-", dir="/tmp"))
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        toml = (
            "[writer]\nflush_interval_ms = 50\n"
            f'[jetstream]\nenabled = {"true" if with_sink else "false"}\nurl = "{self.url}"\nstream = "{STREAM}"\n'
        )
        self.cfg_path = write_config(self.base, toml)
        self.cfg = make_config(self.base, toml)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.procs.append(
            subprocess.Popen(
                [
                    "/usr/sbin/nats-server",
                    "-js",
                    "-sd",
                    str(self.base / "nats"),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        for name in ["writer", "jetstream"] if with_sink else ["writer"]:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "observer", "--config", str(self.cfg_path), "worker", name],
                    stdout=open(self.base / f"{name}.out", "ab"),  # noqa: SIM115 - owned by the child
                    stderr=subprocess.STDOUT,
                    env=dict(os.environ, PYTHONPATH=str(REPO)),
                    cwd=str(self.base),
                )
            )

    def nats_up(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def sender(self, ctx: zmq.Context[Any]) -> ReliableSender:
        data_ep, ack_ep = hop_endpoints(self.cfg, "archive")
        return ReliableSender(
            ctx, self.cfg, "bench", data_ep, ack_ep, replay_buffer_bytes=1 << 30, transmit_on_send=False
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(self.base, ignore_errors=True)


class StreamWatcher(threading.Thread):
    """A core NATS subscriber on the stream's subjects: record_id -> perf_counter when seen."""

    def __init__(self, url: str, subjects: str):
        super().__init__(daemon=True)
        self.url, self.subjects = url, subjects
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        nc = await nats.connect(self.url)

        async def on_msg(msg: Any) -> None:
            self.seen[msg.headers["Nats-Msg-Id"]] = time.perf_counter()

        await nc.subscribe(self.subjects, cb=on_msg, pending_msgs_limit=1_000_000)
        self.ready.set()
        while not self._halt.is_set():
            await asyncio.sleep(0.05)
        await nc.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def warm_up(sender: ReliableSender, poller: zmq.Poller) -> None:
    sender.send(rec(-1))
    while sender.acked < 1:
        poller.poll(10)
        sender.pump()


def throughput(n: int, with_sink: bool) -> tuple[float, float]:
    """(records/s to the last writer ack, records/s to the last line seen on the stream)."""
    rig = Rig(with_sink)
    watcher = StreamWatcher(rig.url, "archive.>")
    ctx = context()
    sender = rig.sender(ctx)
    poller = zmq.Poller()
    poller.register(sender.ack_sub, zmq.POLLIN)
    try:
        poll_until(rig.nats_up, 10, 0.05, "nats-server")  # its start-up is not part of the figure
        watcher.start()
        watcher.ready.wait(10)
        warm_up(sender, poller)
        if with_sink:
            poll_until(lambda: "scalp:005930:-1" in watcher.seen, 60, 0.01, "the warm-up line in the stream")
        t0 = time.perf_counter()
        for i in range(n):
            sender.send(rec(i))
            if i % 500 == 0:
                sender.pump()
                while sender.unacked_bytes > 48 * 1024 * 1024:
                    poller.poll(10)
                    sender.pump()
        while sender.acked < sender.last_seq:
            poller.poll(10)
            sender.pump()
        t_writer = time.perf_counter() - t0
        t_stream = float("nan")
        if with_sink:
            poll_until(lambda: len(watcher.seen) >= n + 1, 120, 0.01, "every line in the stream")
            t_stream = max(watcher.seen.values()) - t0
    finally:
        watcher.stop()
        sender.close()
        rig.close()
    return n / t_writer, n / t_stream


def latency(seconds: float, rate: float, with_sink: bool) -> tuple[list[float], list[float]]:
    """Per record: send -> writer ack (ms), and stream time - writer-ack time (ms) with the sink."""
    rig = Rig(with_sink)
    watcher = StreamWatcher(rig.url, "archive.>")
    ctx = context()
    sender = rig.sender(ctx)
    poller = zmq.Poller()
    poller.register(sender.ack_sub, zmq.POLLIN)
    sent_at: dict[int, tuple[str, float]] = {}
    acked_at: dict[str, tuple[float, float]] = {}
    try:
        poll_until(rig.nats_up, 10, 0.05, "nats-server")
        watcher.start()
        watcher.ready.wait(10)
        warm_up(sender, poller)
        acked = sender.acked
        t_end = time.monotonic() + seconds
        next_at = time.monotonic()
        i = 0
        while time.monotonic() < t_end or sender.acked < sender.last_seq:
            now = time.monotonic()
            if now >= next_at and now < t_end:
                r = rec(i)
                seq = sender.send(r)
                sent_at[seq] = (r.record_id, time.perf_counter())
                i += 1
                next_at += 1 / rate
            poller.poll(max(0, min(5, int((next_at - time.monotonic()) * 1000))))
            sender.pump()
            if sender.acked > acked:
                t = time.perf_counter()
                for seq in range(acked + 1, sender.acked + 1):
                    if seq in sent_at:
                        rid, t_sent = sent_at.pop(seq)
                        acked_at[rid] = (t_sent, t)
                acked = sender.acked
        if with_sink:
            poll_until(
                lambda: all(rid in watcher.seen for rid in acked_at),
                30,
                0.01,
                "every acked line in the stream",
            )
    finally:
        watcher.stop()
        sender.close()
        rig.close()
    ack_ms = [(t_ack - t_sent) * 1000 for t_sent, t_ack in acked_at.values()]
    added_ms = [
        (watcher.seen[rid] - t_ack) * 1000 for rid, (_, t_ack) in acked_at.items() if rid in watcher.seen
    ]
    return ack_ms, added_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=30_000)
    ap.add_argument("--latency-s", type=float, default=15.0)
    ap.add_argument("--rate", type=float, default=200.0)
    args = ap.parse_args()
    print(f"throughput, {args.records} scalp records as fast as the archive hop takes them")
    alone, _ = throughput(args.records, with_sink=False)
    writer_rps, stream_rps = throughput(args.records, with_sink=True)
    print(f"  writer alone:              {alone:10.0f} records/s archived")
    print(f"  writer + jetstream sink:   {writer_rps:10.0f} records/s archived")
    print(f"                             {stream_rps:10.0f} records/s in the stream")
    print(f"latency at {args.rate:.0f} records/s for {args.latency_s:.0f} s")
    ack_alone, _ = latency(args.latency_s, args.rate, with_sink=False)
    ack_sink, added = latency(args.latency_s, args.rate, with_sink=True)
    print(
        f"  writer alone:  send->archived  p50 {pct(ack_alone, 0.5):7.1f} ms  p99 {pct(ack_alone, 0.99):7.1f} ms"
    )
    print(
        f"  with the sink: send->archived  p50 {pct(ack_sink, 0.5):7.1f} ms  p99 {pct(ack_sink, 0.99):7.1f} ms"
    )
    print(
        f"  added by the sink (archived->in stream): p50 {pct(added, 0.5):7.1f} ms  p99 {pct(added, 0.99):7.1f} ms"
        f"  ({len(added)}/{len(ack_sink)} records seen in the stream)"
    )


if __name__ == "__main__":
    main()
