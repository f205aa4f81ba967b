"""Shared test helpers: per-test configs with private ipc paths, polling with a deadline."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

from observer.config import Config, decode_config

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


def wait_for(
    predicate: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.02, what: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")
        time.sleep(interval_s)  # polling interval, not a wait for an event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short private directory (ipc socket paths must stay under ~100 bytes)."""
    d = tempfile.mkdtemp(prefix="obs-", dir="/tmp")
    os.chmod(d, 0o700)
    yield Path(d)
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def make_config(base: Path, toml: str = "", **sections: dict[str, object]) -> Config:
    """A Config whose runtime and data dirs live under `base` (plus TOML overrides)."""
    cfg = decode_config(toml, "<test>")
    paths = msgspec.structs.replace(
        cfg.paths,
        data_dir=str(base / "data"),
        runtime_dir=str(base / "run"),
        universe_dir=str(base / "universe"),
        log_dir=str(base / "logs"),
    )
    cfg = msgspec.structs.replace(cfg, paths=paths)
    for name, values in sections.items():
        cfg = msgspec.structs.replace(cfg, **{name: msgspec.structs.replace(getattr(cfg, name), **values)})
    return cfg


def write_config(base: Path, toml: str = "") -> Path:
    """Write a TOML config for subprocess workers, paths under `base`."""
    text = (
        f'[paths]\ndata_dir = "{base / "data"}"\nruntime_dir = "{base / "run"}"\n'
        f'universe_dir = "{base / "universe"}"\nlog_dir = "{base / "logs"}"\n' + toml
    )
    path = base / "observer.toml"
    path.write_text(text)
    return path


@pytest.fixture
def cfg(short_tmp: Path) -> Config:
    return make_config(short_tmp)


def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """SIGTERM a child process, SIGKILL it if it has not exited in `timeout_s`; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode
