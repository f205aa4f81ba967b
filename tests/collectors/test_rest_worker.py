"""The rest-collector worker: schedule from an injected clock, closed days, restarts, full sweeps."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import zmq

from collectors.kis.provider import KisProvider
from collectors.kis_sim.server import Simulator
from collectors.rest_worker import RestCollectorWorker
from observer.bus import EventPublisher
from observer.clock import KST, ManualClock, SessionClock
from observer.config import Secrets, SimConfig
from observer.schema import GapMarker, QuoteSnapshot, SweepSummary, SystemEvent
from testkit.config import make_config, write_config
from tests.collectors.conftest import IngestTap, sim_toml
from tests.collectors.kis.test_rest_sim import count_token_issues
from tests.conftest import REPO, wait_for

FRI, SAT, SUN, MON, TUE = 13, 14, 15, 16, 17


def at(day: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 3, day, hh, mm, ss, tzinfo=KST)


def events(tap: IngestTap, type_: str) -> list[SystemEvent]:
    typed = [s.event() for s in tap.of(SweepSummary)]  # as the core archives them
    return [e for e in [*tap.of(SystemEvent), *typed] if e.type == type_]


def count_is(tap: IngestTap, type_: str, n: int) -> Callable[[], bool]:
    return lambda: len(events(tap, type_)) == n


def polled(tap: IngestTap, pred: Callable[[], bool]) -> Callable[[], bool]:
    def check() -> bool:
        tap.poll()
        return pred()

    return check


def started_worker(cfg: Any, clock: ManualClock) -> RestCollectorWorker:
    """A rest-collector on the simulator of `cfg`, started in this process (ticked by the test)."""
    provider = KisProvider.from_config(cfg, Secrets({}), clock=clock)
    worker = RestCollectorWorker(cfg, provider=provider, clock=clock, secrets=Secrets({}))
    worker.ctx = zmq.Context()
    worker.events = EventPublisher(worker.ctx, cfg)
    worker.on_start()
    return worker


def run_until(
    worker: RestCollectorWorker, tap: IngestTap, pred: Callable[[], Any], what: str, timeout_s: float = 20
) -> Any:
    """Tick `worker` (and read what it sent) until `pred` holds."""

    def step() -> Any:
        worker.on_tick()
        tap.poll()
        return pred()

    return wait_for(step, timeout_s=timeout_s, interval_s=0.01, what=what)


def test_injected_clock_friday_weekend_holiday_then_a_new_day_without_restart(
    start_sim: Callable[..., Simulator], tap_factory: Callable[..., IngestTap], short_tmp: Path
) -> None:
    clock = ManualClock(at(FRI, 8, 59, 50))
    sim = start_sim(clock, symbol_count=160, holidays=(datetime(2026, 3, MON).date(),))
    cfg = make_config(short_tmp, sim_toml(sim))
    tap = tap_factory(cfg)
    worker = started_worker(cfg, clock)

    def tick_until(pred: Callable[[], Any], what: str) -> Any:
        return run_until(worker, tap, pred, what, 20)

    def summaries() -> list[str]:
        return [str(e.details["sweep_id"]) for e in events(tap, "sweep_summary")]

    try:
        universe = Path(cfg.paths.universe_dir)
        tick_until(lambda: worker.plan and worker.plan.symbols, "Friday's universe")
        assert sorted(p.name for p in universe.iterdir()) == ["20260313_KOSDAQ.json", "20260313_KOSPI.json"]
        assert not tap.of(QuoteSnapshot)  # nothing before 09:00
        clock.set(at(FRI, 9, 0))
        tick_until(lambda: summaries() == ["20260313T0900"], "the 09:00 sweep")
        n_symbols = len(worker.plan.symbols) if worker.plan and worker.plan.symbols else 0
        quotes = tap.of(QuoteSnapshot)
        assert len(quotes) == n_symbols > 50 and {q.sweep_id for q in quotes} == {"20260313T0900"}
        clock.set(at(FRI, 9, 17, 30))  # a late look still runs the 09:10 slot, named by its mark
        tick_until(lambda: summaries() == ["20260313T0900", "20260313T0910"], "the 09:10 sweep")
        before = len(tap.of(QuoteSnapshot))
        for n_closed, day in enumerate((SAT, SUN, MON), start=1):
            for hh, mm in ((8, 40), (9, 0), (9, 10), (15, 30)):
                clock.set(at(day, hh, mm))
                tick_until(count_is(tap, "market_closed", n_closed), f"market_closed on the {day}th")
                for _ in range(20):
                    worker.on_tick()
        tap.poll()
        assert len(tap.of(QuoteSnapshot)) == before  # the weekend and the holiday collected nothing
        closed = events(tap, "market_closed")
        assert [e.details["day"] for e in closed] == ["2026-03-14", "2026-03-15", "2026-03-16"]  # once each
        clock.set(at(TUE, 8, 31))
        tick_until(
            lambda: (universe / "20260317_KOSPI.json").exists() and worker.plan and worker.plan.symbols,
            "Tuesday's universe",
        )
        assert not [q for q in tap.of(QuoteSnapshot) if q.sweep_id.startswith("20260317")]
        clock.set(at(TUE, 9, 0, 1))
        tick_until(lambda: "20260317T0900" in summaries(), "Tuesday's 09:00 sweep")
        tue = [q for q in tap.of(QuoteSnapshot) if q.sweep_id == "20260317T0900"]
        assert worker.plan is not None and len(tue) == len(worker.plan.symbols or {})
        assert all(q.received_at.date() == at(TUE, 9, 0).date() for q in tue)
    finally:
        worker.on_stop()
        worker.events.close()
        worker.ctx.destroy(linger=0)


def _worker_env(anchor: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIS_")}
    return env | {"PYTHONPATH": str(REPO), "OBSERVER_CLOCK_ANCHOR": repr(anchor)}


def _session(start: datetime) -> tuple[str, SessionClock]:
    anchor = time.time()
    return repr(anchor), SessionClock(start, 1.0, anchor)


def _start_worker(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [
                str(REPO / ".venv/bin/python"),
                "-m",
                "observer",
                "--config",
                str(config),
                "worker",
                "rest-collector",
            ],
            env=env,
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
        raise AssertionError("rest-collector ignored SIGTERM") from None


def test_three_restarts_issue_one_token_and_the_universe_file_never_changes(
    start_sim: Callable[..., Simulator], tap_factory: Callable[..., IngestTap], short_tmp: Path
) -> None:
    anchor, clock = _session(at(FRI, 10, 0, 0))
    sim = start_sim(clock, symbol_count=200)
    issues = count_token_issues(sim)
    toml = sim_toml(
        sim, f'[clock]\nmode = "session"\nstart_at = "{at(FRI, 10, 0).isoformat()}"\nspeed = 1.0\n'
    )
    config = write_config(short_tmp, toml)
    cfg = make_config(short_tmp, toml)
    tap = tap_factory(cfg)
    env = _worker_env(float(anchor))
    universe = Path(cfg.paths.universe_dir) / "20260313_KOSPI.json"
    first_bytes = b""
    for run in range(4):  # the first start and three restarts
        proc = _start_worker(config, env, short_tmp / "worker.log")
        try:
            wait_for(
                polled(tap, count_is(tap, "sweep_summary", run + 1)),
                timeout_s=30,
                what=f"sweep of run {run}",
            )
        finally:
            _stop(proc)
        if run == 0:
            first_bytes = universe.read_bytes()
        assert universe.read_bytes() == first_bytes
    assert issues[0] == 1  # the token cache worked across four processes
    # a second build attempt leaves the file byte-identical
    out = subprocess.run(
        [
            str(REPO / ".venv/bin/python"),
            "-m",
            "observer",
            "--config",
            str(config),
            "universe",
            "build",
            "--date",
            "2026-03-13",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert universe.read_bytes() == first_bytes
    assert issues[0] == 1
    summaries = events(tap, "sweep_summary")
    assert {s.details["sweep_id"] for s in summaries} == {"20260313T1000"}  # a restart resumes the slot
    assert all(s.details["collection_rate"] == 1.0 for s in summaries)
    assert SimConfig().app_secret not in (short_tmp / "worker.log").read_text()


def test_an_overrun_skips_the_next_slot_with_an_event_and_a_gap_marker(
    start_sim: Callable[..., Simulator], tap_factory: Callable[..., IngestTap], short_tmp: Path
) -> None:
    from collectors.kis_sim.schema import RestTimeout

    clock = ManualClock(at(FRI, 8, 59))
    sim = start_sim(clock, symbol_count=100)
    cfg = make_config(short_tmp, sim_toml(sim))
    tap = tap_factory(cfg)
    worker = started_worker(cfg, clock)

    def tick_until(pred: Callable[[], Any], what: str) -> Any:
        return run_until(worker, tap, pred, what, 30)

    try:
        tick_until(lambda: worker.plan and worker.plan.symbols, "the universe")
        symbols = sorted(worker.plan.symbols or {})  # type: ignore[union-attr]
        sim.faults.add(RestTimeout(sleep_s=2.5))  # every call now times out: the sweep drags on
        clock.set(at(FRI, 9, 0))
        tick_until(lambda: worker._sweep_running(), "the 09:00 sweep to start")
        clock.set(at(FRI, 9, 10))
        tick_until(lambda: events(tap, "sweep_overrun"), "the overrun event")
        sim.faults.clear()
        tick_until(lambda: events(tap, "sweep_summary"), "the 09:00 sweep to end")
        missed = [g for g in tap.of(GapMarker) if g.reason == "sweep_overrun"]
        assert len(missed) == 1 and missed[0].symbols == symbols
        assert (missed[0].start, missed[0].end) == (at(FRI, 9, 10), at(FRI, 9, 20))
        summary = events(tap, "sweep_summary")[0]
        assert summary.details["sweep_id"] == "20260313T0900"
        recorded = {q.symbol for q in tap.of(QuoteSnapshot)}
        failed = [g for g in tap.of(GapMarker) if g.reason == "rest_failed_after_retries"]
        listed = set(failed[0].symbols) if failed else set()
        assert recorded | listed == set(symbols) and not recorded & listed  # every symbol accounted for
        assert summary.details["recorded"] == len(recorded)
        clock.set(at(FRI, 9, 20))  # the schedule is back on its marks
        tick_until(lambda: len(events(tap, "sweep_summary")) == 2, "the 09:20 sweep")
        assert events(tap, "sweep_summary")[1].details["sweep_id"] == "20260313T0920"
        assert events(tap, "sweep_summary")[1].details["collection_rate"] == 1.0
    finally:
        worker.on_stop()
        worker.events.close()
        worker.ctx.destroy(linger=0)


def test_marks_passed_while_the_collector_was_down_each_get_a_gap_marker(
    start_sim: Callable[..., Simulator], tap_factory: Callable[..., IngestTap], short_tmp: Path
) -> None:
    """Down from 09:05 to 09:37 (stopped, crashed or hung: the next run cannot tell): 09:10, 09:20
    are reported ``collector_down`` by the next run, 09:30 (still in its slot) is swept late, and a
    loop held up across marks within one run reports them too."""
    clock = ManualClock(at(FRI, 8, 59, 50))
    sim = start_sim(clock, symbol_count=160)
    cfg = make_config(short_tmp, sim_toml(sim))
    tap = tap_factory(cfg)

    def new_worker() -> RestCollectorWorker:
        return started_worker(cfg, clock)

    def stop(worker: RestCollectorWorker) -> None:
        worker.on_stop()
        assert worker.events is not None and worker.ctx is not None
        worker.events.close()
        worker.ctx.destroy(linger=0)

    def summaries() -> list[str]:
        return [str(e.details["sweep_id"]) for e in events(tap, "sweep_summary")]

    def down_markers() -> list[GapMarker]:
        return [g for g in tap.of(GapMarker) if g.reason == "collector_down"]

    first = new_worker()
    try:
        run_until(first, tap, lambda: first.plan and first.plan.symbols, "the universe")
        clock.set(at(FRI, 9, 0, 5))
        run_until(first, tap, lambda: summaries() == ["20260313T0900"], "the 09:00 sweep")
        universe = set(first.plan.symbols or {}) if first.plan else set()
    finally:
        stop(first)
    clock.set(at(FRI, 9, 37))
    second = new_worker()
    try:
        run_until(second, tap, lambda: "20260313T0930" in summaries(), "the late 09:30 sweep")
        run_until(second, tap, lambda: len(down_markers()) == 2, "two collector_down markers")
        missed = down_markers()
        assert [(g.start, g.end) for g in missed] == [
            (at(FRI, 9, 10), at(FRI, 9, 20)),
            (at(FRI, 9, 20), at(FRI, 9, 30)),
        ]
        assert all(set(g.symbols) == universe and g.track == "swing" for g in missed)
        assert summaries() == ["20260313T0900", "20260313T0930"]
        # the same run, its loop held up from 09:41 to 10:12: 09:50 and 10:00 are reported, 10:10 swept
        clock.set(at(FRI, 9, 41))
        run_until(second, tap, lambda: "20260313T0940" in summaries(), "the 09:40 sweep")
        clock.set(at(FRI, 10, 12))
        run_until(second, tap, lambda: "20260313T1010" in summaries(), "the 10:10 sweep")
        run_until(second, tap, lambda: len(down_markers()) == 4, "two more markers")
        assert [g.start for g in down_markers()][2:] == [at(FRI, 9, 50), at(FRI, 10, 0)]
    finally:
        stop(second)
    # a third run at the same moment reports nothing twice (the ledger is durable)
    third = new_worker()
    try:
        for _ in range(50):
            third.on_tick()
            tap.poll()
        assert len(down_markers()) == 4
    finally:
        stop(third)


def test_a_failed_app_key_is_reported_and_the_other_key_sweeps_everything(
    start_sim: Callable[..., Simulator], tap_factory: Callable[..., IngestTap], short_tmp: Path
) -> None:
    clock = ManualClock(at(FRI, 8, 59))
    sim = start_sim(clock, symbol_count=100, keys=2)
    cfg = make_config(short_tmp, sim_toml(sim, "keys = 2\n"))
    tap = tap_factory(cfg)
    worker = started_worker(cfg, clock)

    def tick_until(pred: Callable[[], Any], what: str) -> Any:
        return run_until(worker, tap, pred, what, 30)

    try:
        tick_until(lambda: worker.plan and worker.plan.symbols, "the universe")
        symbols = sorted(worker.plan.symbols or {})  # type: ignore[union-attr]
        sim.auth.remove_account(cfg.sim.accounts()[1][0])  # key 2 deleted at the portal
        clock.set(at(FRI, 9, 0))
        tick_until(lambda: events(tap, "sweep_summary"), "the 09:00 sweep")
        assert sorted(q.symbol for q in tap.of(QuoteSnapshot)) == symbols  # key 1 did it all
        failed = events(tap, "kis_key_failed")
        assert len(failed) == 1 and failed[0].severity == "WARNING"
        assert failed[0].details == {
            "sweep_id": "20260313T0900",
            "key_index": 2,
            "code": "EGW00103",
            "keys": 2,
        }
        assert not any(v in failed[0].message for pair in cfg.sim.accounts() for v in pair)
        assert worker.counters["keys_failed"] == 1
        assert events(tap, "sweep_summary")[0].details["collection_rate"] == 1.0
    finally:
        worker.on_stop()
        worker.events.close()
        worker.ctx.destroy(linger=0)
