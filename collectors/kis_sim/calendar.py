"""The simulator's trading calendar: which virtual dates the synthetic KRX market opens.

A date is closed when it is a configured holiday, or a Saturday/Sunday while `weekends_closed`
is set. `chk-holiday` answers from this calendar and the market only trades on open dates, so the
REST calendar and the trade stream always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

_MAX_SCAN_DAYS = 370


class SimCalendar:
    """Open/closed days. Immutable after construction."""

    def __init__(self, holidays: Iterable[date] = (), weekends_closed: bool = True):
        self.holidays: frozenset[date] = frozenset(holidays)
        self.weekends_closed = weekends_closed

    def is_open(self, day: date) -> bool:
        if day in self.holidays:
            return False
        return not (self.weekends_closed and day.weekday() >= 5)

    def previous_open_day(self, day: date) -> date:
        """The last open date strictly before `day`."""
        probe = day
        for _ in range(_MAX_SCAN_DAYS):
            probe -= timedelta(days=1)
            if self.is_open(probe):
                return probe
        return day - timedelta(days=1)

    def open_days_before(self, day: date, count: int) -> list[date]:
        """`count` open dates strictly before `day`, newest first."""
        out: list[date] = []
        probe = day
        while len(out) < count:
            probe = self.previous_open_day(probe)
            out.append(probe)
        return out
