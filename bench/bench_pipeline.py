"""The whole pipeline at nominal load (simulator, 41 slots at 2 Hz, Track A sweeps): CPU and memory
per worker, sampled every 5 s, and the memory trend over the run (a soak: flat is the goal).

    .venv/bin/python bench/bench_pipeline.py            # SOAK_S=120 by default
    SOAK_S=3600 .venv/bin/python bench/bench_pipeline.py
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
SAMPLE_S = 5.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(sup: psutil.Process) -> dict[str, psutil.Process]:
    out: dict[str, psutil.Process] = {"supervisor": sup}
    for child in sup.children(recursive=False):
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if "worker" in cmd:
            out[cmd[cmd.index("worker") + 1]] = child
    return out


def _lines(root: Path, pattern: str) -> int:
    total = 0
    for p in root.glob(pattern):
        with open(p, "rb") as fh:
            total += sum(1 for _ in fh)
    return total


def main() -> None:
    soak_s = float(os.environ.get("SOAK_S", 120))
    base = Path(tempfile.mkdtemp(prefix="bench-pipe-", dir="/tmp"))
    cfg = base / "observer.toml"
    cfg.write_text(
        f'[paths]\ndata_dir = "{base}/data"\nruntime_dir = "{base}/run"\nuniverse_dir = "{base}/universe"\n'
        f'[clock]\nmode = "session"\nstart_at = "09:29:50"\nspeed = 1.0\n'
        f"[sim]\nrest_port = {_port()}\nws_port = {_port()}\nadmin_port = {_port()}\nsymbol_count = 6000\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "TELEGRAM_", "OBSERVER_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "observer", "--config", str(cfg), "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sup = psutil.Process(proc.pid)
    data = base / "data"
    deadline = time.monotonic() + 120
    while not list(data.glob("scalp/kis/*/*/*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.5)  # bench only: waiting for the session to open
    cpu: dict[str, list[float]] = defaultdict(list)
    rss: dict[str, list[float]] = defaultdict(list)
    procs = _workers(sup)
    for p in procs.values():
        p.cpu_percent(None)
    scalp0, t0 = _lines(data, "scalp/kis/*/*/*.jsonl"), time.monotonic()
    end = t0 + soak_s
    while time.monotonic() < end:
        time.sleep(SAMPLE_S)
        procs = {**_workers(sup), **{k: v for k, v in procs.items() if v.is_running()}}
        for name, p in procs.items():
            try:
                cpu[name].append(p.cpu_percent(None))
                rss[name].append(p.memory_info().rss / 2**20)
            except psutil.Error:
                continue
    scalp1, t1 = _lines(data, "scalp/kis/*/*/*.jsonl"), time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    print(f"whole pipeline on the simulator for {soak_s:.0f} s (samples every {SAMPLE_S:.0f} s, 2 vCPUs)")
    print(f"  scalp samples landed: {(scalp1 - scalp0) / (t1 - t0):.1f}/s (nominal 41 x 2 = 82/s)")
    print(
        f"  {'worker':16} {'cpu mean %':>10} {'cpu max %':>10} {'rss MiB first':>14} {'last':>7} {'max':>7}"
    )
    for name in sorted(cpu):
        c, r = cpu[name], rss[name]
        if not r:
            continue
        print(
            f"  {name:16} {statistics.mean(c):10.1f} {max(c):10.1f} {r[0]:14.1f} {r[-1]:7.1f} {max(r):7.1f}"
        )
    total_first = sum(r[0] for r in rss.values() if r)
    total_last = sum(r[-1] for r in rss.values() if r)
    half = {k: v[len(v) // 2 :] for k, v in rss.items() if len(v) >= 4}
    drift = sum(v[-1] - v[0] for v in half.values())
    print(
        f"  total rss: {total_first:.1f} -> {total_last:.1f} MiB; change over the second half: {drift:+.1f} MiB"
    )


if __name__ == "__main__":
    main()
