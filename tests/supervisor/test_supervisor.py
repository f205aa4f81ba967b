"""The supervisor as a real process with real (fake) workers on real sockets."""

from __future__ import annotations

import json
import signal
import subprocess
from typing import Any

import psutil
import zmq

from observer.bus import SUPERVISOR_STATE, Endpoints, event_decoder, ingest_decoder
from observer.clock import ANCHOR_ENV
from observer.reliable import ReliableReceiver, hop_endpoints
from observer.schema import SystemEvent
from tests.conftest import REPO, wait_for
from tests.supervisor.conftest import observer_cmd, worker_alive


def test_hung_worker_is_killed_and_restarted(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-silent", "fake-ok"])
    run.wait_ready()
    first = run.wait_worker("fake-silent", lambda w: bool(w["pid"]) and w["heartbeats"] > 0)
    restarted = run.wait_worker(
        "fake-silent", lambda w: w["pid"] not in (None, first["pid"]), 20, "a new fake-silent process"
    )
    assert restarted["restarts"] >= 1
    assert not worker_alive(first["pid"])
    reasons = [d["extra"]["reason"] for d in run.log_lines() if d["message"] == "worker state"]
    assert any("heartbeats stopped" in r for r in reasons), reasons
    # the hung process ignored SIGTERM (stuck in its loop): the group was SIGKILLed, and the log says so
    kills = [d for d in run.log_lines() if "sent SIGKILL" in d["message"]]
    assert any(d["extra"]["pid"] == first["pid"] for d in kills)
    assert run.worker("fake-ok")["restarts"] == 0  # the healthy neighbour was not touched


def test_sigterm_ignoring_worker_is_sigkilled_after_the_timeout(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-stubborn"])
    run.wait_ready()
    w = run.wait_heartbeating("fake-stubborn")
    result = run.ctl("stop", "fake-stubborn")
    assert result.returncode == 0, result.stderr
    assert "STOPPED" in result.stdout
    assert not worker_alive(w["pid"])
    stopped = run.worker("fake-stubborn")
    assert stopped["last_exit_code"] == -signal.SIGKILL
    assert stopped["last_stop_path"] == "sigkill"
    kill_lines = [d for d in run.log_lines() if d["extra"].get("stop_path") == "sigkill"]
    assert kill_lines and kill_lines[0]["level"] == "WARNING"
    assert "SIGKILL to its process group" in kill_lines[0]["message"]
    stopping_at = next(
        d["timestamp"]
        for d in run.log_lines()
        if d["message"] == "worker state" and d["extra"]["to"] == "STOPPING"
    )
    assert kill_lines[0]["timestamp"] >= stopping_at  # the kill came after the SIGTERM, not instead of it


def test_crash_at_start_goes_fatal_with_a_critical_event(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-crash", "fake-ok"])
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, SUPERVISOR_STATE.encode())
    sub.connect(Endpoints(run.cfg)["events_out"])
    try:
        run.wait_ready()
        critical: list[SystemEvent] = []

        def fatal_event() -> bool:
            while sub.poll(0):
                _, body = sub.recv_multipart()
                event = event_decoder.decode(body)
                if isinstance(event, SystemEvent) and event.severity == "CRITICAL":
                    critical.append(event)
            return bool(critical)

        wait_for(fatal_event, 20, what="a CRITICAL supervisor.state event")
    finally:
        sub.close(0)
        ctx.term()
    event = critical[0]
    assert event.type == "worker_state"
    assert event.details["worker"] == "fake-crash" and event.details["to"] == "FATAL"
    w = run.wait_state("fake-crash", "FATAL")
    assert w["restarts"] == 3 and w["starts"] == 4  # flap_max_restarts = 3
    assert w["pid"] is None and w["last_exit_code"] == 1
    # no tight loop and no silent give-up: the worker stays FATAL while the supervisor keeps serving
    wait_for(lambda: run.worker("fake-ok")["heartbeats"] >= 10, 10, what="more heartbeats of fake-ok")
    again = run.worker("fake-crash")
    assert again["state"] == "FATAL" and again["starts"] == 4
    # an operator start gives it a fresh flapping budget
    ok, message, _ = run.request("start", "fake-crash")
    assert ok, message
    wait_for(lambda: run.worker("fake-crash")["starts"] >= 5, 10, what="a new start of fake-crash")


def test_sigkill_while_workers_are_still_starting_leaves_none_alive(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok", "fake-stubborn"])
    run.wait_ready()
    pids = [run.wait_worker(n, lambda w: bool(w["pid"]))["pid"] for n in ("fake-ok", "fake-stubborn")]
    run.proc.kill()  # probably before the workers' own death signal is installed
    run.proc.wait(5)
    wait_for(lambda: not any(worker_alive(p) for p in pids), 5, what="every worker to exit with its parent")


def test_sigkill_of_the_supervisor_leaves_no_worker_alive(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok", "fake-ok2", "fake-stubborn"])
    run.wait_ready()
    pids = [run.wait_heartbeating(n)["pid"] for n in ("fake-ok", "fake-ok2", "fake-stubborn")]
    assert all(worker_alive(p) for p in pids)
    run.proc.kill()
    run.proc.wait(5)
    wait_for(lambda: not any(worker_alive(p) for p in pids), 5, what="every worker to exit with its parent")


def test_second_supervisor_on_the_same_runtime_dir_refuses(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok"])
    run.wait_ready()
    second = subprocess.run(
        observer_cmd(run.config_path, "run", "--workers", "fake-ok2"),
        env=run.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    assert "another supervisor" in second.stderr and str(run.proc.pid) in second.stderr
    assert [w["name"] for w in run.status()["workers"]] == ["fake-ok"]  # the first one is unharmed
    assert run.status()["supervisor"]["pid"] == run.proc.pid


def test_ctl_stop_and_start_act_on_that_worker_alone(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok", "fake-ok2"])
    run.wait_ready()
    other = run.wait_state("fake-ok2", "RUNNING")
    target = run.wait_state("fake-ok", "RUNNING")

    stopped = run.ctl("stop", "fake-ok")
    assert stopped.returncode == 0, stopped.stderr
    w = run.worker("fake-ok")
    assert w["state"] == "STOPPED" and w["pid"] is None and w["last_stop_path"] == "sigterm"
    assert not worker_alive(target["pid"])
    # a stopped worker stays stopped: the other one keeps heartbeating meanwhile
    beats = run.worker("fake-ok2")["heartbeats"]
    wait_for(lambda: run.worker("fake-ok2")["heartbeats"] >= beats + 5, 10, what="heartbeats of fake-ok2")
    assert run.worker("fake-ok")["state"] == "STOPPED"

    started = run.ctl("start", "fake-ok")
    assert started.returncode == 0, started.stderr
    new = run.wait_state("fake-ok", "RUNNING")
    assert new["pid"] not in (None, target["pid"])
    assert new["restarts"] == 0  # operator actions are not counted as restarts
    after = run.worker("fake-ok2")
    assert after["pid"] == other["pid"] and after["restarts"] == 0 and after["state"] == "RUNNING"

    restarted = run.ctl("restart", "fake-ok2")
    assert restarted.returncode == 0, restarted.stderr
    assert run.worker("fake-ok2")["pid"] != other["pid"]
    assert run.worker("fake-ok")["pid"] == new["pid"]


def test_ctl_status_shows_state_pid_restarts_uptime(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok", "fake-silent"])
    run.wait_ready()
    ok = run.wait_state("fake-ok", "RUNNING")
    wait_for(lambda: run.worker("fake-silent")["restarts"] >= 1, 20, what="a restart of fake-silent")
    result = run.ctl("status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("NAME"))
    for column in ("STATE", "PID", "RESTARTS", "UPTIME"):
        assert column in header
    row = next(line.split() for line in lines if line.startswith("fake-ok "))
    assert row[1] == "RUNNING" and row[2] == str(ok["pid"]) and row[3] == "0"
    assert row[4].endswith("s")
    silent_row = next(line.split() for line in lines if line.startswith("fake-silent"))
    assert int(silent_row[3]) >= 1

    as_json = run.ctl("status", "--json")
    assert as_json.returncode == 0
    doc = json.loads(as_json.stdout)
    by_name = {w["name"]: w for w in doc["workers"]}
    assert by_name["fake-ok"]["uptime_s"] > 0 and by_name["fake-ok"]["heartbeat_age_s"] is not None


def test_ctl_without_a_supervisor_says_so(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok"])
    run.wait_ready()
    assert run.terminate() == 0
    result = run.ctl("--timeout", "0.3", "status")
    assert result.returncode == 1
    assert "no supervisor answered" in result.stderr


def test_sigterm_stops_workers_in_order_and_exits_zero(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok", "fake-ok2", "fake-stubborn"])
    run.wait_ready()
    pids = [run.wait_heartbeating(n)["pid"] for n in ("fake-ok", "fake-ok2", "fake-stubborn")]
    assert run.terminate() == 0
    assert not any(worker_alive(p) for p in pids)
    stops = [
        d["extra"]["worker"]
        for d in run.log_lines()
        if d["message"] == "worker state" and d["extra"]["to"] == "STOPPING"
    ]
    assert stops == ["fake-stubborn", "fake-ok2", "fake-ok"]  # not in SHUTDOWN_ORDER: reverse start order
    for d in run.log_lines():
        if d["message"] == "worker state" and d["extra"]["to"] == "STOPPED":
            expected = "sigkill" if d["extra"]["worker"] == "fake-stubborn" else "sigterm"
            assert expected in d["extra"]["reason"]


def test_transitions_are_archived_through_the_ingest_hop(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok"])
    # play the core: bind the ingest hop and acknowledge what arrives
    ctx = zmq.Context()
    data_ep, ack_ep = hop_endpoints(run.cfg, "ingest")
    receiver = ReliableReceiver(ctx, run.cfg, "test-core", data_ep, ack_ep)
    events: list[SystemEvent] = []

    def running_archived() -> bool:
        for env in receiver.receive():
            body = ingest_decoder.decode(env.body)
            assert isinstance(body, SystemEvent) and env.producer == "supervisor"
            events.append(body)
            receiver.ack(env.producer, env.run_id, env.seq)
        return any(e.details.get("to") == "RUNNING" for e in events)

    try:
        wait_for(running_archived, 20, what="the RUNNING transition on the ingest hop")
        wait_for(
            lambda: run.status()["supervisor"]["events_unacked"] == 0, 10, what="acks to reach the supervisor"
        )
    finally:
        receiver.close()
        ctx.term()
    assert [(e.details["from"], e.details["to"]) for e in events] == [
        ("STOPPED", "STARTING"),
        ("STARTING", "RUNNING"),
    ]
    assert all(e.type == "worker_state" and e.at.utcoffset() is not None for e in events)


def test_workers_share_the_supervisor_clock_anchor(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok", "fake-ok2"])
    run.wait_ready()
    pids = [run.wait_state(n, "RUNNING")["pid"] for n in ("fake-ok", "fake-ok2")]
    envs = [psutil.Process(pid).environ() for pid in pids]
    anchors = {float(env[ANCHOR_ENV]) for env in envs}
    assert len(anchors) == 1
    assert abs(anchors.pop() - psutil.Process(run.proc.pid).create_time()) < 10
    assert all(env["OBSERVER_CONFIG"] == str(run.config_path.resolve()) for env in envs)


def test_an_anchor_already_set_is_kept(start_supervisor: Any) -> None:
    run = start_supervisor(["fake-ok"], env_extra={ANCHOR_ENV: "1234.5"})
    run.wait_ready()
    pid = run.wait_state("fake-ok", "STARTING")["pid"]
    assert psutil.Process(pid).environ()[ANCHOR_ENV] == "1234.5"
