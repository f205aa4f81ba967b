"""The de-duplication window: exact within its generations, bounded, rebuilt from the files after a mark."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sinks.writer.files import FileTable
from sinks.writer.index import RecentIds, WindowMarks, id_key, load_window, track_of
from sinks.writer.repair import archive_files
from testkit.records import DAY, line_for

SCALP = Path("scalp/kis/KOSPI/20261126/09_30_00.jsonl")
EVENTS = Path("system/events/kis/20261126.jsonl")


def _lines(track: str, ids: range, prefix: str = "sc") -> bytes:
    return b"".join(line_for(track, f"{prefix}-{i}", DAY) + b"\n" for i in ids)


def test_window_is_exact_over_two_generations_and_forgets_the_third() -> None:
    w = RecentIds(generation_bytes=1000)
    for gen in range(3):
        for i in range(gen * 50_000, (gen + 1) * 50_000):
            w.add(id_key("scalp", f"sc-{i}"))
        assert w.committed(1000)
        w.rotate()
        w.add(id_key("scalp", f"young-{gen}"))
    assert id_key("scalp", "young-2") in w  # young
    assert all(id_key("scalp", f"sc-{i}") in w for i in range(100_000, 150_000, 7))  # old
    assert id_key("scalp", "sc-99999") not in w  # two rotations ago: forgotten
    assert id_key("swing", "sc-120000") not in w  # unique per track only
    assert len(w) == 50_002  # old: 50 000 + young-1; young: young-2


def test_track_of_paths() -> None:
    assert track_of(SCALP) == "scalp"
    assert track_of(EVENTS) == "system"
    assert track_of(Path("system/overflow/kis/20261126_overflow.jsonl")) == "overflow"
    assert track_of(Path("metrics/20261126.jsonl")) == "metrics"
    assert track_of(Path("logs/x.jsonl")) is None


def test_rebuilt_from_what_follows_the_older_mark(tmp_path: Path) -> None:
    table = FileTable(tmp_path)
    old_file = Path("raw/kis/KOSPI/20261126/09_00.jsonl")
    table.commit({SCALP: _lines("scalp", range(100)), old_file: _lines("raw", range(5), "rw")})
    marks = WindowMarks(tmp_path / "writer_window.json")
    # a file not named in the mark and untouched since is skipped: make it older than the mark
    past = time.time() - 60
    os.utime(tmp_path / old_file, (past, past))
    marks.push({SCALP: table.size(SCALP)})
    table.commit(
        {SCALP: _lines("scalp", range(100, 150)), EVENTS: line_for("system", "ev-1", DAY) + b"\nnot json\n"}
    )
    table.close()

    reread = WindowMarks(tmp_path / "writer_window.json")
    assert reread.load()
    w = RecentIds(1 << 30)
    got = load_window(tmp_path, sorted(archive_files(tmp_path)), reread, w)
    assert got.from_marks and got.lines == 52 and got.bad_lines == 1
    assert all(id_key("scalp", f"sc-{i}") in w for i in range(100, 150))
    assert id_key("scalp", "sc-99") not in w  # before the mark
    assert id_key("system", "ev-1") in w  # a new file: read whole
    assert id_key("raw", "rw-1") not in w


def test_without_marks_the_latest_two_days_are_read(tmp_path: Path) -> None:
    table = FileTable(tmp_path)
    table.commit(
        {
            Path("scalp/kis/KOSPI/20261124/09_30_00.jsonl"): _lines("scalp", range(3), "d24"),
            Path("scalp/kis/KOSPI/20261125/09_30_00.jsonl"): _lines("scalp", range(3), "d25"),
            SCALP: _lines("scalp", range(3), "d26"),
        }
    )
    table.close()
    w = RecentIds(1 << 30)
    got = load_window(tmp_path, sorted(archive_files(tmp_path)), WindowMarks(tmp_path / "none.json"), w)
    assert not got.from_marks and got.lines == 6
    assert id_key("scalp", "d26-0") in w and id_key("scalp", "d25-2") in w
    assert id_key("scalp", "d24-0") not in w


def test_marks_keep_the_old_generation_start_across_a_restart(tmp_path: Path) -> None:
    marks = WindowMarks(tmp_path / "writer_window.json")
    for size in (1, 2):
        marks.push({SCALP: size})  # two rotations: old starts at 1, young at 2
    marks.push({SCALP: 3}, keep_oldest=True)  # a start: what was loaded from 1 stays the old generation
    assert [m.sizes[str(SCALP)] for m in marks.marks] == [1, 3]
    marks.push({SCALP: 4})  # the next rotation: old starts where the start's young did
    reread = WindowMarks(tmp_path / "writer_window.json")
    assert reread.load() and [m.sizes[str(SCALP)] for m in reread.marks] == [3, 4]
