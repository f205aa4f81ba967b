"""Track B benchmark: the ws-collector process between a WebSocket feed and the ingest hop.

1. throughput: a local KIS-shaped WebSocket server sends H0STCNT0 frames as fast as it can;
   records/s the collector parses and forwards (measured where the ingest hop delivers them),
   next to a bare websocket-client receive + split of the same feed in the same run (the ratio is
   the figure to compare across machines); goal >= 20,000 records/s.
2. latency at nominal load: 82 records/s (41 slots x 2 Hz), one record per frame; WS receive at the
   collector -> delivered on the ingest hop, and server send -> delivered; goal p99 < 5 ms.

The collector runs as the supervisor runs it (`python -m observer worker ws-collector`); the
ingest receiver runs in its own process so that it does not share a GIL with the feed.

    .venv/bin/python bench/bench_track_b.py [--frames 10000] [--records-per-frame 10] [--latency-s 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websocket
import zmq

from collectors.kis_sim.rfc6455 import OP_TEXT, WsConnection, WsServer
from collectors.kis_sim.server import SimOptions, Simulator
from observer.bus import (
    SLOTS,
    EventPublisher,
    EventSubscriber,
    Forwarder,
    context,
    ingest_decoder,
    stats_topic,
)
from observer.clock import ANCHOR_ENV, KST, SessionClock, datetime_to_ns
from observer.config import Config, load_config
from observer.reliable import ReliableReceiver, hop_endpoints
from observer.schema import SlotAssignment, SlotCommand, TradeFrame, WsCollectorStats
from testkit.kis_frames import record as kis_record

REPO = Path(__file__).resolve().parent.parent
START_AT = datetime(2026, 11, 26, 10, 0, 0, tzinfo=KST)  # a Thursday inside Track B's window
CODES = [f"{100000 + i:06d}" for i in range(41)]


def record(code: str, seq: int) -> str:
    """One 46-field H0STCNT0 record; ACML_VOL carries a unique sequence number."""
    return "^".join(kis_record(code, "100000", 71500, qty=1, acml_vol=seq))


def frame_text(seq0: int, n: int) -> str:
    return f"0|H0STCNT0|{n:03d}|" + "^".join(record(CODES[(seq0 + i) % 41], seq0 + i) for i in range(n))


class Feed:
    """A KIS-shaped WebSocket server: acks every subscription, then sends what it is told to."""

    def __init__(self) -> None:
        self.server = WsServer("127.0.0.1", 0, self._handle)
        self.conns: list[WsConnection] = []
        self.subscribed = 0
        self.lock = threading.Lock()
        self.server.start()

    def _handle(self, conn: WsConnection) -> None:
        with self.lock:
            self.conns.append(conn)
        try:
            while True:
                msg = conn.recv()
                if msg.kind == "close":
                    return
                if msg.kind == "text" and '"tr_type":"1"' in msg.text:
                    key = msg.text.split('"tr_key":"', 1)[1].split('"', 1)[0]
                    header = {"tr_id": "H0STCNT0", "tr_key": key, "encrypt": "N"}
                    body = {"rt_cd": "0", "msg_cd": "OPSP0000", "msg1": "SUBSCRIBE SUCCESS"}
                    conn.send_text(json.dumps({"header": header, "body": body}))
                    with self.lock:
                        self.subscribed += 1
        except Exception:
            return

    def send(self, text: str, only: WsConnection | None = None) -> None:
        with self.lock:
            conns = [only] if only is not None else list(self.conns)
        payload = text.encode()
        for c in conns:
            c.send_frame(OP_TEXT, payload)


def receiver_main(cfg_path: str, conn: Connection) -> None:
    """Binds the ingest hop, acks everything, records (seq, arrival ns, WS receive ns) per tick."""
    cfg = load_config(cfg_path)
    ctx = context()
    data_ep, ack_ep = hop_endpoints(cfg, "ingest")
    rx = ReliableReceiver(ctx, cfg, "bench-core", data_ep, ack_ep)
    bare = ctx.socket(zmq.PULL)
    bare.bind(f"ipc://{Path(cfg_path).parent / 'run' / 'bare.sock'}")
    poller = zmq.Poller()
    poller.register(rx.pull, zmq.POLLIN)
    poller.register(bare, zmq.POLLIN)
    out: list[tuple[int, int, int, int]] = []
    bare_ms: list[float] = []
    conn.send("ready")
    while True:
        if conn.poll(0):
            cmd = conn.recv()
            if cmd == "report":
                conn.send(out)
                out = []
            elif cmd == "bare":
                conn.send(bare_ms)
                bare_ms = []
            elif cmd == "stop":
                break
        poller.poll(5)
        while True:
            try:
                stamp = bare.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            bare_ms.append((time.time_ns() - int(stamp)) / 1e6)
        for env in rx.receive():
            now = time.time_ns()
            body = ingest_decoder.decode(env.body)
            if isinstance(body, TradeFrame):
                recv_ns = datetime_to_ns(body.received_at)
                out.extend((t.cumulative_volume, now, recv_ns, env.sent_at_ns) for t in body.ticks)
            rx.ack(env.producer, env.run_id, env.seq)
        rx.republish_acks()
    rx.close()
    bare.close(0)
    ctx.destroy(linger=0)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bare_reference(feed: Feed, url: str, frames: list[str], records: int) -> float:
    """websocket-client receive + split of the same feed, no collector: records/s."""
    with feed.lock:
        before = set(map(id, feed.conns))
    ws = websocket.WebSocket(skip_utf8_validation=True)
    ws.connect(url)
    ws.send('{"header":{"tr_type":"1"},"body":{"input":{"tr_id":"H0STCNT0","tr_key":"000000"}}}')
    ws.recv()
    with feed.lock:
        (own,) = [c for c in feed.conns if id(c) not in before]
    total = 0

    def send_all() -> None:
        for f in frames:
            feed.send(f, only=own)

    sender = threading.Thread(target=send_all)
    t0 = time.perf_counter()
    sender.start()
    while total < records:
        _, data = ws.recv_data()
        text = data.decode()
        parts = text.split("|", 3)
        total += len(parts[3].split("^")) // 46
    elapsed = time.perf_counter() - t0
    sender.join()
    ws.close()
    with feed.lock:
        feed.conns = [c for c in feed.conns if not c.closed]
    return records / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--records-per-frame", type=int, default=10)
    ap.add_argument("--latency-s", type=float, default=10.0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bb-", dir="/tmp"))
    os.chmod(tmp, 0o700)
    clock = SessionClock(START_AT, 1.0)
    sim = Simulator(SimOptions(symbol_count=50, weekends_closed=False), clock).start()  # approval keys
    feed = Feed()
    cfg_path = tmp / "observer.toml"
    cfg_path.write_text(
        f'[paths]\ndata_dir = "{tmp / "data"}"\nruntime_dir = "{tmp / "run"}"\nlog_dir = "{tmp / "logs"}"\n'
        f'[clock]\nmode = "session"\nstart_at = "{START_AT.isoformat()}"\nspeed = 1.0\n'
        f"[sim]\nenabled = true\nrest_port = {sim.rest_port}\nws_port = {feed.server.port}\n"
        '[logging]\nlevel = "WARNING"\n[track_b]\nframe_queue_max = 100000\n'
    )
    cfg: Config = load_config(cfg_path)
    ctx = context()
    forwarder = Forwarder(ctx, cfg)
    forwarder.start()
    parent, child = mp.Pipe()
    rx_proc = mp.get_context("spawn").Process(target=receiver_main, args=(str(cfg_path), child), daemon=True)
    rx_proc.start()
    assert parent.recv() == "ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "OBSERVER_"))}
    env |= {"OBSERVER_CONFIG": str(cfg_path), ANCHOR_ENV: repr(clock.anchor_epoch_s)}
    worker = subprocess.Popen([sys.executable, "-m", "observer", "worker", "ws-collector"], cwd=REPO, env=env)
    pub = EventPublisher(ctx, cfg)
    stats_sub = EventSubscriber(ctx, cfg, [stats_topic("ws-collector")])
    slots = [
        SlotAssignment(slot_number=i + 1, symbol=c, rule="manual", since=START_AT)
        for i, c in enumerate(CODES)
    ]
    try:
        deadline = time.monotonic() + 30
        while feed.subscribed < 41:
            pub.publish(SLOTS, SlotCommand(version=1, at=START_AT, slots=slots))
            if time.monotonic() > deadline:
                raise SystemExit("the collector never subscribed")
            time.sleep(0.2)  # re-publishing the slot table until the collector has it (a bench, not a test)

        # -- 1. throughput
        n = args.records_per_frame
        frames = [frame_text(1 + i * n, n) for i in range(args.frames)]
        total = len(frames) * n
        t0 = time.time_ns()
        for f in frames:
            feed.send(f)
        got: list[tuple[int, int, int, int]] = []
        deadline = time.monotonic() + 120
        while len(got) < total and time.monotonic() < deadline:
            time.sleep(0.2)
            parent.send("report")
            got.extend(parent.recv())
        last = max(g[1] for g in got)
        first_recv = min(g[2] for g in got) - (datetime_to_ns(START_AT) - int(clock.anchor_epoch_s * 1e9))
        rate = len(got) / ((last - t0) / 1e9)
        rate_from_ws = len(got) / ((last - first_recv) / 1e9)
        bare = bare_reference(feed, f"ws://127.0.0.1:{feed.server.port}", frames, total)
        print(f"throughput: {len(got)}/{total} records in frames of {n}")
        print(
            f"  collector parse+forward: {rate:,.0f} records/s from first send; "
            f"{rate_from_ws:,.0f} records/s from first WS receive (goal >= 20,000)"
        )
        print(
            f"  bare websocket-client receive+split, same run: {bare:,.0f} records/s "
            f"(collector = {rate / bare:.2f}x bare)"
        )

        # -- 2. latency at 82 records/s
        offset_ns = datetime_to_ns(START_AT) - int(clock.anchor_epoch_s * 1e9)
        bare_push = ctx.socket(zmq.PUSH)
        bare_push.connect(f"ipc://{tmp / 'run' / 'bare.sock'}")
        sent_at: dict[int, int] = {}
        seq = 10_000_000
        count = int(args.latency_s * 82)
        next_at = time.perf_counter()
        for _ in range(count):
            seq += 1
            text = frame_text(seq, 1)
            next_at += 1 / 82
            while time.perf_counter() < next_at:
                time.sleep(max(0.0, next_at - time.perf_counter() - 0.0005))
            sent_at[seq] = time.time_ns()
            feed.send(text)
            bare_push.send(str(time.time_ns()).encode())
        samples: list[tuple[int, int, int, int]] = []
        deadline = time.monotonic() + 10
        while len(samples) < count and time.monotonic() < deadline:
            time.sleep(0.2)
            parent.send("report")
            samples.extend(s for s in parent.recv() if s[0] in sent_at)
        ws_to_ingest = [(a - (r - offset_ns)) / 1e6 for _, a, r, _ in samples]
        send_to_ingest = [(a - sent_at[s]) / 1e6 for s, a, _, _ in samples]
        ws_to_send = [(e - (r - offset_ns)) / 1e6 for _, _, r, e in samples]
        hop = [(a - e) / 1e6 for _, a, _, e in samples]
        parent.send("bare")
        bare_ms: list[float] = parent.recv()
        bare_push.close(0)
        print(f"latency at 82 records/s, {len(samples)}/{count} records:")
        print(
            f"  WS receive -> ingest: p50 {statistics.median(ws_to_ingest):.2f} ms, "
            f"p99 {pct(ws_to_ingest, 0.99):.2f} ms, max {max(ws_to_ingest):.2f} ms (goal p99 < 5 ms)"
        )
        print(
            f"  server send -> ingest: p50 {statistics.median(send_to_ingest):.2f} ms, "
            f"p99 {pct(send_to_ingest, 0.99):.2f} ms"
        )
        print(
            f"  bare pyzmq ipc hop to the same receiver at the same moments: p50 "
            f"{statistics.median(bare_ms):.2f} ms, p99 {pct(bare_ms, 0.99):.2f} ms (machine noise reference)"
        )
        last_stats = None
        while (ev := stats_sub.recv_nowait()) is not None:
            last_stats = ev[1]
        if isinstance(last_stats, WsCollectorStats):
            keep = ("frames", "ticks", "rejected", "dropped_frames", "ingest_resent", "ingest_resend_rounds")
            print("  collector counters:", {k: getattr(last_stats, k) for k in keep})
        print(
            f"  (collector WS receive -> envelope sent: p99 {pct(ws_to_send, 0.99):.2f} ms; "
            f"envelope sent -> delivered: p99 {pct(hop, 0.99):.2f} ms)"
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
        parent.send("stop")
        rx_proc.join(5)
        pub.close()
        stats_sub.close()
        forwarder.stop()
        feed.server.stop()
        sim.stop()


if __name__ == "__main__":
    main()
