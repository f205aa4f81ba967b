"""`observer etl` against a real PostgreSQL started by the test: the archive's counts, a repeat
changes nothing, a load killed with SIGKILL mid-way leaves nothing and a rerun gives exactly one
copy; an unreachable database is a clear message without the password."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from testkit.postgres import PgServer, postgres
from tests.conftest import REPO, free_port, wait_for
from tests.sinks.research.conftest import Day, frame_records

# the first test of a session pays for the shared simulated day (a real pipeline run)
pytestmark = pytest.mark.timeout(600)

TABLES = ("swing_snapshots", "scalp_samples", "trades", "gap_markers", "system_events", "metrics")


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with postgres() as server:
        yield server


def _etl(day: Day, dsn: str, *args: str, data: Path | None = None) -> subprocess.Popen[str]:
    env = dict(day.pipeline.env)
    if data is not None:
        env["OBSERVER_DATA_DIR"] = str(data)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observer",
            "--config",
            str(day.pipeline.cfg_path),
            "etl",
            "--dsn",
            dsn,
            *args,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(day: Day, dsn: str, *args: str, data: Path | None = None) -> tuple[int, str, str]:
    proc = _etl(day, dsn, *args, data=data)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _counts(pg: PgServer, dsn: str, day: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM observer.{t} WHERE day = %s", (day,)).fetchone()[0]  # type: ignore[index]
            for t in TABLES
        }


def _archive_counts(day: Day) -> dict[str, int]:
    events = day.jsonl(f"system/events/*/{day.key}.jsonl")
    gaps = sum(e.get("type") == "gap_marker" for e in events)
    return {
        "swing_snapshots": len(day.jsonl(f"swing/*/*/{day.key}/*.jsonl")),
        "scalp_samples": len(day.jsonl(f"scalp/*/*/{day.key}/*.jsonl")),
        "trades": sum(len(frame_records(r["frame"])) for r in day.jsonl(f"raw/*/*/{day.key}/*.jsonl")),
        "gap_markers": gaps,
        "system_events": len(events) - gaps,
        "metrics": len(day.jsonl(f"metrics/{day.key}.jsonl")),
    }


def _database(pg: PgServer, name: str) -> str:
    pg.query(f"CREATE DATABASE {name}")
    return pg.dsn.rsplit("/", 1)[0] + "/" + name


def test_load_has_the_archive_counts_and_a_repeat_changes_nothing(research_day: Day, pg: PgServer) -> None:
    dsn = _database(pg, "once")
    code, out, err = _run(research_day, dsn, "--day", research_day.key)
    assert code == 0, err
    assert "loaded" in out
    iso = research_day.day.isoformat()
    want = _archive_counts(research_day)
    assert _counts(pg, dsn, iso) == want
    assert want["trades"] > 1000 and want["gap_markers"] >= 1
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = {r[0] for r in conn.execute("SELECT record_id FROM observer.scalp_samples")}
        assert ids == {r["record_id"] for r in research_day.jsonl(f"scalp/*/*/{research_day.key}/*.jsonl")}
        [(tz_close,)] = conn.execute(
            "SELECT pg_typeof(close)::text || ' ' || pg_typeof(window_start)::text FROM observer.scalp_samples LIMIT 1"
        ).fetchall()
        assert tz_close == "bigint timestamp with time zone"
        before = conn.execute(
            "SELECT relname, oid, xmin::text FROM pg_class WHERE relnamespace = 'observer'::regnamespace ORDER BY 1"
        ).fetchall()
        loaded_at = conn.execute("SELECT loaded_at FROM observer.loads").fetchall()

    code, out, err = _run(research_day, dsn, "--day", research_day.key)
    assert code == 0, err
    assert "unchanged" in out and "nothing to do" in err
    assert _counts(pg, dsn, iso) == want
    with psycopg.connect(dsn, autocommit=True) as conn:
        after = conn.execute(
            "SELECT relname, oid, xmin::text FROM pg_class WHERE relnamespace = 'observer'::regnamespace ORDER BY 1"
        ).fetchall()
        assert after == before, "no table was rewritten"
        assert conn.execute("SELECT loaded_at FROM observer.loads").fetchall() == loaded_at

    code, out, err = _run(research_day, dsn, "--day", research_day.key, "--force")
    assert code == 0 and "loaded" in out, err
    assert _counts(pg, dsn, iso) == want, "a forced reload replaces the day: still one copy"


def _other_day(day: Day, into: Path, key: str) -> Path:
    """A copy of the archive with the day's files also filed under another day."""
    shutil.copytree(day.data, into)
    for path in list(into.rglob("*")):
        if path.is_file() and day.key in str(path.relative_to(into)):
            target = Path(str(path).replace(day.key, key))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return into


def test_kill_9_mid_load_leaves_nothing_and_a_rerun_loads_one_copy(
    research_day: Day, pg: PgServer, tmp_path: Path
) -> None:
    dsn = _database(pg, "killed")
    data = _other_day(research_day, tmp_path / "data", "20261201")
    code, _, err = _run(research_day, dsn, "--day", "20261201", data=data)  # creates the schema
    assert code == 0, err
    iso = research_day.day.isoformat()

    holder = psycopg.connect(dsn)
    holder.execute("LOCK TABLE observer.metrics IN ACCESS EXCLUSIVE MODE")  # the last table waits
    proc = _etl(research_day, dsn, "--day", research_day.key, data=data)
    try:
        assert proc.stderr is not None
        copied = []
        while not any("system_events" in line for line in copied):
            line = proc.stderr.readline()
            assert line, "etl ended before it got to the locked table: " + "".join(copied)
            copied.append(line)
        assert any("observer.trades" in line for line in copied), copied

        def waiting() -> bool:
            rows = pg.query(
                "SELECT wait_event_type FROM pg_stat_activity WHERE application_name = 'observer-etl'"
            )
            return rows == [("Lock",)]

        wait_for(waiting, 30, 0.1, "the load to wait on the locked table")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        holder.rollback()
        holder.close()
    wait_for(
        lambda: not pg.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'observer-etl'"),
        30,
        0.1,
        "the killed load's backend to end",
    )
    assert sum(_counts(pg, dsn, iso).values()) == 0, "nothing of the killed load is visible"
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM observer.loads WHERE day = %s", (iso,)).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname LIKE %s", ("%\\_new",)
        ).fetchone() == (0,)

    code, out, err = _run(research_day, dsn, "--day", research_day.key, data=data)
    assert code == 0 and "loaded" in out, err
    want = _archive_counts(research_day)
    assert _counts(pg, dsn, iso) == want
    assert _counts(pg, dsn, "2026-12-01") == want, "the other day is untouched"

    scalp_file = sorted(data.glob(f"scalp/*/*/{research_day.key}/*.jsonl"))[-1]
    with scalp_file.open("ab") as f:
        f.write(b'{"record_id":"scalp:torn')
    code, out, err = _run(research_day, dsn, "--day", research_day.key, "--force", data=data)
    assert code == 1 and "torn last line" in err and scalp_file.name in err, err
    assert _counts(pg, dsn, iso) == want, "a load stopped by a torn line leaves the loaded day as it was"


def test_unreachable_database_is_a_clear_message_without_the_password(research_day: Day) -> None:
    dsn = f"postgresql://observer:s3cret-pw@127.0.0.1:{free_port()}/market"
    code, out, err = _run(research_day, dsn, "--day", research_day.key)
    assert code == 1
    assert "cannot reach PostgreSQL at" in err and "127.0.0.1" in err, err
    assert "s3cret-pw" not in err + out
