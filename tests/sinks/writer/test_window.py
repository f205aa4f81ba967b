"""The de-duplication window on real processes: kill -9 of the writer under load with a window that
rotates every half second (its marks rebuilt on every start), a restarted producer resending what is
already archived, and the window's size staying bounded."""

from __future__ import annotations

import random
import signal
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import zmq
from click.testing import CliRunner

from observer.bus import EventSubscriber, Forwarder, stats_topic
from observer.cli import cli
from observer.schema import ArchiveRecord, WriterStats
from testkit.records import DAY, record
from tests.conftest import wait_for
from tests.sinks.writer.conftest import WRITER_TOML, Rig
from tests.sinks.writer.support import Producer, read_archive

GENERATION_BYTES = 1_000_000  # ~1,100 scalp lines: the window rotates every ~0.5 s at 2,000/s
COMMIT_RECORDS = 1_000
SMALL_WINDOW = WRITER_TOML.replace(
    "[writer]\n",
    f"[writer]\ndedupe_generation_bytes = {GENERATION_BYTES}\nmax_batch_records = {COMMIT_RECORDS}\n",
)
RATE_PER_S = 2_000.0
KILLS = 6


def busy(i: int) -> ArchiveRecord:
    at = DAY + timedelta(milliseconds=20 * i)
    return record("swing", f"sw-{i}", at) if i % 41 == 40 else record("scalp", f"sc-{i}", at)


def _archived_ids(rig: Rig) -> Counter[str]:
    archive = read_archive(rig.root)
    return Counter(d["record_id"] for key in ("scalp", "swing") for d in archive[key])


@pytest.mark.timeout(120)
def test_sigkill_under_load_with_a_rotating_window(rig_factory: Any, ctx: zmq.Context[Any]) -> None:
    rig: Rig = rig_factory(SMALL_WINDOW)
    rng = random.Random(12)
    forwarder = Forwarder(ctx, rig.cfg)
    forwarder.start()
    stats = EventSubscriber(ctx, rig.cfg, [stats_topic("writer")])
    prod = Producer(ctx, rig.cfg, transmit_on_send=False, hold_above_bytes=16 << 20)
    prod.start(busy, RATE_PER_S, count=10_000_000)
    ids_seen: list[float] = []
    try:
        for n in range(KILLS):
            writer = rig.start_writer()
            start = prod.sender.acked
            wait_for(lambda s=start: prod.sender.acked > s + 2_000, 20, what=f"writer {n} commits")
            floor = prod.sender.acked
            wait_for(lambda f=floor: prod.sender.acked > f + rng.randint(0, 300), 5, what="more commits")
            writer.send_signal(signal.SIGKILL)
            assert writer.wait(10) == -signal.SIGKILL, rig.output()[-3000:]
        total = prod.stop_schedule()
        writer = rig.start_writer()
        wait_for(prod.all_acked, 60, what="everything acknowledged by the last writer")
        assert prod.sender.abandoned == 0

        def window_size_reported() -> bool:
            while (got := stats.recv_nowait()) is not None:
                if isinstance(got[1], WriterStats) and got[1].index_ready:
                    ids_seen.append(got[1].index_ids)
            return len(ids_seen) >= 2

        wait_for(window_size_reported, 15, what="stats.writer with the window size")
        writer.terminate()
        assert writer.wait(15) == 0, rig.output()[-3000:]
    finally:
        prod.close()
        stats.close()
        forwarder.stop()
    ids = _archived_ids(rig)
    expected = {busy(i).record_id for i in range(total)}
    missing, extra = sorted(expected - set(ids)), sorted(set(ids) - expected)
    assert not missing and not extra, (missing[:20], extra[:20], rig.output()[-3000:])
    assert max(ids.values()) == 1, [k for k, v in ids.items() if v > 1][:20]
    assert total > 12_000 and prod.sender.resend_rounds >= KILLS // 2  # real load, real resends
    # bounded: a generation is ~1 MB of ~900-byte lines plus the commit that fills it; two of them,
    # three right after a start (what was loaded, the young one) - not all 12 k+ ids
    assert max(ids_seen) < 3 * (GENERATION_BYTES / 800 + COMMIT_RECORDS), ids_seen
    assert (rig.root / "state" / "writer_window.json").exists()
    result = CliRunner().invoke(cli, ["verify", str(rig.root)])
    assert result.exit_code == 0, result.output


@pytest.mark.timeout(90)
def test_a_restarted_producer_resending_archived_records_across_a_writer_kill(
    rig: Rig, ctx: zmq.Context[Any]
) -> None:
    """A restarted core re-derives records the writer already committed (same record_ids, new run):
    the window, rebuilt from its marks by a writer that was killed in between, skips them."""
    first = Producer(ctx, rig.cfg, transmit_on_send=False)
    first.start()
    writer = rig.start_writer()
    try:
        first.submit([busy(i) for i in range(3_000)])
        wait_for(first.all_acked, 30, what="first run archived")
    finally:
        first.close()
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    second = Producer(ctx, rig.cfg, transmit_on_send=False)  # same producer name, new run id
    second.start()
    writer = rig.start_writer()
    try:
        second.submit([busy(i) for i in range(2_500, 3_200)])
        wait_for(second.all_acked, 30, what="second run acknowledged")
        writer.terminate()
        assert writer.wait(15) == 0, rig.output()[-3000:]
    finally:
        second.close()
    ids = _archived_ids(rig)
    assert set(ids) == {busy(i).record_id for i in range(3_200)}
    assert max(ids.values()) == 1


@pytest.mark.timeout(120)
def test_a_recreated_swing_sweep_is_skipped_long_after_the_window_moved_on(
    rig_factory: Any, ctx: zmq.Context[Any]
) -> None:
    """A restarted rest-collector re-runs its sweep: the same swing record_ids come back minutes
    later, after the window has rotated past them (and across a writer kill): written once."""
    rig: Rig = rig_factory(SMALL_WINDOW)

    def sweep() -> list[ArchiveRecord]:
        return [record("swing", f"sweep-0930:{i:06d}", DAY + timedelta(seconds=i / 100)) for i in range(300)]

    def scalp(start: int, n: int) -> list[ArchiveRecord]:
        return [
            record("scalp", f"sc-{i}", DAY + timedelta(milliseconds=20 * i)) for i in range(start, start + n)
        ]

    writer = rig.start_writer()
    first = Producer(ctx, rig.cfg, transmit_on_send=False)
    first.start()
    try:
        first.submit(sweep())
        first.submit(scalp(0, 4_000))  # ~3.6 MB of lines: the window rotates three times
        wait_for(first.all_acked, 60, what="first run archived")
    finally:
        first.close()
    for n, kill in enumerate((False, True)):
        if kill:
            writer.send_signal(signal.SIGKILL)
            writer.wait(10)
            writer = rig.start_writer()
        again = Producer(ctx, rig.cfg, transmit_on_send=False)  # a new run: re-created, not resent
        again.start()
        try:
            again.submit(sweep())
            again.submit(scalp(4_000 + 4_000 * n, 4_000))
            wait_for(again.all_acked, 60, what=f"re-created sweep {n} acknowledged")
        finally:
            again.close()
    writer.terminate()
    assert writer.wait(15) == 0, rig.output()[-3000:]
    archive = read_archive(rig.root)
    swing = Counter(d["record_id"] for d in archive["swing"])
    assert len(swing) == 300 and max(swing.values()) == 1, [k for k, v in swing.items() if v > 1][:10]
    assert len(archive["scalp"]) == 12_000
