"""A clean shutdown loses none of the supervisor's state events (real supervisor, real core,
writer and housekeeper): the core archives every stop before its own; what it can no longer take
(its own stop, the writer's) is spooled on disk and reaches system/ at the next start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from observer import record_ids
from tests.conftest import wait_for
from tests.supervisor.conftest import SupervisorRun

WORKERS = ["writer", "observer", "housekeeper"]


def _states(data: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in data.glob("system/events/*/*.jsonl"):
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            if doc.get("type") == "worker_state" and doc.get("source") == "supervisor":
                out[doc["record_id"]] = doc
    return out


def test_every_state_event_of_a_clean_stop_reaches_system(short_tmp: Path) -> None:
    toml = "[housekeeping]\nreceipt_poll_real_s = 0.2\n"  # real workers: the default heartbeat timing
    first = SupervisorRun(short_tmp, WORKERS, toml)
    try:
        first.wait_ready(30)
        for name in WORKERS:
            first.wait_heartbeating(name, 30)
        assert first.terminate(60) == 0
    finally:
        first.cleanup()
    logged = [d for d in first.log_lines() if d["message"] == "worker state"]
    stops = {(d["extra"]["worker"], d["extra"]["to"]) for d in logged}
    assert {("observer", "STOPPED"), ("writer", "STOPPED"), ("housekeeper", "STOPPED")} <= stops
    assert not any("not acknowledged" in d["message"] for d in first.log_lines())
    data = short_tmp / "data"
    archived = _states(data)
    # the housekeeper stopped before the core: its events are archived by this run already
    assert any(
        d["details"]["worker"] == "housekeeper" and d["details"]["to"] == "STOPPED" for d in archived.values()
    )
    spooled = [
        d for d in first.log_lines() if d["message"].startswith("supervisor events the core could not take")
    ]
    assert spooled and spooled[0]["extra"]["count"] >= 2  # at least the core's and the writer's stop

    [run_id] = [d["extra"]["run_id"] for d in first.log_lines() if d["message"] == "supervisor started"]

    def first_run_archived() -> int:
        return sum(rid.startswith(record_ids.event("supervisor", run_id, "")) for rid in _states(data))

    assert 0 < first_run_archived() < len(logged)  # the rest waits in the spool
    second = SupervisorRun(short_tmp, WORKERS, toml)  # its housekeeper delivers the spool
    try:
        second.wait_ready(30)
        wait_for(lambda: first_run_archived() == len(logged), 60, 0.2, "every state event of the first run")
        assert second.terminate(60) == 0
    finally:
        second.cleanup()
