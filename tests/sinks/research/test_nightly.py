"""The housekeeper's nightly research outputs after the day's package: the export runs as an
`observer export` child with the housekeeper's config; a load that cannot reach its database is a
WARNING event naming the cause, and the job carries on."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from observer.clock import SystemClock
from observer.config import load_config
from observer.schema import SystemEvent
from observer.sessions import MarketSessions
from sinks.housekeeping.jobs import Jobs
from sinks.research.export import read_manifest
from testkit.config import write_config
from tests.conftest import free_port
from tests.sinks.research.conftest import Day

# the first test of a session pays for the shared simulated day (a real pipeline run)
pytestmark = pytest.mark.timeout(600)


def test_nightly_export_and_a_failed_load(
    research_day: Day, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(research_day.data, short_tmp / "data")
    path = write_config(
        short_tmp,
        "[research]\nnightly_export = true\nnightly_etl = true\n"
        f'etl_dsn = "postgresql://observer@127.0.0.1:{free_port()}/market"\netl_connect_timeout_s = 2.0\n',
    )
    monkeypatch.setenv("OBSERVER_CONFIG", str(path))
    for key in ("OBSERVER_DATA_DIR", "OBSERVER_RUNTIME_DIR"):
        monkeypatch.delenv(key, raising=False)
    cfg = load_config(path)
    events: list[SystemEvent] = []

    def make_event(type_: str, severity: str, message: str, **details: Any) -> SystemEvent:
        return SystemEvent(
            record_id=f"t-{len(events)}", type=type_, severity=severity, at=SystemClock().now(),  # type: ignore[arg-type]
            source="housekeeper", message=message, details=details,
        )  # fmt: skip

    jobs = Jobs(
        cfg, SystemClock(), MarketSessions.from_config(cfg), make_event, events.append, threading.Event(),
        logging.getLogger("test"),
    )  # fmt: skip
    jobs.research_outputs(research_day.day)

    manifest = read_manifest(short_tmp / "data" / "research" / "parquet" / research_day.key)
    assert manifest.rows("scalp") == len(research_day.jsonl(f"scalp/*/*/{research_day.key}/*.jsonl"))
    [exported, failed] = events
    assert (exported.type, exported.severity) == ("research_export", "INFO")
    assert (failed.type, failed.severity) == ("research_etl_failed", "WARNING")
    assert (
        "cannot reach PostgreSQL" in failed.message and failed.details["day"] == research_day.day.isoformat()
    )
