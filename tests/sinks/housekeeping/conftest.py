"""Housekeeping fixtures: archive days on disk, a real OpenSSH server on loopback, a test bus.

`sshd` starts ``/usr/sbin/sshd -D -e -f <tmp config>`` on a free port with a generated host key and
a generated client key in a tmp ``AuthorizedKeysFile`` (key auth only, ``AllowUsers`` the current
user, ``Subsystem sftp internal-sftp``), waits until the port answers with an SSH banner, and kills
it at the end. The tests run as root in CI (sshd needs it to switch users).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from observer.clock import KST
from observer.config import Config, data_dir
from observer.schema import DetailValue, SystemEvent
from testkit.config import make_config
from tests.conftest import free_port, wait_for

SSHD = Path("/usr/sbin/sshd")


def write_day(
    cfg: Config,
    day: date,
    *,
    lines: int = 50,
    age_s: float = 600.0,
    anomalous: bool = False,
    families: tuple[str, ...] = ("swing", "scalp", "raw", "system", "metrics"),
) -> list[Path]:
    """Archive files of `day` (every family unless told), mtimes `age_s` in the past."""
    root = data_dir(cfg)
    key = f"{day:%Y%m%d}"
    paths: list[Path] = []
    if "swing" in families:
        paths += [root / f"swing/kis/KOSPI/{key}/09_00.jsonl", root / f"swing/kis/KOSDAQ/{key}/10_00.jsonl"]
    if "scalp" in families:
        paths += [
            root / f"scalp/kis/KOSPI/{key}/09_30_00.jsonl",
            root / f"scalp/kis/KOSPI/{key}/09_40_00.jsonl",
        ]
    if "raw" in families:
        paths += [root / f"raw/kis/KOSPI/{key}/09_00.jsonl"]
    if "metrics" in families:
        paths += [root / f"metrics/{key}.jsonl"]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        p.write_bytes(archive_lines(p, day, lines))
    if "system" in families:
        ev = root / f"system/events/kis/{key}.jsonl"
        ev.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        events = [event("reconnect", day, "WARNING")]
        if anomalous:
            events.append(event("day_anomalous", day, "CRITICAL", day_detail=day.isoformat()))
        ev.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in events))
        paths.append(ev)
        universe = Path(cfg.paths.universe_dir)
        universe.mkdir(parents=True, exist_ok=True, mode=0o700)
        (universe / f"{key}_KOSPI.json").write_text(
            msgspec.json.encode({"date": day.isoformat()}).decode() + "\n"
        )
        paths.append(universe / f"{key}_KOSPI.json")
    past = time.time() - age_s
    for p in paths:
        os.chmod(p, 0o600)
        os.utime(p, (past, past))
    return paths


def archive_lines(path: Path, day: date, lines: int) -> bytes:
    """`lines` lines that `observer verify` accepts in `path` (its family, day and hour/period)."""
    hh, mm = (int(x) for x in path.stem.split("_")[:2]) if "_" in path.stem else (12, 0)
    at = datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST)
    family = ""
    for part in path.parts:
        if part in ("swing", "scalp", "raw", "metrics"):
            family = part
            break
    out = []
    for i in range(lines):
        t = (at + timedelta(seconds=i)).isoformat()
        rid = f"{family}-{path.stem}-{i}"
        pad = "x" * (40 + i % 17)
        match family:
            case "swing" | "scalp":
                doc = {
                    "record_id": rid,
                    "observation": {"meta": {"captured_at": t}, "instruments": [{"window_start": t}]},
                    "payload": pad,
                }
            case "raw":
                doc = {"record_id": rid, "received_at": t, "payload": pad}
            case _:
                doc = {"record_id": rid, "at": t, "payload": pad}
        out.append(msgspec.json.encode(doc) + b"\n")
    return b"".join(out)


def event(type_: str, day: date, severity: str = "INFO", day_detail: str | None = None) -> SystemEvent:
    details: dict[str, DetailValue] = {}
    if day_detail:
        details["day"] = day_detail
    return SystemEvent(
        record_id=f"evt-test-{type_}-{day:%Y%m%d}",
        type=type_,
        severity=severity,  # type: ignore[arg-type]
        at=datetime(day.year, day.month, day.day, 12, 0, tzinfo=KST),
        source="test",
        provider="kis",
        message=type_,
        details=details,
    )


def days_ago(today: date, n: int) -> date:
    return today - timedelta(days=n)


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    host_pub: Path
    base: Path

    def wrong_known_hosts(self) -> Path:
        """A known_hosts that pins a different key for this server."""
        other = self.base / "other_host_key"
        if not other.exists():
            _keygen(other)
        path = self.base / "wrong_known_hosts"
        kind, blob = other.with_suffix(".pub").read_text().split(" ")[:2]
        path.write_text(f"[{self.host}]:{self.port} {kind} {blob}\n")
        return path


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            return s.recv(16).startswith(b"SSH-")
    except OSError:
        return False


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshServer]:
    assert SSHD.exists(), "openssh-server is required (apt-get install -y openssh-server)"
    base = Path(tempfile.mkdtemp(prefix="obs-sshd-", dir="/tmp"))
    os.chmod(base, 0o700)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    host_key, client_key = base / "host_key", base / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    authorized = base / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    port = free_port()
    user = getpass.getuser()
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        f"AllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    known_hosts = base / "known_hosts"
    kind, blob = host_key.with_suffix(".pub").read_text().split(" ")[:2]
    known_hosts.write_text(f"[127.0.0.1]:{port} {kind} {blob}\n")
    log = (base / "sshd.log").open("wb")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        wait_for(lambda: proc.poll() is not None or _banner(port), 10, 0.05, "sshd accepting connections")
        assert proc.poll() is None, (base / "sshd.log").read_text()
        yield SshServer("127.0.0.1", port, user, client_key, known_hosts, host_key.with_suffix(".pub"), base)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class ReceiptKey:
    """The backup PC's receipt signing key (what ``ssh-keygen -t ed25519`` makes) and its .pub."""

    private: Path
    public: Path

    def toml(self) -> str:
        return f'[housekeeping]\nreceipt_public_key = "{self.public}"\n'


@pytest.fixture(scope="session")
def receipt_key() -> Iterator[ReceiptKey]:
    base = Path(tempfile.mkdtemp(prefix="obs-rkey-", dir="/tmp"))
    key = base / "receipt_key"
    _keygen(key)
    yield ReceiptKey(key, key.with_suffix(".pub"))
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cfg(short_tmp: Path, receipt_key: ReceiptKey) -> Config:
    """The test config of every housekeeping test: it knows the backup PC's receipt key."""
    return make_config(short_tmp, receipt_key.toml())
