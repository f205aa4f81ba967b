"""The control socket beyond start/stop: what the supervisor remembers from the bus, slot pins,
bad requests, and the `observer ctl` CLI in-process (click's CliRunner)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import zmq
from click.testing import CliRunner

from observer.bus import (
    MITIGATION,
    SLOTS,
    Endpoints,
    ctl_topic,
    encode,
    event_decoder,
    reply_decoder,
    stats_topic,
)
from observer.cli import cli
from observer.clock import KST
from observer.schema import Command, CoreStats, MitigationLevel, SlotAssignment, SlotCommand
from supervisor.cli import format_status
from tests.conftest import wait_for

AT = datetime(2026, 11, 26, 10, 0, tzinfo=KST)


def test_status_remembers_slots_mitigation_and_stats_and_pins_reach_the_core(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok"])
    run.wait_ready()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.connect(Endpoints(run.cfg)["events_in"])
    core = ctx.socket(zmq.SUB)  # plays the core, which acts on pins
    core.setsockopt(zmq.SUBSCRIBE, ctl_topic("observer").encode())
    core.connect(Endpoints(run.cfg)["events_out"])
    slots = SlotCommand(
        version=7,
        at=AT,
        slots=[SlotAssignment(slot_number=1, symbol="005930", rule="volume_surge", since=AT)],
    )
    try:

        def published_and_seen() -> bool:  # re-publish until the PUB has joined (no sleep for subscribers)
            pub.send_multipart([SLOTS.encode(), encode(slots)])
            pub.send_multipart(
                [MITIGATION.encode(), encode(MitigationLevel(level=1, at=AT, reasons=["cpu"]))]
            )
            pub.send_multipart(
                [
                    stats_topic("observer").encode(),
                    encode(CoreStats(worker="observer", at=AT, samples_written=3)),
                ]
            )
            status = run.status()
            return bool(status["slots"] and status["mitigation"] and status["stats"])

        wait_for(published_and_seen, 10, what="slots, mitigation and stats in the status")
        status = run.status()
        assert status["slots"]["version"] == 7 and status["slots"]["slots"][0]["symbol"] == "005930"
        assert status["mitigation"]["level"] == 1 and status["mitigation"]["reasons"] == ["cpu"]
        assert status["stats"]["observer"]["samples_written"] == 3
        assert "mitigation level 1" in format_status(status)

        runner = CliRunner()
        listed = runner.invoke(cli, ["--config", str(run.config_path), "ctl", "slots", "list"])
        assert listed.exit_code == 0, listed.output
        assert "005930" in listed.output and "volume_surge" in listed.output

        got: list[Command] = []

        def pin_arrives() -> bool:
            result = runner.invoke(cli, ["--config", str(run.config_path), "ctl", "slots", "pin", "000660"])
            assert result.exit_code == 0 and "sent" in result.output
            while core.poll(100):
                topic, body = core.recv_multipart()
                cmd = event_decoder.decode(body)
                if topic == ctl_topic("observer").encode() and isinstance(cmd, Command):
                    got.append(cmd)
            return bool(got)

        wait_for(pin_arrives, 10, what="the pin command on ctl.observer")
        assert got[0].action == "pin" and got[0].target == "000660"
    finally:
        pub.close(0)
        core.close(0)
        ctx.term()


def test_bad_requests_get_an_answer_and_change_nothing(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok"])
    run.wait_ready()
    ok, message, _ = run.request("dance")
    assert not ok and "unknown command" in message
    ok, message, _ = run.request("start", "no-such-worker")
    assert not ok and "unknown worker" in message
    ok, message, _ = run.request("pin")
    assert not ok and "SYMBOL" in message
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.connect(Endpoints(run.cfg)["control"])
    try:
        req.send(b"\x00not msgpack")
        assert req.poll(5000)
        reply = reply_decoder.decode(req.recv())
        assert not reply.ok and "malformed" in reply.message
    finally:
        req.close(0)
        ctx.term()
    assert [w["name"] for w in run.status()["workers"]] == ["fake-ok"]
    result = CliRunner().invoke(cli, ["--config", str(run.config_path), "ctl", "stop", "no-such-worker"])
    assert result.exit_code == 1


def test_ctl_start_of_a_registered_worker_not_yet_supervised(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok"])
    run.wait_ready()
    result = CliRunner().invoke(cli, ["--config", str(run.config_path), "ctl", "start", "fake-ok2"])
    assert result.exit_code == 0, result.output
    w = run.wait_state("fake-ok2", "RUNNING")
    assert w["pid"] and w["restarts"] == 0
    assert run.worker("fake-ok")["state"] == "RUNNING"
