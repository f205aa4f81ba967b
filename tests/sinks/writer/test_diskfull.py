"""Disk full on a real 8 MiB tmpfs: CRITICAL event (event bus now, archive when possible), no partial
line ever, intake bounded, and after space is freed the archive resumes; whatever overflowed the
producer's replay bound is a gap marker with its exact seq range, and nothing else is missing."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from click.testing import CliRunner

from observer.bus import EventSubscriber, Forwarder, stats_topic, system_topic
from observer.cli import cli
from observer.schema import ArchiveRecord, SystemEvent, WriterStats
from testkit.records import DAY, record
from tests.conftest import wait_for
from tests.sinks.writer.conftest import WRITER_TOML, Rig
from tests.sinks.writer.support import Producer, read_archive


@pytest.fixture
def tmpfs_rig(rig_factory: Any) -> Iterator[Rig]:
    toml = WRITER_TOML.replace(
        "[writer]\n", "[writer]\nqueue_bytes = 65536\ndisk_retry_ms = 200\nrecv_hwm = 20\n"
    )
    rig: Rig = rig_factory(toml)
    rig.root.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(rig.root)], check=True)
    try:
        yield rig
    finally:
        rig.cleanup()
        subprocess.run(["umount", "-l", str(rig.root)], check=False)


def sample(i: int) -> ArchiveRecord:
    return record("scalp", f"sc-{i}", DAY + timedelta(seconds=i / 10))


def no_partial_line(root: Path) -> bool:
    for path in root.rglob("*.jsonl"):
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            return False
    return True


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.mark.timeout(90)
def test_disk_full_critical_no_partial_line_resume_and_exact_gap(
    tmpfs_rig: Rig, ctx: zmq.Context[Any]
) -> None:
    rig = tmpfs_rig
    forwarder = Forwarder(ctx, rig.cfg)
    forwarder.start()
    sub = EventSubscriber(ctx, rig.cfg, [system_topic("writer"), stats_topic("writer")])
    seen: list[Any] = []

    def events() -> list[Any]:
        while (got := sub.recv_nowait()) is not None:
            seen.append(got[1])
        return seen

    writer = rig.start_writer()
    # a small zmq send queue, so that what the producer abandons was really never transmitted
    small = msgspec.structs.replace(rig.cfg, bus=msgspec.structs.replace(rig.cfg.bus, send_hwm=20))
    prod = Producer(ctx, small, replay_buffer_bytes=128 * 1024)
    try:
        prod.start()  # send the schedule only once the writer is bound: a receiver cannot see a hole
        prod.submit([record("system", "probe", DAY)])  # before the first envelope it gets
        wait_for(prod.all_acked, 15, what="writer running")
        prod.start_schedule(sample, 1000.0, count=1_000_000)
        filler = rig.root / "filler"
        filler.write_bytes(b"\0" * max(0, free_bytes(rig.root) - 120 * 1024))
        critical = wait_for(
            lambda: [e for e in events() if isinstance(e, SystemEvent) and e.type == "disk_error"],
            20,
            what="CRITICAL disk_error event on the event bus",
        )[0]
        assert critical.severity == "CRITICAL"
        wait_for(lambda: any(isinstance(s, WriterStats) and s.disk_error for s in events()), 10)
        acked_when_full = prod.sender.acked
        # beyond what the pipes hold (writer queue, zmq queues, ~2 MB of socket buffers): never transmitted
        wait_for(lambda: prod.sender.abandoned > 1000, 30, what="the producer's replay bound overflows")
        assert no_partial_line(rig.root)
        assert prod.sender.acked == acked_when_full  # nothing acknowledged while the disk is full
        paused = [s for s in events() if isinstance(s, WriterStats) and s.intake_paused]
        assert all(s.queue_bytes < 65536 + 4096 for s in paused)
        filler.unlink()
        total = prod.stop_schedule()
        wait_for(prod.all_acked, 30, what="everything acknowledged after space returned")
        wait_for(
            lambda: [e for e in events() if isinstance(e, SystemEvent) and e.type == "disk_recovered"], 10
        )
    finally:
        prod.close()
        sub.close()
        writer.terminate()
        writer.wait(15)
        forwarder.stop()
    archive = read_archive(rig.root)
    types = [e.get("type") for e in archive["events"]]
    assert "disk_error" in types and "disk_recovered" in types  # written to the archive when possible
    written = Counter(d["record_id"] for d in archive["scalp"])
    assert max(written.values()) == 1
    lost: set[int] = set()
    for m in (e for e in archive["events"] if e.get("type") == "gap_marker"):
        assert m["details"]["run_id"] == prod.sender.run_id
        lost |= set(range(m["details"]["first_seq"], m["details"]["last_seq"] + 1))
    assert lost, "the overflow beyond the producer's replay bound must be a gap marker"
    abandoned: set[int] = set()
    for g in prod.gaps:
        abandoned |= set(range(g.first, g.last + 1))
    assert lost <= abandoned
    for seq in range(2, total + 2):
        rid = prod.seq_ids[seq][1]
        assert (rid in written) != (seq in lost), (seq, rid)
    result = CliRunner().invoke(cli, ["verify", str(rig.root)])
    assert result.exit_code == 0, result.output
