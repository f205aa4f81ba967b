"""Shared test helpers: per-test configs with private ipc paths, polling with a deadline."""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from observer.config import Config
from testkit.config import make_config
from testkit.wait import poll_until

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


def wait_for(
    predicate: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.02, what: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    return poll_until(predicate, timeout_s, interval_s, what, error=AssertionError)


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


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports absolutely (``import x`` and ``from x import y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found
