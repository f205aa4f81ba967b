"""The ws-collector against the real simulator: clean run, outages, OPSP8996."""

from __future__ import annotations

from pathlib import Path

from tests.collectors.ws_harness import busy_codes, running
from tests.conftest import wait_for


def published_by_symbol(truth: object) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in truth.sessions:  # type: ignore[attr-defined]
        for code, st in s.symbols.items():
            out[code] = out.get(code, 0) + st.published_records
    return out


def test_clean_run_with_41_symbols_delivers_every_published_trade(short_tmp: Path) -> None:
    with running(short_tmp) as (sim, bus, worker, admin):
        codes = busy_codes(sim)
        bus.set_slots(codes)
        wait_for(
            lambda: (st := bus.got.latest_stats()) is not None and st.subscribed == 41,
            15,
            what="41 subscriptions",
        )
        wait_for(lambda: set(bus.got.records_by_symbol()) == set(codes), 15, what="every slot streaming")
        wait_for(lambda: sum(bus.got.records_by_symbol().values()) >= 400, 15, what="some trades")
        bus.set_slots([])
        wait_for(
            lambda: (st := bus.got.latest_stats()) is not None and st.held == 0 and st.connected,
            15,
            what="unsubscribed",
        )
        published = published_by_symbol(admin.truth())
        assert set(published) == set(codes)
        wait_for(lambda: dict(bus.got.records_by_symbol()) == published, 10, what="every published trade")
        truth = admin.truth()
        assert len(truth.sessions) == 1
        assert worker.subs.peak_registrations <= 41
        assert worker.counters["rejected"] == 0 and worker.counters["dropped_frames"] == 0
        assert bus.got.gaps == []
        frame = bus.got.frames[0]
        assert frame.raw.startswith("0|H0STCNT0|") and frame.received_at.tzinfo is not None
        assert all(t.received_at == frame.received_at for t in frame.ticks)
