"""A real supervisor process (`observer --config X run --workers ...`) with fake workers.

Timeouts are small (see `FAST`) so a whole lifecycle takes seconds. Teardown SIGTERMs the
supervisor, SIGKILLs it if it does not end, and kills any worker process group it left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

from observer.config import Config, load_config
from observer.control import ControlClient, NoSupervisor, reply_data
from observer.schema import Command
from observer.worker_registry import EXTRA_WORKERS_ENV
from testkit.config import write_config
from testkit.fake_workers import EXTRA_WORKERS
from tests.conftest import REPO, wait_for

FAST = """
[supervisor]
heartbeat_interval_ms = 100
heartbeat_timeout_ms = 800
startup_grace_ms = 4000
stable_after_s = 0.5
backoff_initial_s = 0.1
backoff_max_s = 0.2
flap_max_restarts = 3
flap_window_s = 30.0
stop_timeout_s = 1.0
"""


def test_env() -> dict[str, str]:
    env = dict(os.environ)
    env[EXTRA_WORKERS_ENV] = EXTRA_WORKERS
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["FAKE_SILENT_AFTER_S"] = "0.5"
    for key in ("OBSERVER_CONFIG", "OBSERVER_DATA_DIR", "OBSERVER_RUNTIME_DIR", "OBSERVER_CLOCK_ANCHOR"):
        env.pop(key, None)
    return env


def observer_cmd(config_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "observer", "--config", str(config_path), *args]


class SupervisorRun:
    def __init__(
        self, base: Path, workers: list[str], toml: str = FAST, env_extra: dict[str, str] | None = None
    ):
        self.base = base
        self.config_path = write_config(base, toml)
        self.cfg: Config = load_config(self.config_path, env={})
        self.env = test_env() | (env_extra or {})
        self.out_path = base / "supervisor.out"
        self._out = self.out_path.open("wb")
        self.proc = subprocess.Popen(
            observer_cmd(self.config_path, "run", "--workers", ",".join(workers)),
            env=self.env,
            cwd=REPO,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.seen_pids: set[int] = set()

    # -- observing
    def request(self, action: str, target: str = "") -> tuple[bool, str, dict[str, Any]]:
        reply = ControlClient(self.cfg, timeout_s=1.0, tries=1).request(Command(action=action, target=target))
        return reply.ok, reply.message, reply_data(reply)

    def status(self) -> dict[str, Any]:
        _, _, data = self.request("status")
        for w in data["workers"]:
            if w["pid"]:
                self.seen_pids.add(w["pid"])
        return data

    def worker(self, name: str) -> dict[str, Any]:
        for w in self.status()["workers"]:
            if w["name"] == name:
                return dict(w)
        raise KeyError(name)

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        def answers() -> bool:
            try:
                self.status()
            except NoSupervisor:
                assert self.proc.poll() is None, f"supervisor exited early:\n{self.output()}"
                return False
            return True

        wait_for(answers, timeout_s, what="the supervisor's control socket")

    def wait_worker(
        self, name: str, cond: Callable[[dict[str, Any]], bool], timeout_s: float = 15.0, what: str = ""
    ) -> dict[str, Any]:
        """Poll `status` until worker `name` satisfies `cond`; returns its status row."""
        found: list[dict[str, Any]] = []

        def reached() -> bool:
            w = self.worker(name)
            if cond(w):
                found.append(w)
            return bool(found)

        wait_for(reached, timeout_s, what=what or f"{name} to reach a condition")
        return found[0]

    def wait_state(self, name: str, state: str, timeout_s: float = 15.0) -> dict[str, Any]:
        return self.wait_worker(name, lambda w: w["state"] == state, timeout_s, f"{name} {state}")

    def wait_heartbeating(self, name: str, timeout_s: float = 15.0) -> dict[str, Any]:
        """RUNNING and heartbeating: the worker's loop (and its signal handlers) are set up."""
        return self.wait_worker(
            name, lambda w: w["state"] == "RUNNING" and w["heartbeats"] > 0, timeout_s, f"{name} heartbeating"
        )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def log_lines(self, logger_prefix: str = "observer.supervisor") -> list[dict[str, Any]]:
        lines = []
        for raw in self.output().splitlines():
            try:
                doc = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                continue
            if isinstance(doc, dict) and str(doc.get("logger", "")).startswith(logger_prefix):
                lines.append(doc)
        return lines

    def transitions(self, worker: str) -> list[tuple[str, str]]:
        return [
            (d["extra"]["from"], d["extra"]["to"])
            for d in self.log_lines()
            if d["message"] == "worker state" and d["extra"]["worker"] == worker
        ]

    def ctl(self, *args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            observer_cmd(self.config_path, "ctl", *args),
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    # -- ending
    def terminate(self, timeout_s: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(20.0)
        for pid in self.seen_pids | self._logged_pids():
            kill_worker_group(pid)
        self._out.close()

    def _logged_pids(self) -> set[int]:
        return {
            int(d["extra"]["pid"])
            for d in self.log_lines()
            if d["message"] == "worker state" and d["extra"].get("pid")
        }


def worker_alive(pid: int) -> bool:
    """True while `pid` is a live (not zombie) `observer worker` process."""
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE and "worker" in p.cmdline()
    except psutil.Error:
        return False


def kill_worker_group(pid: int) -> None:
    if worker_alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def start_supervisor(short_tmp: Path) -> Iterator[Any]:
    runs: list[SupervisorRun] = []

    def start(
        workers: list[str], toml: str = FAST, *, env_extra: dict[str, str] | None = None
    ) -> SupervisorRun:
        run = SupervisorRun(short_tmp, workers, toml, env_extra)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.cleanup()
