"""The core worker in-process with an injected clock: a new trading day re-arms universe and slots."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from observer.bus import EventPublisher, context
from observer.clock import KST, ManualClock
from observer.core.worker import CoreWorker
from testkit.config import make_config
from tests.observer.core.harness import write_universe

DAY1 = datetime(2026, 11, 26, 14, 59, 0, tzinfo=KST)


def test_next_trading_day_reseeds_slots_from_the_new_universe(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, '[provider]\nmarkets = ["KOSPI"]\n[track_b]\nmax_slots = 3\n')
    write_universe(cfg, DAY1.date(), ["000001", "000002", "000003", "000004"])
    write_universe(cfg, DAY1.date() + timedelta(days=1), ["000010", "000011"])
    clock = ManualClock(DAY1)
    worker = CoreWorker(cfg, clock=clock)
    worker.ctx = context()
    worker.events = EventPublisher(worker.ctx, cfg)
    try:
        worker.on_start()
        assert sorted(worker.slots.symbols()) == ["000001", "000002", "000003"]
        assert (Path(cfg.paths.data_dir) / "state" / "slots.json").exists()
        clock.set(DAY1 + timedelta(hours=18, minutes=31))  # 09:30 the next day
        worker.on_tick()
        assert worker.slots.day == (DAY1 + timedelta(days=1)).date()
        assert sorted(worker.slots.symbols()) == ["000010", "000011"]
        assert worker.universe.contains("000010") and not worker.universe.contains("000001")
        assert sorted(worker.sampler.symbols()) == ["000010", "000011"]
    finally:
        worker.on_stop()
        worker.events.close()
