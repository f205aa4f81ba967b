"""Fixtures for writer tests: a per-test config (file for the subprocess, object for the test) and a
writer-process launcher that never leaks a process."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from observer.bus import context
from observer.config import Config
from testkit.config import make_config, write_config
from tests.conftest import wait_for
from tests.sinks.writer.support import start_writer

WRITER_TOML = "[writer]\nflush_interval_ms = 100\n[bus]\nresend_after_ms = 300\nresend_max_ms = 1000\nack_republish_ms = 200\n"


class Rig:
    def __init__(self, base: Path, toml: str = WRITER_TOML):
        self.base = base
        self.config_path = write_config(base, toml)
        self.cfg: Config = make_config(base, toml)
        self.root = base / "data"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_writer(self) -> subprocess.Popen[bytes]:
        proc = start_writer(self.base, self.config_path, tag=str(len(self.procs)))
        self.procs.append(proc)
        return proc

    def wait_started(self, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
        """Until `proc` says "worker starting" (its SIGTERM handler is in place by then: a SIGTERM
        during its imports would end it with -15, not a clean stop)."""
        out = self.base / "logs" / f"writer-proc{self.procs.index(proc)}.out"
        wait_for(lambda: b"worker starting" in out.read_bytes(), timeout_s, what="the writer started")

    def output(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted((self.base / "logs").glob("writer-proc*.out"))
        )

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def rig_factory(short_tmp: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(toml: str = WRITER_TOML) -> Rig:
        rig = Rig(short_tmp, toml)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.cleanup()


@pytest.fixture
def rig(rig_factory: Callable[..., Rig]) -> Rig:
    return rig_factory()


@pytest.fixture
def ctx() -> zmq.Context[Any]:
    return context()
