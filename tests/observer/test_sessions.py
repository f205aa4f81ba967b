"""`observer.sessions` over a whole simulated week on a ManualClock gives the fire times the workers
used before it existed (captured from the hand-written arithmetic it replaced: `calendar.due_mark`,
`kis.ws.SessionSchedule`, `housekeeping.worker.next_daily`, `housekeeping.jobs.backup_due_at`)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from observer.clock import KST, ManualClock
from observer.sessions import MarketSessions
from testkit.config import make_config

# The week of Monday 2026-11-23 with a configured holiday on Wednesday the 25th, default config.
HOLIDAY = date(2026, 11, 25)
TRADING_DAYS = [
    date(2026, 11, 23),
    date(2026, 11, 24),
    date(2026, 11, 26),
    date(2026, 11, 27),
    date(2026, 11, 30),
]
# captured: every new `due_mark` seen while stepping the clock by 30 s, per trading day (40 a day)
SWEEP_TIMES = [
    "09:00", "09:10", "09:20", "09:30", "09:40", "09:50", "10:00", "10:10", "10:20", "10:30",
    "10:40", "10:50", "11:00", "11:10", "11:20", "11:30", "11:40", "11:50", "12:00", "12:10",
    "12:20", "12:30", "12:40", "12:50", "13:00", "13:10", "13:20", "13:30", "13:40", "13:50",
    "14:00", "14:10", "14:20", "14:30", "14:40", "14:50", "15:00", "15:10", "15:20", "15:30",
]  # fmt: skip
# captured: the WebSocket session window's edges (SessionSchedule.in_session flips)
TRACK_B_EDGES = [
    ("2026-11-23T09:30:00+09:00", True), ("2026-11-23T15:00:00+09:00", False),
    ("2026-11-24T09:30:00+09:00", True), ("2026-11-24T15:00:00+09:00", False),
    ("2026-11-26T09:30:00+09:00", True), ("2026-11-26T15:00:00+09:00", False),
    ("2026-11-27T09:30:00+09:00", True), ("2026-11-27T15:00:00+09:00", False),
    ("2026-11-30T09:30:00+09:00", True), ("2026-11-30T15:00:00+09:00", False),
]  # fmt: skip
# captured: next_daily(now, "21:30") chained from Monday 00:00, and backup_due_at(day) per day
RETENTION_RUNS = [f"2026-11-{d}T21:30:00+09:00" for d in range(23, 31)]
BACKUP_DUE = [f"2026-11-{d}T21:00:00+09:00" for d in range(23, 31)]
UNIVERSE_BUILD = "08:30"


def test_a_week_of_fire_times_matches_the_captured_table(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, f'[calendar]\nholidays = ["{HOLIDAY}"]\nuse_chk_holiday = false\n')
    sessions = MarketSessions.from_config(cfg)
    clock = ManualClock(datetime(2026, 11, 23, 0, 0, tzinfo=KST))
    end = datetime(2026, 11, 30, 23, 59, tzinfo=KST)
    sweeps: list[datetime] = []
    edges: list[tuple[str, bool]] = []
    last_mark: datetime | None = None
    b_open = False
    while clock.now() <= end:
        now = clock.now()
        mark = sessions.due_mark(now)
        if mark is not None and mark != last_mark:
            last_mark = mark
            sweeps.append(mark)
        if sessions.track_b_open(now) != b_open:
            b_open = not b_open
            edges.append((now.isoformat(), b_open))
        clock.advance(30)

    expected = [
        datetime.combine(d, datetime.strptime(t, "%H:%M").time(), KST)
        for d in TRADING_DAYS
        for t in SWEEP_TIMES
    ]
    assert sweeps == expected  # Friday -> Monday, nothing on the weekend nor on the holiday
    assert edges == TRACK_B_EDGES
    runs, at = [], clock.now().replace(day=23, hour=0, minute=0, second=0)
    for _ in range(8):
        at = sessions.next_retention_at(at)
        runs.append(at.isoformat())
    assert runs == RETENTION_RUNS
    days = [date(2026, 11, 23) + timedelta(days=i) for i in range(8)]
    assert [sessions.backup_due_at(d).isoformat() for d in days] == BACKUP_DUE
    assert {sessions.universe_build_at(d).strftime("%H:%M") for d in days} == {UNIVERSE_BUILD}
    assert not sessions.is_trading_day(HOLIDAY) and sessions.next_trading_day(HOLIDAY) == TRADING_DAYS[2]


def test_missed_marks_span_days_and_skip_closed_ones(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, f'[calendar]\nholidays = ["{HOLIDAY}"]\nuse_chk_holiday = false\n')
    sessions = MarketSessions.from_config(cfg)
    tue_1510 = datetime(2026, 11, 24, 15, 10, tzinfo=KST)
    thu_0925 = datetime(2026, 11, 26, 9, 25, tzinfo=KST)
    missed = sessions.marks_between(tue_1510, thu_0925)
    assert [m.strftime("%d %H:%M") for m in missed] == [
        "24 15:20",
        "24 15:30",
        "26 09:00",
        "26 09:10",
        "26 09:20",
    ]
    assert sessions.latest_mark(datetime(2026, 11, 26, 10, 4, tzinfo=KST)) == datetime(
        2026, 11, 26, 10, 0, tzinfo=KST
    )
    assert sessions.latest_mark(datetime(2026, 11, 26, 8, 59, tzinfo=KST)) is None


def test_backup_waits_for_both_sessions_to_end(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, '[housekeeping]\nbackup_at = "15:00"\n')
    sessions = MarketSessions.from_config(cfg)
    assert sessions.backup_due_at(date(2026, 11, 23)) == datetime(2026, 11, 23, 15, 30, tzinfo=KST)
