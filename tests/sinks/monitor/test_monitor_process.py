"""A real monitor process: injected signals on the bus -> mitigation level, events, metrics."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from observer.bus import SLOTS, alert_topic, heartbeat_topic, stats_topic
from observer.clock import KST, SystemClock
from observer.schema import (
    CoreStats,
    Heartbeat,
    MetricsSnapshot,
    MitigationLevel,
    MonitorStats,
    SlotCommand,
    SystemEvent,
    WriterStats,
    WsCollectorStats,
)
from tests.conftest import free_port, wait_for
from tests.sinks.monitor.conftest import CHAT_ID, TOKEN, FakeTelegram, MonitorProcess

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
            bus.stats(WriterStats, "writer", fsync_p99_ms=latency_ms)
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
    # the level is re-published between changes (late joiners), and coverage is never touched:
    # the monitor publishes no slot table, the level only changes the sampling frequency
    assert len(_levels(bus)) > 3 + 3
    assert not [b for t, b in bus.events if t == SLOTS or isinstance(b, SlotCommand)]
    assert proc.stop() == 0


def _health(bus: Any) -> MonitorStats | None:
    stats = [b for t, b in bus.events if t == stats_topic("monitor") and isinstance(b, MonitorStats)]
    return stats[-1] if stats else None


def test_silent_symbols_turn_status_red_with_one_alert_per_episode(monitor_env: Any, short_tmp: Path) -> None:
    """Every process alive, data silent: red + exactly one Telegram message per episode."""
    telegram = FakeTelegram(free_port())
    telegram.up()
    extra = (
        f'[alerts]\ntelegram_base_url = "{telegram.base_url}"\nretry_initial_s = 0.05\nretry_max_s = 0.2\n'
    )
    _, bus, proc = monitor_env(FAST_LEVELS, extra, {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT_ID})
    try:
        silent = {"value": 41}

        def feed() -> MonitorStats | None:
            bus.stats(
                CoreStats,
                "observer",
                track_a_open=False,
                track_b_open=True,
                slots_used=41,
                track_b_silent_symbols=silent["value"],
                track_b_oldest_sample_age_s=0.3,
            )
            bus.stats(WriterStats, "writer", fsync_p99_ms=3.0, disk_error=False)
            bus.stats(WsCollectorStats, "ws-collector", connected=True, last_frame_age_s=0.1, subscribed=41)
            bus.drain()
            return _health(bus)

        wait_for(lambda: (h := feed()) is not None and h.health == 2, 15, 0.05, "status red")
        health = _health(bus)
        assert health is not None and health.reasons["symbols_silent"] == 2
        wait_for(lambda: (feed(), len(telegram.texts()) == 1)[1], 10, 0.05, "one Telegram alert")
        assert "41 of 41 slot symbols silent" in telegram.texts()[0]
        # the condition stays true for many more samples: still one message
        samples_then = _health_samples(bus)
        wait_for(lambda: (feed(), _health_samples(bus) >= samples_then + 10)[1], 10, 0.05, "ten more samples")
        assert len(telegram.texts()) == 1
        # the symbols trade again: green; silent again: a new episode, a second message
        silent["value"] = 0
        wait_for(lambda: (h := feed()) is not None and h.health == 0, 10, 0.05, "status green again")
        silent["value"] = 30
        wait_for(lambda: (feed(), len(telegram.texts()) == 2)[1], 10, 0.05, "the second episode's alert")
        assert "30 of 41 slot symbols silent" in telegram.texts()[1]
        # another worker's alert event (e.g. the housekeeper's backup failure): one message per event
        failed = SystemEvent(
            record_id="evt-housekeeper-1",
            type="backup_failed",
            severity="CRITICAL",
            at=datetime.now(KST),
            source="housekeeper",
            message="backup 20261126 failed: checksum mismatch",
        )
        for _ in range(3):
            bus.pub.publish(alert_topic("housekeeper"), failed)
        wait_for(lambda: (feed(), len(telegram.texts()) == 3)[1], 10, 0.05, "the backup failure alert")
        sentinel = msgspec.structs.replace(failed, record_id="evt-housekeeper-2", message="sentinel")
        bus.pub.publish(alert_topic("housekeeper"), sentinel)
        wait_for(lambda: (feed(), len(telegram.texts()) == 4)[1], 10, 0.05, "the sentinel alert")
        assert telegram.texts()[2:] == [
            "[CRITICAL] KRX observer: housekeeper: backup 20261126 failed: checksum mismatch",
            "[CRITICAL] KRX observer: housekeeper: sentinel",
        ]
        health_events = [e for e in bus.ingested if isinstance(e, SystemEvent) and e.type == "health_change"]
        assert [e.details["new"] for e in health_events][-3:] == ["red", "green", "red"]
    finally:
        assert proc.stop() == 0
        telegram.down()
    assert TOKEN not in proc.stderr()
    for log_file in (short_tmp / "logs").glob("*"):
        assert TOKEN not in log_file.read_text()
    assert "Telegram alerts enabled" in proc.stderr()


def _health_samples(bus: Any) -> float:
    health = _health(bus)
    return health.samples if health is not None else 0.0


FAST_CLOCK = """
[clock]
mode = "session"
start_at = "10:02:00"
speed = 300.0
"""


def test_metrics_line_every_five_simulated_minutes(monitor_env: Any) -> None:
    """speed 300: five virtual minutes pass in one real second."""
    _, bus, proc = monitor_env("sample_interval_s = 30.0\nlevel_republish_s = 0.3\n", FAST_CLOCK)
    expected = written = records = 0

    def feed() -> list[MetricsSnapshot]:
        nonlocal expected, written, records
        expected += 82
        written += 80  # 97.6 %
        records += 100
        bus.stats(
            CoreStats,
            "observer",
            event_lag_max_s=0.004,
            track_a_sweep_recorded=3990,
            track_a_sweep_universe=4000,
            samples_expected=expected,
            samples_written=written,
            gap_markers={"scalp/ws_outage": 1},
        )
        bus.stats(WriterStats, "writer", written={"scalp": records, "swing": 0})
        bus.drain()
        return [b for b in bus.ingested if isinstance(b, MetricsSnapshot)]

    wait_for(lambda: len(feed()) >= 3, 20, 0.05, "three metrics lines")
    snaps = [b for b in bus.ingested if isinstance(b, MetricsSnapshot)]
    ats = [s.at for s in snaps]
    assert all((b - a).total_seconds() == 300 for a, b in itertools.pairwise(ats))
    assert all(at.minute % 5 == 0 and at.second == 0 for at in ats)
    for snap in snaps[1:]:  # the first interval is partial (the monitor started within it)
        assert (
            snap.record_id
            == f"metrics:kis:{(snap.at - timedelta(minutes=5)).astimezone(KST).strftime('%Y%m%dT%H%M%S')}"
        )
        assert snap.track_a_collection_rate == 3990 / 4000
        assert snap.track_b_collection_rate is not None and 0.96 < snap.track_b_collection_rate < 0.99
        assert snap.latency_p50_ms == snap.latency_p99_ms == 4.0
        assert snap.records["scalp"] > 0 and snap.records["swing"] == 0
        assert snap.gaps == {"scalp": 0}
        assert snap.mitigation_level == 0 and snap.slot_utilization == 0.0
        assert 0 <= snap.cpu_usage_percent <= 100 and 0 < snap.memory_usage_percent <= 100
        assert snap.disk_usage_percent > 0
    assert proc.stop() == 0


def test_a_restarted_monitor_keeps_its_level_day_counters_and_alert_episodes(
    monitor_env: Any, short_tmp: Path
) -> None:
    telegram = FakeTelegram(free_port())
    telegram.up()
    extra = (
        f'[alerts]\ntelegram_base_url = "{telegram.base_url}"\nretry_initial_s = 0.05\nretry_max_s = 0.2\n'
    )
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT_ID}
    _, bus, proc = monitor_env(FAST_LEVELS, extra, env)
    memory_file = short_tmp / "data" / "state" / "monitor.json"
    reconnects = {"value": 0}

    def feed() -> dict[str, Any]:
        bus.stats(CoreStats, "observer", track_b_open=True, slots_used=41, track_b_silent_symbols=41)
        bus.stats(WriterStats, "writer", fsync_p99_ms=1500.0)
        bus.stats(WsCollectorStats, "ws-collector", connected=True, reconnects=reconnects["value"])
        bus.drain()
        return msgspec.json.decode(memory_file.read_bytes()) if memory_file.exists() else {}

    wait_for(lambda: feed().get("level") == 2, 15, 0.05, "level 2 remembered")
    wait_for(lambda: (feed(), len(telegram.texts()) == 1)[1], 10, 0.05, "one silent-symbols alert")
    reconnects["value"] = 7
    wait_for(lambda: feed().get("reconnects") == 7, 10, 0.05, "7 reconnects today remembered")
    assert feed()["active_alerts"] == ["symbols_silent"]
    assert memory_file.stat().st_mode & 0o777 == 0o600
    assert proc.stop() == 0

    published_before = len(_levels(bus))
    again = MonitorProcess(short_tmp / "observer.toml", env)
    try:
        wait_for(
            lambda: (feed(), len(_levels(bus)) > published_before + 5)[1], 15, 0.05, "levels after restart"
        )
        assert set(_levels(bus)[published_before:]) == {2}  # never back to 0 on the way
        reconnects["value"] = 10  # the ws-collector kept counting; the new monitor adds the delta
        wait_for(lambda: feed().get("reconnects") == 7 + 3, 10, 0.05, "reconnects carried over")
        samples_then = _health_samples(bus)
        wait_for(lambda: (feed(), _health_samples(bus) >= samples_then + 10)[1], 10, 0.05, "ten samples")
        assert len(telegram.texts()) == 1  # the episode in progress is not alerted again
    finally:
        assert again.stop() == 0
        telegram.down()


def test_health_names_every_worker_it_hears_with_pid_and_heartbeat_age(monitor_env: Any) -> None:
    """Split hosts: the core host's monitor hears the collectors' heartbeats through the events
    import; `observer status` lists them from the monitor's stats (``peers``)."""
    _, bus, proc = monitor_env(FAST_LEVELS)

    def heard() -> bool:
        bus.pub.publish(
            heartbeat_topic("ws-collector"),
            Heartbeat(worker="ws-collector", pid=4242, run_id="r1", at=SystemClock().now()),
        )
        bus.drain()
        health = _health(bus)
        return health is not None and "ws-collector" in health.peers

    wait_for(heard, 15, 0.05, "the monitor's stats naming the ws-collector")
    health = _health(bus)
    assert health is not None
    peer = health.peers["ws-collector"]
    assert peer.pid == 4242 and 0 <= peer.age_s < 5
    assert "monitor" not in health.peers  # its own heartbeats are not a peer's
    assert proc.stop() == 0
