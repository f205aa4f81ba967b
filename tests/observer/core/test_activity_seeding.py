"""Slots start where the market is: free slots are seeded by the latest Track A sweep's trading
value (the previous day's at the start of a day), not in code order. The core as a real process."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from observer.core.activity import SavedRanking
from tests.observer.core.harness import CoreHarness, write_universe

SYMBOLS = [f"{i:06d}" for i in range(1, 11)]
# trading value by symbol in the sweep: 000009, 000007, 000004 trade most
VALUES = {s: 1_000_000 * (i + 1) for i, s in enumerate(SYMBOLS)}
VALUES.update({"000009": 9_000_000_000, "000007": 7_000_000_000, "000004": 4_000_000_000})
TOP = ["000009", "000007", "000004"]


def _slotted(h: CoreHarness) -> set[str]:
    seeded = h.writer.events("slots_seeded")
    symbols = set(seeded[-1].details["symbols"]) if seeded else set()  # type: ignore[arg-type]
    for change in h.writer.events("slot_change"):
        symbols -= {r.split(":")[1] for r in change.details["removed"]}  # type: ignore[union-attr]
        symbols |= {a.split(":")[1] for a in change.details["added"]}  # type: ignore[union-attr]
    return symbols


@pytest.mark.timeout(90)
def test_seeds_follow_the_latest_sweep_and_the_next_day_starts_from_it(short_tmp: Path) -> None:
    h = CoreHarness(short_tmp, toml="[track_b]\nmax_slots = 3\n", forwarder=True)
    write_universe(h.cfg, h.day, SYMBOLS)
    state = Path(h.cfg.paths.data_dir) / "state"
    try:
        h.start_core()
        h.until(lambda: h.writer.events("slots_seeded"), what="first seeds")
        first = h.writer.events("slots_seeded")[0]
        assert first.details["seeded_by"] == "universe order"  # nothing known yet: blind
        assert set(first.details["symbols"]) == set(SYMBOLS[:3])  # type: ignore[arg-type]

        for s in SYMBOLS:
            h.send(h.snapshot(s, "20261126T0930", volume=1_000, value_krw=VALUES[s]))
        h.send(h.sweep_summary("20261126T0930", len(SYMBOLS)))
        h.until(lambda: _slotted(h) == set(TOP), what="blind seeds replaced by the most active")
        saved = msgspec.json.decode((state / "activity.json").read_bytes(), type=SavedRanking)
        assert saved.symbols[:3] == TOP and saved.day == h.day

        # the next day (here: a restart whose slots are not resumable, and whose ranking is the
        # previous day's): seeded straight from the saved ranking
        h.kill_core()
        (state / "slots.json").unlink()
        yesterday = saved.day - timedelta(days=1)
        (state / "activity.json").write_bytes(
            msgspec.json.encode(msgspec.structs.replace(saved, day=yesterday))
        )
        seen = len(h.writer.events("slots_seeded"))
        h.start_core()
        h.until(lambda: len(h.writer.events("slots_seeded")) > seen, what="seeds after the restart")
        again = h.writer.events("slots_seeded")[-1]
        assert set(again.details["symbols"]) == set(TOP)  # type: ignore[arg-type]
        assert yesterday.isoformat() in str(again.details["seeded_by"])
    finally:
        h.stop()
