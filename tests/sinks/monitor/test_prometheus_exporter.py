"""The /metrics exposition from typed stats, over a real HTTP server, parsed by prometheus_client's
own text parser: names follow the conventions, counters are the producers' totals, the latency
histogram is cumulative, no symbol is ever a label."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from observer.alarms import raise_alarm
from observer.clock import KST
from observer.config import load_config
from observer.schema import LAG_BUCKETS_S, CoreStats, HealthValues, MonitorStats, SlotProgress, WriterStats
from sinks.monitor.prometheus import METRIC_NAMES, ExporterState, MetricsServer
from testkit.config import write_config
from tests.conftest import free_port

AT = datetime(2026, 12, 7, 10, 0, tzinfo=KST)


def _scrape(tmp_path: Path, exporter_setup) -> dict[str, list]:
    cfg = load_config(write_config(tmp_path), env={})
    state = ExporterState(cfg, ask_supervisor=False)
    exporter_setup(state, cfg)
    port = free_port()
    server = MetricsServer(state, f"127.0.0.1:{port}")
    server.start()
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.stop()
    families: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        families[fam.name] = fam.samples
    return families


def test_exposition_from_typed_stats(tmp_path: Path) -> None:
    buckets = [0] * (len(LAG_BUCKETS_S) + 1)
    buckets[0], buckets[3], buckets[-1] = 5, 3, 1  # <=5 ms, <=50 ms, > 10 s

    def setup(state: ExporterState, cfg) -> None:
        state.update(
            core=CoreStats(
                worker="observer",
                at=AT,
                records={"scalp": 120, "swing": 4000},
                gap_markers={"scalp/ws_disconnected": 2, "swing/collector_down": 1},
                findings={"rejection.price_range": 3, "guard.stale": 1},
                lag_buckets=buckets,
                lag_sum_s=12.5,
                slots_used=41,
                track_a_collection_rate=0.998,
                track_a_open=True,
                track_b_open=False,
                slots=[SlotProgress(slot_number=1, symbol="005930", expected=10, written=10)],
            ),
            writer=WriterStats(worker="writer", at=AT, written={"scalp": 118, "raw": 900}, fsync_p99_ms=4.0),
            monitor=MonitorStats(
                worker="monitor",
                at=AT,
                health=1,
                reasons={"mitigation": 1},
                values=HealthValues(cpu_pct=50.0, memory_pct=40.0, disk_usage_pct=81.0, track_b_rate=0.99),
                mitigation_level=1,
            ),
            data_age_s={"scalp": 0.7},
            stale_after_s={"scalp": 5.0},
        )
        raise_alarm(cfg, "backup_unverified", "20261204", "no receipt", AT - timedelta(days=1), "housekeeper")

    fams = _scrape(tmp_path, setup)
    assert {f"krx_observer_{n}" for n in ("records_routed", "records_archived", "gap_markers")} <= set(fams)
    assert set(fams) <= {n.removesuffix("_total") for n in METRIC_NAMES}
    archived = {
        s.labels["kind"]: s.value for s in fams["krx_observer_records_archived"] if s.name.endswith("_total")
    }
    assert archived == {"scalp": 118, "raw": 900}
    gaps = {(s.labels["track"], s.labels["cause"]): s.value for s in fams["krx_observer_gap_markers"]}
    assert gaps == {("scalp", "ws_disconnected"): 2, ("swing", "collector_down"): 1}
    rejected = {
        s.labels["reason"]: s.value
        for s in fams["krx_observer_records_rejected"]
        if s.labels["worker"] == "observer"
    }
    assert rejected["price_range"] == 3 and "stale" not in rejected
    hist = {
        s.labels.get("le"): s.value
        for s in fams["krx_observer_receive_to_fsync_seconds"]
        if s.name.endswith("_bucket")
    }
    assert (
        hist["0.005"] == 5
        and hist["0.025"] == 5
        and hist["0.05"] == 8
        and hist["10"] == 8
        and hist["+Inf"] == 9
    )
    count = next(s.value for s in fams["krx_observer_receive_to_fsync_seconds"] if s.name.endswith("_count"))
    assert count == 9
    assert fams["krx_observer_slots_used"][0].value == 41
    assert fams["krx_observer_disk_usage_ratio"][0].value == 0.81
    assert fams["krx_observer_health_status"][0].value == 1
    assert {s.labels["track"]: s.value for s in fams["krx_observer_session_open"]} == {"swing": 1, "scalp": 0}
    assert fams["krx_observer_backup_unverified_days"][0].value == 1
    assert fams["krx_observer_backup_failed"][0].value == 0
    assert fams["krx_observer_data_age_seconds"][0].labels == {"track": "scalp"}
    for samples in fams.values():
        for s in samples:
            assert not set(s.labels) & {"symbol", "code"}, s


def test_nothing_known_yet_is_absent_not_zero(tmp_path: Path) -> None:
    fams = _scrape(tmp_path, lambda state, cfg: None)
    assert "krx_observer_track_a_coverage_ratio" not in fams
    assert "krx_observer_health_status" not in fams
    assert fams["krx_observer_backup_failed"][0].value == 0
