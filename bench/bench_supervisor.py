"""Supervisor figures: control-socket round trip, restart time after kill -9, CPU while idle.

Starts a real supervisor (`observer run`) with healthy fake workers in a private runtime dir and
prints: `ctl status` round-trip p50/p99 (next to a bare REQ/REP round trip measured in the same
run), kill -9 -> new process heartbeating (p50/max over several rounds), and the supervisor's CPU
use over a few idle seconds with the default 1 s heartbeat.

    .venv/bin/python bench/bench_supervisor.py [--workers 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import zmq  # noqa: E402

from observer.config import load_config  # noqa: E402
from observer.control import ControlClient, NoSupervisor, reply_data  # noqa: E402
from observer.schema import Command  # noqa: E402
from observer.worker_registry import EXTRA_WORKERS_ENV  # noqa: E402
from testkit.fake_workers import EXTRA_WORKERS  # noqa: E402

TOML = """
[supervisor]
heartbeat_interval_ms = 1000
heartbeat_timeout_ms = 10000
startup_grace_ms = 15000
stable_after_s = 1.0
backoff_initial_s = 0.1
backoff_max_s = 0.5
flap_max_restarts = 100
flap_window_s = 60.0
stop_timeout_s = 5.0
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bare_reqrep_ms(n: int, base: Path) -> list[float]:
    ctx = zmq.Context()
    addr = f"ipc://{base}/bare.sock"
    rep = ctx.socket(zmq.REP)
    rep.bind(addr)

    def serve() -> None:
        for _ in range(n):
            rep.send(rep.recv())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    req = ctx.socket(zmq.REQ)
    req.connect(addr)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        req.send(b"x" * 64)
        req.recv()
        out.append((time.perf_counter() - t0) * 1000)
    t.join(5)
    req.close(0)
    rep.close(0)
    ctx.term()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    extra = EXTRA_WORKERS + "".join(
        f",fake-ok-{i}=testkit.fake_workers:HealthyWorker" for i in range(args.workers)
    )
    names = [f"fake-ok-{i}" for i in range(args.workers)]
    base = Path(tempfile.mkdtemp(prefix="obs-bench-", dir="/tmp"))
    os.chmod(base, 0o700)
    cfg_path = base / "observer.toml"
    cfg_path.write_text(
        f'[paths]\ndata_dir = "{base}/data"\nruntime_dir = "{base}/run"\nlog_dir = "{base}/logs"\n' + TOML
    )
    cfg = load_config(cfg_path, env={})
    env = dict(os.environ, **{EXTRA_WORKERS_ENV: extra, "PYTHONPATH": str(REPO)})
    out = (base / "supervisor.out").open("wb")
    sup = subprocess.Popen(
        [sys.executable, "-m", "observer", "--config", str(cfg_path), "run", "--workers", ",".join(names)],
        env=env,
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    client = ControlClient(cfg, timeout_s=2.0, tries=1)

    def status() -> dict[str, Any]:
        return reply_data(client.request(Command(action="status")))

    def workers() -> dict[str, dict[str, Any]]:
        return {w["name"]: w for w in status()["workers"]}

    def poll_until(pred: Any, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                value = pred()
            except NoSupervisor:
                value = None
            if value:
                return value
            time.sleep(0.005)
        raise SystemExit("bench: timed out")

    try:
        poll_until(lambda: all(w["state"] == "RUNNING" and w["heartbeats"] for w in workers().values()), 60)
        rtt = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            status()
            rtt.append((time.perf_counter() - t0) * 1000)
        bare = bare_reqrep_ms(args.requests, base)
        restart_s = []
        for r in range(args.rounds):
            victim = names[r % len(names)]
            old = workers()[victim]
            t0 = time.perf_counter()
            os.kill(old["pid"], signal.SIGKILL)
            poll_until(
                lambda v=victim, o=old: (
                    (w := workers()[v])["pid"] not in (None, o["pid"]) and w["heartbeats"] > o["heartbeats"]
                ),
                30,
            )
            restart_s.append(time.perf_counter() - t0)
        proc = psutil.Process(sup.pid)
        proc.cpu_percent(None)
        time.sleep(5.0)  # a measurement window, not a wait for an event
        idle_cpu = proc.cpu_percent(None)
        print(f"supervisor with {args.workers} workers (2 vCPU, shared machine)")
        print(
            f"  ctl status round trip: p50 {statistics.median(rtt):.2f} ms  p99 {pct(rtt, 0.99):.2f} ms"
            f"   (bare REQ/REP same run: p50 {statistics.median(bare):.3f} ms  p99 {pct(bare, 0.99):.3f} ms)"
        )
        print(
            f"  kill -9 -> new process heartbeating: p50 {statistics.median(restart_s):.2f} s"
            f"  max {max(restart_s):.2f} s over {args.rounds} rounds (backoff {cfg.supervisor.backoff_initial_s} s"
            f" + interpreter start + first heartbeat)"
        )
        print(f"  supervisor CPU while idle: {idle_cpu:.1f} % of one core (50 ms loop, 1 s heartbeats)")
        t0 = time.perf_counter()
        sup.send_signal(signal.SIGTERM)
        code = sup.wait(60)
        print(
            f"  ordered shutdown of {args.workers} workers: {time.perf_counter() - t0:.2f} s, exit code {code}"
        )
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait(10)
        out.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
