"""One worker's policy: the state machine, its process, heartbeats, backoff and flapping limit.

The supervisor's loop calls `tick` every turn and `heartbeat` when a heartbeat of the worker's
current pid arrives; operators call `start` / `stop` / `restart`. Nothing here blocks. Every state
change goes through `_to`, which checks the transition table and hands a `Transition` to the
supervisor (log line, system event, bus event).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from observer.config import SupervisorConfig
from observer.retry import Backoff
from observer.schema import Severity
from supervisor.process import SpawnError, WorkerProcess
from supervisor.states import ALIVE, WATCHED, State, check_transition

log = logging.getLogger("observer.supervisor.watcher")

Intent = Literal["stop", "restart", "hang"]


@dataclass(frozen=True, slots=True)
class Transition:
    worker: str
    old: State
    new: State
    reason: str
    severity: Severity
    pid: int | None
    exit_code: int | None
    restarts: int


class Watcher:
    """Keeps one named worker in the state its operator asked for."""

    def __init__(
        self,
        name: str,
        cfg: SupervisorConfig,
        spawn: Callable[[str], WorkerProcess],
        on_transition: Callable[[Transition], None],
    ):
        self.name = name
        self._cfg = cfg
        self._spawn = spawn
        self._on_transition = on_transition
        self.state = State.STOPPED
        self.state_since = time.monotonic()
        self.proc: WorkerProcess | None = None
        self.restarts = 0  # automatic restarts (exits and hangs), since the last operator start
        self.starts = 0
        self.last_exit_code: int | None = None
        self.last_stop_path: str | None = None
        self.last_heartbeat: float | None = None
        self.heartbeats = 0
        self.next_start_at: float | None = None
        self.last_pid: int | None = None
        self.no_restart = False  # set on supervisor shutdown: an exit then ends in STOPPED
        self._intent: Intent | None = None
        self._backoff = Backoff(base_s=cfg.backoff_initial_s, cap_s=cfg.backoff_max_s, jitter=0.2)
        self._restart_times: deque[float] = deque()

    # -- operator actions; each returns (ok, message)
    def start(self, reason: str = "operator start") -> tuple[bool, str]:
        if self.state in (State.STARTING, State.RUNNING):
            return True, f"{self.name} is already {self.state.value} (pid {self.pid})"
        if self.state is State.STOPPING:
            self._intent = "restart"
            return True, f"{self.name} is stopping; it will start again once stopped"
        self._restart_times.clear()
        self._backoff.reset()
        self.restarts = 0
        self._launch(reason)
        return True, f"{self.name} starting (pid {self.pid})" if self.pid else f"{self.name}: start failed"

    def stop(self, reason: str = "operator stop") -> tuple[bool, str]:
        if self.state in (State.STARTING, State.RUNNING):
            self._begin_stop("stop", reason, "INFO")
            return True, f"{self.name} stopping (pid {self.pid})"
        if self.state is State.STOPPING:
            self._intent = "stop"
            return True, f"{self.name} is already stopping"
        if self.state in (State.BACKOFF, State.EXITED, State.FATAL):
            self.next_start_at = None
            self._to(State.STOPPED, reason)
            return True, f"{self.name} stopped"
        return True, f"{self.name} is already STOPPED"

    def restart(self, reason: str = "operator restart") -> tuple[bool, str]:
        if self.state in (State.STARTING, State.RUNNING):
            self._begin_stop("restart", reason, "INFO")
            return True, f"{self.name} restarting (pid {self.pid} stopping)"
        if self.state is State.STOPPING:
            self._intent = "restart"
            return True, f"{self.name} is stopping; it will start again once stopped"
        return self.start(reason)

    def kill_now(self) -> None:
        if self.proc is not None:
            self.proc.kill_now()

    # -- inputs from the loop
    def heartbeat(self, pid: int, now: float) -> bool:
        """A heartbeat from `pid`; ignored (False) unless it is the current process."""
        if self.proc is None or self.proc.pid != pid:
            return False
        self.last_heartbeat = now
        self.heartbeats += 1
        return True

    def tick(self, now: float) -> None:
        if self.proc is not None:
            code = self.proc.poll()
            if code is not None:
                self._handle_exit(code, now)
        if self.state is State.STARTING and now - self.state_since >= self._cfg.stable_after_s:
            self._backoff.reset()
            self._to(State.RUNNING, f"alive for {self._cfg.stable_after_s:g}s")
        if self.state in WATCHED:
            self._check_silence(now)
        if self.state is State.BACKOFF and self.next_start_at is not None and now >= self.next_start_at:
            self.next_start_at = None
            self._launch("backoff elapsed")

    # -- internals
    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        return self.state in ALIVE

    def _launch(self, reason: str) -> None:
        self.last_heartbeat = None
        self.next_start_at = None
        self._intent = None
        try:
            self.proc = self._spawn(self.name)
        except SpawnError as e:
            self.proc = None
            self.last_pid = None
            self._to(State.STARTING, reason)
            self._to(State.EXITED, str(e), "ERROR")
            self._after_exit(time.monotonic())
            return
        self.starts += 1
        self.last_pid = self.proc.pid
        self._to(State.STARTING, reason)

    def _begin_stop(self, intent: Intent, reason: str, severity: Severity) -> None:
        assert self.proc is not None
        self._intent = intent
        self._to(State.STOPPING, reason, severity)
        self.proc.begin_stop(self._cfg.stop_timeout_s)

    def _check_silence(self, now: float) -> None:
        assert self.proc is not None
        if self.last_heartbeat is None:
            silent_s, limit_s = now - self.proc.started_mono, self._cfg.startup_grace_ms / 1000
            what = "no first heartbeat"
        else:
            silent_s, limit_s = now - self.last_heartbeat, self._cfg.heartbeat_timeout_ms / 1000
            what = "heartbeats stopped"
        if silent_s > limit_s:
            self._begin_stop("hang", f"{what} for {silent_s:.1f}s (limit {limit_s:g}s): killing", "WARNING")

    def _handle_exit(self, code: int, now: float) -> None:
        assert self.proc is not None
        self.last_exit_code = code
        self.last_stop_path = self.proc.stop_path
        self.proc = None
        if self.state is State.STOPPING:
            intent, self._intent = self._intent, None
            how = f"exit code {code} ({self.last_stop_path})"
            if intent == "stop" or self.no_restart:
                self._to(State.STOPPED, f"stopped: {how}")
            elif intent == "restart":
                self._to(State.EXITED, f"stopped for restart: {how}")
                self._launch("operator restart")
            else:
                self._to(State.EXITED, f"killed after silence: {how}", "WARNING")
                self._after_exit(now)
            return
        self._to(State.EXITED, f"exited unexpectedly with code {code}", "WARNING" if code == 0 else "ERROR")
        self._after_exit(now)

    def _after_exit(self, now: float) -> None:
        """Restart with backoff, or FATAL when restarts flap; STOPPED when the supervisor is stopping."""
        if self.no_restart:
            self._to(State.STOPPED, "supervisor is shutting down")
            return
        window_s = self._cfg.flap_window_s
        while self._restart_times and now - self._restart_times[0] > window_s:
            self._restart_times.popleft()
        if len(self._restart_times) >= self._cfg.flap_max_restarts:
            self._to(
                State.FATAL,
                f"flapping: {len(self._restart_times)} restarts within {window_s:g}s; not restarting "
                f"(use `observer ctl start {self.name}` after fixing the cause)",
                "CRITICAL",
            )
            return
        self._restart_times.append(now)
        self.restarts += 1
        delay_s = self._backoff.next_delay()
        self.next_start_at = now + delay_s
        self._to(State.BACKOFF, f"restart {self.restarts} in {delay_s:.2f}s")

    def _to(self, new: State, reason: str, severity: Severity = "INFO") -> None:
        check_transition(self.state, new)
        old, self.state = self.state, new
        self.state_since = time.monotonic()
        self._on_transition(
            Transition(
                self.name, old, new, reason, severity, self.last_pid, self.last_exit_code, self.restarts
            )
        )

    def status(self, now: float) -> dict[str, Any]:
        """JSON-able view for `observer ctl status`."""
        return {
            "name": self.name,
            "state": self.state.value,
            "pid": self.pid,
            "restarts": self.restarts,
            "starts": self.starts,
            "uptime_s": None if self.proc is None else round(now - self.proc.started_mono, 3),
            "state_for_s": round(now - self.state_since, 3),
            "last_exit_code": self.last_exit_code,
            "last_stop_path": self.last_stop_path,
            "heartbeat_age_s": None if self.last_heartbeat is None else round(now - self.last_heartbeat, 3),
            "heartbeats": self.heartbeats,
            "next_start_in_s": None
            if self.next_start_at is None
            else round(max(0.0, self.next_start_at - now), 3),
        }
