"""Restarts mark their holes, on real processes: `observer run` on a busy simulated session, the
ws-collector killed (SIGKILL) 5 times. For every symbol, every trade the simulator published (its
ground truth) is in raw/ or inside a gap marker naming that symbol (the chaos soak's accounting
closure, `testkit.closure`); each outage has exactly one ``collector_restart`` marker, from the
last frame the killed run delivered to the first frame of the new one, naming every slotted
symbol; every scalp sample of a window inside those spans is flagged ``gap``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from testkit.soak import SoakRun
from tests.e2e.support import lines

KILLS = 5


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_five_kills_of_the_ws_collector_leave_one_marker_each_and_lose_nothing_unmarked(
    short_tmp: Path,
) -> None:
    # kills 16-20 s apart: five restarts stay under the supervisor's flapping limit (5 in 60 s)
    run = SoakRun(
        short_tmp,
        seconds=105,
        seed=11,
        fault_gap_s=(16.0, 20.0),
        symbol_count=1_500,
        faults=("kill:ws-collector",) * KILLS,
    )
    result = run.run()
    print(result.render())
    assert result.faults == ["kill:ws-collector"] * KILLS, result.faults  # all five really killed
    report = result.report
    assert report.total("published") >= 100 * 60, "a busy session"
    assert report.ok and report.closure == 1.0, result.render()

    events = lines(run.data, "system/events/*/*.jsonl")
    restarts = [e for e in events if e.get("type") == "gap_marker" and e.get("reason") == "collector_restart"]
    assert len(restarts) == KILLS, [(m["start"], m["end"]) for m in restarts]  # one per outage
    slotted = 41
    for marker in restarts:
        assert len(marker["symbols"]) == slotted and marker["track"] == "scalp"
        assert marker["start"] < marker["end"]
        assert marker["details"]["previous_run_id"] != marker["details"]["run_id"]
    runs = {m["details"]["previous_run_id"] for m in restarts} | {m["details"]["run_id"] for m in restarts}
    assert len(runs) == KILLS + 1  # six runs of the collector, each outage between two of them

    # from the last frame received (the marker itself starts at that frame's exchange second)
    spans = [
        (datetime.fromisoformat(m["details"]["last_frame_received_at"]), datetime.fromisoformat(m["end"]))
        for m in restarts
    ]
    inside = flagged = 0
    for path in sorted(run.data.glob("scalp/*/*/*/*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            start = datetime.fromisoformat(rec["observation"]["instruments"][0]["window_start"])
            if any(a <= start < b for a, b in spans):
                inside += 1
                flagged += rec["quality"]["quality_flag"] == "gap"
    assert inside > 0 and flagged == inside, (flagged, inside)
