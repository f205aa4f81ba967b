"""One recorded simulated session shared by the replay tests: the `make run` pipeline (supervisor,
simulator, every worker) with `observer tap` attached to its public feed from the start."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, terminate, wait_for
from tests.e2e.support import Pipeline, clean_env

RECORD_S = 60.0  # real seconds of recording after the first scalp file appears ("over a minute")
STOP_TAP_S = 12.0  # the tap is stopped (SIGSTOP) this long in the middle of the recording
NO_CPU_MITIGATION = "[monitor]\ncpu_level1_pct = 101.0\ncpu_level2_pct = 101.0\n"
ARCHIVE_GLOBS = (
    "swing/*/*/*/*.jsonl",
    "scalp/*/*/*/*.jsonl",
    "raw/*/*/*/*.jsonl",
    "system/events/*/*.jsonl",
    "system/overflow/*/*.jsonl",
    "metrics/*.jsonl",
)


def archive_lines(data: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for pattern in ARCHIVE_GLOBS:
        for path in sorted(data.glob(pattern)):
            out.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return out


def observer_cmd(cfg_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "observer", "--config", str(cfg_path), *args]


def tap_messages(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@dataclass
class Recording:
    base: Path
    cfg_path: Path
    data: Path
    tap_out: Path
    tap_err: str
    tap_pid: int
    scalp_during_stop: int
    stop_s: float
    env: dict[str, str] = field(default_factory=dict)

    @property
    def day(self) -> str:
        return sorted(p.name for p in self.data.glob("scalp/*/*/*"))[0]


@pytest.fixture(scope="session")
def recording() -> Iterator[Recording]:
    base = Path(tempfile.mkdtemp(prefix="obs-rp-", dir="/tmp"))
    os.chmod(base, 0o700)
    p = Pipeline(base, NO_CPU_MITIGATION)
    tap_out = base / "tap.jsonl"
    tap = subprocess.Popen(
        observer_cmd(p.cfg_path, "tap"),
        cwd=REPO,
        env=p.env,
        stdout=tap_out.open("w"),
        stderr=subprocess.PIPE,
    )
    try:
        with p.running():
            p.wait_filled()
            t0 = time.monotonic()
            wait_for(lambda: time.monotonic() - t0 >= (RECORD_S - STOP_TAP_S) / 2, 60, 0.2)
            before = _scalp_count(p.data)
            tap.send_signal(signal.SIGSTOP)  # a consumer that stops reading
            stopped_at = time.monotonic()
            wait_for(lambda: time.monotonic() - stopped_at >= STOP_TAP_S, 60, 0.2)
            during = _scalp_count(p.data) - before
            stop_s = time.monotonic() - stopped_at
            tap.send_signal(signal.SIGCONT)
            wait_for(lambda: time.monotonic() - t0 >= RECORD_S, 120, 0.2)
        assert p.returncode == 0, p.stderr[-3000:]
        # the writer publishes its last lines and a final feed.stats on the way out
        wait_for(lambda: '"final":true' in tap_out.read_text(), 30, 0.1, "the writer's final feed.stats")
        terminate(tap, 10)
        err = tap.stderr.read().decode() if tap.stderr else ""
        yield Recording(base, p.cfg_path, p.data, tap_out, err, tap.pid, during, stop_s, clean_env())
    finally:
        terminate(tap, 5)
        shutil.rmtree(base, ignore_errors=True)


def _scalp_count(data: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in data.glob("scalp/*/*/*/*.jsonl"))
