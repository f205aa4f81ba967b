"""Test support for the writer: archive records of every track, a writer subprocess, a producer
thread playing the core on the archive hop, and archive readers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import zmq

from observer.config import Config
from observer.reliable import ReliableSender, SeqGap, hop_endpoints
from observer.schema import (
    ArchiveRecord,
    GapMarker,
)
from testkit.records import DAY, line_for, record
from tests.conftest import REPO


def start_writer(base: Path, config_path: Path, tag: str = "") -> subprocess.Popen[bytes]:
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    out = open(logs / f"writer-proc{tag}.out", "ab")  # noqa: SIM115 - owned by the child
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "observer", "--config", str(config_path), "worker", "writer"],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(base),
    )


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> int:
    if proc.poll() is None:
        proc.terminate()
    return proc.wait(timeout_s)


class Producer:
    """Plays the core: a ReliableSender on the archive hop, sending from its own thread at `rate_per_s`
    (0: only when `send` is called through `submit`). Records seq -> record_id, send-call durations,
    the replay buffer high-water mark and the gaps the sender reports."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        cfg: Config,
        *,
        replay_buffer_bytes: int | None = None,
        producer: str = "core",
        transmit_on_send: bool = True,
        hold_above_bytes: int = 0,
    ):
        data_ep, ack_ep = hop_endpoints(cfg, "archive")
        self.gaps: list[SeqGap] = []
        self.sender = ReliableSender(
            ctx,
            cfg,
            producer,
            data_ep,
            ack_ep,
            on_gap=self.gaps.append,
            replay_buffer_bytes=replay_buffer_bytes,
            transmit_on_send=transmit_on_send,  # False: batched per loop turn, as the core sends
        )
        # scheduled sends wait while this much is unacknowledged (0: never): a test about kills under
        # load, on a slow shared machine, must not turn into a test of the replay bound
        self.hold_above_bytes = hold_above_bytes
        self.seq_ids: dict[int, tuple[str, str]] = {}
        self.max_send_s = 0.0
        self.max_unacked_bytes = 0
        self.late_ticks = 0
        self.sent = 0
        self.count = 0
        self._make: Any = None
        self._interval = 0.0
        self._next_at = 0.0
        self._unsent = 0
        self._outbox: list[ArchiveRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, recs: list[Any]) -> None:
        with self._lock:
            self._outbox.extend(recs)
            self._unsent += len(recs)

    def start(self, make: Any = None, rate_per_s: float = 0.0, count: int = 0) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.start_schedule(make, rate_per_s, count)
        self._thread.start()

    def start_schedule(self, make: Any, rate_per_s: float, count: int) -> None:
        """Send `count` records made by `make(i)` at `rate_per_s` (may be called once, after `start()`)."""
        with self._lock:
            self._make, self._interval = make, (1.0 / rate_per_s if rate_per_s else 0.0)
            self._next_at = time.monotonic()
            self.count = count

    def stop_schedule(self) -> int:
        """Stop sending scheduled records; returns how many were sent."""
        with self._lock:  # scheduled sends happen under this lock: after it, `sent` is final
            self.count = 0
            return self.sent

    def _send(self, rec: Any) -> None:
        t0 = time.perf_counter()
        seq = self.sender.send(rec)
        self.max_send_s = max(self.max_send_s, time.perf_counter() - t0)
        self.seq_ids[seq] = (getattr(rec, "track", ""), rec.record_id)
        self.max_unacked_bytes = max(self.max_unacked_bytes, self.sender.unacked_bytes)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sender.ack_sub, zmq.POLLIN)
        while not self._stop.is_set():
            held = self.hold_above_bytes and self.sender.unacked_bytes > self.hold_above_bytes
            if self.sent < self.count and time.monotonic() >= self._next_at and not held:
                with self._lock:
                    if self.sent < self.count:
                        if time.monotonic() - self._next_at > 0.05:
                            self.late_ticks += 1
                        self._send(self._make(self.sent))
                        self.sent += 1
                    self._next_at += self._interval
            with self._lock:
                outbox, self._outbox = self._outbox, []
            for rec in outbox:
                self._send(rec)
            if outbox:
                with self._lock:
                    self._unsent -= len(outbox)
            wait_ms = 5 if self.sent >= self.count or held else int((self._next_at - time.monotonic()) * 1000)
            poller.poll(min(max(wait_ms, 0), 5))
            self.sender.pump()

    def all_acked(self) -> bool:
        """Everything submitted so far was sent and acknowledged."""
        with self._lock:
            unsent = self._unsent
        return unsent == 0 and self.sender.acked >= self.sender.last_seq > 0 and self.sender.unacked == 0

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sender.close()


def read_archive(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Every archive line by track directory key (swing, scalp, raw, events, overflow, metrics)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(root.rglob("*.jsonl")):
        rel = path.relative_to(root).parts
        if rel[0] in ("logs", "state"):
            continue
        key = rel[1] if rel[0] == "system" else rel[0]
        for line in path.read_bytes().splitlines():
            doc = msgspec.json.decode(line)
            doc["_file"] = str(path.relative_to(root))
            out[key].append(doc)
    return out


def events_of(root: Path, type_: str) -> list[dict[str, Any]]:
    """The system events of one type (complete lines only: safe to poll while the writer runs)."""
    out = []
    for path in sorted((root / "system" / "events").glob("*/*.jsonl")):
        data = path.read_bytes()
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            doc = msgspec.json.decode(line)
            if doc.get("type") == type_:
                out.append(doc)
    return out


__all__ = [
    "DAY",
    "GapMarker",
    "Producer",
    "events_of",
    "line_for",
    "read_archive",
    "record",
    "start_writer",
    "stop",
]
