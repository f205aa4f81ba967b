"""`observer verify`: a clean archive passes with a one-line summary; each kind of damage is found
and reported as file:line with a non-zero exit."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from observer.cli import cli
from observer.schema import GapMarker
from sinks.writer.files import FileTable
from testkit.records import DAY, line_for

SWING = "swing/kis/KOSPI/20261126/10_00.jsonl"
SCALP_A = "scalp/kis/KOSPI/20261126/10_00_00.jsonl"
SCALP_B = "scalp/kis/KOSPI/20261126/10_10_00.jsonl"
RAW = "raw/kis/KOSPI/20261126/09_00.jsonl"
EVENTS = "system/events/kis/20261126.jsonl"


def build(root: Path) -> None:
    """A small clean archive of every track, written through the writer's FileTable (0600/0700)."""
    t10 = DAY.replace(hour=10, minute=0)
    groups: dict[Path, list[bytes]] = {
        Path(SWING): [line_for("swing", f"sw-{i}", t10 + timedelta(minutes=10 * i)) for i in range(6)],
        Path(SCALP_A): [line_for("scalp", f"sc-{i}", t10 + timedelta(seconds=i * 30)) for i in range(20)],
        Path(SCALP_B): [
            line_for("scalp", f"sc-b{i}", t10 + timedelta(minutes=10, seconds=i * 30)) for i in range(5)
        ],
        Path(RAW): [line_for("raw", f"raw-{i}", DAY + timedelta(seconds=i)) for i in range(5)],
        Path(EVENTS): [line_for("system", f"ev-{i}", DAY + timedelta(hours=i)) for i in range(3)]
        + [
            msgspec.json.encode(
                GapMarker(
                    record_id="gap-1",
                    track="bus",
                    provider="kis",
                    market="",
                    symbols=[],
                    start=DAY,
                    end=DAY + timedelta(seconds=3),
                    reason="r",
                    detected_by="writer",
                )
            )
        ],
        Path("system/overflow/kis/20261126_overflow.jsonl"): [line_for("overflow", "ov-1", DAY)],
        Path("metrics/20261126.jsonl"): [line_for("metrics", "m-1", DAY)],
    }
    table = FileTable(root)
    table.commit({p: b"\n".join(lines) + b"\n" for p, lines in groups.items()})
    table.close()


def run(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["verify", str(root)])
    return result.exit_code, result.output


def test_clean_archive_passes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    build(root)
    (root / "logs").mkdir()
    (root / "logs" / "writer-20261126.jsonl").write_text("not an archive file\n")  # ignored
    code, out = run(root)
    assert code == 0, out
    assert out.strip().count("\n") == 0
    assert out.startswith("verify: OK") and "scalp 25" in out and "system 4" in out


def append(rel: str, data: bytes) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        with open(root / rel, "ab") as f:
            f.write(data)

    return damage


def chmod(rel: str, mode: int) -> Callable[[Path], None]:
    return lambda root: os.chmod(root / rel, mode)


def new_file(rel: str, data: bytes) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / rel
        path.write_bytes(data)
        os.chmod(path, 0o600)

    return damage


T10 = DAY.replace(hour=10, minute=0)
CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "torn": (append(SWING, b'{"record_id": "sw-9"'), f"{SWING}:7:", "torn last line"),
    "utf8": (append(SWING, b'{"record_id": "\xff\xfe"}\n'), f"{SWING}:7:", "invalid UTF-8"),
    "not_json": (append(RAW, b"hello\n"), f"{RAW}:6:", "not JSON"),
    "not_object": (append(RAW, b"[1, 2]\n"), f"{RAW}:6:", "Expected `object`"),
    "no_record_id": (
        append(RAW, b'{"received_at": "2026-11-26T09:00:00+09:00"}\n'),
        f"{RAW}:6:",
        "record_id",
    ),
    "empty_line": (append(RAW, b"\n"), f"{RAW}:6:", "empty line"),
    "duplicate": (
        append(SCALP_B, line_for("scalp", "sc-3", T10 + timedelta(minutes=12)) + b"\n"),
        f"{SCALP_B}:6:",
        "duplicate record_id 'sc-3'",
    ),
    "swing_hour": (
        append(SWING, line_for("swing", "sw-x", T10 + timedelta(hours=1)) + b"\n"),
        f"{SWING}:7:",
        "not in this 10_00 partition",
    ),
    "scalp_next_file": (
        append(SCALP_A, line_for("scalp", "sc-x", T10 + timedelta(minutes=10)) + b"\n"),
        f"{SCALP_A}:21:",
        "belongs to a later file",
    ),
    "scalp_before_start": (
        append(SCALP_B, line_for("scalp", "sc-y", T10 + timedelta(minutes=9)) + b"\n"),
        f"{SCALP_B}:6:",
        "before this file's period",
    ),
    "scalp_other_hour": (
        new_file(
            "scalp/kis/KOSPI/20261126/11_50_00.jsonl",
            line_for("scalp", "sc-z", T10 + timedelta(hours=2, minutes=5)) + b"\n",
        ),
        "11_50_00.jsonl:1:",
        "in another hour",
    ),
    "raw_date": (
        append(RAW, line_for("raw", "raw-x", DAY + timedelta(days=1, hours=-0.5)) + b"\n"),
        f"{RAW}:6:",
        "not in this 20261126 partition",
    ),
    "event_date": (
        append(EVENTS, line_for("system", "ev-x", DAY - timedelta(days=1)) + b"\n"),
        f"{EVENTS}:5:",
        "at 2026-11-25",
    ),
    "naive_time": (
        append(RAW, b'{"record_id": "raw-n", "received_at": "2026-11-26T09:00:00"}\n'),
        f"{RAW}:6:",
        "no UTC offset",
    ),
    "file_mode": (chmod(SWING, 0o644), f"{SWING}: file mode 0644", "expected 0600"),
    "dir_mode": (chmod("scalp/kis", 0o755), "scalp/kis: directory mode 0755", "expected 0700"),
    "bad_name": (
        new_file("swing/kis/KOSPI/20261126/10_30.jsonl", b""),
        "10_30.jsonl:",
        "not an hourly swing file",
    ),
    "bad_scalp_name": (
        new_file("scalp/kis/KOSPI/20261126/10_15_00.jsonl", b""),
        "10_15_00.jsonl:",
        "10-minute mark",
    ),
    "bad_day_dir": (new_file("metrics/2026-11-26.jsonl", b""), "2026-11-26.jsonl:", "not a daily metrics"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damage_is_reported(tmp_path: Path, case: str) -> None:
    root = tmp_path / "data"
    build(root)
    damage, where, what = CASES[case]
    damage(root)
    code, out = run(root)
    assert code == 1, out
    problem_lines = [line for line in out.splitlines() if where in line and what in line]
    assert problem_lines, out
    assert "verify: DAMAGED" in out.splitlines()[-1]
