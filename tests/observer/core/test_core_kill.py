"""kill -9 of the core, 20 times, at nominal load (82 ticks/s over 41 slots): nothing lost, every
record id exactly once after de-duplication, and re-derived duplicates identical."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest

from observer.core.sampler import from_ms, to_ms
from observer.record_ids import kst_stamp as window_key
from observer.schema import PatternRecord
from tests.observer.core.harness import CoreHarness, write_universe

SYMBOLS = [f"{i:06d}" for i in range(100, 141)]  # 41
RATE_PER_S = 82.0


@pytest.mark.timeout(150)
def test_kill_core_20_times_at_nominal_load_loses_and_duplicates_nothing(short_tmp: Path) -> None:
    h = CoreHarness(short_tmp, toml="[track_b]\nmin_dwell_s = 3600.0\n")
    write_universe(h.cfg, h.day, SYMBOLS)
    sent_ticks: dict[str, list[int]] = defaultdict(list)  # symbol -> received_at (ms)
    raw_ids: set[str] = set()
    swing_ids: set[str] = set()
    n = 0
    next_send = time.monotonic()

    def pace(seconds: float = 0.0, until=None) -> None:  # type: ignore[no-untyped-def]
        nonlocal n, next_send
        deadline = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now >= next_send:
                symbol = SYMBOLS[n % len(SYMBOLS)]
                tick = h.tick(symbol)
                seq = h.send(h.frame([tick]))
                raw_ids.add(f"raw:ws-test:{h.collector.run_id}:{seq}")
                sent_ticks[symbol].append(to_ms(tick.received_at))
                if n % 41 == 0:
                    sweep = f"S{n // 41}"
                    h.send(h.snapshot(symbol, sweep, volume=1_000 + n))
                    swing_ids.add(f"swing:{symbol}:{sweep}")
                n += 1
                next_send += 1 / RATE_PER_S
            h.poll()
            if time.monotonic() >= deadline and (until is None or until()):
                return
            time.sleep(0.002)  # pacing the source, not waiting for a result

    try:
        h.start_core()
        h.until(lambda: h.writer.events("slots_seeded"), 15, what="core up, slots seeded")
        next_send = time.monotonic()
        pace(1.5)
        for round_no in range(20):
            before = len(h.writer.records)
            h.kill_core()
            h.start_core()
            # odd rounds: killed again before the restart catch-up ends (nothing sampled in between);
            # even rounds: long enough for the held windows to close and be acknowledged
            pace(0.6 if round_no % 2 else 2.0, until=lambda b=before: len(h.writer.records) > b + 30)
        pace(1.0)
        h.until(
            lambda: h.collector.acked == h.collector.last_seq,
            30,
            what="every ingest message acknowledged",
        )
        last_windows = {
            s: f"scalp:{s}:{window_key(from_ms(ts[-1] // 500 * 500))}" for s, ts in sent_ticks.items()
        }
        h.until(
            lambda: set(last_windows.values()) <= set(h.writer.ids("scalp")),
            20,
            what="the last windows sampled",
        )
    finally:
        h.stop()

    assert set(h.writer.ids("raw")) == raw_ids
    assert set(h.writer.ids("swing")) == swing_ids
    # scalp: every window from each symbol's first tick to its last, with exactly the ticks sent in it
    firsts: dict[str, PatternRecord] = {}
    for rec in h.writer.lines("scalp"):
        p = msgspec.json.decode(rec.line, type=PatternRecord)
        first = firsts.setdefault(p.record_id, p)
        assert first.observation == p.observation, f"re-derived {p.record_id} differs"
    missing = []
    for symbol, times in sent_ticks.items():
        for start_ms in range(times[0] // 500 * 500, times[-1] // 500 * 500 + 1, 500):
            rid = f"scalp:{symbol}:{window_key(from_ms(start_ms))}"
            if rid not in firsts:
                missing.append(rid)
    if missing:
        with open("/tmp/core_kill_diag.txt", "w") as fh:
            by_symbol: dict[str, int] = defaultdict(int)
            for rid in missing:
                by_symbol[rid.split(":")[1]] += 1
            print(dict(by_symbol), file=fh)
            print(missing[:3], missing[-3:], file=fh)
            for e in h.writer.events():
                print(e.at, e.type, e.message[:300], file=fh)
            have = sorted(i for i in firsts if ":000100:" in i)
            print(have[:10], have[-10:], file=fh)
    assert not missing, (len(missing), missing[:5])
    for symbol, times in sent_ticks.items():
        counts: dict[int, int] = defaultdict(int)
        for ms in times:
            counts[ms // 500 * 500] += 1
        for start_ms in range(times[0] // 500 * 500, times[-1] // 500 * 500 + 1, 500):
            rid = f"scalp:{symbol}:{window_key(from_ms(start_ms))}"
            assert rid in firsts, f"missing sample {rid}"
            inst = firsts[rid].observation.instruments[0]
            assert inst.trade_count == counts.get(start_ms, 0), rid
    assert n > 20 * 0.6 * RATE_PER_S
