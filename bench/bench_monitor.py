"""The monitor's own CPU and memory at steady state, without and with a Prometheus scrape every 5 s.

A real monitor process on a bench-owned bus (forwarder + ingest receiver that acks), fed at nominal
rates: stats from the core, writer and ws-collector once a second, heartbeats of six workers once a
second, the slot table every 5 s. Reference in the same run: a bare Python process running a
100 ms zmq poll loop (the monitor's tick), so the ratio survives a noisy machine.

    .venv/bin/python bench/bench_monitor.py            # 20 s
    BENCH_S=120 .venv/bin/python bench/bench_monitor.py
    SOAK_S=3600 .venv/bin/python bench/bench_monitor.py   # memory flat over an hour

Two runs back to back: ``/metrics`` off, then on with a GET every ``SCRAPE_S`` (5) seconds, the way a
Prometheus server would scrape it; the scrape cost is the difference.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import requests
import zmq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from observer.bus import SLOTS, EventPublisher, Forwarder, heartbeat_topic, stats_topic  # noqa: E402
from observer.clock import KST  # noqa: E402
from observer.config import load_config  # noqa: E402
from observer.reliable import ReliableReceiver, hop_endpoints  # noqa: E402
from observer.schema import (  # noqa: E402
    CoreStats,
    Heartbeat,
    SlotAssignment,
    SlotCommand,
    WriterStats,
    WsCollectorStats,
)

REFERENCE = """
import zmq
ctx = zmq.Context(); s = ctx.socket(zmq.SUB); p = zmq.Poller(); p.register(s, zmq.POLLIN)
while True:
    p.poll(100)
"""


def main() -> None:
    duration_s = float(os.environ.get("SOAK_S") or os.environ.get("BENCH_S") or 20)
    scrape_s = float(os.environ.get("SCRAPE_S") or 5)
    off = run(duration_s, None)
    on = run(duration_s, scrape_s)
    print(
        f"  scrape cost:           {on - off:+.2f} % of one core (every {scrape_s:g} s), {off:.2f} % -> {on:.2f} %"
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(duration_s: float, scrape_s: float | None) -> float:
    """One steady-state run; the monitor's CPU % of one core."""
    base = Path(tempfile.mkdtemp(prefix="obs-bm-", dir="/tmp"))
    config = base / "observer.toml"
    port = _free_port()
    listen = f"127.0.0.1:{port}" if scrape_s else ""
    config.write_text(
        f'[paths]\ndata_dir = "{base / "data"}"\nruntime_dir = "{base / "run"}"\nlog_dir = "{base / "logs"}"\n'
        "[calendar]\nuse_chk_holiday = false\n[monitor]\nsample_interval_s = 1.0\nmetrics_interval_s = 10.0\n"
        f'metrics_listen = "{listen}"\n'
    )
    cfg = load_config(config, env={})
    ctx: zmq.Context[Any] = zmq.Context()
    forwarder = Forwarder(ctx, cfg)
    forwarder.start()
    receiver = ReliableReceiver(ctx, cfg, "observer", *hop_endpoints(cfg, "ingest"))
    pub = EventPublisher(ctx, cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVER_", "TELEGRAM_"))}
    env["PYTHONPATH"] = str(REPO)
    monitor = subprocess.Popen(
        [sys.executable, "-m", "observer", "--config", str(config), "worker", "monitor"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reference = subprocess.Popen([sys.executable, "-c", REFERENCE])
    procs = {"monitor": psutil.Process(monitor.pid), "reference": psutil.Process(reference.pid)}
    received = scrapes = scrape_bytes = 0
    next_scrape = time.monotonic() + 3.0
    try:
        warmup_until = time.monotonic() + 3.0
        started = None
        cpu0: dict[str, float] = {}
        rss: dict[str, list[float]] = {"monitor": [], "reference": []}
        next_pub = time.monotonic()
        n = 0
        end_at = warmup_until + duration_s
        while time.monotonic() < end_at:
            now = time.monotonic()
            if now >= next_pub:
                next_pub += 1.0
                n += 1
                _publish(pub, n)
                if started is not None:
                    for name, proc in procs.items():
                        rss[name].append(proc.memory_info().rss / 2**20)
            if scrape_s and now >= next_scrape:
                next_scrape += scrape_s
                try:
                    scrape_bytes = len(requests.get(f"http://{listen}/metrics", timeout=2).content)
                    scrapes += 1
                except requests.RequestException:
                    pass
            if started is None and now >= warmup_until:
                started = now
                cpu0 = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
            for env_ in receiver.receive():
                received += 1
                receiver.ack(env_.producer, env_.run_id, env_.seq)
            receiver.republish_acks()
            time.sleep(0.02)  # the bench's own publishing cadence
        assert started is not None
        elapsed = time.monotonic() - started
        cpu = {name: (sum(p.cpu_times()[:2]) - cpu0[name]) / elapsed * 100 for name, p in procs.items()}
        alive = monitor.poll() is None
    finally:
        for child in (monitor, reference):
            child.send_signal(signal.SIGTERM)
        for child in (monitor, reference):
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
        pub.close()
        receiver.close()
        forwarder.stop()
        ctx.destroy(linger=0)
    m, r = rss["monitor"], rss["reference"]
    print(
        f"monitor steady state over {elapsed:.0f} s (after 3 s warm-up), sample every 1 s, fed at nominal rates; "
        + (
            f"/metrics scraped every {scrape_s:g} s ({scrapes} scrapes, {scrape_bytes} bytes)"
            if scrape_s
            else "/metrics off"
        )
    )
    print(f"  alive at end:          {alive}")
    print(f"  CPU monitor:           {cpu['monitor']:.2f} % of one core")
    print(f"  CPU reference loop:    {cpu['reference']:.2f} % (bare 100 ms zmq poll loop)")
    print(f"  CPU ratio:             {cpu['monitor'] / max(cpu['reference'], 0.01):.1f}x the bare loop")
    print(f"  RSS monitor:           first {m[0]:.1f} MiB, last {m[-1]:.1f} MiB, max {max(m):.1f} MiB")
    print(f"  RSS reference:         {r[-1]:.1f} MiB")
    print(f"  messages ingested:     {received} (events + metrics lines from the monitor)")
    return float(cpu["monitor"])


def _publish(pub: EventPublisher, n: int) -> None:
    now = datetime.now(KST)
    pub.publish(
        stats_topic("observer"),
        CoreStats(
            worker="observer",
            at=now,
            samples_expected=82 * n,
            samples_written=81 * n,
            event_lag_max_s=0.002,
            slots_used=41,
            track_b_oldest_sample_age_s=0.4,
        ),
    )
    pub.publish(
        stats_topic("writer"),
        WriterStats(worker="writer", at=now, fsync_p99_ms=2.5, written={"scalp": 82 * n}),
    )
    pub.publish(
        stats_topic("ws-collector"),
        WsCollectorStats(worker="ws-collector", at=now, connected=True, last_frame_age_s=0.1),
    )
    for worker in ("sim", "writer", "observer", "rest-collector", "ws-collector", "housekeeper"):
        pub.publish(heartbeat_topic(worker), Heartbeat(worker=worker, pid=1, run_id="bench", at=now))
    if n % 5 == 0:
        slots = [
            SlotAssignment(slot_number=i + 1, symbol=f"{i:06d}", rule="volume_surge", since=now)
            for i in range(41)
        ]
        pub.publish(SLOTS, SlotCommand(version=n, at=now, slots=slots))


if __name__ == "__main__":
    main()
