"""The monitor sends the end-of-day summary (a few lines and one chart) to Telegram once: a real
monitor process on a session clock set after the close of the simulated day, the Telegram
stand-in of the monitor tests, and a second monitor start that must not send it again."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_for
from tests.e2e.support import scalp_rate
from tests.sinks.monitor.conftest import CHAT_ID, TOKEN, FakeTelegram, monitor_env  # noqa: F401
from tests.sinks.research.conftest import Day

# the first test of a session pays for the shared simulated day (a real pipeline run)
pytestmark = pytest.mark.timeout(600)


def test_day_summary_reaches_telegram_once(research_day: Day, monitor_env: Any, short_tmp: Path) -> None:  # noqa: F811
    shutil.copytree(research_day.data, short_tmp / "data")
    shutil.copytree(research_day.data.parent / "universe", short_tmp / "universe")
    bot = FakeTelegram(free_port())
    bot.up()
    extra = (
        f'[clock]\nmode = "session"\nstart_at = "{research_day.day.isoformat()}T15:40:30+09:00"\n'
        f"[research]\nsummary_delay_s = 10.0\n"
        f'[alerts]\ntelegram_base_url = "{bot.base_url}"\n'
    )
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT_ID}
    try:
        _, bus, proc = monitor_env(monitor="sample_interval_s = 1.0", extra=extra, env=env)

        def photos() -> list[int]:
            bus.drain()
            return [i for i, p in enumerate(bot.paths) if p.endswith("/sendPhoto")]

        wait_for(photos, 120, 0.2, "the day summary on Telegram")
        [i] = photos()
        message = bot.messages[i]
        assert bot.paths[i] == f"/bot{TOKEN}/sendPhoto" and message["chat_id"] == CHAT_ID
        assert message["photo"][:8] == b"\x89PNG\r\n\x1a\n"
        written, expected, _ = scalp_rate(research_day.data)
        text = message["caption"]
        assert f"day summary {research_day.day.isoformat()}" in text
        assert f"Track B: {written / expected * 100:.2f} %" in text, text
        assert "Track A:" in text and "Gaps: " in text
        assert (short_tmp / "data" / "state" / "day_summary" / f"{research_day.key}.sent").exists()
        assert proc.stop() == 0
        assert TOKEN not in proc.stderr()

        _, bus, again = monitor_env(monitor="sample_interval_s = 1.0", extra=extra, env=env)
        wait_for(
            lambda: "day summary already sent" in again.stderr(), 60, 0.2, "the restarted monitor to skip it"
        )
        bus.drain()
        assert photos() == [i], "sent once, not again after a restart"
    finally:
        bot.down()
