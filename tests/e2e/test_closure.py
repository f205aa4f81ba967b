"""The accounting closure finds what is missing: a hand-made archive against a hand-made truth."""

from __future__ import annotations

import json
from pathlib import Path

from collectors.kis_sim.schema import PublishedTrades, Stamp, SymbolTrades
from testkit.closure import close_accounts
from testkit.kis_frames import frame, record

DAY = "2026-12-07"


def _record(code: str, hhmmss: str, acml: int) -> list[str]:
    return record(code, hhmmss, qty=1, acml_vol=acml)


def _frame(*records: list[str]) -> str:
    return frame(list(records))


def _write(path: Path, docs: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


def _scalp(code: str, start: str, end: str) -> dict[str, object]:
    inst = {"symbol": code, "window_start": f"{DAY}T{start}+09:00", "window_end": f"{DAY}T{end}+09:00"}
    return {"record_id": f"scalp:{code}:{start}", "observation": {"instruments": [inst]}}


def test_closure_counts_archived_explained_unexplained_duplicates_and_windows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    raw = [
        {
            "record_id": "raw:ws:r:1",
            "frame": _frame(_record("000100", "100000", 10), _record("000100", "100000", 20)),
        },
        {"record_id": "raw:ws:r:2", "frame": _frame(_record("000100", "100001", 20))},  # the same trade again
        {"record_id": "raw:ws:r:3", "frame": "0|H0STCNT0|002|0001", "parse_error": "cut"},
    ]
    _write(data / "raw/kis/KRX/20261207/10_00.jsonl", raw)
    events = [
        {"type": "slots_seeded", "at": f"{DAY}T09:59:00+09:00", "details": {"symbols": ["000100"]}},
        {
            "type": "gap_marker",
            "symbols": ["000100"],
            "start": f"{DAY}T10:00:05.400+09:00",
            "end": f"{DAY}T10:00:06+09:00",
            "reason": "ws_outage",
        },
        {
            "type": "gap_marker",
            "symbols": ["000100"],
            "start": f"{DAY}T10:00:09+09:00",
            "end": f"{DAY}T10:00:09+09:00",
            "reason": "missed_trades",
            "details": {"cumulative_before": 45, "cumulative_after": 60},
        },
    ]
    _write(data / "system/events/kis/20261207.jsonl", events)
    scalp = [_scalp("000100", "10:00:00", "10:00:00.500"), _scalp("000100", "10:00:01.500", "10:00:02")]
    scalp += [_scalp("000100", "10:00:05.500", "10:00:06")]  # 10:00:02-10:00:05.5 missing, no marker
    _write(data / "scalp/kis/KRX/20261207/10_00_00.jsonl", scalp)
    ten = 10 * 3_600_000
    truth = PublishedTrades(
        at=Stamp(real="", virtual=""),
        day=DAY,
        symbols={
            "000100": SymbolTrades(
                acml_vol=[10, 20, 30, 40, 50],
                # 30 at 10:00:03 (no marker), 40 at 10:00:05.2 (marker from 10:00:05.4, to the second)
                at_ms=[ten, ten, ten + 3_000, ten + 5_200, ten + 8_000],
                damaged_acml_vol=[],
                damaged_at_ms=[],
            )
        },
    )
    report = close_accounts(data, truth, verify=False)
    s = report.symbols["000100"]
    assert (s.published, s.archived, s.explained, s.unexplained) == (5, 2, 2, 1)  # 50: missed_trades range
    assert s.duplicates == 1 and report.raw_unparsed_frames == 1
    assert s.missing_windows == 9 and s.unexplained_windows == 8  # 00.5-01.5 and 02-05 (05-05.5: marker)
    assert not report.ok and abs(report.closure - 0.8) < 1e-9
    assert "closure 80.000%" in report.render()
    s.published, s.archived = 1_000_000, 999_996  # 4 lost in a million: printed below 100 %
    assert "closure 99.999%" in report.render()
