"""Bus benchmark: records/s through a 3-process chain (source -> middle -> sink) with the reliable
bus (seq, replay buffer, acks, dedup), next to a bare pyzmq chain measured in the same run, and
source -> sink latency at the nominal 82 records/s.

    .venv/bin/python bench/bench_bus.py [--count 200000] [--latency-s 10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
import zmq

from observer.bus import archive_decoder, context, encode, ingest_decoder
from observer.clock import KST
from observer.config import Config, decode_config
from observer.reliable import ReliableReceiver, ReliableSender, hop_endpoints
from observer.schema import ArchiveRecord, QuoteSnapshot

AT = __import__("datetime").datetime(2026, 11, 26, 10, 0, tzinfo=KST)


def _cfg(run_dir: str) -> Config:
    return decode_config(f'[paths]\nruntime_dir = "{run_dir}"\n[bus]\nresend_after_ms = 2000\n', "<bench>")


def _snapshot(i: int) -> QuoteSnapshot:
    return QuoteSnapshot(
        provider="kis",
        market="KOSPI",
        symbol=f"{i % 4000:06d}",
        sweep_id=str(time.time_ns()),
        exchange_at=AT,
        received_at=AT,
        price=71000,
        open=70500,
        high=71500,
        low=70000,
        volume=123456 + i,
        value_krw=8_765_432_100,
        prev_close=70000,
        upper_limit=91000,
        lower_limit=49000,
        bid_price=70900,
        ask_price=71000,
        bid_size=10,
        ask_size=12,
        name="삼성전자",
    )


# ----------------------------------------------------------------------------- bare chain


def bare_source(run_dir: str, count: int, rate: float) -> None:
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"ipc://{run_dir}/bare1.sock")
    interval = 1 / rate if rate else 0
    t0 = time.perf_counter()
    for i in range(count):
        if interval:
            while time.perf_counter() < t0 + i * interval:
                time.sleep(0.0005)
        push.send(encode(_snapshot(i)))
    push.close(linger=-1)
    ctx.term()


def bare_middle(run_dir: str, count: int) -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(f"ipc://{run_dir}/bare1.sock")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"ipc://{run_dir}/bare2.sock")
    enc = msgspec.json.Encoder()
    for _ in range(count):
        snap = ingest_decoder.decode(pull.recv())
        rec = ArchiveRecord(
            track="swing",
            provider="kis",
            market="KOSPI",
            partition_at=AT,
            record_id=str(snap.sweep_id),
            line=enc.encode(snap),
        )
        push.send(encode(rec))
    push.close(linger=-1)
    ctx.term()


def bare_sink(run_dir: str, count: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(f"ipc://{run_dir}/bare2.sock")
    lat: list[float] = []
    first = 0.0
    for i in range(count):
        rec = archive_decoder.decode(pull.recv())
        now = time.time_ns()
        if i == 0:
            first = time.perf_counter()
        lat.append((now - int(rec.record_id)) / 1e6)
    out.put((time.perf_counter() - first, lat))
    ctx.term()


# ----------------------------------------------------------------------------- reliable chain


def rel_source(run_dir: str, count: int, rate: float) -> None:
    cfg = _cfg(run_dir)
    ctx = context()
    sender = ReliableSender(ctx, cfg, "source", *hop_endpoints(cfg, "ingest"))
    interval = 1 / rate if rate else 0
    t0 = time.perf_counter()
    for i in range(count):
        if interval:
            while time.perf_counter() < t0 + i * interval:
                sender.pump()
                time.sleep(0.0005)
        sender.send(_snapshot(i))
        if i % 256 == 0:
            sender.pump()
    sender.wait_all_acked(60)
    sender.close()


def rel_middle(run_dir: str, count: int) -> None:
    cfg = _cfg(run_dir)
    ctx = context()
    receiver = ReliableReceiver(ctx, cfg, "middle", *hop_endpoints(cfg, "ingest"))
    sender = ReliableSender(ctx, cfg, "middle", *hop_endpoints(cfg, "archive"))
    enc = msgspec.json.Encoder()
    pending: deque[tuple[int, str, str, int]] = deque()
    poller = zmq.Poller()
    poller.register(receiver.pull, zmq.POLLIN)
    poller.register(sender.ack_sub, zmq.POLLIN)
    done = 0
    while done < count or sender.unacked:
        poller.poll(5)
        for env in receiver.receive(2000):
            snap = ingest_decoder.decode(env.body)
            rec = ArchiveRecord(
                track="swing",
                provider="kis",
                market="KOSPI",
                partition_at=AT,
                record_id=str(snap.sweep_id),
                line=enc.encode(snap),
            )
            pending.append((sender.send(rec), env.producer, env.run_id, env.seq))
            done += 1
        sender.pump()
        last = None
        while pending and pending[0][0] <= sender.acked:
            last = pending.popleft()
        if last:
            receiver.ack(last[1], last[2], last[3])
        receiver.republish_acks()
    t_end = time.monotonic() + 1
    while time.monotonic() < t_end:  # keep acking upstream until the source has seen it
        poller.poll(20)
        receiver.republish_acks()
    sender.close()
    receiver.close()


def rel_sink(run_dir: str, count: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    cfg = _cfg(run_dir)
    ctx = context()
    receiver = ReliableReceiver(ctx, cfg, "sink", *hop_endpoints(cfg, "archive"))
    poller = zmq.Poller()
    poller.register(receiver.pull, zmq.POLLIN)
    lat: list[float] = []
    first = 0.0
    seen: set[str] = set()
    while len(lat) < count:
        poller.poll(5)
        last = None
        for env in receiver.receive(2000):
            rec = archive_decoder.decode(env.body)
            now = time.time_ns()
            if not lat:
                first = time.perf_counter()
            if rec.record_id not in seen:
                seen.add(rec.record_id)
                lat.append((now - int(rec.record_id)) / 1e6)
            last = env
        if last is not None:
            receiver.ack(last.producer, last.run_id, last.seq)
    elapsed = time.perf_counter() - first
    t_end = time.monotonic() + 1
    while time.monotonic() < t_end:
        poller.poll(20)
        receiver.republish_acks()
    out.put((elapsed, lat))
    receiver.close()


def run_chain(kind: str, count: int, rate: float) -> tuple[float, list[float]]:
    run_dir = tempfile.mkdtemp(prefix="bench-", dir="/tmp")
    os.chmod(run_dir, 0o700)
    mpc = mp.get_context("spawn")
    out: mp.Queue = mpc.Queue()  # type: ignore[type-arg]
    funcs = (bare_source, bare_middle, bare_sink) if kind == "bare" else (rel_source, rel_middle, rel_sink)
    procs = [
        mpc.Process(target=funcs[2], args=(run_dir, count, out)),
        mpc.Process(target=funcs[1], args=(run_dir, count)),
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)  # bench only: let the binds happen before the source starts its clock
    src = mpc.Process(target=funcs[0], args=(run_dir, count, rate))
    src.start()
    elapsed, lat = out.get(timeout=300)
    for p in [src, *procs]:
        p.join(30)
        if p.is_alive():
            p.kill()
    return elapsed, lat


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 2 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=int(os.environ.get("BENCH_COUNT", 100_000)))
    ap.add_argument("--latency-s", type=float, default=float(os.environ.get("BENCH_LATENCY_S", 10)))
    args = ap.parse_args()
    bare_t, _ = run_chain("bare", args.count, 0)
    rel_t, _ = run_chain("reliable", args.count, 0)
    bare_rate, rel_rate = args.count / bare_t, args.count / rel_t
    print(f"throughput, {args.count} records through source -> middle -> sink (3 processes, ipc)")
    print(f"  bare pyzmq chain      : {bare_rate:10,.0f} records/s")
    print(
        f"  reliable chain + acks : {rel_rate:10,.0f} records/s  ({rel_rate / bare_rate:.0%} of bare; goal >= 50%)"
    )
    n = int(82 * args.latency_s)
    _, lat_bare = run_chain("bare", n, 82)
    _, lat_rel = run_chain("reliable", n, 82)
    print(f"latency source -> sink at 82 records/s ({n} records)")
    print(f"  bare pyzmq chain      : p50 {pct(lat_bare, 50):.2f} ms  p99 {pct(lat_bare, 99):.2f} ms")
    print(
        f"  reliable chain + acks : p50 {pct(lat_rel, 50):.2f} ms  p99 {pct(lat_rel, 99):.2f} ms  (goal p99 < 5 ms)"
    )


if __name__ == "__main__":
    main()
