"""Partition paths and the scalp rotation rule, at every boundary (explicit partition_at values)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from observer.clock import KST
from sinks.writer.partitions import Partitioner, PartitionError, check_route

D = datetime(2026, 11, 26, tzinfo=KST)


def at(h: int, m: int = 0, s: float = 0) -> datetime:
    return D + timedelta(hours=h, minutes=m, seconds=s)


def test_hourly_daily_paths_use_kst(tmp_path: Path) -> None:
    p = Partitioner(tmp_path)
    utc = datetime(2026, 11, 26, 0, 59, 59, tzinfo=UTC)  # 09:59:59 KST
    assert p.relpath("swing", "kis", "KOSPI", utc, 0) == Path("swing/kis/KOSPI/20261126/09_00.jsonl")
    assert p.relpath("swing", "kis", "KOSPI", utc + timedelta(seconds=1), 0) == Path(
        "swing/kis/KOSPI/20261126/10_00.jsonl"
    )
    assert p.relpath("raw", "kis", "KOSDAQ", at(14, 59, 59.9), 0) == Path(
        "raw/kis/KOSDAQ/20261126/14_00.jsonl"
    )
    assert p.relpath("system", "kis", "", at(23, 59, 59.999), 0) == Path("system/events/kis/20261126.jsonl")
    assert p.relpath("system", "kis", "", at(24), 0) == Path("system/events/kis/20261127.jsonl")
    assert p.relpath("overflow", "kis", "", at(10), 0) == Path("system/overflow/kis/20261126_overflow.jsonl")
    assert p.relpath("metrics", "", "", at(15, 5), 0) == Path("metrics/20261126.jsonl")


@pytest.mark.parametrize(("level", "expected"), [(0, "10_20_00"), (1, "10_00_00"), (2, "10_00_00")])
def test_scalp_period_per_level(tmp_path: Path, level: int, expected: str) -> None:
    p = Partitioner(tmp_path)
    assert p.relpath("scalp", "kis", "KOSPI", at(10, 29, 59.5), level).name == f"{expected}.jsonl"


@pytest.mark.parametrize(("level", "minutes"), [(0, 10), (1, 30), (2, 60)])
def test_scalp_boundaries_each_level(tmp_path: Path, level: int, minutes: int) -> None:
    p = Partitioner(tmp_path)
    names = [
        p.relpath("scalp", "kis", "KOSPI", at(9, 30) + timedelta(seconds=s / 2), level).name
        for s in range(0, 3 * 3600 * 2, 7)
    ]
    starts = sorted(set(names))
    step = timedelta(minutes=minutes)
    first = at(9, 30) if minutes <= 30 else at(9)
    expected = []
    t = first
    while t < at(12, 30):
        expected.append(f"{t:%H_%M_%S}.jsonl")
        t += step
    assert starts == sorted(expected)


def test_level_change_mid_period_shorter_then_longer(tmp_path: Path) -> None:
    p = Partitioner(tmp_path)

    def name(t: datetime, level: int) -> str:
        return p.relpath("scalp", "kis", "KOSPI", t, level).name.removesuffix(".jsonl")

    assert name(at(10, 5), 2) == "10_00_00"  # hourly file
    assert name(at(10, 9, 59), 2) == "10_00_00"
    # level 0 from 10:15: cut at the first 10-minute boundary after the hourly file's start
    assert name(at(10, 15), 0) == "10_10_00"
    assert name(at(10, 19, 59), 0) == "10_10_00"
    assert name(at(10, 20), 0) == "10_20_00"
    # level 2 again at 10:25: never reopen an earlier name; continue the current file to 11:00
    assert name(at(10, 25), 2) == "10_20_00"
    assert name(at(10, 59, 59), 2) == "10_20_00"
    assert name(at(11, 0), 2) == "11_00_00"
    # level 1 at 11:40 inside the hourly file: the 30-min boundary 11:30 is after its start
    assert name(at(11, 40), 1) == "11_30_00"
    # a late record goes to the file that covers its time
    assert name(at(10, 7), 0) == "10_00_00"
    assert name(at(11, 10), 2) == "11_00_00"
    assert name(at(11, 20), 0) == "11_20_00"  # still before 11_30_00: files never overlap


def test_rotation_state_rebuilt_from_disk(tmp_path: Path) -> None:
    day = tmp_path / "scalp/kis/KOSPI/20261126"
    day.mkdir(parents=True)
    (day / "10_10_00.jsonl").write_bytes(b"")
    p = Partitioner(tmp_path)  # a restarted writer at level 2 continues the existing file
    assert p.relpath("scalp", "kis", "KOSPI", at(10, 30), 2).name == "10_10_00.jsonl"
    assert p.relpath("scalp", "kis", "KOSPI", at(10, 5), 2).name == "10_00_00.jsonl"


def test_day_boundary_scalp(tmp_path: Path) -> None:
    p = Partitioner(tmp_path)
    assert p.relpath("scalp", "kis", "KOSPI", at(23, 59, 59), 2) == Path(
        "scalp/kis/KOSPI/20261126/23_00_00.jsonl"
    )
    assert p.relpath("scalp", "kis", "KOSPI", at(24, 0, 0), 2) == Path(
        "scalp/kis/KOSPI/20261127/00_00_00.jsonl"
    )


@pytest.mark.parametrize(
    ("track", "provider", "market", "when"),
    [
        ("swing", "kis", "../etc", at(10)),
        ("scalp", "k/s", "KOSPI", at(10)),
        ("raw", "kis", "", at(10)),
        ("swing", "kis", "KOSPI", datetime(2026, 11, 26, 10)),  # naive
    ],
)
def test_unplaceable_records_rejected(track: str, provider: str, market: str, when: datetime) -> None:
    with pytest.raises(PartitionError):
        check_route(track, provider, market, when)


def test_the_committer_routes_every_zone_like_the_partitioner(tmp_path: Path) -> None:
    """The committer caches routes per 10-minute slice, named by local fields in zones whose offset
    is whole 10 minutes and by the UTC timestamp otherwise: whatever zone a record's time comes in,
    it lands in the file of its KST hour (each side of an hour boundary)."""
    from zoneinfo import ZoneInfo

    import msgspec

    from sinks.writer.committer import Committer
    from sinks.writer.queue import Chunk, IntakeQueue
    from testkit.config import make_config
    from testkit.records import record

    zones = [KST, UTC, timezone(timedelta(hours=5, minutes=45)), timezone(timedelta(hours=-3, minutes=-30)),
             ZoneInfo("Asia/Seoul"), ZoneInfo("America/New_York")]  # fmt: skip
    instants = [at(10, 59, 59.5), at(11), at(11, 9, 59.9), at(11, 10), at(23, 59, 59.9), at(24)]
    root = tmp_path / "data"
    committer = Committer(
        root,
        make_config(tmp_path).writer,
        IntakeQueue(),
        provider="kis",
        make_event=lambda *a, **k: None,
        marks_path=tmp_path / "marks.json",
        generation_bytes=1 << 20,
    )
    expected: dict[str, Path] = {}
    items = []
    for z, zone in enumerate(zones):
        for i, instant in enumerate(instants):
            rec = record("raw", f"raw:z{z}:{i}", instant.astimezone(zone))
            items.append((rec, bytes(rec.line)))
            expected[rec.record_id] = Partitioner(tmp_path / "fresh").relpath(
                "raw", "kis", "KOSPI", instant, 0
            )
    committer._commit([Chunk(items[: len(items) // 2]), Chunk(items[len(items) // 2 :])])
    landed = {
        msgspec.json.decode(line)["record_id"]: path.relative_to(root)
        for path in root.rglob("*.jsonl")
        for line in path.read_bytes().splitlines()
    }
    assert landed == expected
    assert len(set(expected.values())) == 4  # the 10:00, 11:00, 23:00 and next day 00:00 KST files
    committer.files.close()
