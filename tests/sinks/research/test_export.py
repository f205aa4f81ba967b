"""`observer export` on a simulated day: counts equal the archive, Parquet -> records equals the
JSONL field by field, DuckDB and pandas read it; bad input leaves nothing half-written."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from collectors.kis.ws_parser import TRADE_FIELDS
from sinks.research.export import read_manifest
from sinks.research.tables import rebuild
from sinks.research.trades import text_rows, to_batch
from tests.sinks.research.conftest import Day, frame_records, read_json_lines

# the first test of a session pays for the shared simulated day (a real pipeline run)
pytestmark = pytest.mark.timeout(600)


def _timestamps(value: Any) -> Any:
    """JSON as the archive means it: RFC 3339 strings -> aware datetimes (compared by instant)."""
    if isinstance(value, dict):
        return {k: _timestamps(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_timestamps(v) for v in value]
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        return datetime.fromisoformat(value)
    return value


def _text_of(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "time":
        return value.strftime("%H%M%S")
    if kind == "date":
        return value.strftime("%Y%m%d")
    return str(value)


@pytest.fixture(scope="module")
def exported(research_day: Day, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("parquet")
    done = research_day.pipeline.observer("export", "--day", research_day.key, "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out / research_day.key


def test_counts_equal_the_archive(research_day: Day, exported: Path) -> None:
    manifest = read_manifest(exported)
    d = research_day
    assert manifest.rows("swing") == len(d.jsonl(f"swing/*/*/{d.key}/*.jsonl")) > 500
    assert manifest.rows("scalp") == len(d.jsonl(f"scalp/*/*/{d.key}/*.jsonl")) > 41 * 60
    raw = d.jsonl(f"raw/*/*/{d.key}/*.jsonl")
    assert manifest.rows("trades") == sum(len(frame_records(r["frame"])) for r in raw) > len(raw) * 0.99
    events = d.jsonl(f"system/events/*/{d.key}.jsonl")
    gaps = [e for e in events if e.get("type") == "gap_marker"]
    assert manifest.rows("gaps") == len(gaps) >= 1
    assert manifest.rows("events") == len(events) - len(gaps)
    assert manifest.rows("metrics") == len(d.jsonl(f"metrics/{d.key}.jsonl")) >= 3
    for f in manifest.files:
        assert pq.read_metadata(exported / f.file).num_rows == f.rows == f.archive_count
        assert (exported / f.file).stat().st_mode & 0o777 == 0o600
    assert exported.stat().st_mode & 0o777 == 0o700


def test_parquet_round_trip_equals_jsonl_field_by_field(research_day: Day, exported: Path) -> None:
    manifest = read_manifest(exported)
    for f in manifest.files:
        if f.table == "trades":
            continue
        table = pq.read_table(exported / f.file)
        got = rebuild(f.table, table.to_pylist())
        want = read_json_lines([research_day.data / s for s in f.sources])
        if f.table in ("gaps", "events"):
            want = [w for w in want if (w.get("type") == "gap_marker") == (f.table == "gaps")]
        assert len(got) == len(want), f.file
        for g, w in zip(got, want, strict=True):
            assert g == _timestamps(w), (f.file, w["record_id"])


def test_trades_are_every_record_of_every_raw_frame_named_and_typed(
    research_day: Day, exported: Path
) -> None:
    manifest = read_manifest(exported)
    [f] = [f for f in manifest.files if f.table == "trades"]
    rows = pq.read_table(exported / f.file).to_pylist()
    frames = read_json_lines([research_day.data / s for s in f.sources])
    expected = [(fr, i, rec) for fr in frames for i, rec in enumerate(frame_records(fr["frame"]))]
    assert len(rows) == len(expected)
    for row, (frame, index, fields) in zip(rows, expected, strict=True):
        assert (row["record_id"], row["record_index"]) == (frame["record_id"], index)
        assert row["received_at"] == datetime.fromisoformat(frame["received_at"])
        for (name, kind), text in zip(TRADE_FIELDS, fields, strict=False):
            value = row[name.lower()]
            if kind == "decimal" and text:
                assert value == float(text), name
            else:
                assert _text_of(kind, value) == text, (name, value, text)
        assert row["parse_error"] is None
        assert row["exchange_at"] == datetime.combine(row["bsop_date"], row["stck_cntg_hour"]).replace(
            tzinfo=row["exchange_at"].tzinfo
        )
        assert isinstance(row["stck_prpr"], int) and isinstance(row["bsop_date"], date)
        assert isinstance(row["stck_cntg_hour"], time)


def test_duckdb_and_pandas_read_the_day(research_day: Day, exported: Path) -> None:
    manifest = read_manifest(exported)
    con = duckdb.connect()
    for table in ("swing", "scalp", "trades", "events"):
        [(n,)] = con.sql(f"select count(*) from read_parquet('{exported}/{table}_*.parquet')").fetchall()
        assert n == manifest.rows(table)
    [(symbols, close_type)] = con.sql(
        f"select count(distinct symbol), typeof(any_value(close)) from '{exported}/scalp_*.parquet'"
    ).fetchall()
    assert symbols >= 41 and close_type == "BIGINT"
    scalp = pd.concat(pd.read_parquet(p) for p in sorted(exported.glob("scalp_*.parquet")))
    assert len(scalp) == manifest.rows("scalp")
    assert str(scalp["window_start"].dt.tz) == "Asia/Seoul"
    assert scalp["close"].dtype == "int64" and (scalp["close"] > 0).all()
    assert scalp["window_start"].min().date() == research_day.day


def _listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_torn_line_and_no_data_day_leave_nothing_half_written(research_day: Day, tmp_path: Path) -> None:
    p = research_day.pipeline
    out = tmp_path / "out"
    copy = tmp_path / "data"
    shutil.copytree(research_day.data, copy)
    env_run = p.observer  # the same config, pointed at the copy through OBSERVER_DATA_DIR
    p.env["OBSERVER_DATA_DIR"] = str(copy)
    try:
        first = env_run("export", "--day", research_day.key, "--out", str(out))
        assert first.returncode == 0, first.stderr
        before = read_manifest(out / research_day.key)
        scalp_file = sorted(copy.glob(f"scalp/*/*/{research_day.key}/*.jsonl"))[-1]
        with scalp_file.open("ab") as f:
            f.write(b'{"record_id":"scalp:torn')
        torn = env_run("export", "--day", research_day.key, "--out", str(out))
        assert torn.returncode == 1
        assert "torn last line" in torn.stderr and scalp_file.name in torn.stderr, torn.stderr
        assert _listing(out) == [research_day.key], "no partial directory left behind"
        assert read_manifest(out / research_day.key) == before, "the previous export is untouched"

        empty = env_run("export", "--day", "20261225", "--out", str(out))
        assert empty.returncode == 1 and "no archive files for 2026-12-25" in empty.stderr, empty.stderr
        assert _listing(out) == [research_day.key]
    finally:
        p.env.pop("OBSERVER_DATA_DIR")


def _raw_line(frame: str, record_id: str = "raw:t:1", parse_error: str = "") -> bytes:
    return json.dumps(
        {"record_id": record_id, "provider": "kis", "market": "KRX", "received_at": "2026-12-07T09:30:01+09:00",
         "tr_id": "H0STCNT0", "frame": frame, "parse_error": parse_error}
    ).encode()  # fmt: skip


SAMPLE = (
    "005930^093015^71500^2^500^0.70^71420.55^71000^71600^70900^71500^71400^10^1523400^108794212000^5012^6120^"
    "1108^122.11^356012^434102^1^55.01^61.23^090000^2^500^091522^5^-100^090011^2^600^20261207^20^N^1200^3400^"
    "812000^953000^0.03^1423000^107.05^0^^71000"
)


def test_trade_fields_that_are_not_their_type_are_null_with_the_reason_kept() -> None:
    bad = SAMPLE.replace("^71500^2^", "^71x00^2^", 1).replace("^091522^", "^996622^", 1)
    two_with_extra = "^".join([SAMPLE + "^X1", SAMPLE + "^X2"])
    lines = [
        _raw_line("0|H0STCNT0|001|" + bad, "raw:t:1"),
        _raw_line("garbage", "raw:t:2", parse_error="bad header: expected enc|tr_id|count|payload"),
        _raw_line("0|H0STCNT0|002|" + two_with_extra, "raw:t:3"),
    ]
    rows = to_batch([r for line in lines for r in text_rows(line)]).to_pylist()
    assert [(r["record_id"], r["record_index"]) for r in rows] == [
        ("raw:t:1", 0), ("raw:t:2", 0), ("raw:t:3", 0), ("raw:t:3", 1)
    ]  # fmt: skip
    first = rows[0]
    assert first["stck_prpr"] is None and first["hgpr_hour"] is None
    assert "STCK_PRPR not int: '71x00'" in first["parse_error"]
    assert "HGPR_HOUR not time: '996622'" in first["parse_error"]
    assert first["acml_vol"] == 1523400 and first["stck_cntg_hour"] == time(9, 30, 15)
    assert first["exchange_at"] == datetime.fromisoformat("2026-12-07T09:30:15+09:00")
    assert rows[1]["parse_error"].startswith("bad header") and rows[1]["stck_prpr"] is None
    assert rows[1]["exchange_at"] is None
    assert [r["extra_fields"] for r in rows[2:]] == [["X1"], ["X2"]]
    assert all(r["parse_error"] is None and r["stck_prpr"] == 71500 for r in rows[2:])
    assert rows[2]["prdy_ctrt"] == 0.70 and rows[2]["bsop_date"] == date(2026, 12, 7)
