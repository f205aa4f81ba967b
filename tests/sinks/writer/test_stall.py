"""The writer stalled (SIGSTOP) at nominal load: the producer's send loop keeps its schedule and never
blocks, its memory stays inside the replay bound, and every record lands after SIGCONT.

The unit test stalls for ``WRITER_STALL_S`` seconds (default 6); ``WRITER_STALL_S=30`` is the
specification's variant: ``WRITER_STALL_S=30 .venv/bin/pytest tests/sinks/writer/test_stall.py``."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import zmq

from observer.schema import ArchiveRecord
from testkit.records import DAY, record
from tests.conftest import wait_for
from tests.sinks.writer.conftest import Rig
from tests.sinks.writer.support import Producer, read_archive

STALL_S = float(os.environ.get("WRITER_STALL_S", "6"))
RATE_PER_S = 82.0
REPLAY_BOUND_BYTES = 4 * 1024 * 1024


def sample(i: int) -> ArchiveRecord:
    return record("scalp", f"sc-{i}", DAY + timedelta(seconds=i / RATE_PER_S))


@pytest.mark.timeout(60 + 2 * STALL_S)
def test_stalled_writer_costs_the_producer_neither_time_nor_memory(rig: Rig, ctx: zmq.Context[Any]) -> None:
    writer = rig.start_writer()
    prod = Producer(ctx, rig.cfg, replay_buffer_bytes=REPLAY_BOUND_BYTES)
    prod.start(sample, RATE_PER_S, count=1_000_000)
    try:
        wait_for(lambda: prod.sender.acked > 20, 15, what="writer running")
        os.kill(writer.pid, signal.SIGSTOP)
        stalled_at = time.monotonic()
        acked_at_stop = prod.sender.acked
        wait_for(lambda: time.monotonic() - stalled_at >= STALL_S, STALL_S + 5, interval_s=0.1, what="stall")
        assert prod.sender.acked <= acked_at_stop + 50  # it really was stalled (in-flight acks only)
        backlog = prod.sender.unacked
        os.kill(writer.pid, signal.SIGCONT)
        wait_for(lambda: prod.sender.unacked < 100, 30, what="backlog drained after SIGCONT")
        total = prod.stop_schedule()
        wait_for(prod.all_acked, 20, what="all acknowledged")
    finally:
        os.kill(writer.pid, signal.SIGCONT)
        prod.close()
    writer.terminate()
    assert writer.wait(15) == 0
    assert backlog >= RATE_PER_S * STALL_S * 0.8
    assert prod.max_send_s < 0.02, f"a send call took {prod.max_send_s * 1000:.1f} ms"
    assert prod.late_ticks <= max(2, total // 200), f"{prod.late_ticks} of {total} sends were > 50 ms late"
    assert prod.max_unacked_bytes <= REPLAY_BOUND_BYTES
    assert prod.sender.abandoned == 0
    ids = Counter(d["record_id"] for d in read_archive(rig.root)["scalp"])
    assert set(ids) == {f"sc-{i}" for i in range(total)} and max(ids.values()) == 1
