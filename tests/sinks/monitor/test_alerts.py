"""The Telegram alert sender against a local HTTP server standing in for the Bot API."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from observer.config import Secrets
from sinks.monitor.alerts import AlertSender
from testkit.config import make_config
from tests.conftest import free_port, wait_for
from tests.sinks.monitor.conftest import CHAT_ID, TOKEN, FakeTelegram


def _sender(base: Path, telegram: FakeTelegram, token: str = TOKEN) -> AlertSender:
    cfg = make_config(
        base,
        alerts={"telegram_base_url": telegram.base_url, "retry_initial_s": 0.05, "retry_max_s": 0.2},
    )
    return AlertSender(
        cfg, Secrets({"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_CHAT_ID": CHAT_ID} if token else {})
    )


def test_one_message_per_episode(short_tmp: Path) -> None:
    telegram = FakeTelegram(free_port())
    telegram.up()
    sender = _sender(short_tmp, telegram)
    sender.start()
    try:
        started = [
            sender.set_condition("cpu_high", True, "CRITICAL", "CPU 95 % for 10 min") for _ in range(5)
        ]
        assert started == [True, False, False, False, False]
        sender.set_condition("cpu_high", False, "CRITICAL", "")
        sender.set_condition("cpu_high", False, "CRITICAL", "")
        assert sender.set_condition("cpu_high", True, "CRITICAL", "CPU 96 % again") is True
        sender.set_condition("cpu_high", True, "CRITICAL", "CPU 96 % again")
        sender.notify("sentinel", "WARNING", "sentinel")  # order is kept: anything else came before it
        wait_for(lambda: "sentinel" in " ".join(telegram.texts()), 10, what="the sentinel alert")
        assert telegram.texts() == [
            "[CRITICAL] KRX observer: CPU 95 % for 10 min",
            "[CRITICAL] KRX observer: CPU 96 % again",
            "[WARNING] KRX observer: sentinel",
        ]
        assert telegram.messages[0]["chat_id"] == CHAT_ID
        assert telegram.paths[0] == f"/bot{TOKEN}/sendMessage"
        wait_for(lambda: sender.sent == 3, 5, what="three counted as sent")  # after the answer is read
        assert sender.dropped == 0
    finally:
        sender.stop()
        telegram.down()


def test_bot_api_down_delays_alerts_and_loses_none(short_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    telegram = FakeTelegram(free_port())  # not listening yet: connection refused
    sender = _sender(short_tmp, telegram)
    sender.start()
    try:
        for key in ("disk_high", "track_b_rate_low", "ws_reconnects_high"):
            assert sender.set_condition(key, True, "WARNING", f"{key} is true")
        sender.notify("event.backup_failed", "CRITICAL", "housekeeper: backup failed")
        wait_for(lambda: sender.attempts_failed >= 2, 10, what="failed delivery attempts while down")
        assert sender.sent == 0 and telegram.texts() == []
        telegram.up()
        wait_for(lambda: len(telegram.texts()) >= 4, 10, what="the delayed alerts")
        assert telegram.texts() == [
            "[WARNING] KRX observer: disk_high is true",
            "[WARNING] KRX observer: track_b_rate_low is true",
            "[WARNING] KRX observer: ws_reconnects_high is true",
            "[CRITICAL] KRX observer: housekeeper: backup failed",
        ]
        # counted once the answer is read, just after the stand-in recorded the message
        wait_for(lambda: sender.sent == 4, 5, what="four counted as sent")
        assert sender.dropped == 0 and sender.refused == 0
    finally:
        sender.stop()
        telegram.down()
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "Telegram unreachable" in logged
    assert TOKEN not in logged  # the URL carries the token; error texts are scrubbed


def test_without_a_token_alerts_go_to_the_log_only(short_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    telegram = FakeTelegram(free_port())
    telegram.up()
    sender = _sender(short_tmp, telegram, token="")
    sender.start()
    try:
        assert sender.set_condition("disk_high", True, "CRITICAL", "disk 85 % used")
        assert sender.pending == 0 and not sender.telegram_enabled
    finally:
        sender.stop()
        telegram.down()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Telegram alerts disabled" in m for m in messages) == 1
    assert "alert: disk 85 % used" in messages
    assert telegram.texts() == []


def test_a_full_queue_drops_the_oldest_and_counts_it(short_tmp: Path) -> None:
    telegram = FakeTelegram(free_port())  # down: nothing leaves the queue
    cfg = make_config(short_tmp, alerts={"telegram_base_url": telegram.base_url, "queue_size": 2})
    sender = AlertSender(cfg, Secrets({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT_ID}))
    for i in range(5):  # not started: the queue only fills
        sender.notify(f"k{i}", "WARNING", f"alert {i}")
    assert sender.pending == 2 and sender.dropped == 3
