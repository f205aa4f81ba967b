"""Run another ``observer`` command as a child process, with the caller's config and environment.

Workers use it for heavy, occasional work that must not share their interpreter (the monitor's
end-of-day report, the housekeeper's nightly export and load): the child loads the same config
file (``$OBSERVER_CONFIG``, which ``observer worker`` sets to the file it was started with) and
inherits ``$OBSERVER_DATA_DIR`` and the secrets. A child that overruns its time is killed.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChildResult:
    returncode: int  # -9: killed at the timeout
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def reason(self) -> str:
        """The child's last error line (what it printed last on stderr), for an event message."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1][:300] if lines else f"exit code {self.returncode}"


def run_observer(*args: str, timeout_s: float) -> ChildResult:
    """``python -m observer ARGS`` to completion (or `timeout_s`, then SIGKILL)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "observer", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return ChildResult(-9, "", err + f"\nkilled after {timeout_s:g} s")
    return ChildResult(done.returncode, done.stdout, done.stderr)
