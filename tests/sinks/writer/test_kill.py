"""kill -9 of the writer 20 times at nominal load (82 records/s): nothing lost, nothing twice,
no torn line, `observer verify` clean."""

from __future__ import annotations

import random
import signal
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import zmq
from click.testing import CliRunner

from observer.cli import cli
from observer.schema import ArchiveRecord
from testkit.records import DAY, record
from tests.conftest import wait_for
from tests.sinks.writer.conftest import Rig
from tests.sinks.writer.support import Producer, read_archive

RATE_PER_S = 82.0
KILLS = 20


def nominal(i: int) -> ArchiveRecord:
    """Scalp samples of 41 slots at 2 Hz and, every 41st, a swing record; time runs 60x so that the
    run crosses hour and rotation boundaries."""
    at = DAY + timedelta(seconds=i * 30 / 41)
    if i % 41 == 40:
        return record("swing", f"sw-{i}", at)
    return record("scalp", f"sc-{i}", at)


def acked_beyond(prod: Producer, seq: int) -> Callable[[], bool]:
    return lambda: prod.sender.acked > seq


@pytest.mark.timeout(90)
def test_sigkill_twenty_times_at_nominal_load(rig: Rig, ctx: zmq.Context[Any]) -> None:
    rng = random.Random(4)
    prod = Producer(ctx, rig.cfg)
    prod.start(nominal, RATE_PER_S, count=1_000_000)
    try:
        for n in range(KILLS):
            writer = rig.start_writer()
            wait_for(acked_beyond(prod, prod.sender.acked), 15, what=f"writer {n} commits")
            # kill at a random point of the group-commit cycle
            wait_for(acked_beyond(prod, prod.sender.acked + rng.randint(0, 11)), 5, what="a few more commits")
            writer.send_signal(signal.SIGKILL)
            assert writer.wait(10) == -signal.SIGKILL, rig.output()[-3000:]
        total = prod.stop_schedule()
        writer = rig.start_writer()
        lock = rig.root / "state" / "writer.lock"
        wait_for(lambda: lock.read_text().strip() == str(writer.pid), 15, what="the last writer is up")
        rig.wait_started(writer)  # its lock comes before its SIGTERM handler
        wait_for(prod.all_acked, 30, what="everything acknowledged by the last writer")
        assert prod.sender.abandoned == 0
        writer.terminate()
        assert writer.wait(15) == 0, rig.output()[-3000:]
    finally:
        prod.close()
    archive = read_archive(rig.root)
    ids = Counter(d["record_id"] for key in ("scalp", "swing") for d in archive[key])
    expected = {nominal(i).record_id for i in range(total)}
    missing, extra = sorted(expected - set(ids)), sorted(set(ids) - expected)
    assert not missing and not extra, (missing[:20], extra[:20], rig.output()[-3000:])
    assert max(ids.values()) == 1
    assert total > 400 and prod.sender.resend_rounds >= KILLS // 2  # real load, real resends
    result = CliRunner().invoke(cli, ["verify", str(rig.root)])
    assert result.exit_code == 0, result.output
