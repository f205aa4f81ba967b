"""End to end with several app keys: the `make run` pipeline on a simulator serving three accounts,
the ws-collector holding one session per key, the core 3 x 41 slots; one key revoked mid-session."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import wait_for
from tests.e2e.support import Pipeline, lines, scalp_rate_in_slots
from tests.e2e.test_pipeline import NO_CPU_MITIGATION

KEYS = 3
PER_KEY = 41


def _events(p: Pipeline, kind: str) -> list[dict[str, Any]]:
    return [e for e in lines(p.data, "system/events/kis-sim/*.jsonl") if e.get("type") == kind]


def _key2(table: dict[int, str]) -> set[str]:
    return {s for n, s in table.items() if PER_KEY < n <= 2 * PER_KEY}


def _table(p: Pipeline, until: Any) -> dict[int, str]:
    """The slot table (number -> symbol), replaying the archived slot changes in order until `until`."""
    table: dict[int, str] = {}
    for ev in lines(p.data, "system/events/kis-sim/*.jsonl"):
        if until(ev):
            break
        if ev.get("type") != "slot_change":
            continue
        for entry in ev["details"].get("removed") or []:
            table.pop(int(entry.split(":")[0]), None)
        for entry in ev["details"].get("added") or []:
            n, symbol = entry.split(":")[:2]
            table[int(n)] = symbol
    return table


def _open_sessions_by_key(truth: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in truth["sessions"]:
        if s["key_id"]:
            by_key[s["key_id"]].append(s)
    return by_key


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_keys_sample_123_slots_at_2hz(short_tmp: Path) -> None:
    p = Pipeline(short_tmp, NO_CPU_MITIGATION, sim=f"keys = {KEYS}")
    with p.running():
        p.wait_filled()
        wait_for(lambda: p.status()["slots"]["used"] == KEYS * PER_KEY, 60, 0.5, "123 slots in use")
        full_at = datetime.now().astimezone()
        wait_for(lambda: (datetime.now().astimezone() - full_at).total_seconds() >= 60, 70, 0.5)
        truth = requests.get(f"{p.admin}/truth", timeout=10).json()
    assert p.returncode == 0, p.stderr[-3000:]
    verify = p.observer("verify", str(p.data))
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # one session per key, each within KIS's 41 registrations, together all 123 slot symbols
    by_key = _open_sessions_by_key(truth)
    assert len(by_key) == KEYS, list(by_key)
    for key_id, sessions in by_key.items():
        assert len(sessions) == 1, (key_id, sessions)  # never dropped, never a second one
        assert 0 < len(sessions[0]["symbols"]) <= PER_KEY, (key_id, len(sessions[0]["symbols"]))
    streamed = {code for sessions in by_key.values() for s in sessions for code in s["symbols"]}
    assert len(streamed) >= KEYS * PER_KEY - 3  # a quiet symbol may not have traded yet

    # Track B: every slot at 2 Hz over the minute, at >= 99.9 %
    written, expected, symbols = scalp_rate_in_slots(p.data)
    print(f"3 keys: {symbols} symbols, {written}/{expected} windows sampled ({written / expected:.4%})")
    assert symbols >= KEYS * PER_KEY, symbols
    assert written / expected >= 0.999, (written, expected)
    slot_numbers = {
        rec["interpretation"]["slot_number"] for rec in lines(p.data, "scalp/kis-sim/*/*/*.jsonl")
    }
    assert max(slot_numbers) == KEYS * PER_KEY
    assert not _events(p, "gap_marker")
    assert {e["details"]["key_index"] for e in _events(p, "ws_key_up")} == {1, 2, 3}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_revoked_key_moves_its_symbols_and_leaves_the_others_untouched(short_tmp: Path) -> None:
    # a small universe leaves some of the 123 slots free: the failed key's symbols partly move to
    # them, the rest go to the overflow ledger
    toml = NO_CPU_MITIGATION + "[track_b]\nkey_failover_s = 5.0\n"
    p = Pipeline(short_tmp, toml, sim=f"keys = {KEYS}", symbol_count=160)
    with p.running():
        p.wait_filled()
        wait_for(lambda: _events(p, "ws_key_up") and len(_events(p, "ws_key_up")) == KEYS, 60, 0.5, "keys up")
        wait_for(lambda: (p.status()["slots"]["used"] or 0) > 2 * PER_KEY, 60, 0.5, "slots of key 3 in use")
        used_before = p.status()["slots"]["used"]
        assert used_before < KEYS * PER_KEY, used_before  # some free slots to move into
        wait_for(lambda: lines(p.data, "scalp/kis-sim/*/*/*.jsonl"), 30, 0.5, "scalp samples")
        requests.post(
            f"{p.admin}/faults", json={"kind": "revoke_key", "key": 2}, timeout=5
        ).raise_for_status()
        wait_for(lambda: _events(p, "slots_moved"), 60, 0.5, "the core moving key 2's symbols")
        moved_at = datetime.now().astimezone()
        wait_for(lambda: (datetime.now().astimezone() - moved_at).total_seconds() >= 20, 30, 0.5)
        truth = requests.get(f"{p.admin}/truth", timeout=10).json()
    assert p.returncode == 0, p.stderr[-3000:]
    verify = p.observer("verify", str(p.data))
    assert verify.returncode == 0, verify.stdout + verify.stderr

    fault = next(f for f in truth["faults"] if f["kind"] == "revoke_key")
    revoked_at = datetime.fromisoformat(fault["start"]["virtual"])
    failed = _events(p, "ws_key_failed")
    assert [e["details"]["key_index"] for e in failed] == [2], failed
    moved_ev = _events(p, "slots_moved")
    assert len(moved_ev) == 1 and moved_ev[0]["details"]["key_index"] == 2
    moved, overflow = moved_ev[0]["details"]["moved"], moved_ev[0]["details"]["overflow"]

    # key 2's symbols (slots 42..82): at the revocation (what its session carried) and when the
    # core moved them (the table may change in between: a trigger can replace a seed)
    at_revocation = _key2(
        _table(p, until=lambda ev: "at" in ev and datetime.fromisoformat(ev["at"]) >= revoked_at)
    )
    table = _table(p, until=lambda ev: ev.get("type") == "slots_moved")
    at_move = _key2(table)
    assert at_move and set(moved) | set(overflow) == at_move, (sorted(at_move), moved, overflow)
    assert moved and overflow  # both paths taken: free slots filled, the rest in the ledger
    free_elsewhere = 2 * PER_KEY - (len(table) - len(at_move))  # free slots of keys 1 and 3
    assert len(moved) == min(len(at_move), free_elsewhere), (len(moved), free_elsewhere)

    # overflow entries archived for exactly the symbols that found no slot
    ledger = {r["symbol"] for r in lines(p.data, "system/overflow/kis-sim/*.jsonl")}
    assert set(overflow) <= ledger, (overflow, ledger)

    # gap markers: one, from the ws-collector, for key 2's symbols, from the revocation to the failover
    gaps = _events(p, "gap_marker")
    assert len(gaps) == 1, gaps
    gap = gaps[0]
    assert gap["detected_by"] == "ws-collector" and "key_failed" in gap["reason"], gap
    assert set(gap["symbols"]) == at_revocation
    start, end = datetime.fromisoformat(gap["start"]), datetime.fromisoformat(gap["end"])
    assert abs((start - revoked_at).total_seconds()) <= 2.0, (start, revoked_at)
    assert abs((end - datetime.fromisoformat(failed[0]["at"])).total_seconds()) <= 1.0, (end, failed[0]["at"])
    assert timedelta(seconds=5) <= end - start <= timedelta(seconds=15)

    # the samples of the outage: flagged gap for key 2's symbols, for no other symbol
    flagged: dict[bool, set[str]] = {True: set(), False: set()}
    for rec in lines(p.data, "scalp/kis-sim/*/*/*.jsonl"):
        inst = rec["observation"]["instruments"][0]
        if start + timedelta(seconds=1) <= datetime.fromisoformat(inst["window_start"]) < end:
            flagged[rec["quality"]["quality_flag"] == "gap"].add(inst["symbol"])
    assert flagged[True] and flagged[True] <= at_revocation, flagged[True] - at_revocation
    assert not flagged[False] & at_revocation, flagged[False] & at_revocation

    # the other keys' sessions untouched: one session each, never closed, still streaming
    by_key = _open_sessions_by_key(truth)
    revoked_key = next(k for k, ss in by_key.items() if any(s["close_reason"] == "key_revoked" for s in ss))
    for key_id, sessions in by_key.items():
        if key_id != revoked_key:
            assert len(sessions) == 1 and sessions[0]["closed"] is None, (key_id, sessions)

    # the moved symbols stream again on other keys' slots
    after = [
        rec["observation"]["instruments"][0]["symbol"]
        for rec in lines(p.data, "scalp/kis-sim/*/*/*.jsonl")
        if rec["interpretation"]["slot_number"] not in range(PER_KEY + 1, 2 * PER_KEY + 1)
        and datetime.fromisoformat(rec["observation"]["instruments"][0]["window_start"]) > end
    ]
    assert set(moved) <= set(after)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_key_taken_elsewhere_fails_over_to_the_ledger_and_comes_back_seeded(short_tmp: Path) -> None:
    # all 123 slots in use: key 3's symbols find no free slot (overflow ledger); when another
    # client lets its session go, key 3 is up again and its slots are seeded by activity
    toml = NO_CPU_MITIGATION + "[track_b]\nkey_failover_s = 4.0\nsession_in_use_backoff_s = 2.0\n"
    p = Pipeline(short_tmp, toml, sim=f"keys = {KEYS}")
    with p.running():
        p.wait_filled()
        wait_for(lambda: p.status()["slots"]["used"] == KEYS * PER_KEY, 60, 0.5, "123 slots in use")
        requests.post(
            f"{p.admin}/faults", json={"kind": "key_in_use", "key": 3, "duration_s": 12.0}, timeout=5
        ).raise_for_status()
        wait_for(lambda: _events(p, "slots_enabled"), 60, 0.5, "key 3 up again")
        wait_for(lambda: p.status()["slots"]["used"] == KEYS * PER_KEY, 30, 0.5, "123 slots in use again")
        truth = requests.get(f"{p.admin}/truth", timeout=10).json()
    assert p.returncode == 0, p.stderr[-3000:]
    verify = p.observer("verify", str(p.data))
    assert verify.returncode == 0, verify.stdout + verify.stderr

    failed = _events(p, "ws_key_failed")
    assert [e["details"]["key_index"] for e in failed] == [3], failed
    moved_ev = _events(p, "slots_moved")
    assert len(moved_ev) == 1
    key3 = {
        s for n, s in _table(p, until=lambda ev: ev.get("type") == "slots_moved").items() if n > 2 * PER_KEY
    }
    assert not moved_ev[0]["details"]["moved"] and set(moved_ev[0]["details"]["overflow"]) == key3
    ledger = {r["symbol"] for r in lines(p.data, "system/overflow/kis-sim/*.jsonl")}
    assert key3 <= ledger
    ups = [e["details"]["key_index"] for e in _events(p, "ws_key_up")]
    assert sorted(ups) == [1, 2, 3, 3], ups  # each key once at the start, key 3 again after
    # key 3's slots filled again: its range in the table after the last change
    table = _table(p, until=lambda ev: False)
    assert len([n for n in table if n > 2 * PER_KEY]) == PER_KEY

    gaps = _events(p, "gap_marker")
    assert len(gaps) == 1 and set(gaps[0]["symbols"]) == key3 and "key_failed" in gaps[0]["reason"], gaps
    fault = next(f for f in truth["faults"] if f["kind"] == "key_in_use")
    assert (
        abs(
            (
                datetime.fromisoformat(gaps[0]["start"]) - datetime.fromisoformat(fault["start"]["virtual"])
            ).total_seconds()
        )
        <= 2.0
    )
    by_key = _open_sessions_by_key(truth)
    taken = next(k for k, ss in by_key.items() if any(s["close_reason"] == "key_in_use" for s in ss))
    for key_id, sessions in by_key.items():
        if key_id != taken:
            assert len(sessions) == 1 and sessions[0]["closed"] is None, (key_id, sessions)
