"""A real housekeeper process (`observer --config X worker housekeeper`) on a test-owned bus.

The test plays the supervisor's event forwarder and the core's ingest receiver (a
`ReliableReceiver` that acks what it gets), and subscribes to ``alert.`` on the event bus.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from observer.bus import ALERT, EventSubscriber, Forwarder, ingest_decoder
from observer.config import Config
from observer.reliable import ReliableReceiver, hop_endpoints
from observer.schema import EventBody, SystemEvent
from tests.conftest import REPO, terminate


class HkBus:
    def __init__(self, cfg: Config):
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.forwarder = Forwarder(self.ctx, cfg)
        self.forwarder.start()
        self.receiver = ReliableReceiver(self.ctx, cfg, "observer", *hop_endpoints(cfg, "ingest"))
        self.sub = EventSubscriber(self.ctx, cfg, [ALERT])
        self.ingested: list[SystemEvent] = []
        self.alerts: list[tuple[str, EventBody]] = []

    def drain(self) -> None:
        for env in self.receiver.receive():
            body = ingest_decoder.decode(env.body)
            if isinstance(body, SystemEvent):
                self.ingested.append(body)
            self.receiver.ack(env.producer, env.run_id, env.seq)
        self.receiver.republish_acks()
        while (item := self.sub.recv_nowait()) is not None:
            self.alerts.append(item)

    def events_of(self, type_: str) -> list[SystemEvent]:
        self.drain()
        return [e for e in self.ingested if e.type == type_]

    def close(self) -> None:
        self.sub.close()
        self.receiver.close()
        self.forwarder.stop()
        self.ctx.destroy(linger=0)


class HkProcess:
    def __init__(self, config_path: Path, anchor_epoch_s: float):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVER_", "TELEGRAM_", "KIS_"))}
        env["OBSERVER_CLOCK_ANCHOR"] = repr(anchor_epoch_s)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self.stderr_path = config_path.parent / "housekeeper.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "observer", "--config", str(config_path), "worker", "housekeeper"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self.started_at = time.time()

    def stop(self) -> int:
        code = terminate(self.proc, 10)
        self._stderr.close()
        return code

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")
