"""A weekday KRX holiday that only the broker knows (the simulator's ``chk-holiday`` says closed;
``[calendar].holidays`` does not list it), the whole pipeline as real processes on the session
clock: that day no WebSocket session, no Track A sweep, no freshness alert and one
``market_closed`` event; the next day (the same archive, a fresh start) runs normally.

The day change inside one run (Friday -> weekend -> holiday -> Tuesday without a restart) is shown
by the in-process ManualClock tests of each worker (tests/collectors/test_rest_worker.py,
test_ws_days.py) and the week of fire times in tests/observer/test_sessions.py: a session clock
cannot run a whole night fast without running the trading day as fast."""

from __future__ import annotations

import json
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.support import BotApi, Pipeline, lines, start_bot_api

HOLIDAY, NEXT_DAY = "2026-11-25", "2026-11-26"  # Wednesday, Thursday
SPEED = 60.0  # 09:00 -> 09:40 in 40 real seconds
# a loaded test machine may trip the CPU rule (90 % for 10 simulated minutes = 10 real seconds):
# that alert is about the machine, not the calendar; every other alert counts
MACHINE_ALERTS = ("CPU >", "cpu_high")


def _pipeline(base: Path, day: str, bot: ThreadingHTTPServer) -> Pipeline:
    toml = (
        "[monitor]\ncpu_level1_pct = 101.0\ncpu_level2_pct = 101.0\nsample_interval_s = 1.0\n"
        f'[alerts]\ntelegram_base_url = "http://127.0.0.1:{bot.server_port}"\n'
    )
    return Pipeline(
        base,
        toml,
        speed=SPEED,
        start_at=f"{day}T08:50:00+09:00",
        symbol_count=300,
        sim=f'holidays = ["{HOLIDAY}"]',
        TELEGRAM_BOT_TOKEN="123456:TESTTOKEN",
        TELEGRAM_CHAT_ID="42",
    )


def _events(p: Pipeline, day: str) -> list[dict[str, Any]]:
    return lines(p.data, f"system/events/kis-sim/{day.replace('-', '')}.jsonl")


def _alerts() -> list[str]:
    return [
        str(m.get("text", ""))
        for m in BotApi.messages
        if not any(k in str(m.get("text")) for k in MACHINE_ALERTS)
    ]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_broker_holiday_closes_every_worker_and_the_next_day_runs(short_tmp: Path) -> None:
    bot = start_bot_api()
    try:
        holiday = _pipeline(short_tmp, HOLIDAY, bot)
        with holiday.running():
            wait_for(
                lambda: [e for e in _events(holiday, HOLIDAY) if e.get("type") == "market_closed"],
                60,
                0.5,
                "market_closed",
            )
            started = time.monotonic()
            # 08:50 + 50 simulated minutes: past 09:00 (first mark), 09:30 (WS window), 09:35 (grace)
            wait_for(lambda: time.monotonic() - started >= 50 * 60 / SPEED, 70, 0.5)
            status = holiday.status()
        assert holiday.returncode == 0, holiday.stderr[-3000:]
        events = _events(holiday, HOLIDAY)
        assert [e["type"] for e in events].count("market_closed") == 1
        assert not [e for e in events if e["type"] in ("sweep_summary", "ws_session_window", "gap_marker")], [
            e["type"] for e in events
        ]
        assert not list(holiday.data.glob("swing/kis-sim/*/*/*.jsonl"))
        assert not list(holiday.data.glob("scalp/kis-sim/*/*/*.jsonl"))
        assert not list(holiday.data.glob("raw/kis-sim/*/*/*.jsonl"))
        data_reds = [
            r for r in status["health"]["reasons"] if r["severity"] == "red" and r["key"] != "cpu_high"
        ]
        assert not data_reds, status["health"]
        assert not _alerts(), _alerts()
        cache = json.loads((holiday.data / "state" / "calendar.json").read_text())
        assert cache[HOLIDAY] is False and cache[NEXT_DAY] is True  # asked ahead of the next day

        next_day = _pipeline(short_tmp, NEXT_DAY, bot)
        with next_day.running():

            def opened() -> list[dict[str, Any]]:
                return [e for e in _events(next_day, NEXT_DAY) if e.get("type") == "ws_session_window"]

            wait_for(opened, 90, 0.5, "the WebSocket session window on the next day")
            wait_for(lambda: list(next_day.data.glob("scalp/kis-sim/*/*/*.jsonl")), 60, 0.5, "scalp samples")

            def sweeps() -> set[str]:
                return {
                    e["details"]["sweep_id"]
                    for e in _events(next_day, NEXT_DAY)
                    if e.get("type") == "sweep_summary"
                }

            wait_for(
                lambda: {"20261126T0900", "20261126T0930"} <= sweeps(), 60, 0.5, "the 09:00 and 09:30 sweeps"
            )
        assert next_day.returncode == 0, next_day.stderr[-3000:]
        assert not [e for e in _events(next_day, NEXT_DAY) if e.get("type") == "market_closed"]
    finally:
        bot.shutdown()
