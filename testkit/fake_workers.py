"""Misbehaving workers for supervisor tests, run through the real ``observer worker NAME`` path
(registered with ``OBSERVER_EXTRA_WORKERS``, see `EXTRA_WORKERS`).

* ``fake-ok`` / ``fake-ok2``: healthy, heartbeat, stop on SIGTERM;
* ``fake-stubborn``: ignores SIGTERM (only SIGKILL ends it);
* ``fake-crash``: raises in ``on_start``, so the process exits 1 at once;
* ``fake-silent``: heartbeats for ``$FAKE_SILENT_AFTER_S`` seconds, then hangs in its loop.
"""

from __future__ import annotations

import os
import time

from observer.worker_base import Worker

EXTRA_WORKERS = ",".join(
    f"{name}=testkit.fake_workers:{cls}"
    for name, cls in (
        ("fake-ok", "HealthyWorker"),
        ("fake-ok2", "OtherHealthyWorker"),
        ("fake-stubborn", "StubbornWorker"),
        ("fake-crash", "CrashAtStartWorker"),
        ("fake-silent", "SilentWorker"),
    )
)


class HealthyWorker(Worker):
    name = "fake-ok"

    def stats(self) -> dict[str, float]:
        return {"pid": float(os.getpid())}


class OtherHealthyWorker(HealthyWorker):
    name = "fake-ok2"


class StubbornWorker(Worker):
    name = "fake-stubborn"

    def request_stop(self, *_: object) -> None:
        self.log.warning("fake: ignoring the stop signal")


class CrashAtStartWorker(Worker):
    name = "fake-crash"

    def on_start(self) -> None:
        raise RuntimeError("fake: crashing at start")


class SilentWorker(Worker):
    name = "fake-silent"

    def on_start(self) -> None:
        self._hang_at = time.monotonic() + float(os.environ.get("FAKE_SILENT_AFTER_S", "1.0"))

    def on_tick(self) -> None:
        if time.monotonic() >= self._hang_at:
            self.log.warning("fake: hanging without heartbeats")
            while True:  # a live but silent process: only a signal's default action ends it
                time.sleep(3600)
