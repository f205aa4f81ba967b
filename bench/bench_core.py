"""Records/s through source -> core -> sink stand-in (acks), beside a bare pyzmq 3-process chain.

    .venv/bin/python bench/bench_core.py [--records 60000] [--latency-s 10]

Both chains run in the same invocation (the machine is shared and noisy: compare the ratio).
* bare: source PUSH -> middle (msgspec decode + check + re-encode) PUSH -> sink PULL.
* core: source ReliableSender (one TradeFrame with one tick per message, 41 symbols) -> the real
  `observer` worker process -> sink ReliableReceiver that acks every record at once. Every frame
  gives a raw record, plus one scalp sample per symbol per 0.5 s window.
Then receive -> archive-sink latency (frame received_at -> sink) at nominal load (82 frames/s).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SYMBOLS = [f"{i:06d}" for i in range(100, 141)]
TOML = """
[paths]
data_dir = "{base}/data"
runtime_dir = "{base}/run"
universe_dir = "{base}/universe"
log_dir = "{base}/logs"
[provider]
markets = ["KOSPI"]
[clock]
mode = "session"
start_at = "10:00:00"
[logging]
level = "WARNING"
"""


# --------------------------------------------------------------------------- bare chain
def _bare_source(addr: str, n: int) -> None:
    import msgspec
    import zmq

    from observer.schema import Tick

    enc = msgspec.msgpack.Encoder()
    now = datetime.now().astimezone()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(addr)
    for i in range(n):
        push.send(
            enc.encode(
                Tick(
                    symbol=SYMBOLS[i % 41],
                    exchange_at=now,
                    received_at=now,
                    price=10_000,
                    change=0,
                    open=10_000,
                    high=10_000,
                    low=10_000,
                    trade_volume=1,
                    cumulative_volume=i,
                    cumulative_value=i,
                    ask_price=10_010,
                    bid_price=10_000,
                )
            )
        )
    push.close(linger=5_000)
    ctx.term()


def _bare_middle(in_addr: str, out_addr: str, n: int) -> None:
    import msgspec
    import zmq

    from observer.schema import Tick

    dec = msgspec.msgpack.Decoder(Tick)
    enc = msgspec.json.Encoder()
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(in_addr)
    push = ctx.socket(zmq.PUSH)
    push.connect(out_addr)
    for _ in range(n):
        tick = dec.decode(pull.recv())
        if tick.price > 0 and tick.low <= tick.price <= tick.high:
            push.send(enc.encode(tick))
    push.close(linger=5_000)
    ctx.term()


def bare_chain(n: int) -> float:
    import zmq

    base = tempfile.mkdtemp(prefix="bcb-", dir="/tmp")
    a, b = f"ipc://{base}/a.sock", f"ipc://{base}/b.sock"
    ctx = zmq.Context()
    sink = ctx.socket(zmq.PULL)
    sink.bind(b)
    spawn = mp.get_context("spawn")
    middle = spawn.Process(target=_bare_middle, args=(a, b, n))
    middle.start()
    source = spawn.Process(target=_bare_source, args=(a, n))
    source.start()
    sink.recv()
    t0 = time.perf_counter()
    for _ in range(n - 1):
        sink.recv()
    elapsed = time.perf_counter() - t0
    for proc in (source, middle):
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
    ctx.destroy(linger=0)
    return (n - 1) / elapsed


# --------------------------------------------------------------------------- core chain
def _core_source(cfg_path: str, anchor: float, n: int, rate: float, window: int) -> None:
    import zmq

    from observer.bus import context
    from observer.clock import SessionClock, parse_start_at
    from observer.config import load_config
    from observer.reliable import ReliableSender, hop_endpoints
    from observer.schema import Tick, TradeFrame

    cfg = load_config(cfg_path, env={})
    clock = SessionClock(parse_start_at("10:00:00", datetime.now().astimezone().date()), 1.0, anchor)
    ctx = context()
    sender = ReliableSender(ctx, cfg, "bench-src", *hop_endpoints(cfg, "ingest"))
    poller = zmq.Poller()
    poller.register(sender.ack_sub, zmq.POLLIN)
    cum = [0] * 41
    next_at = time.perf_counter()
    for i in range(n):
        k = i % 41
        cum[k] += 3
        now = clock.now()
        tick = Tick(
            symbol=SYMBOLS[k],
            exchange_at=now,
            received_at=now,
            price=10_000,
            change=0,
            open=10_000,
            high=10_100,
            low=9_900,
            trade_volume=3,
            cumulative_volume=cum[k],
            cumulative_value=cum[k] * 10_000,
            ask_price=10_010,
            bid_price=10_000,
        )
        sender.send(
            TradeFrame(
                provider="kis",
                market="KOSPI",
                received_at=now,
                raw=f"0|H0STCNT0|001|{i}",
                tr_id="H0STCNT0",
                ticks=[tick],
            )
        )
        if rate:
            next_at += 1 / rate
            while time.perf_counter() < next_at:
                poller.poll(max(0, int((next_at - time.perf_counter()) * 1000)))
                sender.pump()
        while sender.unacked > window:
            poller.poll(5)
            sender.pump()
        if i % 256 == 0:
            sender.pump()
    sender.wait_all_acked(20.0)
    sender.close()


def core_chain(n: int, rate: float = 0.0) -> tuple[float, list[float]]:
    from observer.bus import archive_decoder, context
    from observer.clock import ANCHOR_ENV, SessionClock, parse_start_at
    from observer.config import load_config
    from observer.reliable import ReliableReceiver, hop_endpoints
    from observer.universe import UniverseEntry, UniverseSnapshot, write_snapshot_once

    base = Path(tempfile.mkdtemp(prefix="bcc-", dir="/tmp"))
    cfg_path = base / "observer.toml"
    cfg_path.write_text(TOML.format(base=base))
    cfg = load_config(cfg_path, env={})
    anchor = time.time()
    day = datetime.now().astimezone().date()
    write_snapshot_once(
        Path(cfg.paths.universe_dir),
        UniverseSnapshot(
            date=day,
            market="KOSPI",
            provider="kis",
            created_at=datetime.now().astimezone(),
            source="bench",
            min_prev_close_krw=4_000,
            symbols=[UniverseEntry(symbol=s, name=s, market="KOSPI", prev_close=10_000) for s in SYMBOLS],
        ),
    )
    ctx = context()
    sink = ReliableReceiver(ctx, cfg, "writer", *hop_endpoints(cfg, "archive"))
    env = dict(os.environ, **{ANCHOR_ENV: repr(anchor)})
    prof = ["-m", "cProfile", "-o", os.environ["CORE_PROFILE"]] if os.environ.get("CORE_PROFILE") else []
    core = subprocess.Popen(
        [sys.executable, *prof, "-m", "observer", "--config", str(cfg_path), "worker", "observer"],
        cwd=REPO,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    source = mp.get_context("spawn").Process(
        target=_core_source, args=(str(cfg_path), anchor, n, rate, 100_000), daemon=True
    )
    clock = SessionClock(parse_start_at("10:00:00", day), 1.0, anchor)
    raw_seen = 0
    lat_ms: list[float] = []
    t0 = 0.0
    try:
        while not any(True for _ in _drain(sink)):  # the core is up once its first event arrives
            sink.pull.poll(50)
        source.start()
        while raw_seen < n:
            last: dict[tuple[str, str], int] = {}
            for envl in sink.receive(5_000):
                rec = archive_decoder.decode(envl.body)
                last[(envl.producer, envl.run_id)] = envl.seq
                if rec.track == "raw":
                    if raw_seen == 0:
                        t0 = time.perf_counter()
                    raw_seen += 1
                    if rate:
                        lat_ms.append((clock.now() - rec.partition_at).total_seconds() * 1000)
            for (
                producer,
                run_id,
            ), seq in last.items():  # one cumulative ack per drained batch, like a writer
                sink.ack(producer, run_id, seq)
            sink.republish_acks()
            sink.pull.poll(20)
        elapsed = time.perf_counter() - t0
        source.join(30)
        if source.is_alive():
            source.terminate()
    finally:
        core.send_signal(signal.SIGTERM)
        core.wait(15)
        sink.close()
    return (n - 1) / elapsed if elapsed > 0 else 0.0, lat_ms


def _drain(sink: Any) -> Any:
    for envl in sink.receive(1_000):
        sink.ack(envl.producer, envl.run_id, envl.seq)
        yield envl


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 100 else max(values or [0.0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=60_000)
    ap.add_argument("--latency-s", type=float, default=10.0)
    args = ap.parse_args(argv)
    bare = bare_chain(args.records)
    print(f"bare pyzmq 3-process chain : {bare:>10,.0f} records/s")
    core, _ = core_chain(args.records)
    print(f"source -> core -> sink     : {core:>10,.0f} frames/s  ({core / bare:.2f} x bare)")
    nominal = int(82 * args.latency_s)
    _, lat = core_chain(nominal, rate=82.0)
    print(
        f"at 82 frames/s ({nominal} frames): receive -> sink latency p50 {_pct(lat, 50):.2f} ms, "
        f"p99 {_pct(lat, 99):.2f} ms, max {max(lat):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__: list[Any] = []
