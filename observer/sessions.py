"""Market hours, the trading calendar and every scheduled job: the one place that knows *when*.

Data flow::

    injected clock --now--> MarketSessions --> is `day` a trading day?  (TradingCalendar: weekends,
                                               |                         broker answers cached on disk,
                                               |                         [calendar].holidays)
                                               +-> Track A: the day's sweep marks, the mark due now,
                                               |   the next mark, marks missed between two instants
                                               +-> Track B: the WebSocket session window
                                               +-> housekeeper: when a day's backup is due, the next
                                               |   retention run
                                               +-> the universe build time of a day

Every answer is a function of the time the caller passes in, so a `ManualClock` or a sped-up
`SessionClock` drives every worker's schedule exactly as wall time does. The arithmetic is
APScheduler's (3.x triggers): an `IntervalTrigger` per trading day yields the Track A marks, a
`CronTrigger` per daily job its fire times; `get_next_fire_time(previous, now)` takes `now` from
the caller. APScheduler's *scheduler* (its thread, job store and wall-clock sleeps) is not used:
it waits on wall time and could not follow an injected clock; each worker's loop asks instead.
What APScheduler does not model is written here: a mark's *slot* (``[mark, mark + interval)``,
the time in which a late look still runs that mark) and the trading calendar.

Calendar: the only reader of `TradingCalendar`. Broker answers (``chk-holiday``) are fetched by
the process that has a broker client (the rest-collector, which asks for today and the next
trading day ahead) and cached on disk; every other worker re-reads that cache when it changes
(at most every ``CALENDAR_REFRESH_S`` real seconds), so a holiday found by one
process closes every worker, not only the one that asked.
"""

from __future__ import annotations

import bisect
import time as time_module
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from observer.calendar import FetchHoliday, TradingCalendar
from observer.clock import KST
from observer.config import Config

CALENDAR_REFRESH_S = 1.0
_DAYS_KEPT = 8  # per-day caches (marks, calendar answers)
_MISSED_SCAN_DAYS = 10  # a collector down longer than this reports only the last days' marks


def sweep_id_of(mark: datetime) -> str:
    """The id of the Track A sweep of `mark` (``YYYYMMDDTHHMM`` KST), carried by its snapshots."""
    return f"{mark.astimezone(KST):%Y%m%dT%H%M}"


def sweep_mark_of(sweep_id: str) -> datetime | None:
    """The mark a sweep id names, or None when it is not one."""
    try:
        return datetime.strptime(sweep_id, "%Y%m%dT%H%M").replace(tzinfo=KST)
    except ValueError:
        return None


def at_kst(day: date, at: time) -> datetime:
    """`day` at time of day `at` KST (aware)."""
    return datetime.combine(day, at.replace(tzinfo=None), KST)


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """A time-of-day window ``[start, end)`` KST, the same every day (no calendar)."""

    start: time
    end: time

    def on(self, day: date, margin_s: float = 0.0) -> tuple[datetime, datetime]:
        margin = timedelta(seconds=margin_s)
        return at_kst(day, self.start) - margin, at_kst(day, self.end) + margin

    def contains(self, at: datetime) -> bool:
        """Whether `at`'s KST time of day lies in the window."""
        t = at.astimezone(KST).time()
        return self.start <= t < self.end

    def next_start(self, at: datetime) -> datetime:
        """The window's start on `at`'s KST day, or the next day's once `at` is past today's end."""
        local = at.astimezone(KST)
        day = local.date() + timedelta(days=1) if local.time() >= self.end else local.date()
        return at_kst(day, self.start)


def _daily(at: time) -> CronTrigger:
    return CronTrigger(hour=at.hour, minute=at.minute, second=at.second, timezone=KST)


def _first_fire(trigger: CronTrigger, day: date) -> datetime:
    fire = trigger.get_next_fire_time(None, at_kst(day, time(0)))
    assert fire is not None  # a daily cron always fires
    return fire.astimezone(KST)


class MarketSessions:
    """When each track is open and each job is due, for any instant (see the module docstring)."""

    def __init__(
        self,
        cfg: Config,
        calendar: TradingCalendar,
        *,
        monotonic: Callable[[], float] = time_module.monotonic,
    ):
        self.cfg = cfg
        self.calendar = calendar
        self._monotonic = monotonic
        self._refreshed_at: float | None = None
        ta, tb, hk = cfg.track_a, cfg.track_b, cfg.housekeeping
        self.track_a_hours = DailyWindow(ta.start, ta.end)
        self.track_b_hours = DailyWindow(tb.start, tb.end)
        self.sweep_interval = timedelta(minutes=ta.sweep_interval_min)
        self._marks: OrderedDict[date, list[datetime]] = OrderedDict()
        self._universe_build = _daily(cfg.universe.build_at)
        # a day's package waits for both sessions to end, whatever backup_at says
        self._backup = _daily(max(hk.backup_at, ta.end, tb.end))
        self._retention = _daily(hk.retention_at)

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        *,
        fetch_holiday: FetchHoliday | None = None,
        monotonic: Callable[[], float] = time_module.monotonic,
    ) -> MarketSessions:
        """The sessions of `cfg`; `fetch_holiday` (the broker's answer) only where a broker client is."""
        return cls(cfg, TradingCalendar.from_config(cfg, fetch_holiday), monotonic=monotonic)

    # -- the calendar
    def is_trading_day(self, day: date) -> bool:
        self._refresh()
        return self.calendar.is_trading_day(day)

    def next_trading_day(self, after: date) -> date:
        self._refresh()
        return self.calendar.next_trading_day(after)

    def _refresh(self) -> None:
        now = self._monotonic()
        if self._refreshed_at is None or now - self._refreshed_at >= CALENDAR_REFRESH_S:
            self._refreshed_at = now
            self.calendar.reload()

    # -- Track A
    def sweep_marks(self, day: date) -> list[datetime]:
        """Every sweep mark of `day` (``start + k * interval`` up to and including ``end``), or none
        on a closed day."""
        if not self.is_trading_day(day):
            return []
        marks = self._marks.get(day)
        if marks is None:
            start, end = self.track_a_hours.on(day)
            trigger = IntervalTrigger(
                minutes=self.cfg.track_a.sweep_interval_min, start_date=start, end_date=end, timezone=KST
            )
            marks = []
            fire = trigger.get_next_fire_time(None, start)
            while fire is not None:
                marks.append(fire.astimezone(KST))
                fire = trigger.get_next_fire_time(fire, fire)
            self._marks[day] = marks
            while len(self._marks) > _DAYS_KEPT:
                self._marks.popitem(last=False)
        return marks

    def due_mark(self, now: datetime) -> datetime | None:
        """The mark whose slot ``[mark, mark + interval)`` contains `now`, or None outside the session
        and on closed days. Aligned to the marks, not to when a sweep ended, so it never drifts."""
        local = now.astimezone(KST)
        marks = self.sweep_marks(local.date())
        i = bisect.bisect_right(marks, local) - 1
        if i < 0 or local >= marks[i] + self.sweep_interval:
            return None
        return marks[i]

    def next_mark(self, now: datetime) -> datetime | None:
        """The first mark strictly after `now` on `now`'s KST date, or None when the session is over."""
        local = now.astimezone(KST)
        marks = self.sweep_marks(local.date())
        i = bisect.bisect_right(marks, local)
        return marks[i] if i < len(marks) else None

    def marks_between(self, after: datetime, before: datetime) -> list[datetime]:
        """Every mark strictly after `after` and strictly before `before` (trading days only)."""
        a, b = after.astimezone(KST), before.astimezone(KST)
        day = max(a.date(), b.date() - timedelta(days=_MISSED_SCAN_DAYS))
        out: list[datetime] = []
        while day <= b.date():
            out.extend(m for m in self.sweep_marks(day) if a < m < b)
            day += timedelta(days=1)
        return out

    def latest_mark(self, before: datetime) -> datetime | None:
        """The latest mark at or before `before` on its KST day (None before the first)."""
        local = before.astimezone(KST)
        marks = self.sweep_marks(local.date())
        i = bisect.bisect_right(marks, local) - 1
        return marks[i] if i >= 0 else None

    def track_a_open(self, now: datetime) -> bool:
        """A trading day and ``track_a.start <= now < track_a.end``."""
        return self._in(self.track_a_hours, now)

    # -- Track B
    def track_b_window(self, day: date, margin_s: float = 0.0) -> tuple[datetime, datetime] | None:
        """The WebSocket session window of `day` (widened by `margin_s`), or None on a closed day."""
        return self.track_b_hours.on(day, margin_s) if self.is_trading_day(day) else None

    def track_b_open(self, now: datetime, margin_s: float = 0.0) -> bool:
        window = self.track_b_window(now.astimezone(KST).date(), margin_s)
        return window is not None and window[0] <= now < window[1]

    def _in(self, hours: DailyWindow, now: datetime) -> bool:
        return self.is_trading_day(now.astimezone(KST).date()) and hours.contains(now)

    # -- the universe
    def universe_build_at(self, day: date) -> datetime:
        return _first_fire(self._universe_build, day)

    # -- housekeeping
    def backup_due_at(self, day: date) -> datetime:
        """When `day` may be packaged: ``backup_at``, and never before both sessions have ended."""
        return _first_fire(self._backup, day)

    def next_backup_at(self, now: datetime) -> datetime:
        """The first backup time at or after `now`."""
        fire = self._backup.get_next_fire_time(None, now.astimezone(KST))
        assert fire is not None
        return fire.astimezone(KST)

    def next_retention_at(self, now: datetime) -> datetime:
        """The first retention time strictly after `now`."""
        local = now.astimezone(KST)
        fire = self._retention.get_next_fire_time(local, local)
        assert fire is not None
        return fire.astimezone(KST)

    def retention_at(self, day: date) -> datetime:
        return _first_fire(self._retention, day)
