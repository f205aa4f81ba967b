"""The writer as a real process on the real archive hop: placement, modes, acks after fsync,
exactly-once across restarts, bad input, seq holes, torn-tail repair, the data-dir lock."""

from __future__ import annotations

import os
import signal
import stat
from datetime import datetime, timedelta
from typing import Any

import msgspec
import zmq
from click.testing import CliRunner

from observer.cli import cli
from observer.schema import ArchiveRecord, SystemEvent
from testkit.records import DAY, line_for, record
from tests.conftest import wait_for
from tests.sinks.writer.conftest import Rig
from tests.sinks.writer.support import Producer, events_of, read_archive, stop

TRACKS = ("swing", "scalp", "raw", "system", "overflow", "metrics")


def verify_ok(rig: Rig) -> str:
    result = CliRunner().invoke(cli, ["verify", str(rig.root)])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_track_lands_acked_in_place_with_private_modes(rig: Rig, ctx: zmq.Context[Any]) -> None:
    rig.start_writer()
    prod = Producer(ctx, rig.cfg)
    prod.start()
    try:
        recs = [record(t, f"{t}-{i}", DAY + timedelta(minutes=13 * i)) for t in TRACKS for i in range(12)]
        prod.submit(recs)
        wait_for(prod.all_acked, 15, what="all records acknowledged")
    finally:
        prod.close()
    archive = read_archive(rig.root)
    assert sorted(d["record_id"] for d in archive["swing"]) == sorted(f"swing-{i}" for i in range(12))
    for key in ("scalp", "raw", "events", "overflow", "metrics"):
        assert len(archive[key]) == 12, key
    files = {d["_file"] for docs in archive.values() for d in docs}
    assert "swing/kis/KOSPI/20261126/09_00.jsonl" in files
    assert "swing/kis/KOSPI/20261126/11_00.jsonl" in files
    assert "scalp/kis/KOSPI/20261126/09_30_00.jsonl" in files
    assert "system/overflow/kis/20261126_overflow.jsonl" in files
    for dirpath, dirs, names in os.walk(rig.root):
        for d in dirs:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode) == 0o700, d
        for n in names:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, n)).st_mode) == 0o600, n
    assert verify_ok(rig).startswith("verify: OK")


def test_exactly_once_across_resends_and_restarts(rig: Rig, ctx: zmq.Context[Any]) -> None:
    recs = [record("scalp", f"sc-{i}", DAY + timedelta(seconds=i / 2)) for i in range(60)]
    writer = rig.start_writer()
    for round_ in range(3):
        prod = Producer(ctx, rig.cfg, producer="core")  # a new run each round: a restarted core
        prod.start()
        prod.submit(recs)
        wait_for(prod.all_acked, 15, what=f"round {round_} acknowledged")
        prod.close()
        if round_ == 1:
            assert stop(writer) == 0
            writer = rig.start_writer()
    stop(writer)
    ids = [d["record_id"] for d in read_archive(rig.root)["scalp"]]
    assert sorted(ids) == sorted(r.record_id for r in recs)
    verify_ok(rig)


def test_bad_input_is_rejected_with_events_acked_and_never_written(rig: Rig, ctx: zmq.Context[Any]) -> None:
    rig.start_writer()
    prod = Producer(ctx, rig.cfg)
    prod.start()
    good = record("swing", "sw-good", DAY)
    naive = DAY.replace(tzinfo=None)
    bad = [
        ArchiveRecord(
            track="swing",
            provider="kis",
            market="KOSPI",
            partition_at=DAY,
            record_id="b1",
            line=msgspec.Raw(b'"nope"'),
        ),
        ArchiveRecord(
            track="swing",
            provider="kis",
            market="KOSPI",
            partition_at=DAY,
            record_id="b2",
            line=msgspec.Raw(b'{"record_id": "b2",\n"x": 1}'),
        ),
        ArchiveRecord(
            track="swing",
            provider="kis",
            market="../up",
            partition_at=DAY,
            record_id="b3",
            line=msgspec.Raw(line_for("swing", "b3", DAY)),
        ),
        ArchiveRecord(
            track="swing",
            provider="kis",
            market="KOSPI",
            partition_at=naive,
            record_id="b4",
            line=msgspec.Raw(line_for("swing", "b4", DAY)),
        ),
        ArchiveRecord(
            track="swing",
            provider="kis",
            market="KOSPI",
            partition_at=DAY,
            record_id="b5",
            line=msgspec.Raw(line_for("swing", "other", DAY)),
        ),
    ]
    try:
        prod.submit([*bad, good])
        # a message of the wrong kind on the archive hop
        prod.submit([SystemEvent(record_id="x", type="t", severity="INFO", at=DAY, source="t")])
        wait_for(prod.all_acked, 15, what="bad input acknowledged too")
    finally:
        prod.close()
    archive = read_archive(rig.root)
    assert [d["record_id"] for d in archive["swing"]] == ["sw-good"]
    rejected = wait_for(lambda: events_of(rig.root, "archive_rejected"), 5)
    messages = " | ".join(e["message"] for e in rejected)
    for needle in (
        "not a JSON object",
        "newline",
        "safe path component",
        "no UTC offset",
        "differs",
        "undecodable",
    ):
        assert needle in messages, (needle, messages)
    verify_ok(rig)


def test_seq_hole_becomes_gap_marker_with_exact_range(rig: Rig, ctx: zmq.Context[Any]) -> None:
    writer = rig.start_writer()
    # a small zmq send queue, so that what the producer abandons was really never transmitted
    small = msgspec.structs.replace(rig.cfg, bus=msgspec.structs.replace(rig.cfg.bus, send_hwm=20))
    prod = Producer(ctx, small, replay_buffer_bytes=8_000)
    prod.start()
    try:
        prod.submit([record("scalp", f"sc-{i}", DAY + timedelta(seconds=i)) for i in range(5)])
        wait_for(prod.all_acked, 15, what="first records")
        os.kill(writer.pid, signal.SIGSTOP)
        prod.submit([record("scalp", f"sc-{i}", DAY + timedelta(seconds=i / 10)) for i in range(5, 800)])
        wait_for(lambda: prod.gaps, 10, what="the producer abandons its oldest records")
        os.kill(writer.pid, signal.SIGCONT)
        wait_for(prod.all_acked, 20, what="the rest acknowledged")
    finally:
        os.kill(writer.pid, signal.SIGCONT)
        prod.close()
    stop(writer)
    archive = read_archive(rig.root)
    written = {d["record_id"] for d in archive["scalp"]}
    markers = [e for e in archive["events"] if e.get("type") == "gap_marker"]
    assert markers and all(m["track"] == "bus" and m["detected_by"] == "writer" for m in markers)
    lost: set[int] = set()
    for m in markers:
        assert m["details"]["producer"] == "core" and m["details"]["run_id"] == prod.sender.run_id
        lost |= set(range(m["details"]["first_seq"], m["details"]["last_seq"] + 1))
    assert lost
    for seq, (_track, rid) in prod.seq_ids.items():
        assert (rid in written) != (seq in lost), (seq, rid)  # written exactly when not reported lost
    verify_ok(rig)


def test_torn_tail_repaired_on_start_with_event(rig: Rig, ctx: zmq.Context[Any]) -> None:
    path = rig.root / "swing/kis/KOSPI/20261126/09_00.jsonl"
    path.parent.mkdir(parents=True, mode=0o700)
    for p in (rig.root, *path.relative_to(rig.root).parents):
        os.chmod(rig.root / p, 0o700)
    good = line_for("swing", "sw-0", DAY) + b"\n"
    torn = line_for("swing", "sw-1", DAY)[:57]
    path.write_bytes(good + torn)
    os.chmod(path, 0o600)
    rig.start_writer()
    event = wait_for(lambda: events_of(rig.root, "torn_line_repaired"), 15, what="repair event")[0]
    assert event["details"] == {
        "file": "swing/kis/KOSPI/20261126/09_00.jsonl",
        "bytes_removed": 57,
        "size_before": len(good) + 57,
    }
    assert path.read_bytes() == good
    prod = Producer(ctx, rig.cfg)  # the producer re-sends the torn record: it lands whole
    prod.start()
    prod.submit([record("swing", "sw-1", DAY)])
    wait_for(prod.all_acked, 15)
    prod.close()
    assert [d["record_id"] for d in read_archive(rig.root)["swing"]] == ["sw-0", "sw-1"]
    verify_ok(rig)


def test_second_writer_on_the_same_data_dir_is_refused(rig: Rig, ctx: zmq.Context[Any]) -> None:
    first = rig.start_writer()
    lock = rig.root / "state" / "writer.lock"
    wait_for(
        lambda: lock.exists() and lock.read_text().strip() == str(first.pid), 15, what="first writer locked"
    )
    second = rig.start_writer()
    assert second.wait(20) == 3
    assert "another writer" in rig.output() and str(first.pid) in rig.output()
    prod = Producer(ctx, rig.cfg)
    prod.start()
    prod.submit([record("raw", "raw-1", DAY)])
    wait_for(prod.all_acked, 15, what="the first writer still serves")
    prod.close()
    assert first.poll() is None


def _decode_lines(data: bytes) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in data.splitlines()]


def test_kst_partition_of_utc_timestamps(rig: Rig, ctx: zmq.Context[Any]) -> None:
    rig.start_writer()
    prod = Producer(ctx, rig.cfg)
    prod.start()
    utc = datetime.fromisoformat("2026-11-26T14:59:59.999+00:00")  # 23:59:59.999 KST
    prod.submit([record("raw", "r-a", utc), record("raw", "r-b", utc + timedelta(milliseconds=1))])
    wait_for(prod.all_acked, 15)
    prod.close()
    assert len(_decode_lines((rig.root / "raw/kis/KOSPI/20261126/23_00.jsonl").read_bytes())) == 1
    assert len(_decode_lines((rig.root / "raw/kis/KOSPI/20261127/00_00.jsonl").read_bytes())) == 1
    verify_ok(rig)
