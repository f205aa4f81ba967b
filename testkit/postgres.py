"""A real PostgreSQL server for a test: initdb + pg_ctl in a private temp dir, loopback TCP on a
free port, trust auth for the ``postgres`` user. As root it runs as the ``postgres`` OS user
(PostgreSQL refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from testkit.wait import poll_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"{name} not found: run tests/services/install.sh (make test installs PostgreSQL)")
    return found[-1]


class PgServer:
    def __init__(self, base: Path, port: int):
        self.base = base
        self.port = port
        self.dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self._as_root else list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check, cwd="/")

    def start(self) -> None:
        data = self.base / "pgdata"
        self._run(
            _bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", str(data), "-l", str(self.base / "pg.log"), "-o", opts, "-w", "start")
        poll_until(
            self.ready,
            30,
            0.2,
            f"PostgreSQL to accept connections (see {self.base / 'pg.log'})",
            RuntimeError,
        )

    def ready(self) -> bool:
        try:
            with psycopg.connect(self.dsn, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.base / "pgdata"), "-m", "immediate", "stop", check=False)

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(sql, params or None)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description is not None else []


@contextmanager
def postgres() -> Iterator[PgServer]:
    base = Path(tempfile.mkdtemp(prefix="obs-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
    base.chmod(0o700)
    server = PgServer(base, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
