"""The KRX trading calendar: which KST dates are collected. Read through `observer.sessions`.

A day is closed when it is a Saturday or Sunday, or when the broker says so (KIS ``chk-holiday``,
``opnd_yn``), or — when the broker's answer is unknown — when it is in ``[calendar].holidays``.
Broker answers are cached per day on disk (``state_dir/calendar.json``, 0600) so the broker is
asked about a day once; an unknown answer is retried at most every ``retry_unknown_s``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path

import msgspec

from observer.atomic import write_atomic
from observer.config import Config, ensure_private_dir, state_dir

log = logging.getLogger(__name__)

FetchHoliday = Callable[[date], bool | None]
_MAX_SCAN_DAYS = 400
_cache_decoder = msgspec.json.Decoder(dict[str, bool])
_cache_encoder = msgspec.json.Encoder()


class CalendarError(Exception):
    """The calendar cannot answer (bad configuration)."""


class TradingCalendar:
    """Answers whether a KST date is a trading day. Thread-safe enough for one process: the disk
    cache is written atomically under an fcntl lock, so several processes may share it."""

    def __init__(
        self,
        holidays: Iterable[date] = (),
        fetch_holiday: FetchHoliday | None = None,
        cache_path: Path | None = None,
        *,
        retry_unknown_s: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.holidays = frozenset(holidays)
        self._fetch = fetch_holiday
        self._cache_path = cache_path
        self._retry_unknown_s = retry_unknown_s
        self._monotonic = monotonic
        self._known: dict[date, bool] = {}
        self._unknown_at: dict[date, float] = {}
        self.fetches = 0
        self._cache_mtime_ns: int | None = None
        self.reload()

    @classmethod
    def from_config(cls, cfg: Config, fetch_holiday: FetchHoliday | None = None) -> TradingCalendar:
        fetch = fetch_holiday if cfg.calendar.use_chk_holiday else None
        return cls(cfg.calendar.holidays, fetch, state_dir(cfg) / "calendar.json")

    # -- queries
    def is_trading_day(self, day: date) -> bool:
        if day.weekday() >= 5:
            return False
        known = self._known.get(day)
        if known is None:
            known = self._ask_broker(day)
        if known is not None:
            return known
        return day not in self.holidays

    def next_trading_day(self, after: date) -> date:
        """The first trading day strictly after `after`."""
        probe = after
        for _ in range(_MAX_SCAN_DAYS):
            probe += timedelta(days=1)
            if self.is_trading_day(probe):
                return probe
        raise CalendarError(f"no trading day within {_MAX_SCAN_DAYS} days after {after}")

    def previous_trading_day(self, before: date) -> date:
        """The last trading day strictly before `before`."""
        probe = before
        for _ in range(_MAX_SCAN_DAYS):
            probe -= timedelta(days=1)
            if self.is_trading_day(probe):
                return probe
        raise CalendarError(f"no trading day within {_MAX_SCAN_DAYS} days before {before}")

    def source_of(self, day: date) -> str:
        """How the answer for `day` was decided: weekend, broker or configured."""
        if day.weekday() >= 5:
            return "weekend"
        return "broker" if day in self._known else "configured"

    # -- the broker and the cache
    def _ask_broker(self, day: date) -> bool | None:
        if self._fetch is None:
            return None
        failed_at = self._unknown_at.get(day)
        if failed_at is not None and self._monotonic() - failed_at < self._retry_unknown_s:
            return None
        self.fetches += 1
        try:
            answer = self._fetch(day)
        except Exception as e:  # the calendar must answer even when the broker cannot
            log.warning(
                "holiday check failed; using the configured calendar",
                extra={"day": str(day), "error": repr(e)},
            )
            answer = None
        if answer is None:
            self._unknown_at[day] = self._monotonic()
            return None
        self._known[day] = answer
        self._store(day, answer)
        return answer

    def reload(self) -> None:
        """Take in broker answers another process cached on disk since the last look (cheap when
        the cache is unchanged: one stat)."""
        if self._cache_path is None:
            return
        try:
            mtime_ns = self._cache_path.stat().st_mtime_ns
        except OSError:
            return
        if mtime_ns == self._cache_mtime_ns:
            return
        self._cache_mtime_ns = mtime_ns
        try:
            raw = _cache_decoder.decode(self._cache_path.read_bytes())
        except (OSError, msgspec.DecodeError) as e:
            log.warning(
                "calendar cache unreadable; ignoring it",
                extra={"path": str(self._cache_path), "error": str(e)},
            )
            return
        for key, value in raw.items():
            try:
                self._known[date.fromisoformat(key)] = value
            except ValueError:
                continue

    def _store(self, day: date, is_open: bool) -> None:
        path = self._cache_path
        if path is None:
            return
        try:
            ensure_private_dir(path.parent)
            lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                merged: dict[str, bool] = {}
                if path.exists():
                    try:
                        merged = _cache_decoder.decode(path.read_bytes())
                    except msgspec.DecodeError:
                        merged = {}
                merged[day.isoformat()] = is_open
                write_atomic(path, _cache_encoder.encode(dict(sorted(merged.items()))))
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                os.close(lock_fd)
        except OSError as e:
            log.warning("calendar cache not written", extra={"path": str(path), "error": str(e)})
