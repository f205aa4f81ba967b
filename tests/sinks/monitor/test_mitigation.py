"""The mitigation state machine under an injected clock (pure: no processes)."""

from __future__ import annotations

from datetime import datetime, timedelta

from observer.clock import KST, ManualClock
from observer.config import MonitorConfig
from sinks.monitor.mitigation import LevelChange, MitigationState, SignalSample

T0 = datetime(2026, 3, 3, 10, 0, tzinfo=KST)
CFG = MonitorConfig(sample_interval_s=5.0, sustain_s=300.0, clear_s=300.0, stats_stale_s=15.0)


def _run(
    state: MitigationState, clock: ManualClock, seconds: float, **signals: float | None
) -> list[LevelChange]:
    """Feed one sample every sample_interval_s for `seconds`; return the changes seen."""
    changes = []
    steps = int(seconds / CFG.sample_interval_s)
    for _ in range(steps):
        clock.advance(CFG.sample_interval_s)
        change = state.observe(SignalSample(at=clock.now(), **signals))
        if change is not None:
            changes.append(change)
    return changes


def test_level_rises_to_1_then_2_after_sustained_load_and_falls_after_clear() -> None:
    clock = ManualClock(T0)
    state = MitigationState.from_config(CFG)
    assert _run(state, clock, 600, cpu_pct=30.0, memory_pct=40.0) == []
    # level-1 band: nothing before 5 minutes, exactly one change at 5 minutes
    assert _run(state, clock, 295, cpu_pct=83.0, memory_pct=40.0) == []
    changes = _run(state, clock, 10, cpu_pct=83.0, memory_pct=40.0)
    assert [(c.old, c.new) for c in changes] == [(0, 1)]
    assert "cpu_pct" in changes[0].reasons[0] and ">= 80%" in changes[0].reasons[0]
    level1_at = changes[0].at
    assert level1_at - T0 >= timedelta(seconds=600 + 300)
    # level-2 band held another 5 minutes
    assert _run(state, clock, 295, cpu_pct=93.0) == []
    changes = _run(state, clock, 10, cpu_pct=93.0)
    assert [(c.old, c.new) for c in changes] == [(1, 2)]
    assert ">= 90%" in changes[0].reasons[0]
    # load ends: stays at 2 until clear for 5 minutes, then straight down (clear at 1 too)
    assert _run(state, clock, 295, cpu_pct=20.0) == []
    changes = _run(state, clock, 10, cpu_pct=20.0)
    assert [(c.old, c.new) for c in changes] == [(2, 0)]
    assert state.level == 0


def test_one_dip_restarts_the_window() -> None:
    clock = ManualClock(T0)
    state = MitigationState.from_config(CFG)
    assert _run(state, clock, 200, lag_s=3.0) == []
    assert _run(state, clock, 5, lag_s=1.0) == []  # one sample below: the run is broken
    assert _run(state, clock, 295, lag_s=3.0) == []
    changes = _run(state, clock, 10, lag_s=3.0)
    assert [(c.old, c.new) for c in changes] == [(0, 1)]
    assert changes[0].reasons[0].startswith("lag_s 3 s >= 2 s")


def test_level_2_falls_to_1_while_load_stays_in_the_level_1_band() -> None:
    clock = ManualClock(T0)
    state = MitigationState.from_config(CFG)
    changes = _run(state, clock, 310, disk_latency_ms=1500.0)
    assert [(c.old, c.new) for c in changes] == [(0, 2)]  # level-2 condition itself sustained
    changes = _run(state, clock, 310, disk_latency_ms=700.0)
    assert [(c.old, c.new) for c in changes] == [(2, 1)]
    assert any("still" in r for r in changes[0].reasons)
    changes = _run(state, clock, 310, disk_latency_ms=100.0)
    assert [(c.old, c.new) for c in changes] == [(1, 0)]


def test_unknown_signals_are_not_evidence_and_holes_break_the_run() -> None:
    clock = ManualClock(T0)
    state = MitigationState.from_config(CFG)
    # memory known high, then unknown for a long time: no sustained evidence -> no rise
    assert _run(state, clock, 100, memory_pct=90.0) == []
    assert _run(state, clock, 600, memory_pct=None) == []
    assert state.level == 0
    # high again: the hole (600 s > max gap) restarts the run
    assert _run(state, clock, 295, memory_pct=90.0) == []
    assert [(c.old, c.new) for c in _run(state, clock, 10, memory_pct=90.0)] == [(0, 1)]


def test_every_signal_has_its_design_thresholds() -> None:
    for signal, level1, level2 in (
        ("cpu_pct", 80.0, 90.0),
        ("memory_pct", 85.0, 95.0),
        ("disk_latency_ms", 500.0, 1000.0),
        ("lag_s", 2.0, 5.0),
    ):
        for value, expected in ((level1 - 0.01, 0), (level1, 1), (level2, 2)):
            clock = ManualClock(T0)
            state = MitigationState.from_config(MonitorConfig())
            _run(state, clock, 310, **{signal: value})
            assert state.level == expected, (signal, value)
