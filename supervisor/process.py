"""One worker OS process: ``python -m observer worker NAME`` in its own process group.

The supervisor never blocks on a child: `begin_stop` sends SIGTERM to the group and `poll` escalates
to SIGKILL once ``stop_timeout_s`` has passed; both report which path was taken. `poll` reaps the
child (no zombies) and sweeps the group afterwards so no grandchild outlives its worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal

from observer.clock import ANCHOR_ENV

log = logging.getLogger("observer.supervisor.process")

StopPath = Literal["exited", "sigterm", "sigkill"]


_PR_SET_PDEATHSIG = 1
_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child must not load anything
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_supervisor(parent_pid: int) -> None:
    """Runs in the child between fork and exec: SIGKILL when the supervisor dies (kept across exec).

    This covers the window before the worker base installs its own (SIGTERM) death signal; if the
    supervisor is already gone, the child exits at once instead of running as an orphan.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


class SpawnError(Exception):
    """The worker process could not be started at all (bad interpreter, no fork)."""


def worker_command(name: str) -> list[str]:
    return [sys.executable, "-m", "observer", "worker", name]


def worker_env(base: Mapping[str, str], anchor_epoch_s: float, config_path: str | None) -> dict[str, str]:
    """The supervisor's environment plus the shared clock anchor (kept if already set) and config path."""
    env = dict(base)
    env.setdefault(ANCHOR_ENV, repr(anchor_epoch_s))
    if config_path:
        env["OBSERVER_CONFIG"] = config_path
    return env


class WorkerProcess:
    """A started worker process. Call `poll` every loop turn until it returns an exit code.

    Create it from the supervisor's main thread: the kernel's parent-death signal fires when the
    *thread* that forked the child ends.
    """

    def __init__(self, name: str, env: Mapping[str, str], *, cwd: str | None = None):
        self.name = name
        parent_pid = os.getpid()
        try:
            self._popen = subprocess.Popen(
                worker_command(name),
                env=dict(env),
                cwd=cwd,
                start_new_session=True,  # own process group: signals reach the whole worker
                stdin=subprocess.DEVNULL,
                close_fds=True,
                preexec_fn=lambda: _die_with_supervisor(parent_pid),  # prctl + getppid only: no locks
            )
        except OSError as e:
            raise SpawnError(f"cannot start worker {name}: {e.strerror}") from e
        self.pid = self._popen.pid
        self.started_mono = time.monotonic()
        self.returncode: int | None = None
        self.stop_path: StopPath | None = None
        self._kill_at: float | None = None

    @property
    def stopping(self) -> bool:
        return self._kill_at is not None

    def begin_stop(self, timeout_s: float) -> None:
        """SIGTERM to the group; `poll` sends SIGKILL if it is still there after `timeout_s`."""
        if self.returncode is not None or self._kill_at is not None:
            return
        self._kill_at = time.monotonic() + timeout_s
        self._signal_group(signal.SIGTERM)

    def kill_now(self) -> None:
        """SIGKILL to the group without waiting (second SIGTERM to the supervisor)."""
        if self.returncode is None:
            self._kill_at = time.monotonic()
            self._escalate()

    def poll(self) -> int | None:
        """Reap the child if it has exited (returns its exit code); escalate an overdue stop."""
        if self.returncode is not None:
            return self.returncode
        code = self._popen.poll()
        if code is None:
            if (
                self._kill_at is not None
                and time.monotonic() >= self._kill_at
                and self.stop_path != "sigkill"
            ):
                self._escalate()
            return None
        self.returncode = code
        if self.stop_path is None:
            self.stop_path = "sigterm" if self._kill_at is not None else "exited"
        if self.stop_path == "sigterm":
            log.info(
                "worker stopped gracefully after SIGTERM",
                extra={"worker": self.name, "pid": self.pid, "exit_code": code, "stop_path": "sigterm"},
            )
        self._signal_group(signal.SIGKILL, quiet=True)  # leftovers of the group, if any
        return code

    def wait(self, timeout_s: float) -> int | None:
        """Block up to `timeout_s` for the exit (used only once the loop has ended)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.poll()
            if code is not None:
                return code
            try:
                self._popen.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        return self.poll()

    def _escalate(self) -> None:
        self.stop_path = "sigkill"
        log.warning(
            "worker did not stop in time after SIGTERM; sent SIGKILL to its process group",
            extra={"worker": self.name, "pid": self.pid, "stop_path": "sigkill"},
        )
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int, *, quiet: bool = False) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as e:
            if not quiet:
                log.error(
                    "cannot signal worker group",
                    extra={"worker": self.name, "pid": self.pid, "error": str(e)},
                )
