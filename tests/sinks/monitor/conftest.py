"""A real monitor process (`observer --config X worker monitor`) on a test-owned bus.

The test plays the supervisor's forwarder (a `Forwarder` thread), the core's ingest receiver (a
`ReliableReceiver` that acks what it gets) and any worker whose stats the monitor reads (an
`EventPublisher` of fake per-worker stats). A local HTTP server stands in for the Telegram Bot API.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import zmq

from observer.bus import (
    MITIGATION,
    SLOTS,
    EventPublisher,
    EventSubscriber,
    Forwarder,
    ingest_decoder,
    stats_topic,
)
from observer.clock import SystemClock
from observer.config import Config, load_config
from observer.reliable import ReliableReceiver, hop_endpoints
from observer.schema import CoreStats, EventBody, IngestBody, WriterStats, WsCollectorStats
from testkit.config import write_config

# CPU and memory of a shared CI machine must not move the level: thresholds out of reach
from tests.conftest import REPO, terminate

# CPU and memory of a shared CI machine must not move the level: thresholds out of reach
QUIET_MACHINE = """
[calendar]
use_chk_holiday = false

[monitor]
cpu_level1_pct = 101.0
cpu_level2_pct = 102.0
memory_level1_pct = 101.0
memory_level2_pct = 102.0
"""

TOKEN = "987654321:AAtest-secret-token-value"
CHAT_ID = "4242"


def _form(content_type: str, raw: bytes) -> dict[str, Any]:
    """A sendPhoto body (multipart/form-data): fields as text, the file as bytes; the caption is
    also kept as ``text`` so `FakeTelegram.texts` lists every message."""
    msg = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw, policy=email.policy.HTTP
    )
    out: dict[str, Any] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        out[str(name)] = payload if part.get_filename() else payload.decode()
    out["text"] = out.get("caption", "")
    return out


class FakeTelegram:
    """Records every sendMessage; `down()` closes the port (connection refused), `up()` reopens it."""

    def __init__(self, port: int):
        self.port = port
        self.messages: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def texts(self) -> list[str]:
        with self._lock:
            return [str(m["text"]) for m in self.messages]

    def up(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                ctype = self.headers.get("Content-Type", "")
                body = _form(ctype, raw) if ctype.startswith("multipart/") else json.loads(raw or b"{}")
                with outer._lock:
                    outer.messages.append(body)
                    outer.paths.append(self.path)
                payload = json.dumps({"ok": True, "result": {"message_id": len(outer.messages)}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class TestBus:
    """Forwarder + ingest receiver + publisher + subscriber, owned by the test."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.forwarder = Forwarder(self.ctx, cfg)
        self.forwarder.start()
        self.receiver = ReliableReceiver(self.ctx, cfg, "observer", *hop_endpoints(cfg, "ingest"))
        self.pub = EventPublisher(self.ctx, cfg)
        self.sub = EventSubscriber(self.ctx, cfg, [MITIGATION, stats_topic("monitor"), SLOTS])
        self.ingested: list[IngestBody] = []
        self.events: list[tuple[str, EventBody]] = []

    def stats(
        self, kind: type[CoreStats] | type[WriterStats] | type[WsCollectorStats], worker: str, **fields: Any
    ) -> None:
        """Publish a stats message of `kind` as `worker` would."""
        body = kind(worker=worker, at=SystemClock().now(), **fields)
        self.pub.publish(stats_topic(worker), body)

    def drain(self) -> None:
        for env in self.receiver.receive():
            self.ingested.append(ingest_decoder.decode(env.body))
            self.receiver.ack(env.producer, env.run_id, env.seq)
        self.receiver.republish_acks()
        while (item := self.sub.recv_nowait()) is not None:
            self.events.append(item)

    def close(self) -> None:
        self.sub.close()
        self.pub.close()
        self.receiver.close()
        self.forwarder.stop()
        self.ctx.destroy(linger=0)


class MonitorProcess:
    def __init__(self, config_path: Path, env_extra: dict[str, str] | None = None):
        env = dict(os.environ)
        for key in ("OBSERVER_CONFIG", "OBSERVER_DATA_DIR", "OBSERVER_RUNTIME_DIR", "OBSERVER_CLOCK_ANCHOR"):
            env.pop(key, None)
        env.pop("TELEGRAM_BOT_TOKEN", None)
        env.pop("TELEGRAM_CHAT_ID", None)
        env.update(env_extra or {})
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self.stderr_path = config_path.parent / "monitor.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "observer", "--config", str(config_path), "worker", "monitor"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def stop(self) -> int:
        code = terminate(self.proc, 5)
        self._stderr.close()
        return code

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def monitor_env(short_tmp: Path) -> Iterator[Any]:
    """Factory: ``start(monitor, extra, env) -> (cfg, bus, proc)``; everything is torn down after the test."""
    started: list[tuple[TestBus, MonitorProcess]] = []

    def start(
        monitor: str = "", extra: str = "", env: dict[str, str] | None = None
    ) -> tuple[Config, TestBus, MonitorProcess]:
        """`monitor`: more ``[monitor]`` keys; `extra`: other TOML sections."""
        path = write_config(short_tmp, QUIET_MACHINE + monitor + "\n" + extra)
        cfg = load_config(path, env={})
        bus = TestBus(cfg)
        proc = MonitorProcess(path, env)
        started.append((bus, proc))
        return cfg, bus, proc

    yield start
    for bus, proc in started:
        proc.stop()
        bus.close()
