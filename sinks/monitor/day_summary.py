"""The end-of-day summary on Telegram: once per trading day, after both tracks have closed.

    monitor sample (market clock) -> due? (trading day, both sessions over + summary_delay_s,
    no marker state/day_summary/YYYYMMDD.sent) -> thread: `observer report --day D --summary-json`
    (a child process: matplotlib stays out of the monitor) -> AlertSender.notify(text + chart,
    sendPhoto) -> marker written: a restarted monitor does not send it again.

A report that fails is logged and tried again after 10 minutes, three times at most per day.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from observer.child_command import ChildResult, run_observer
from observer.clock import KST
from observer.config import Config, state_dir
from observer.sessions import MarketSessions
from sinks.monitor.alerts import AlertSender

RETRY_REAL_S = 600.0
MAX_TRIES = 3


class DaySummary:
    def __init__(self, cfg: Config, sessions: MarketSessions, alerts: AlertSender, log: logging.Logger):
        self.cfg = cfg
        self.sessions = sessions
        self.alerts = alerts
        self.log = log
        self.markers = state_dir(cfg) / "day_summary"
        self._thread: threading.Thread | None = None
        self._failed_at: dict[date, float] = {}
        self._tries: dict[date, int] = {}
        self._known_sent: set[date] = set()
        self.sent = 0

    def due_at(self, day: date) -> datetime:
        ends = (self.sessions.track_a_hours.on(day)[1], self.sessions.track_b_hours.on(day)[1])
        return max(ends) + timedelta(seconds=self.cfg.research.summary_delay_s)

    def marker(self, day: date) -> Path:
        return self.markers / f"{day.strftime('%Y%m%d')}.sent"

    def poll(self, now: datetime) -> None:
        """Start the day's report when it is due; cheap when it is not."""
        if not self.cfg.research.summary_telegram or (self._thread is not None and self._thread.is_alive()):
            return
        day = now.astimezone(KST).date()
        if day in self._known_sent or now < self.due_at(day) or not self.sessions.is_trading_day(day):
            return
        if self.marker(day).exists():
            self._known_sent.add(day)
            self.log.info("day summary already sent", extra={"day": day.isoformat()})
            return
        failed = self._failed_at.get(day)
        if failed is not None and (time.monotonic() - failed < RETRY_REAL_S or self._tries[day] >= MAX_TRIES):
            return
        self._tries[day] = self._tries.get(day, 0) + 1
        self._thread = threading.Thread(target=self._run, args=(day,), name="day-summary", daemon=True)
        self._thread.start()

    def _run(self, day: date) -> None:
        key = day.strftime("%Y%m%d")
        result: ChildResult = run_observer(
            "report", "--day", key, "--summary-json", timeout_s=self.cfg.research.summary_timeout_real_s
        )
        try:
            if not result.ok:
                raise ValueError(result.reason())
            doc = json.loads(result.stdout.strip().splitlines()[-1])
            chart = Path(doc["chart"]).read_bytes()
        except (ValueError, KeyError, IndexError, OSError) as e:
            self._failed_at[day] = time.monotonic()
            self.log.warning(
                "day summary not built; retried later", extra={"day": day.isoformat(), "error": str(e)}
            )
            return
        self.alerts.notify(f"day_summary.{key}", "INFO", doc["text"], photo_png=chart)
        self.markers.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.marker(day).write_text(datetime.now(KST).isoformat() + "\n")
        self._known_sent.add(day)
        self.sent += 1
        self.log.info("day summary sent", extra={"day": day.isoformat()})
