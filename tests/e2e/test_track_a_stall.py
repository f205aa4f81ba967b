"""A Track A that stops sweeping during the session (`observer ctl stop rest-collector`, the whole
pipeline as real processes on the session clock): status red and exactly one Telegram alert within
two sweep intervals; stopped for 25 simulated minutes, then started again: every mark it missed has
its ``collector_down`` gap marker, and the alert is not repeated."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.e2e.support import BotApi, Pipeline, lines, start_bot_api

SPEED = 20.0  # a 10-minute sweep interval is 30 real seconds
INTERVAL = timedelta(minutes=10)


def _events(p: Pipeline, type_: str) -> list[dict[str, Any]]:
    return [e for e in lines(p.data, "system/events/kis-sim/*.jsonl") if e.get("type") == type_]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_stalled_track_a_alerts_once_and_every_missed_mark_gets_a_marker(short_tmp: Path) -> None:
    bot = start_bot_api()
    toml = (
        "[monitor]\ncpu_level1_pct = 101.0\ncpu_level2_pct = 101.0\nsample_interval_s = 1.0\n"
        f'[alerts]\ntelegram_base_url = "http://127.0.0.1:{bot.server_port}"\n'
    )
    p = Pipeline(
        short_tmp,
        toml,
        speed=SPEED,
        start_at="09:38:00",
        symbol_count=300,
        TELEGRAM_BOT_TOKEN="123456:TESTTOKEN",
        TELEGRAM_CHAT_ID="42",
    )

    def reasons() -> list[str]:
        return [r["key"] for r in p.status()["health"]["reasons"]]

    def swing_alerts() -> list[dict[str, Any]]:
        return [m for m in BotApi.messages if "sweep" in str(m.get("text", "")).lower()]

    try:
        with p.running():
            # the 09:40 sweep archived: stop the collector right after it
            wait_for(
                lambda: any(
                    str(e["details"]["sweep_id"]).endswith("T0940") for e in _events(p, "sweep_summary")
                ),
                120,
                0.2,
                "the 09:40 sweep",
            )
            stop = p.observer("ctl", "stop", "rest-collector")
            assert stop.returncode == 0, stop.stdout + stop.stderr
            stopped = time.monotonic()
            # 09:50 is not swept: red + one alert by 09:55 (the grace) plus a monitor sample, well
            # within two sweep intervals (60 real seconds)
            wait_for(lambda: "swing_missing" in reasons(), 70, 0.5, "swing_missing")
            assert p.status()["health"]["status"] == "red"
            wait_for(swing_alerts, 70 - (time.monotonic() - stopped), 0.5, "the swing alert")
            assert time.monotonic() - stopped <= 2 * INTERVAL.total_seconds() / SPEED
            # 25 simulated minutes down, then back
            wait_for(lambda: time.monotonic() - stopped >= 25 * 60 / SPEED, 90, 0.2)
            start = p.observer("ctl", "start", "rest-collector")
            assert start.returncode == 0, start.stdout + start.stderr

            def down_markers() -> list[dict[str, Any]]:
                return [g for g in _events(p, "gap_marker") if g.get("reason") == "collector_down"]

            def swept() -> set[str]:
                return {str(e["details"]["sweep_id"])[-4:] for e in _events(p, "sweep_summary")}

            before = swept()
            wait_for(lambda: swept() - before, 60, 0.5, "a sweep after the restart")
            wait_for(down_markers, 30, 0.5, "collector_down markers")
            wait_for(lambda: "swing_missing" not in reasons(), 60, 0.5, "swept again: swing fresh")
            summaries = swept()
            markers = down_markers()
            assert len(swing_alerts()) == 1, swing_alerts()  # one episode, one message
    finally:
        bot.shutdown()
    assert p.returncode == 0, p.stderr[-3000:]
    assert "TESTTOKEN" not in p.stderr
    missed = sorted(datetime.fromisoformat(g["start"]) for g in markers)
    assert missed[0].strftime("%H%M") == "0950"  # 25 minutes after 09:40+: 09:50 and maybe 10:00
    assert all(b - a == INTERVAL for a, b in itertools.pairwise(missed))  # consecutive marks
    assert all(
        datetime.fromisoformat(g["end"]) - datetime.fromisoformat(g["start"]) == INTERVAL for g in markers
    )
    assert all(len(g["symbols"]) > 100 for g in markers)  # the day's universe is named
    # every mark from 09:40 to the first sweep after the restart: swept or marked, never both, none silent
    resumed = missed[-1] + INTERVAL
    assert resumed.strftime("%H%M") in summaries
    for mark in (missed[0] - INTERVAL, *missed, resumed):
        swept, marked = mark.strftime("%H%M") in summaries, mark in missed
        assert swept != marked, (mark, swept, marked)
