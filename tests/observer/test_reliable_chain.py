"""The reliable bus on real processes and real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from observer.bus import context, ingest_decoder
from observer.clock import SystemClock
from observer.reliable import ReliableReceiver, ReliableSender, SeqGap, hop_endpoints
from observer.schema import SystemEvent
from testkit.config import make_config, write_config
from tests.conftest import REPO, wait_for


def _spawn(role: str, cfg_path: Path, work: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.observer.chain_procs", role, str(cfg_path), str(work), *extra],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _sink_ids(work: Path) -> list[int]:
    log = work / "sink.log"
    if not log.exists():
        return []
    data = log.read_bytes()
    return [int(x) for x in data[: data.rfind(b"\n") + 1].split()]


@pytest.mark.timeout(120)
def test_kill_each_process_in_turn_loses_and_duplicates_nothing(short_tmp: Path) -> None:
    cfg_path = write_config(
        short_tmp, "[bus]\nresend_after_ms = 200\nresend_max_ms = 800\nack_republish_ms = 200\n"
    )
    count, rate = 3000, 400.0
    procs = {
        "sink": _spawn("sink", cfg_path, short_tmp),
        "middle": _spawn("middle", cfg_path, short_tmp),
        "source": _spawn("source", cfg_path, short_tmp, str(count), str(rate)),
    }
    try:
        for round_no in range(10):
            role = ("source", "middle", "sink")[round_no % 3]
            before = len(_sink_ids(short_tmp))
            wait_for(lambda b=before: len(_sink_ids(short_tmp)) > b + 50, 20, what="records flowing")
            procs[role].send_signal(signal.SIGKILL)
            procs[role].wait(5)
            extra = (str(count), str(rate)) if role == "source" else ()
            procs[role] = _spawn(role, cfg_path, short_tmp, *extra)
        wait_for(lambda: len(set(_sink_ids(short_tmp))) >= count, 60, what="every record at the sink")
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    ids = _sink_ids(short_tmp)
    assert len(ids) == count, f"{len(ids) - len(set(ids))} duplicates"
    assert ids == sorted(ids), "records out of order"
    assert ids == list(range(count))


def _event(i: int) -> SystemEvent:
    return SystemEvent(record_id=str(i), type="t", severity="INFO", at=SystemClock().now(), source="test")


def test_receiver_down_longer_than_replay_bound_reports_exact_gap(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, "[bus]\nresend_after_ms = 100\nack_republish_ms = 100\n")
    ctx = context()
    ep, ack = hop_endpoints(cfg, "ingest")
    sender_gaps: list[SeqGap] = []
    receiver_gaps: list[SeqGap] = []
    sender = ReliableSender(ctx, cfg, "src", ep, ack, on_gap=sender_gaps.append, replay_buffer_bytes=20_000)
    sizes = [sender.send(_event(i)) for i in range(1000)]  # nobody listening yet
    assert sizes[-1] == 1000
    assert sender.abandoned > 0 and sender_gaps
    first_kept = sender.floor
    assert sender_gaps[0].first == 1 and sender_gaps[-1].last == first_kept - 1
    receiver = ReliableReceiver(ctx, cfg, "core", ep, ack, on_gap=receiver_gaps.append)
    got: list[int] = []
    try:

        def drain() -> bool:
            sender.pump()
            for env in receiver.receive():
                got.append(int(ingest_decoder.decode(env.body).record_id))  # type: ignore[union-attr]
                receiver.ack(env.producer, env.run_id, env.seq)
            receiver.republish_acks()  # acks sent before the producer's SUB connected are lost
            return sender.unacked == 0 and len(got) >= 1000 - first_kept + 1

        wait_for(drain, 10, what="kept records delivered")
        assert got == list(range(first_kept - 1, 1000)), "everything not abandoned arrives, in order"
        sum_abandoned = sum(g.count for g in sender_gaps)
        assert sum_abandoned == first_kept - 1 == sender.abandoned
    finally:
        sender.close()
        receiver.close()


def test_receiver_reports_exact_hole_when_producer_abandons(short_tmp: Path) -> None:
    # A live receiver that cannot keep up (small HWMs, not reading): the producer abandons its oldest
    # untransmitted entries; the receiver, which kept its state, reports exactly the seqs it never got.
    cfg = make_config(
        short_tmp, "[bus]\nresend_after_ms = 100\nack_republish_ms = 100\nsend_hwm = 20\nrecv_hwm = 20\n"
    )
    ctx = context()
    ep, ack = hop_endpoints(cfg, "ingest")
    receiver_gaps: list[SeqGap] = []
    sender_gaps: list[SeqGap] = []
    receiver = ReliableReceiver(ctx, cfg, "core", ep, ack, on_gap=receiver_gaps.append)
    sender = ReliableSender(ctx, cfg, "src", ep, ack, on_gap=sender_gaps.append, replay_buffer_bytes=30_000)
    seen: list[int] = []
    try:
        sender.send(_event(0))

        def first() -> bool:
            sender.pump()
            seen.extend(e.seq for e in receiver.receive())
            return bool(seen)

        wait_for(first, 5, what="first message")
        for i in range(1, 2000):
            sender.send(_event(i))
        assert sender.abandoned > 0 and sender_gaps

        def drain() -> bool:
            sender.pump()
            for env in receiver.receive():
                seen.append(env.seq)
                receiver.ack(env.producer, env.run_id, env.seq)
            receiver.republish_acks()  # acks beyond the tiny HWM are dropped; the latest is re-sent
            return sender.unacked == 0

        wait_for(drain, 10, what="drained")
        assert receiver_gaps
        received = set(seen)
        missing = [s for s in range(1, 2001) if s not in received]
        reported = [s for g in receiver_gaps for s in range(g.first, g.last + 1)]
        assert missing == reported, "the holes are exactly what never arrived"
        assert seen == sorted(seen)
        abandoned = {s for g in sender_gaps for s in range(g.first, g.last + 1)}
        assert set(missing) <= abandoned, "the producer's own report covers every lost seq"
    finally:
        sender.close()
        receiver.close()


def test_send_never_blocks_without_receiver(short_tmp: Path) -> None:
    cfg = make_config(short_tmp)
    ctx = context()
    ep, ack = hop_endpoints(cfg, "ingest")
    sender = ReliableSender(ctx, cfg, "src", ep, ack, replay_buffer_bytes=1_000_000)
    try:
        for i in range(20_000):
            sender.send(_event(i))
        assert sender.unacked_bytes <= 1_000_000
        assert sender.last_seq == 20_000
    finally:
        sender.close()


def test_duplicates_dropped_after_go_back(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, "[bus]\nresend_after_ms = 50\n")
    ctx = context()
    ep, ack = hop_endpoints(cfg, "ingest")
    receiver = ReliableReceiver(ctx, cfg, "core", ep, ack)
    sender = ReliableSender(ctx, cfg, "src", ep, ack)
    got: list[int] = []
    try:
        for i in range(100):
            sender.send(_event(i))

        def collect_no_ack() -> bool:
            sender.pump()
            got.extend(e.seq for e in receiver.receive())
            return sender.resend_rounds >= 2

        wait_for(collect_no_ack, 10, what="two resend rounds")
        assert got == list(range(1, 101)), "resent copies are dropped as duplicates"
        assert receiver.duplicates >= 100
        receiver.ack("src", sender.run_id, 100)
        wait_for(lambda: (sender.pump(), sender.unacked == 0)[1], 5, what="acked")
    finally:
        sender.close()
        receiver.close()


def test_ipc_endpoints_live_in_private_runtime_dir(short_tmp: Path) -> None:
    cfg = make_config(short_tmp)
    ctx = context()
    receiver = ReliableReceiver(ctx, cfg, "core", *hop_endpoints(cfg, "ingest"))
    try:
        run = short_tmp / "run"
        assert oct(run.stat().st_mode & 0o777) == oct(0o700)
        assert oct((run / "ingest.sock").stat().st_mode & 0o777) == oct(0o600)
    finally:
        receiver.close()
    _ = os
