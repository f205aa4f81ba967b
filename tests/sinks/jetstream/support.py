"""Test support for the JetStream sink: a real nats-server (killable, restartable on the same store),
the sink worker as a process, stream queries, archive tree comparison."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import nats.errors

from tests.conftest import REPO, free_port, wait_for

NATS_SERVER = "/usr/sbin/nats-server"
ARCHIVE_DIRS = ("swing", "scalp", "raw", "system", "metrics")


class NatsServer:
    """``nats-server -js`` on loopback with its store under `base`; `kill` is SIGKILL."""

    def __init__(self, base: Path):
        self.store = base / "nats"
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log = base / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [NATS_SERVER, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self._listening, 15, what="nats-server listening")

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def start_sink(base: Path, config_path: Path, tag: str) -> subprocess.Popen[bytes]:
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    out = open(logs / f"jetstream-proc{tag}.out", "ab")  # noqa: SIM115 - owned by the child
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "observer", "--config", str(config_path), "worker", "jetstream"],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(base),
    )


def stream_messages(url: str, stream: str) -> int:
    """How many messages the stream holds (-1 when the server does not answer)."""

    async def query() -> int:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
        try:
            info: Any = await nc.jetstream().stream_info(stream)
            return int(info.state.messages)
        finally:
            await nc.close()

    try:
        return asyncio.run(query())
    except (nats.errors.Error, OSError, TimeoutError):  # down, restarting, or the stream not made yet
        return -1


def archive_files(root: Path) -> dict[str, bytes]:
    """Every archive file under `root` (relative path -> content)."""
    out: dict[str, bytes] = {}
    for top in ARCHIVE_DIRS:
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = path.read_bytes()
    return out


def line_count(files: dict[str, bytes]) -> int:
    return sum(data.count(b"\n") for data in files.values())
