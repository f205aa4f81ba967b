"""The whole pipeline on the simulator (``observer run``), at x1, x10 and x50 of realistic activity
(``[sim] activity_scale``), then a soak: capacity, latency, CPU and memory per worker.

    .venv/bin/python bench/bench_pipeline.py                        # x1, x10, x50 for CAP_S each, soak
    CAP_S=60 SOAK_S=600 .venv/bin/python bench/bench_pipeline.py    # shorter
    SCALES=1,10,50,100 SOAK_S=0 .venv/bin/python bench/bench_pipeline.py

Per scale (a fresh pipeline each, session clock from 09:29:50 KST so Track B opens at once; measured
for ``CAP_S`` (90) seconds after a ``WARM_S`` (15) warm-up):

* records/s landed, by track (lines in the archive at the end minus at the start);
* receive -> in-file p50/p99: every raw/ line (one per WS frame) is read back as soon as it is in
  its file (the bench tails the files every 20 ms) and its ``received_at`` (collector receive time)
  compared with the session clock: that latency includes the tail's 20 ms poll;
* receive -> fsynced p50/p99: every raw/ line on the writer's public feed, which publishes a line
  after its fsync (``FeedMessage.sent_at_ns``), against its ``received_at``;
* CPU (% of one core) and RSS per worker, every 5 s (psutil);
* whether a queue grows: the writer's intake queue, the core's unacknowledged archive records and
  ingest messages (heartbeats), and the in-file lag, compared between the first and last third.

The saturation point is the lowest scale whose in-file lag or queues grow without bound over the
interval. Then a soak at ``SOAK_SCALE`` (10) for ``SOAK_S`` (3600) seconds reports every worker's
RSS first / last / max and its slope over the second half (flat is the goal). On a shared machine
the figures move with the neighbours' load: the bench prints the load average with them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import psutil
import zmq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from observer.bus import Endpoints, EventSubscriber, context  # noqa: E402
from observer.clock import ANCHOR_ENV, SessionClock, parse_start_at  # noqa: E402
from observer.config import load_config  # noqa: E402
from observer.feed_sockets import FeedSubscriber  # noqa: E402
from observer.schema import FeedMessage, Heartbeat  # noqa: E402
from testkit.wait import poll_until  # noqa: E402

SAMPLE_S = 5.0
TAIL_S = 0.02
START_AT = "09:29:50"
TRACK_GLOBS = {
    "raw": "raw/*/*/*/*.jsonl",
    "scalp": "scalp/*/*/*/*.jsonl",
    "swing": "swing/*/*/*/*.jsonl",
    "system": "system/*/*/*.jsonl",
}


class _Received(msgspec.Struct):
    received_at: datetime


_received = msgspec.json.Decoder(_Received)
_RECORDS_IN_FRAME = re.compile(rb'"frame":"\d\|[A-Z0-9]+\|(\d+)\|')


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


def _lines(root: Path) -> dict[str, int]:
    out = {}
    for track, pattern in TRACK_GLOBS.items():
        total = 0
        for p in root.glob(pattern):
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    total += chunk.count(b"\n")
        out[track] = total
    return out


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def grows(series: list[float], floor: float) -> bool:
    """The last third clearly above the first third (and above a floor that counts as idle)."""
    if len(series) < 6:
        return False
    k = len(series) // 3
    first, last = statistics.mean(series[:k]), statistics.mean(series[-k:])
    return last > floor and last > 2 * first + floor


class Tail(threading.Thread):
    """Reads raw/ lines as soon as they are in their files: receive -> in-file latency per line."""

    def __init__(self, data: Path, clock: SessionClock):
        super().__init__(daemon=True)
        self.data, self.clock = data, clock
        self.offsets: dict[Path, int] = {}
        self.samples: list[tuple[float, float]] = []  # (monotonic, latency s)
        self.trade_records = 0  # records inside the frames (a KIS frame carries several)
        self.recording = False
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(TAIL_S):
            for path in self.data.glob(TRACK_GLOBS["raw"]):
                offset = self.offsets.get(path, 0)
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                end = chunk.rfind(b"\n") + 1
                if end <= 0:
                    continue
                self.offsets[path] = offset + end
                if not self.recording:
                    continue
                now, mono = self.clock.now(), time.monotonic()
                self.trade_records += sum(int(n) for n in _RECORDS_IN_FRAME.findall(chunk, 0, end))
                for line in chunk[:end].splitlines():
                    try:
                        at = _received.decode(line).received_at
                    except msgspec.DecodeError:
                        continue
                    self.samples.append((mono, (now - at).total_seconds()))


@dataclass
class Watch:
    """What the bench hears: heartbeats' queue gauges (event bus) and receive -> fsynced latency of
    raw/ lines (the public feed)."""

    queues: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    fsynced_s: list[float] = field(default_factory=list)
    recording: bool = False


def _listen(cfg_path: Path, watch: Watch, to_wall_s: Any, stop: threading.Event, with_feed: bool) -> None:
    cfg = load_config(str(cfg_path))
    ctx = context()
    sub = EventSubscriber(ctx, cfg, ["heartbeat."])
    # the soak does not subscribe: a subscriber that reads slower than the writer publishes fills the
    # writer's feed queue up to its HWM, which would show as writer memory
    feed = FeedSubscriber(ctx, cfg, Endpoints(cfg)["feed"], ["raw."] if with_feed else ["-none-"])
    poller = zmq.Poller()
    poller.register(sub.sock, zmq.POLLIN)
    poller.register(feed.sock, zmq.POLLIN)
    try:
        while not stop.is_set():
            if not poller.poll(200):
                continue
            while (got := sub.recv_nowait()) is not None:
                body: Any = got[1]
                if isinstance(body, Heartbeat):
                    for key in ("queue_bytes", "unacked_archive", "pending_ingest"):
                        if key in body.stats:
                            watch.queues[f"{body.worker}.{key}"].append(body.stats[key])
            while (msg := feed.recv(0)) is not None:
                if watch.recording and isinstance(msg[1], FeedMessage):
                    watch.fsynced_s.append(msg[1].sent_at_ns / 1e9 - to_wall_s(msg[1].at))
    finally:
        sub.close()
        feed.close()
        ctx.destroy(linger=0)


class Pipeline:
    """``observer run`` on a fresh data dir at one activity scale."""

    def __init__(self, scale: float, *, with_feed: bool = True):
        self.base = Path(tempfile.mkdtemp(prefix=f"bench-pipe-x{scale:g}-", dir="/tmp"))
        self.cfg = self.base / "observer.toml"
        self.cfg.write_text(
            f'[paths]\ndata_dir = "{self.base}/data"\nruntime_dir = "{self.base}/run"\n'
            f'universe_dir = "{self.base}/universe"\n'
            f'[clock]\nmode = "session"\nstart_at = "{START_AT}"\nspeed = 1.0\n'
            f"[sim]\nenabled = true\nrest_port = {_port()}\nws_port = {_port()}\nadmin_port = {_port()}\n"
            f"symbol_count = 6000\nactivity_scale = {scale}\n"
        )
        self.data = self.base / "data"
        anchor = time.time()
        session_start = parse_start_at(START_AT, datetime.now().date())
        self.clock = SessionClock(session_start, 1.0, anchor)
        offset_s = session_start.timestamp() - anchor  # session time - wall time (speed 1)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "TELEGRAM_", "OBSERVER_"))}
        env[ANCHOR_ENV] = repr(anchor)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "observer", "--config", str(self.cfg), "run"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.sup = psutil.Process(self.proc.pid)
        self.watch = Watch()
        self._stop = threading.Event()
        self._listener = threading.Thread(
            target=_listen,
            args=(self.cfg, self.watch, lambda at: at.timestamp() - offset_s, self._stop, with_feed),
            daemon=True,
        )
        self._listener.start()
        self.tail = Tail(self.data, self.clock)
        self.tail.start()

    def wait_open(self, timeout_s: float = 180) -> None:
        def recording() -> bool:
            if self.proc.poll() is not None:
                raise SystemExit(f"the pipeline exited before recording (see {self.base}/data/logs)")
            return bool(list(self.data.glob(TRACK_GLOBS["raw"])))

        poll_until(
            recording, timeout_s, 0.5, f"the pipeline to record (see {self.base}/data/logs)", SystemExit
        )

    def sample(self, seconds: float) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        cpu: dict[str, list[float]] = defaultdict(list)
        rss: dict[str, list[float]] = defaultdict(list)
        procs = _workers(self.sup)
        for p in procs.values():
            p.cpu_percent(None)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(SAMPLE_S, max(0.0, end - time.monotonic())))
            procs = {**_workers(self.sup), **{k: v for k, v in procs.items() if v.is_running()}}
            for name, p in procs.items():
                try:
                    cpu[name].append(p.cpu_percent(None))
                    rss[name].append(p.memory_info().rss / 2**20)
                except psutil.Error:
                    continue
        return cpu, rss

    def close(self) -> None:
        self._stop.set()
        self.tail.stop.set()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._listener.join(5)
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class Result:
    scale: float
    landed: dict[str, float]
    trades: float
    in_file: tuple[float, float]
    fsynced: tuple[float, float]
    cpu: dict[str, float]
    rss: dict[str, float]
    growing: list[str]
    load: float

    @property
    def saturated(self) -> bool:
        return bool(self.growing)


def capacity(scale: float, warm_s: float, cap_s: float) -> Result:
    pipe = Pipeline(scale)
    try:
        pipe.wait_open()
        time.sleep(warm_s)  # bench only: slots filled, the first sweep under way
        lines0, t0 = _lines(pipe.data), time.monotonic()
        pipe.tail.recording = pipe.watch.recording = True
        cpu, rss = pipe.sample(cap_s)
        pipe.tail.recording = pipe.watch.recording = False
        lines1, t1 = _lines(pipe.data), time.monotonic()
        load = os.getloadavg()[0]
    finally:
        pipe.close()
    landed = {k: (lines1[k] - lines0[k]) / (t1 - t0) for k in lines1}
    lat = [s for _, s in pipe.tail.samples]
    fsynced = pipe.watch.fsynced_s
    growing = [
        name
        for name, series in pipe.watch.queues.items()
        if grows(series, 1_000_000.0 if name.endswith("queue_bytes") else 1_000.0)
    ]
    thirds = len(pipe.tail.samples) // 3
    if thirds:
        first = pct([s for _, s in pipe.tail.samples[:thirds]], 0.5)
        last = pct([s for _, s in pipe.tail.samples[-thirds:]], 0.5)
        if last > 1.0 and last > 2 * first:
            growing.append("receive->in-file lag")
    return Result(
        scale,
        landed,
        pipe.tail.trade_records / (t1 - t0),
        (pct(lat, 0.5), pct(lat, 0.99)),
        (pct(fsynced, 0.5), pct(fsynced, 0.99)),
        {k: statistics.mean(v) for k, v in cpu.items() if v},
        {k: max(v) for k, v in rss.items() if v},
        growing,
        load,
    )


def soak(scale: float, seconds: float) -> None:
    pipe = Pipeline(scale, with_feed=False)
    try:
        pipe.wait_open()
        _cpu, rss = pipe.sample(seconds)
        load = os.getloadavg()[0]
    finally:
        pipe.close()
    print(f"soak at x{scale:g} for {seconds:.0f} s (RSS every {SAMPLE_S:.0f} s; load average {load:.1f})")
    print(f"  {'worker':16} {'rss MiB first':>14} {'last':>7} {'max':>7} {'2nd half slope MiB/h':>21}")
    for name in sorted(rss):
        r = rss[name]
        half = r[len(r) // 2 :]
        slope = 0.0
        if len(half) >= 3:
            xs = [i * SAMPLE_S / 3600 for i in range(len(half))]
            slope = statistics.linear_regression(xs, half).slope
        print(f"  {name:16} {r[0]:14.1f} {r[-1]:7.1f} {max(r):7.1f} {slope:21.1f}")


def main() -> None:
    scales = [float(s) for s in os.environ.get("SCALES", "1,10,50").split(",") if s]
    cap_s = float(os.environ.get("CAP_S", 90))
    warm_s = float(os.environ.get("WARM_S", 15))
    soak_s = float(os.environ.get("SOAK_S", 3600))
    soak_scale = float(os.environ.get("SOAK_SCALE", 10))
    print(f"whole pipeline on the simulator, {os.cpu_count()} CPUs shared with whatever else runs here")
    results = []
    for scale in scales:
        r = capacity(scale, warm_s, cap_s)
        results.append(r)
        total = sum(r.landed.values())
        tracks = ", ".join(f"{k} {v:,.0f}" for k, v in r.landed.items())
        print(f"x{scale:g} ({cap_s:.0f} s, load average {r.load:.1f})")
        print(f"  landed               : {total:,.0f} records/s ({tracks})")
        print(f"  trades in raw frames : {r.trades:,.0f} records/s (what the ws-collector and core carried)")
        print(f"  receive -> in-file   : p50 {r.in_file[0] * 1000:.0f} ms, p99 {r.in_file[1] * 1000:.0f} ms")
        print(f"  receive -> fsynced   : p50 {r.fsynced[0] * 1000:.0f} ms, p99 {r.fsynced[1] * 1000:.0f} ms")
        print(
            "  cpu % / rss MiB      : "
            + ", ".join(f"{k} {r.cpu[k]:.0f}/{r.rss[k]:.0f}" for k in sorted(r.cpu))
        )
        print(f"  growing              : {', '.join(r.growing) if r.growing else 'nothing'}")
    saturated = [r.scale for r in results if r.saturated]
    if saturated:
        print(f"saturation: from x{min(saturated):g} of realistic load (lag or a queue grows)")
    elif scales:
        print(f"saturation: none up to x{max(scales):g} of realistic load")
    if soak_s > 0:
        soak(soak_scale, soak_s)


if __name__ == "__main__":
    main()
