"""Slot change sequences with an injected clock: surge on a new symbol, dwell time, manual pin,
a 42nd candidate, silent symbols, persistence."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from observer.clock import KST, ManualClock
from observer.config import CoreConfig
from observer.core.slots import SWEEP_QUIET, SlotTable
from observer.core.triggers import Candidate, TriggerRules
from observer.schema import QuoteSnapshot

T0 = datetime(2026, 11, 26, 9, 30, tzinfo=KST)


def table(max_slots: int = 41, dwell_s: float = 120.0) -> SlotTable:
    t = SlotTable(
        max_slots=max_slots,
        min_dwell_s=dwell_s,
        silent_s=60.0,
        candidate_ttl_s=1_200.0,
        overflow_interval_s=60.0,
    )
    t.reset(T0.date())
    return t


def snap(symbol: str, sweep: str, volume: int, price: int = 10_000) -> QuoteSnapshot:
    return QuoteSnapshot(
        provider="kis",
        market="KOSPI",
        symbol=symbol,
        sweep_id=sweep,
        exchange_at=None,
        received_at=T0,
        price=price,
        open=10_000,
        high=max(price, 10_000),
        low=min(price, 10_000),
        volume=volume,
    )


def test_triggers_in_priority_order() -> None:
    rules = TriggerRules(CoreConfig())
    assert rules.on_snapshot(snap("A", "s1", 100_000)) is None
    surge = rules.on_snapshot(snap("A", "s2", 500_000))  # +400k vs 100k at the first sweep
    assert surge is not None and surge.rule == "volume_surge" and surge.score == 4.0
    assert rules.on_snapshot(snap("A", "s3", 600_000)) is None  # +100k vs +400k
    rules.on_snapshot(snap("B", "s1", 100_000))
    spike = rules.on_snapshot(snap("B", "s2", 110_000, price=10_400))
    assert spike is not None and spike.rule == "volatility_spike" and spike.score == 4.0
    assert surge.rank < spike.rank < Candidate("C", "manual", 1.0, T0).rank


def test_surge_on_a_new_symbol_replaces_a_seed_at_once() -> None:
    t = table(max_slots=3)
    t.seed(["S1", "S2", "S3"], T0)
    t.offer(Candidate("NEW", "volume_surge", 5.0, T0 + timedelta(seconds=5)))
    changes = t.rebalance(T0 + timedelta(seconds=5))
    assert [a.symbol for a in changes.added] == ["NEW"] and len(changes.removed) == 1
    assert "NEW" in t.symbols() and len(t.slots) == 3


def test_dwell_time_is_respected_then_the_stronger_candidate_wins() -> None:
    clock = ManualClock(T0)
    t = table(max_slots=2, dwell_s=120.0)
    for sym, score in (("A", 3.0), ("B", 4.0)):
        t.offer(Candidate(sym, "volatility_spike", score, clock.now()))
    t.rebalance(clock.now())
    assert set(t.symbols()) == {"A", "B"}
    clock.advance(60)
    t.offer(Candidate("C", "volume_surge", 9.0, clock.now()))
    changes = t.rebalance(clock.now())
    assert not changes and [c.symbol for c in changes.overflow] == ["C"]  # both within dwell
    clock.advance(61)
    changes = t.rebalance(clock.now())
    assert [a.symbol for a in changes.removed] == ["A"]  # the weakest goes first
    assert set(t.symbols()) == {"B", "C"}


def test_manual_pin_takes_a_slot_and_is_never_evicted() -> None:
    clock = ManualClock(T0)
    t = table(max_slots=2, dwell_s=0.0)
    t.seed(["A", "B"], clock.now())
    ok, _, changes = t.pin("P", clock.now())
    assert ok and [a.symbol for a in changes.added] == ["P"] and t.slots[t.symbols()["P"]].pinned
    for i in range(5):
        clock.advance(10)
        t.offer(Candidate(f"X{i}", "volume_surge", 10.0 + i, clock.now()))
        t.rebalance(clock.now())
        assert "P" in t.symbols()
    ok, _ = t.unpin("P")
    assert ok
    clock.advance(10)
    t.offer(Candidate("Z", "volume_surge", 99.0, clock.now()))
    t.rebalance(clock.now())
    assert "P" not in t.symbols()  # unpinned, past dwell, weakest


def test_a_42nd_candidate_ends_with_the_right_41_and_the_rest_in_overflow() -> None:
    t = table(max_slots=41, dwell_s=3_600.0)
    ok, _, _ = t.pin("PIN", T0)
    assert ok
    for i in range(41):  # 41 surges + 1 pin = 42 wanting a slot
        t.offer(Candidate(f"{i:06d}", "volume_surge", 3.0 + i, T0))
    changes = t.rebalance(T0)
    held = set(t.symbols())
    assert len(held) == 41 and "PIN" in held
    assert "000000" not in held  # the weakest surge found no slot
    assert [(c.symbol, c.rule, c.score) for c in changes.overflow] == [("000000", "volume_surge", 3.0)]
    assert t.rebalance(T0 + timedelta(seconds=1)).overflow == []  # rate-limited per symbol
    entry = t.overflow_entry(changes.overflow[0], "kis", T0)
    assert entry.priority == 1 and entry.score == 3.0


def test_a_silent_symbol_is_reported_once_and_replaced_first() -> None:
    clock = ManualClock(T0)
    t = table(max_slots=2, dwell_s=3_600.0)
    for sym in ("A", "B"):
        t.offer(Candidate(sym, "volume_surge", 5.0, clock.now()))
    t.rebalance(clock.now())
    clock.advance(30)
    t.note_tick("A", clock.now())
    clock.advance(40)
    silent = t.check_silent(clock.now(), T0)
    assert [a.symbol for a in silent] == ["B"]
    assert t.check_silent(clock.now(), T0) == []
    t.offer(Candidate("C", "volatility_spike", 3.0, clock.now()))
    changes = t.rebalance(clock.now())
    assert [a.symbol for a in changes.removed] == ["B"] and "C" in t.symbols()


def test_table_persists_and_resumes_only_the_same_day(short_tmp: Path) -> None:
    t = table()
    t.seed(["A", "B"], T0)
    t.pin("C", T0)
    path = short_tmp / "state" / "slots.json"
    t.save(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600" or path.stat().st_mode & 0o077 == 0
    again = table()
    resumed = T0 + timedelta(minutes=30)  # a restart long after the slots were assigned
    assert again.load(path, T0.date(), resumed)
    assert again.symbols() == t.symbols() and again.version == t.version
    assert again.slots[again.symbols()["C"]].pinned
    assert not table().load(path, T0.date() + timedelta(days=1), resumed)
    # the silent period runs from the restart, not from the assignment (every slot was flagged at once)
    assert again.check_silent(resumed + timedelta(seconds=1), T0) == []
    again.note_tick("A", resumed + timedelta(seconds=30))
    silent = again.check_silent(resumed + timedelta(seconds=61), T0)
    assert sorted(a.symbol for a in silent) == ["B", "C"]


def test_the_activity_ranking_replaces_blind_seeds_but_not_those_the_triggers_want() -> None:
    """A blind seed whose symbol already fired a trigger (its ticks show trade velocity) stays when
    the first sweep's ranking replaces the seeds: removing it would only bring it back at the next
    rebalance, evicting a ranked seed, and leave a slot-less hole in its data (the churn seen after
    the 09:40 sweep in the e2e runs)."""
    t = table(max_slots=3)
    t.seed(["A", "B", "C"], T0)
    t.offer(Candidate("C", "trade_velocity", 90.0, T0 + timedelta(seconds=30)))
    at = T0 + timedelta(seconds=60)
    changes = t.replace_seeds(["X", "Y", "Z"], at)
    assert {a.symbol for a in changes.removed} == {"A", "B"}
    assert {a.symbol for a in changes.added} == {"X", "Y"}
    assert not t.rebalance(at + timedelta(seconds=1))  # C holds its slot: nothing moves back
    assert set(t.symbols()) == {"C", "X", "Y"}


def test_during_a_sweep_a_slot_is_judged_only_once_the_sweep_has_reached_its_symbol() -> None:
    """A sweep's surges arrive one snapshot at a time: a seed the sweep has not reached yet keeps its
    slot (its own snapshot may bring it a surge), and a candidate left waiting meanwhile is not yet
    an overflow. Without this, a seed evicted by an early surge came back seconds later on its own."""
    t = table(max_slots=2)
    t.seed(["A", "B"], T0)
    at = T0 + timedelta(minutes=10)
    t.note_snapshot("X", "s2", at)
    t.offer(Candidate("X", "volume_surge", 5.0, at))
    first = t.rebalance(at)
    assert not first and not first.overflow  # A and B not reached yet: X waits, no overflow
    t.note_snapshot("A", "s2", at + timedelta(seconds=1))  # no surge for A
    second = t.rebalance(at + timedelta(seconds=1))
    assert [a.symbol for a in second.removed] == ["A"] and [a.symbol for a in second.added] == ["X"]
    t.note_snapshot("B", "s2", at + timedelta(seconds=2))
    t.offer(Candidate("B", "volume_surge", 3.0, at + timedelta(seconds=2)))
    t.offer(Candidate("Y", "volume_surge", 2.0, at + timedelta(seconds=2)))
    t.note_snapshot("Y", "s2", at + timedelta(seconds=2))
    third = t.rebalance(at + timedelta(seconds=2))
    assert not third and not third.overflow  # B keeps its slot; Y outranks no one evictable
    t.note_snapshot("Z", "s2", at + timedelta(seconds=3))
    t.offer(Candidate("Z", "volume_surge", 4.0, at + timedelta(seconds=3)))
    # Z outranks B's surge, but candidates settle who wins only when the sweep is over
    assert not t.rebalance(at + timedelta(seconds=3))
    t.sweep_done("s2")
    done = t.rebalance(at + timedelta(seconds=4))
    assert [a.symbol for a in done.removed] == ["B"] and [a.symbol for a in done.added] == ["Z"]
    assert [c.symbol for c in done.overflow] == ["Y"]  # the sweep is over: the ledger
    assert [c.symbol for c in t.rebalance(at + timedelta(seconds=5)).overflow] == ["B"]  # and B
    assert set(t.symbols()) == {"X", "Z"}


def test_a_sweep_that_stops_sending_protects_nothing_after_the_quiet_period() -> None:
    t = table(max_slots=1)
    t.seed(["A"], T0)
    at = T0 + timedelta(minutes=10)
    t.note_snapshot("X", "s2", at)  # the collector dies after this snapshot
    t.offer(Candidate("X", "volume_surge", 5.0, at))
    assert not t.rebalance(at + SWEEP_QUIET)
    later = t.rebalance(at + SWEEP_QUIET + timedelta(seconds=1))
    assert [a.symbol for a in later.added] == ["X"]


def test_a_failed_keys_slots_move_strongest_first_then_overflow_and_stay_empty(tmp_path: Path) -> None:
    # two keys of 3 slots: 1-3 and 4-6; key 2 fails with one free slot left on key 1
    t = table(max_slots=6)
    t.seed(["S1", "S2"], T0)  # slots 1, 2 (slot 3 free)
    t.seed(["S4", "S5", "S6"], T0)  # slots 3.. would be taken first: place key 2's by hand
    assert t.symbols() == {"S1": 1, "S2": 2, "S4": 3, "S5": 4, "S6": 5}
    t.slots.pop(3)  # slot 3 free again
    t.offer(Candidate("S5", "volume_surge", 9.0, T0))  # S5 outranks S6 (a seed)
    changes = t.disable({4, 5, 6}, T0 + timedelta(seconds=1))
    assert {a.symbol for a in changes.removed} == {"S5", "S6"}
    assert [(a.slot_number, a.symbol) for a in changes.added] == [(3, "S5")]  # the stronger moves
    assert [c.symbol for c in changes.overflow] == ["S6"]  # no free slot left: the ledger
    assert t.disabled == {4, 5, 6} and not set(t.symbols().values()) & t.disabled
    # nothing is placed in a failed key's slots: not by seeding, not by a rebalance
    assert not t.seed(["S7"], T0 + timedelta(seconds=2))
    t.offer(Candidate("S8", "trade_velocity", 5.0, T0 + timedelta(seconds=2)))
    later = t.rebalance(T0 + timedelta(seconds=3))
    assert not [a for a in later.added if a.slot_number in t.disabled]
    # the disabled slots survive a restart, also into the next day; the key up again frees them
    t.save(tmp_path / "slots.json")
    restored = table(max_slots=6)
    assert not restored.load(tmp_path / "slots.json", T0.date() + timedelta(days=1), T0)
    assert restored.disabled == {4, 5, 6}
    assert t.enable({4, 5, 6}) and not t.disabled
    assert not t.enable({4, 5, 6})
    assert t.seed(["S7"], T0 + timedelta(seconds=4)).added[0].slot_number == 4
