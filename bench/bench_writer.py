"""Writer benchmark: figures for the partition writer, each beside its bare reference in the same run.

    .venv/bin/python bench/bench_writer.py [--records 200000] [--latency-s 20] [--index-scale 0.1] [--per-window 1]

1. sustained records/s, producer (this process, ReliableSender batching like the core) -> writer
   process (group commit, fsync, acks), timed from the first send to the last ack;
2. the bare chain: PUSH -> PULL process -> buffered JSONL file, same lines, same run; 1 and 2
   alternate ``--rounds`` times (medians and the ratio per round are printed);
3. ack latency (send -> ack received, i.e. fsynced) p50/p99 at 82 records/s;
4. the de-duplication window rebuild on start: read speed per line, measured on a realistic day
   (4000*39 swing + 41*2*19800 scalp lines) at ``--index-scale`` of its size, extrapolated to the
   fallback without marks (two whole days) and to the bounded window (two generations of
   ``bus.replay_buffer_bytes`` of lines).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import zmq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from observer.bus import context  # noqa: E402
from observer.reliable import ReliableSender, hop_endpoints  # noqa: E402
from observer.schema import ArchiveRecord  # noqa: E402
from sinks.writer.index import RecentIds, WindowMarks, load_window  # noqa: E402
from sinks.writer.repair import archive_files  # noqa: E402
from testkit.config import make_config, write_config  # noqa: E402
from testkit.records import DAY, line_for, record  # noqa: E402

BARE_SINK = """
import os, sys, zmq
ctx = zmq.Context(); pull = ctx.socket(zmq.PULL); pull.bind(sys.argv[1]); n = int(sys.argv[3])
with open(sys.argv[2], "ab", buffering=1 << 16) as f:
    f.write(pull.recv() + b"\\n")
    t = os.times()
    for _ in range(n - 1):
        f.write(pull.recv() + b"\\n")
    f.flush(); os.fsync(f.fileno())
e = os.times(); print(e.user + e.system - t.user - t.system)
"""


RESENT: list[int] = []  # records resent (go-back-N) per throughput round


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def start_writer(base: Path, cfg_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = open(base / "writer.out", "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "-m", "observer", "--config", str(cfg_path), "worker", "writer"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(base),
    )


def make_sender(ctx: zmq.Context[Any], base: Path, replay_bytes: int) -> ReliableSender:
    """Like the core's: sends what a loop turn produced at the turn's `pump`, batched."""
    cfg = make_config(base)
    data_ep, ack_ep = hop_endpoints(cfg, "archive")
    return ReliableSender(
        ctx, cfg, "bench", data_ep, ack_ep, replay_buffer_bytes=replay_bytes, transmit_on_send=False
    )


def throughput(recs: list[ArchiveRecord]) -> tuple[float, float]:
    """(records/s, CPU µs per record of producer + writer process)."""
    n = len(recs)
    base = Path(tempfile.mkdtemp(prefix="obs-bw-", dir="/tmp"))
    cfg_path = write_config(base)
    writer = start_writer(base, cfg_path)
    ctx = context()
    sender = make_sender(ctx, base, 1 << 30)
    try:
        sender.send(recs[0])  # warm-up: wait until the writer is up and acking
        sender.pump()
        while sender.acked < 1:
            sender.pump()
            time.sleep(0.01)
        poller = zmq.Poller()
        poller.register(sender.ack_sub, zmq.POLLIN)
        child = psutil.Process(writer.pid)
        cpu0 = time.process_time() + sum(child.cpu_times()[:2])
        t0 = time.perf_counter()
        for i, rec in enumerate(recs[1:], 1):
            sender.send(rec)
            if i % 500 == 0:
                sender.pump()
                while sender.unacked_bytes > 48 * 1024 * 1024:  # flow control: stay inside the bound
                    poller.poll(10)
                    sender.pump()
        while sender.acked < sender.last_seq:
            poller.poll(10)
            sender.pump()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() + sum(child.cpu_times()[:2]) - cpu0
        RESENT.append(sender.resent)
    finally:
        sender.close()
        writer.terminate()
        writer.wait(30)
        shutil.rmtree(base, ignore_errors=True)
    return (n - 1) / elapsed, cpu / (n - 1) * 1e6


def bare(lines: list[bytes]) -> tuple[float, float]:
    """(records/s, CPU µs per record of producer + sink process)."""
    n = len(lines)
    base = Path(tempfile.mkdtemp(prefix="obs-bb-", dir="/tmp"))
    endpoint = f"ipc://{base}/bare.sock"
    sink = subprocess.Popen(
        [sys.executable, "-c", BARE_SINK, endpoint, str(base / "out.jsonl"), str(n)], stdout=subprocess.PIPE
    )
    ctx = context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 100_000)
    push.connect(endpoint)
    time.sleep(0.5)  # the sink's interpreter start-up is not part of the figure
    push.send(lines[0])
    t0, cpu0 = time.perf_counter(), time.process_time()
    for line in lines[1:]:
        push.send(line)
    sink_cpu = float(sink.communicate(timeout=120)[0])
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0 + sink_cpu
    push.close(linger=0)
    shutil.rmtree(base, ignore_errors=True)
    return (n - 1) / elapsed, cpu / (n - 1) * 1e6


def ack_latency(seconds: float, rate: float = 82.0) -> tuple[float, float, float]:
    base = Path(tempfile.mkdtemp(prefix="obs-bl-", dir="/tmp"))
    writer = start_writer(base, write_config(base))
    ctx = context()
    sender = make_sender(ctx, base, 64 * 1024 * 1024)
    sent_at: dict[int, float] = {}
    latencies_ms: list[float] = []
    acked = 0
    poller = zmq.Poller()
    poller.register(sender.ack_sub, zmq.POLLIN)
    try:
        sender.send(record("scalp", "warm", DAY))
        sender.pump()
        while sender.acked < 1:
            poller.poll(10)
            sender.pump()
        acked = sender.acked
        t_end = time.monotonic() + seconds
        next_at = time.monotonic()
        i = 0
        while time.monotonic() < t_end or sender.acked < sender.last_seq:
            now = time.monotonic()
            if now >= next_at and now < t_end:
                seq = sender.send(record("scalp", f"sc-{i}", DAY + timedelta(milliseconds=500 * i)))
                sent_at[seq] = time.perf_counter()
                i += 1
                next_at += 1 / rate
            poller.poll(max(0, min(5, int((next_at - time.monotonic()) * 1000))))
            sender.pump()
            if sender.acked > acked:
                t = time.perf_counter()
                for seq in range(acked + 1, sender.acked + 1):
                    if seq in sent_at:
                        latencies_ms.append((t - sent_at.pop(seq)) * 1000)
                acked = sender.acked
    finally:
        sender.close()
        writer.terminate()
        writer.wait(30)
        shutil.rmtree(base, ignore_errors=True)
    return pct(latencies_ms, 0.5), pct(latencies_ms, 0.99), max(latencies_ms)


def index_rebuild(scale: float) -> tuple[int, float]:
    base = Path(tempfile.mkdtemp(prefix="obs-bi-", dir="/tmp"))
    n_swing, n_scalp = int(4000 * 39 * scale), int(41 * 2 * 19800 * scale)
    try:
        for track, n in (("swing", n_swing), ("scalp", n_scalp)):
            d = base / track / "kis" / "KOSPI" / "20261126"
            d.mkdir(parents=True)
            template = line_for(track, "ID", DAY)
            with open(d / ("09_00.jsonl" if track == "swing" else "09_30_00.jsonl"), "wb") as f:
                for i in range(0, n, 10_000):
                    f.write(
                        b"".join(
                            template.replace(b'"ID"', f'"{track}-{j}"'.encode()) + b"\n"
                            for j in range(i, min(n, i + 10_000))
                        )
                    )
        window = RecentIds(1 << 40)
        t0 = time.perf_counter()
        load_window(base, sorted(archive_files(base)), WindowMarks(base / "none.json"), window)
        elapsed = time.perf_counter() - t0
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return n_swing + n_scalp, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-s", type=float, default=20.0)
    ap.add_argument("--index-scale", type=float, default=0.1)
    ap.add_argument(
        "--per-window",
        type=int,
        default=1,
        help="records sharing one 500 ms of partition time (1: each record 500 ms after the last, "
        "spreading 200,000 over 28 h of files; 41-123: a live day's density, a few files per commit)",
    )
    args = ap.parse_args()
    recs = [
        record("scalp", f"sc-{i}", DAY + timedelta(milliseconds=500 * (i // args.per_window)))
        for i in range(args.records)
    ]
    lines = [bytes(r.line) for r in recs]
    bares, writers = [], []
    for _ in range(args.rounds):  # alternated, so both see the same neighbours
        bares.append(bare(lines))
        writers.append(throughput(recs))
    bare_rate, writer_rate = statistics.median(b[0] for b in bares), statistics.median(w[0] for w in writers)
    bare_cpu, writer_cpu = statistics.median(b[1] for b in bares), statistics.median(w[1] for w in writers)
    rounds = ", ".join(f"{w[0] / b[0]:.2f}" for b, w in zip(bares, writers, strict=True))
    print(
        f"bare PUSH->PULL->file chain      : {bare_rate:10,.0f} records/s, {bare_cpu:.1f} CPU-us/record "
        f"(medians of {args.rounds})"
    )
    print(
        f"producer -> writer (fsync + acks): {writer_rate:10,.0f} records/s  ({writer_rate / bare_rate:.2f}x bare; "
        f"per round {rounds}; resent per round {RESENT}), {writer_cpu:.1f} CPU-us/record "
        f"({bare_cpu / writer_cpu:.2f}x bare's efficiency); load average {os.getloadavg()[0]:.1f}"
    )
    p50, p99, worst = ack_latency(args.latency_s)
    print(
        f"ack latency at 82 records/s      : p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms "
        f"(goal p99 < 250 ms)"
    )
    n_lines, seconds = index_rebuild(args.index_scale)
    full = seconds / args.index_scale
    window_lines = 2 * make_config(Path("/tmp")).bus.replay_buffer_bytes // len(line_for("scalp", "x", DAY))
    print(
        f"window rebuild                   : {n_lines:,} lines in {seconds:.2f} s "
        f"({seconds / n_lines * 1e6:.2f} us/line; a whole day ~{full:.1f} s; the bounded window, "
        f"<= {window_lines:,} lines, ~{window_lines * seconds / n_lines:.1f} s)"
    )


if __name__ == "__main__":
    main()
