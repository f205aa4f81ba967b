"""End to end: the `make run` pipeline (supervisor, simulator and every worker as real processes)
on a virtual trading day; the archive is verified and rates, gap markers and alerts are checked
against the simulator's ground truth."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import wait_for
from tests.e2e.support import BotApi, Pipeline, lines, scalp_rate_in_slots, slot_returns, start_bot_api

NO_CPU_MITIGATION = "[monitor]\ncpu_level1_pct = 101.0\ncpu_level2_pct = 101.0\n"


def _elapsed_s(since: datetime) -> float:
    return (datetime.now().astimezone() - since).total_seconds()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pipeline_with_one_ws_outage(short_tmp: Path) -> None:
    p = Pipeline(short_tmp, NO_CPU_MITIGATION)
    with p.running():
        p.wait_filled()
        status = p.status()
        states = {w["name"]: w["state"] for w in status["workers"]}
        assert set(states) >= {"sim", "writer", "observer", "monitor", "rest-collector", "ws-collector"}
        assert all(s == "RUNNING" for s in states.values()), states
        wait_for(lambda: p.status()["slots"]["used"] == 41, 30, 0.5, "41 slots in the status view")

        started = datetime.now().astimezone()
        requests.post(
            f"{p.admin}/faults", json={"kind": "drop_sessions", "duration_s": 0}, timeout=5
        ).raise_for_status()

        def ws_gaps() -> list[dict[str, Any]]:
            return [
                g
                for g in lines(p.data, "system/events/kis-sim/*.jsonl")
                if g.get("type") == "gap_marker" and g.get("detected_by") == "ws-collector"
            ]

        wait_for(ws_gaps, 45, 0.5, "the outage's gap marker")
        wait_for(lambda: _elapsed_s(started) >= 60, 70, 0.5)
        truth = requests.get(f"{p.admin}/truth", timeout=10).json()
    assert p.returncode == 0, p.stderr[-3000:]

    verify = p.observer("verify", str(p.data))
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # everything the simulator produced says so: directories, record meta, events
    assert {
        d.name for fam in ("swing", "scalp", "raw", "system/events") for d in (p.data / fam).iterdir()
    } == {"kis-sim"}
    records = lines(p.data, "s*/kis-sim/*/*/*.jsonl")
    assert records and {r["observation"]["meta"]["source"] for r in records} == {"kis-sim"}
    assert {e["provider"] for e in lines(p.data, "system/events/kis-sim/*.jsonl")} == {"kis-sim"}

    # Track A: the 09:30 sweep recorded >= 99.5 % of the universe
    universe = sum(len(json.loads(f.read_text())["symbols"]) for f in (short_tmp / "universe").glob("*.json"))
    by_sweep: dict[str, set[str]] = defaultdict(set)
    for rec in lines(p.data, "swing/kis-sim/*/*/*.jsonl"):
        inst = rec["observation"]["instruments"][0]
        by_sweep[inst["sweep_id"]].add(inst["symbol"])
    sweep_0930 = next(s for s in by_sweep if s.endswith("T0930"))
    assert len(by_sweep[sweep_0930]) / universe >= 0.995, (len(by_sweep[sweep_0930]), universe)

    # Track B: at target (>= 97 %) across the outage
    written, expected, symbols = scalp_rate_in_slots(p.data)
    assert symbols >= 41 and written / expected >= 0.97, (written, expected)

    # gaps: the injected outage and nothing else
    gaps = [g for g in lines(p.data, "system/events/kis-sim/*.jsonl") if g.get("type") == "gap_marker"]
    ws = [g for g in gaps if g["detected_by"] == "ws-collector"]
    assert len(ws) == 1, ws
    fault = next(f for f in truth["faults"] if f["kind"] == "drop_sessions")
    fault_at = datetime.fromisoformat(fault["start"]["virtual"])
    start, end = datetime.fromisoformat(ws[0]["start"]), datetime.fromisoformat(ws[0]["end"])
    assert abs((start - fault_at).total_seconds()) <= 2.0, (start, fault_at)
    assert timedelta(0) <= end - start <= timedelta(seconds=10)
    assert not [g for g in gaps if g["track"] == "bus"], "no message lost on the bus"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ten_clean_simulated_minutes_record_every_scalp_sample(short_tmp: Path) -> None:
    # a session clock at 8x: 10 virtual minutes of 41 slots at 2 Hz in 75 real seconds
    p = Pipeline(short_tmp, NO_CPU_MITIGATION, speed=8.0, start_at="09:29:00")
    with p.running():
        p.wait_filled()
        first = datetime.fromisoformat(
            lines(p.data, "scalp/kis-sim/*/*/*.jsonl")[0]["observation"]["instruments"][0]["window_start"]
        )

        def minutes() -> bool:
            recs = lines(p.data, "scalp/kis-sim/*/*/*.jsonl")
            last = datetime.fromisoformat(recs[-1]["observation"]["instruments"][0]["window_start"])
            return last - first >= timedelta(minutes=10)

        wait_for(minutes, 150, 1.0, "10 simulated minutes of scalp samples")
    assert p.returncode == 0, p.stderr[-3000:]
    verify = p.observer("verify", str(p.data))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    written, expected, symbols = scalp_rate_in_slots(p.data)
    assert symbols >= 41
    assert written / expected >= 0.999, (written, expected)
    gaps = [g for g in lines(p.data, "system/events/kis-sim/*.jsonl") if g.get("type") == "gap_marker"]
    assert not gaps, gaps
    # the 09:30 and 09:40 sweeps re-rank the slots; no symbol is moved out and straight back in
    assert not slot_returns(p.data, timedelta(seconds=60))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_silenced_market_turns_status_red_with_one_alert(short_tmp: Path) -> None:
    bot = start_bot_api()
    toml = NO_CPU_MITIGATION + f'[alerts]\ntelegram_base_url = "http://127.0.0.1:{bot.server_port}"\n'
    toml += "[track_b]\nsilent_symbol_s = 15.0\n"
    p = Pipeline(short_tmp, toml, TELEGRAM_BOT_TOKEN="123456:TESTTOKEN", TELEGRAM_CHAT_ID="42")
    try:
        with p.running():
            p.wait_filled()
            wait_for(lambda: p.status()["health"]["status"] == "green", 60, 0.5, "a green status first")
            silenced = datetime.now().astimezone()
            requests.post(
                f"{p.admin}/faults", json={"kind": "silence", "symbols": []}, timeout=5
            ).raise_for_status()
            # every process stays alive; only the data stops
            wait_for(lambda: p.status()["health"]["status"] == "red", 60, 0.5, "status red")

            def silent_alerts() -> list[dict[str, Any]]:
                return [m for m in BotApi.messages if "silent" in str(m.get("text", "")).lower()]

            wait_for(silent_alerts, 60 - _elapsed_s(silenced) + 5, 0.5, "the silent-symbols alert")
            assert _elapsed_s(silenced) <= 65
            states = {w["name"]: w["state"] for w in p.status()["workers"]}
            assert all(s == "RUNNING" for s in states.values()), states
            wait_for(
                lambda: _elapsed_s(silenced) >= 30, 40, 0.5
            )  # the alert is not repeated while it stays true
            assert len(silent_alerts()) == 1, silent_alerts()
            assert all(
                m["path"] == "/bot123456:TESTTOKEN/sendMessage" and str(m["chat_id"]) == "42"
                for m in BotApi.messages
            )
    finally:
        bot.shutdown()
    assert "TESTTOKEN" not in p.stderr
