"""Scalp rotation in the real writer driven by `mitigation` events on the event bus: every boundary
(10/30/60 min, hour, day, level change mid-file) loses and duplicates nothing, files follow the
documented rule, `stats.writer` reports it, and `observer verify` accepts the result."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import zmq
from click.testing import CliRunner

from observer.bus import MITIGATION, EventPublisher, EventSubscriber, Forwarder, stats_topic
from observer.cli import cli
from observer.clock import KST
from observer.schema import MitigationLevel, WriterStats
from sinks.writer.partitions import Partitioner
from testkit.records import record
from tests.conftest import wait_for
from tests.sinks.writer.conftest import Rig
from tests.sinks.writer.support import Producer, read_archive

T0 = datetime(2026, 11, 26, 9, 30, tzinfo=KST)
# (level, first minute, last minute exclusive) relative to T0; samples every 20 s
PHASES = [(0, 0, 35), (2, 35, 95), (1, 95, 160), (0, 160, 175), (2, 175, 240)]


def test_rotation_follows_levels_without_loss_or_duplicate(
    rig: Rig, ctx: zmq.Context[Any], tmp_path: Path
) -> None:
    forwarder = Forwarder(ctx, rig.cfg)
    forwarder.start()
    pub = EventPublisher(ctx, rig.cfg)
    stats = EventSubscriber(ctx, rig.cfg, [stats_topic("writer")])
    writer = rig.start_writer()
    prod = Producer(ctx, rig.cfg)
    prod.start()
    model = Partitioner(tmp_path)  # the documented rule, applied to the same sequence
    expected_files: Counter[str] = Counter()
    sent: list[str] = []
    last: list[WriterStats] = []

    def writer_level_is(level: int) -> bool:
        pub.publish(MITIGATION, MitigationLevel(level=level, at=T0))
        while (got := stats.recv_nowait()) is not None:
            if isinstance(got[1], WriterStats):
                last.append(got[1])
        return bool(last) and last[-1].mitigation_level == level

    try:
        times = [(lvl, T0 + timedelta(seconds=s)) for lvl, a, b in PHASES for s in range(a * 60, b * 60, 20)]
        times += [(0, T0.replace(hour=23, minute=50) + timedelta(seconds=s)) for s in range(0, 20 * 60, 30)]
        level = -1
        for n, (lvl, at) in enumerate(times):
            if lvl != level:
                if n:
                    wait_for(prod.all_acked, 15, what="previous phase committed")
                wait_for(partial(writer_level_is, lvl), 15, interval_s=0.1, what=f"writer at level {lvl}")
                level = lvl
            rid = f"sc-{n}"
            prod.submit([record("scalp", rid, at)])
            expected_files[str(model.relpath("scalp", "kis", "KOSPI", at, lvl))] += 1
            sent.append(rid)
        wait_for(prod.all_acked, 15, what="all acknowledged")
        wait_for(lambda: writer_level_is(0) and last[-1].written.get("scalp") == len(sent), 10)
    finally:
        prod.close()
        pub.close()
        stats.close()
        writer.terminate()
        writer.wait(15)
        forwarder.stop()
    docs = read_archive(rig.root)["scalp"]
    assert Counter(d["record_id"] for d in docs) == Counter(sent)
    assert Counter(d["_file"] for d in docs) == expected_files
    names = {f.rsplit("/", 2)[1] + "/" + f.rsplit("/", 1)[1] for f in expected_files}
    for name in (
        "20261126/09_30_00.jsonl",
        "20261126/09_40_00.jsonl",
        "20261126/10_00_00.jsonl",
        "20261126/11_00_00.jsonl",
        "20261126/11_30_00.jsonl",
        "20261126/12_10_00.jsonl",
        "20261126/12_20_00.jsonl",
        "20261126/13_00_00.jsonl",
        "20261126/23_50_00.jsonl",
        "20261127/00_00_00.jsonl",
    ):
        assert name in names, (name, sorted(names))
    # level 0 -> 2 at 10:05 continues 10_00_00 to 11:00; level 2 -> 1 at 11:05 cuts nothing before 11:30
    assert "20261126/10_05_00.jsonl" not in names
    result = CliRunner().invoke(cli, ["verify", str(rig.root)])
    assert result.exit_code == 0, result.output
