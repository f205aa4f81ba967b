"""The chaos soak: the whole pipeline (`observer run`: supervisor, simulator, every worker) on a
busy simulated market, random overlapping faults, then the accounting closure (`testkit.closure`).

Data flow::

    SoakRun.start()   observer run (session clock, [sim] activity_scale) -> archive under base/
    SoakRun.chaos()   every `fault_gap_s` (random, seeded): the next fault of a shuffled deck —
                      kill -9 of each worker in turn, SIGSTOP of the writer for 10-30 s, and every
                      simulator fault kind (admin endpoint); faults overlap
    SoakRun.finish()  faults cleared, writer continued, workers back to RUNNING, the ws-collector
                      stopped (the feed's last word), the per-trade truth fetched, SIGTERM
    close_accounts()  archive vs truth -> `ClosureReport` (closure X.XXX %)

Used by ``bench/soak.py`` (``make soak``; ``SOAK_S``, ``SEED``, ``SCALE``), by ``bench/bench_soak.py``
(the long run in ``make bench``) and by the short seeded run in the test suite.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import requests

from collectors.kis_sim.schema import PublishedTrades
from observer.config import load_config
from observer.control import ControlClient, NoSupervisor, reply_data
from observer.schema import Command
from testkit.closure import ClosureReport, close_accounts
from testkit.config import write_config
from testkit.wait import poll_until

REPO = Path(__file__).resolve().parent.parent
KILLED = ("writer", "observer", "rest-collector", "ws-collector", "monitor", "housekeeper")
SIM_FAULTS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "drop_sessions": lambda r: {"duration_s": r.uniform(0, 5)},
    "blackhole": lambda r: {"duration_s": r.uniform(5, 20)},
    "delay": lambda r: {"duration_s": r.uniform(5, 20), "delay_ms": r.choice([300, 1_000, 3_000])},
    "truncate": lambda r: {"duration_s": r.uniform(5, 15), "every_n": r.choice([5, 20, 50])},
    "corrupt": lambda r: {"duration_s": r.uniform(5, 15), "every_n": r.choice([5, 20, 50])},
    "rest_5xx": lambda r: {"duration_s": r.uniform(5, 20)},
    "rest_timeout": lambda r: {"duration_s": r.uniform(5, 15)},
    "rate_limit": lambda r: {"duration_s": r.uniform(5, 20)},
    "expire_tokens": lambda r: {"duration_s": 0.0},
    "silence": lambda r: {"duration_s": r.uniform(5, 20), "symbols": []},
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_size(data: Path) -> int:
    """Bytes in the archive's raw/ files."""
    return sum(p.stat().st_size for p in data.glob("raw/*/*/*/*.jsonl"))


class RawQuiet:
    """A predicate for `poll_until`: true once raw/ under `data` has not grown for `quiet_s`
    (checked on successive calls): the last frames are archived."""

    def __init__(self, data: Path, quiet_s: float = 2.0):
        self.data, self.quiet_s = data, quiet_s
        self._size, self._since = -1, time.monotonic()

    def __call__(self) -> bool:
        size, now = raw_size(self.data), time.monotonic()
        if size != self._size:
            self._size, self._since = size, now
        return now - self._since >= self.quiet_s


@dataclass(slots=True)
class SoakResult:
    report: ClosureReport
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0
    scale: float = 1.0
    seed: int = 0
    supervisor_exit: int | None = None

    def render(self) -> str:
        kinds = Counter(f.split(" ", 1)[0] for f in self.faults)
        head = (
            f"soak: ran {self.seconds:.0f} s at activity x{self.scale:g}, seed {self.seed}: {len(self.faults)} faults "
            f"({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}); supervisor exit {self.supervisor_exit}"
        )
        return head + "\n" + self.report.render()


class SoakRun:
    def __init__(
        self,
        base: Path,
        *,
        seconds: float,
        seed: int,
        scale: float = 1.0,
        speed: float = 1.0,
        start_at: str = "09:29:50",
        fault_gap_s: tuple[float, float] = (6.0, 40.0),
        symbol_count: int = 2_000,
        log: Callable[[str], None] = print,
        faults: tuple[str, ...] = (),
    ):
        self.base, self.seconds, self.seed, self.scale = base, seconds, seed, scale
        self.fault_gap_s = fault_gap_s
        self.deck = faults  # given: exactly these faults in this order (e.g. 5 x "kill:ws-collector")
        self.rng = random.Random(f"soak:{seed}")
        self.admin_port = _port()
        self.cfg_path = write_config(
            base,
            f'[clock]\nmode = "session"\nstart_at = "{start_at}"\nspeed = {speed}\n'
            f"[sim]\nenabled = true\nrest_port = {_port()}\nws_port = {_port()}\nadmin_port = {self.admin_port}\n"
            f"symbol_count = {symbol_count}\nseed = {seed}\nactivity_scale = {scale}\n"
            # the soak proves no loss; CPU mitigation would only lower the sampling rate
            "[monitor]\ncpu_level1_pct = 101.0\ncpu_level2_pct = 101.0\n",
        )
        self.cfg = load_config(self.cfg_path, env={})
        self.data = base / "data"
        self.admin = f"http://127.0.0.1:{self.admin_port}/admin"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.faults: list[str] = []
        self._stopped: dict[int, threading.Timer] = {}
        self._ctl = ControlClient(self.cfg, timeout_s=3.0, tries=2)

    # ------------------------------------------------------------------ lifecycle
    def start(self, ready_timeout_s: float = 180.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "TELEGRAM_", "OBSERVER_"))}
        err = open(self.base / "supervisor.stderr", "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "observer", "--config", str(self.cfg_path), "run"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        err.close()
        self._until(lambda: list(self.data.glob("scalp/*/*/*/*.jsonl")), ready_timeout_s, "scalp samples")
        self._until(lambda: list(self.data.glob("raw/*/*/*/*.jsonl")), ready_timeout_s, "raw frames")

    def chaos(self) -> None:
        """Inject faults for `seconds`: a shuffled deck of every kind (or the given `faults`, once),
        one every `fault_gap_s`."""
        deck: list[str] = list(reversed(self.deck))
        end = time.monotonic() + self.seconds
        due = time.monotonic() + self.rng.uniform(*self.fault_gap_s)
        while True:
            now = time.monotonic()
            if due > end:
                break
            if now < due:
                time.sleep(min(due - now, 0.5))  # pacing the fault schedule, not waiting for a result
                continue
            if not deck and self.deck:
                break  # the given faults are all injected
            if not deck:
                deck = [f"kill:{w}" for w in KILLED] + ["sigstop:writer"] + [f"sim:{k}" for k in SIM_FAULTS]
                self.rng.shuffle(deck)
            self._inject(deck.pop())
            due = time.monotonic() + self.rng.uniform(*self.fault_gap_s)
        while time.monotonic() < end:
            time.sleep(min(end - time.monotonic(), 0.5))

    def finish(self, settle_timeout_s: float = 180.0) -> PublishedTrades:
        """Stop the faults, let the pipeline recover, stop the feed, fetch the truth, stop all."""
        requests.delete(f"{self.admin}/faults", timeout=10)
        for pid, timer in list(self._stopped.items()):
            timer.cancel()
            _signal(pid, signal.SIGCONT)
        # then an ordinary stop: whatever is still in flight must survive the graceful shutdown
        self._until(self._all_running, settle_timeout_s, "every worker RUNNING again")
        # the feed falls silent before the ws-collector stops: frames still on the wire when a
        # session closes are never read (a stop-edge loss, reported apart from the chaos)
        requests.post(f"{self.admin}/faults", json={"kind": "silence", "symbols": []}, timeout=10)
        self._until(RawQuiet(self.data), 60, "the last frames archived")
        self._ctl.request(Command(action="stop", target="ws-collector"))
        self._until(lambda: self._state("ws-collector") in ("STOPPED", "EXITED"), 60, "ws-collector stopped")
        raw = requests.get(f"{self.admin}/trades", timeout=120).content
        truth = msgspec.json.decode(raw, type=PublishedTrades)
        self.stop()
        return truth

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def run(self) -> SoakResult:
        started = time.monotonic()
        try:
            self.start()
            self.chaos()
            truth = self.finish()
        finally:
            code = self.stop()
        report = close_accounts(self.data, truth)
        return SoakResult(report, self.faults, time.monotonic() - started, self.scale, self.seed, code)

    # ------------------------------------------------------------------ faults
    def _inject(self, fault: str) -> None:
        kind, what = fault.split(":", 1)
        note = fault
        try:
            if kind == "kill":
                pid = self._pid(what)
                if pid is None:
                    note = f"{fault} (not running)"
                else:
                    _signal(pid, signal.SIGKILL)
            elif kind == "sigstop":
                pid = self._pid(what)
                hold = self.rng.uniform(10, 30)
                if pid is None:
                    note = f"{fault} (not running)"
                else:
                    _signal(pid, signal.SIGSTOP)
                    timer = threading.Timer(hold, self._resume, args=(pid,))
                    timer.daemon = True
                    self._stopped[pid] = timer
                    timer.start()
                    note = f"{fault} {hold:.0f}s"
            else:
                body = {"kind": what, **SIM_FAULTS[what](self.rng)}
                requests.post(f"{self.admin}/faults", json=body, timeout=10).raise_for_status()
                note = f"{fault} {body.get('duration_s', 0):.0f}s"
        except (requests.RequestException, NoSupervisor) as e:
            note = f"{fault} (failed: {e})"
        self.faults.append(note)
        self.log(f"[soak] fault {len(self.faults)}: {note}")

    def _resume(self, pid: int) -> None:
        self._stopped.pop(pid, None)
        _signal(pid, signal.SIGCONT)

    # ------------------------------------------------------------------ supervisor
    def _workers(self) -> list[dict[str, Any]]:
        try:
            return list(reply_data(self._ctl.request(Command(action="status"))).get("workers", []))
        except NoSupervisor:
            return []

    def _pid(self, name: str) -> int | None:
        for w in self._workers():
            if w.get("name") == name and w.get("state") == "RUNNING" and w.get("pid"):
                return int(w["pid"])
        return None

    def _state(self, name: str) -> str:
        return next((str(w.get("state")) for w in self._workers() if w.get("name") == name), "")

    def _all_running(self) -> bool:
        workers = self._workers()
        return bool(workers) and all(w.get("state") == "RUNNING" for w in workers)

    def _until(self, check: Callable[[], object], timeout_s: float, what: str) -> None:
        def done() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the supervisor exited ({self.proc.returncode}) while waiting for {what}")
            return bool(check())

        poll_until(done, timeout_s, 0.5, what)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def main_from_env(default_s: float, default_scale: float, *, quiet: bool = False) -> int:
    """Run a soak from ``SOAK_S``, ``SEED``, ``SCALE`` (env) under a fresh /tmp directory; print the
    accounting; 0 when the accounts close (100 %), 1 otherwise."""
    import tempfile

    seconds = float(os.environ.get("SOAK_S", default_s))
    seed = int(os.environ.get("SEED", 1))
    scale = float(os.environ.get("SCALE", default_scale))
    base = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    print(f"soak: {seconds:.0f} s, seed {seed}, activity x{scale:g}, archive under {base}", flush=True)
    log: Callable[[str], None] = (lambda _: None) if quiet else (lambda m: print(m, flush=True))
    result = SoakRun(base, seconds=seconds, seed=seed, scale=scale, log=log).run()
    print(result.render(), flush=True)
    return 0 if result.report.ok else 1
