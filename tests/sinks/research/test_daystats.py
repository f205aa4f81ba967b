"""Track B's expected windows in the daily figures follow the slot table: a symbol that left its
slot owes no samples until it is back (the report's rate is the recorder's, not the slot policy's)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from observer.clock import KST
from sinks.research.daystats import due_windows, slot_absences

T0 = datetime(2026, 3, 13, 10, 0, tzinfo=KST)


def _event(kind: str, at: datetime, source: str = "observer", **details: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "severity": "INFO",
        "at": at,
        "source": source,
        "message": "",
        "details": json.dumps(details),
    }


def test_a_symbol_out_of_its_slot_for_an_hour_owes_nothing_for_that_hour() -> None:
    rows = [
        _event("slots_seeded", T0, symbols=["005930", "000660"]),
        _event("slot_change", T0 + timedelta(minutes=10), added=["1:035420:surge"], removed=["1:005930"]),
        _event("slot_change", T0 + timedelta(minutes=70), added=["3:005930:surge"], removed=["3:000660"]),
        _event(
            "slot_change", T0 + timedelta(minutes=71), removed=["7:005930"], source="monitor"
        ),  # not the core's
    ]
    absent = slot_absences(rows)
    assert absent == {
        "005930": [(T0 + timedelta(minutes=10), T0 + timedelta(minutes=70))],
        "000660": [(T0 + timedelta(minutes=70), None)],
    }
    # its last sample before leaving at 10:09:59.5, its first after coming back at 11:10:00
    last, back = T0 + timedelta(minutes=10) - timedelta(seconds=0.5), T0 + timedelta(minutes=70)
    assert due_windows(last, back, 0.5, absent["005930"]) == []
    assert len(due_windows(last, back, 0.5, [])) == 7_200  # what the day's rate counted as lost before
    # a real hole inside its tenure still counts: 09:59:59.5 .. 10:00:05 misses 10 windows
    start = T0 - timedelta(seconds=0.5)
    assert len(due_windows(start, T0 + timedelta(seconds=5), 0.5, absent["005930"])) == 10
    # the windows before it left are due; those after, until the next sample, are not
    holes = due_windows(T0 + timedelta(minutes=9, seconds=58), back, 0.5, absent["005930"])
    assert holes == [T0 + timedelta(minutes=9, seconds=58.5), T0 + timedelta(minutes=9, seconds=59),
                     T0 + timedelta(minutes=9, seconds=59.5)]  # fmt: skip
