"""One simulated trading day shared by every research test: the real pipeline (`observer run`:
supervisor, KIS simulator, collectors, core, writer, monitor) on a session clock at 4x for about
a virtual minute of Track B, with one injected WebSocket outage (a gap marker), then stopped.
The archive it leaves is read-only for the tests (those that damage it work on a copy)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import wait_for
from tests.e2e.support import Pipeline, lines

DAY_TOML = """
[calendar]
use_chk_holiday = false
[monitor]
cpu_level1_pct = 101.0
cpu_level2_pct = 101.0
metrics_interval_s = 20.0
"""


@dataclass(frozen=True)
class Day:
    pipeline: Pipeline
    data: Path
    day: date

    @property
    def key(self) -> str:
        return self.day.strftime("%Y%m%d")

    def jsonl(self, pattern: str) -> list[dict[str, Any]]:
        return lines(self.data, pattern)


def _settled(data: Path, pattern: str) -> list[dict[str, Any]]:
    """Lines so far; a line the writer is still appending is not read yet."""
    try:
        return lines(data, pattern)
    except json.JSONDecodeError:
        return []


@pytest.fixture(scope="session")
def research_day() -> Iterator[Day]:
    base = Path(tempfile.mkdtemp(prefix="obs-rday-", dir="/tmp"))
    base.chmod(0o700)
    p = Pipeline(base, DAY_TOML, speed=4.0, start_at="09:29:30")
    try:
        with p.running():
            p.wait_filled()

            def scalp_span() -> bool:
                recs = _settled(p.data, "scalp/*/*/*/*.jsonl")
                starts = [
                    datetime.fromisoformat(r["observation"]["instruments"][0]["window_start"]) for r in recs
                ]
                return bool(starts) and max(starts) - min(starts) >= timedelta(seconds=20)

            wait_for(scalp_span, 240, 0.5, "20 virtual seconds of scalp samples")
            requests.post(
                f"{p.admin}/faults", json={"kind": "drop_sessions", "duration_s": 0}, timeout=5
            ).raise_for_status()
            wait_for(
                lambda: [
                    g for g in _settled(p.data, "system/events/*/*.jsonl") if g.get("type") == "gap_marker"
                ],
                180,
                0.5,
                "the outage's gap marker",
            )

            def enough() -> bool:
                recs = _settled(p.data, "scalp/*/*/*/*.jsonl")
                starts = [
                    datetime.fromisoformat(r["observation"]["instruments"][0]["window_start"]) for r in recs
                ]
                return (
                    bool(starts)
                    and max(starts) - min(starts) >= timedelta(seconds=60)
                    and len(_settled(p.data, "metrics/*.jsonl")) >= 3
                )

            wait_for(enough, 240, 0.5, "60 virtual seconds of scalp samples and 3 metrics lines")
        assert p.returncode == 0, p.stderr[-3000:]
        keys = {f.name for f in p.data.glob("swing/*/KOSPI/*")}
        assert len(keys) == 1, keys
        day = datetime.strptime(keys.pop(), "%Y%m%d").date()
        yield Day(p, p.data, day)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def frame_records(frame: str) -> list[list[str]]:
    """The test's own cut of a raw frame (kis_protocol.md), to check the export against."""
    _enc, _tr_id, count, payload = frame.split("|", 3)
    fields = payload.split("^")
    stride = len(fields) // int(count)
    return [fields[i : i + stride] for i in range(0, len(fields), stride)]


def read_json_lines(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for path in paths for line in path.read_text().splitlines() if line]
