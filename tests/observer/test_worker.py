import threading
import time
from pathlib import Path

from observer.worker_base import Worker
from testkit.config import make_config
from tests.conftest import wait_for


class _Counting(Worker):
    name = "counting"
    tick_interval_s = 0.05

    def on_start(self) -> None:
        self.ticks = 0

    def on_tick(self) -> None:
        self.ticks += 1


def test_a_worker_without_sockets_waits_its_tick_interval_instead_of_spinning(short_tmp: Path) -> None:
    worker = _Counting(make_config(short_tmp))
    thread = threading.Thread(target=worker.run, daemon=True)
    started = time.monotonic()
    thread.start()
    wait_for(lambda: getattr(worker, "ticks", 0) >= 6, 10, what="a few loop turns")
    worker.request_stop()
    thread.join(5)
    elapsed = time.monotonic() - started
    assert not thread.is_alive()
    # a spinning loop turns thousands of times a second; this one once per tick interval
    assert worker.ticks <= elapsed / worker.tick_interval_s + 3, (worker.ticks, elapsed)
