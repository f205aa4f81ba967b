"""A real monitor process: injected signals on the bus -> mitigation level, events, metrics."""

from __future__ import annotations

from typing import Any

from observer.schema import MitigationLevel, SystemEvent
from tests.conftest import wait_for

FAST_LEVELS = """
sample_interval_s = 0.1
sustain_s = 1.0
clear_s = 1.0
stats_stale_s = 2.0
level_republish_s = 0.3
health_publish_s = 0.2
"""


def _levels(bus: Any) -> list[int]:
    return [b.level for t, b in bus.events if isinstance(b, MitigationLevel)]


def _changes(bus: Any) -> list[tuple[Any, Any]]:
    return [
        (e.details["old"], e.details["new"])
        for e in bus.ingested
        if isinstance(e, SystemEvent) and e.type == "mitigation_change"
    ]


def test_sustained_disk_latency_raises_level_1_then_2_and_back_down(monitor_env: Any) -> None:
    _, bus, proc = monitor_env(FAST_LEVELS)

    def feeding(latency_ms: float, level: int) -> Any:
        def check() -> bool:
            bus.stats("writer", gauges={"fsync_latency_ms": latency_ms})
            bus.drain()
            levels = _levels(bus)
            return bool(levels) and levels[-1] == level

        return check

    wait_for(feeding(5.0, 0), 15, 0.05, "the monitor publishes level 0 at start")
    wait_for(feeding(700.0, 1), 10, 0.05, "level 1 after sustained 700 ms disk latency")
    wait_for(feeding(1500.0, 2), 10, 0.05, "level 2 after sustained 1500 ms disk latency")
    wait_for(feeding(10.0, 0), 10, 0.05, "back to level 0 after the load ends")
    wait_for(lambda: (bus.drain(), len(_changes(bus)) >= 3)[1], 5, 0.05, "three mitigation events")
    assert _changes(bus) == [(0, 1), (1, 2), (2, 0)]
    events = [e for e in bus.ingested if isinstance(e, SystemEvent) and e.type == "mitigation_change"]
    assert "disk_latency_ms" in events[0].details["reasons"][0]  # type: ignore[index]
    assert [e.severity for e in events] == ["WARNING", "WARNING", "INFO"]
    assert len({e.record_id for e in events}) == 3
    assert proc.stop() == 0
