"""A weekday KRX holiday that only the broker knows (the simulator's ``chk-holiday`` says closed;
``[calendar].holidays`` does not list it), the whole pipeline as real processes on the session
clock. One run from Tuesday 16:00 through Wednesday's (the holiday's) whole session at x1000, the
day changing without a restart: one ``market_closed`` event, no WebSocket session, no Track A
sweep, no archive file, no gap marker, no red data reason in the operator's view all through the
session hours, no alert. Then Thursday (the same archive, a fresh start at x60) runs normally.

(A whole week in one run is not possible on a session clock: it has one speed, and a night fast
enough would run the trading days as fast. Weekends and Friday -> Monday are covered on a
ManualClock: tests/observer/test_sessions.py, tests/collectors/test_rest_worker.py.)"""

from __future__ import annotations

import json
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.support import BotApi, Pipeline, lines, start_bot_api

DAY_BEFORE, HOLIDAY, NEXT_DAY = "2026-11-24", "2026-11-25", "2026-11-26"  # Tuesday .. Thursday
NIGHT_SPEED = 1000.0  # Tuesday 16:00 -> Wednesday 15:40 (the whole holiday session) in 85 real seconds
DAY_SPEED = 60.0  # 09:00 -> 09:40 in 40 real seconds
# a loaded test machine may trip the CPU rule (90 % for 10 simulated minutes = 10 real seconds):
# that alert is about the machine, not the calendar; every other alert counts
MACHINE_ALERTS = ("CPU >", "cpu_high")


def _pipeline(base: Path, start_at: str, speed: float, bot: ThreadingHTTPServer) -> Pipeline:
    toml = (
        "[monitor]\ncpu_level1_pct = 101.0\ncpu_level2_pct = 101.0\nsample_interval_s = 1.0\n"
        f'[alerts]\ntelegram_base_url = "http://127.0.0.1:{bot.server_port}"\n'
    )
    return Pipeline(
        base,
        toml,
        speed=speed,
        start_at=start_at,
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
        # one run from the afternoon before through the whole holiday: the day changes without a restart
        holiday = _pipeline(short_tmp, f"{DAY_BEFORE}T16:00:00+09:00", NIGHT_SPEED, bot)
        statuses: list[dict[str, Any]] = []
        with holiday.running():
            wait_for(
                lambda: [e for e in _events(holiday, HOLIDAY) if e.get("type") == "market_closed"],
                90,
                0.5,
                "market_closed at the holiday's midnight",
            )
            midnight = time.monotonic()  # virtual 00:00 (within half a second)

            def virtual_s() -> float:
                return (time.monotonic() - midnight) * NIGHT_SPEED

            # the operator's view all through the session hours (09:05 .. 15:25)
            wait_for(lambda: virtual_s() >= 9 * 3600 + 5 * 60, 60, 0.2)
            while virtual_s() < 15 * 3600 + 25 * 60:
                statuses.append(holiday.status())
            wait_for(lambda: virtual_s() >= 15 * 3600 + 40 * 60, 30, 0.2)
        assert holiday.returncode == 0, holiday.stderr[-3000:]
        events = _events(holiday, HOLIDAY)
        assert [e["type"] for e in events].count("market_closed") == 1
        assert not [e for e in events if e["type"] in ("sweep_summary", "ws_session_window", "gap_marker")], [
            e["type"] for e in events
        ]
        assert not list(holiday.data.glob("swing/kis-sim/*/*/*.jsonl"))
        assert not list(holiday.data.glob("scalp/kis-sim/*/*/*.jsonl"))
        assert not list(holiday.data.glob("raw/kis-sim/*/*/*.jsonl"))
        assert len(statuses) >= 3  # one `observer status` takes seconds on a loaded machine
        data_reds = [
            r
            for st in statuses
            for r in st["health"]["reasons"]
            if r["severity"] == "red" and r["key"] != "cpu_high"
        ]
        assert not data_reds, data_reds
        assert not [e for e in _events(holiday, DAY_BEFORE) if e.get("type") == "market_closed"]
        assert not _alerts(), _alerts()
        cache = json.loads((holiday.data / "state" / "calendar.json").read_text())
        assert cache[DAY_BEFORE] is True and cache[HOLIDAY] is False  # the holiday was known the day before
        assert cache[NEXT_DAY] is True  # asked ahead of the next day

        next_day = _pipeline(short_tmp, f"{NEXT_DAY}T08:50:00+09:00", DAY_SPEED, bot)
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
