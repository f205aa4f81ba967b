"""The record-id index: rebuilt from partition files, exact after compaction, per (track, day)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sinks.writer.files import FileTable
from sinks.writer.index import DayIds, RecordIndex, days_on_disk, id_hash
from testkit.records import DAY, line_for

D = date(2026, 11, 26)


def test_day_ids_exact_across_compaction() -> None:
    ids = DayIds()
    for i in range(150_000):
        ids.add(id_hash(f"sc-{i}"))
    assert len(ids) == 150_000
    assert all(id_hash(f"sc-{i}") in ids for i in range(0, 150_000, 7))
    assert id_hash("sc-150000") not in ids and id_hash("other") not in ids


def test_index_rebuilt_from_files_per_track_and_day(tmp_path: Path) -> None:
    table = FileTable(tmp_path)
    table.commit(
        {
            Path("scalp/kis/KOSPI/20261126/09_30_00.jsonl"): b"".join(
                line_for("scalp", f"sc-{i}", DAY) + b"\n" for i in range(100)
            ),
            Path("scalp/kis/KOSDAQ/20261125/09_30_00.jsonl"): line_for(
                "scalp", "old", DAY - timedelta(days=1)
            )
            + b"\n",
            Path("system/events/kis/20261126.jsonl"): line_for("system", "ev-1", DAY) + b"\nnot json\n",
        }
    )
    table.close()
    index = RecordIndex(tmp_path)
    assert index.contains("scalp", D, "sc-42") and not index.contains("scalp", D, "sc-100")
    assert not index.contains("swing", D, "sc-42")  # unique per track
    assert not index.contains("scalp", D, "old") and index.contains("scalp", D - timedelta(days=1), "old")
    assert index.contains("system", D, "ev-1")
    assert [s.bad_lines for s in index.scans if s.track == "system"] == [1]
    assert days_on_disk(tmp_path, "scalp") == [D - timedelta(days=1), D]
    index.add("scalp", D, "sc-100")
    assert index.contains("scalp", D, "sc-100")
