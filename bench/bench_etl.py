"""ETL benchmark: `observer etl` (archive -> Arrow -> CSV -> COPY into staging -> keys -> attach)
beside a bare ``COPY`` of the same rows into tables of the same shape, in one run, one server.

    .venv/bin/python bench/bench_etl.py [--scalp 100000] [--frames 50000] [--records-per-frame 2] [--rounds 3]

A synthetic day is written under a temp dir (scalp samples, swing snapshots, raw H0STCNT0 frames
with real 46-field records), a PostgreSQL server is started there (initdb + pg_ctl). The bare
reference gets the rows already rendered as CSV (the rendering is not timed) and copies them into
unindexed tables in one transaction; the ETL is timed end to end from the archive files. Printed:
rows/s of each and the ratio (goal >= 0.5x); and the Parquet export of the same day (rows/s, size).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import msgspec
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from observer.schema import RawFrameRecord  # noqa: E402
from sinks.research import pgschema as S  # noqa: E402
from sinks.research.day import day_groups  # noqa: E402
from sinks.research.etl import Loader, csv_of  # noqa: E402
from sinks.research.export import Export  # noqa: E402
from sinks.research.tables import batches  # noqa: E402
from testkit.postgres import postgres  # noqa: E402
from testkit.records import DAY, line_for  # noqa: E402

RECORD = (
    "{sym}^093015^71500^2^500^0.70^71420.55^71000^71600^70900^71500^71400^10^1523400^108794212000^5012^6120^"
    "1108^122.11^356012^434102^1^55.01^61.23^090000^2^500^091522^5^-100^090011^2^600^20261126^20^N^1200^3400^"
    "812000^953000^0.03^1423000^107.05^0^^71000"
)


def write_day(root: Path, scalp: int, swing: int, frames: int, per_frame: int) -> None:
    enc = msgspec.json.Encoder()
    key = DAY.strftime("%Y%m%d")
    for track, n in (("scalp", scalp), ("swing", swing)):
        folder = root / track / "kis" / "KOSPI" / key
        folder.mkdir(parents=True)
        with (folder / ("09_30_00.jsonl" if track == "scalp" else "09_00.jsonl")).open("wb") as f:
            for i in range(n):
                f.write(line_for(track, f"{track}:{i}", DAY + timedelta(milliseconds=500 * i)) + b"\n")
    folder = root / "raw" / "kis" / "KRX" / key
    folder.mkdir(parents=True)
    with (folder / "09_00.jsonl").open("wb") as f:
        for i in range(frames):
            payload = "^".join(
                RECORD.format(sym=f"{(i * per_frame + k) % 900000:06d}") for k in range(per_frame)
            )
            frame = f"0|H0STCNT0|{per_frame:03d}|{payload}"
            rec = RawFrameRecord(
                record_id=f"raw:bench:{i}",
                provider="kis",
                market="KRX",
                received_at=DAY + timedelta(microseconds=100 * i),
                tr_id="H0STCNT0",
                frame=frame,
            )
            f.write(enc.encode(rec) + b"\n")


def bare_copy(dsn: str, rendered: dict[str, list[bytes]]) -> tuple[float, int]:
    """COPY the pre-rendered rows into fresh unindexed tables of the same shape, one transaction."""
    with psycopg.connect(dsn) as conn:
        cur = conn.cursor()
        cur.execute("DROP SCHEMA IF EXISTS bare CASCADE")
        cur.execute("CREATE SCHEMA bare")
        for table in rendered:
            parent = f"{S.SCHEMA}.{S.PG_TABLES[table]}"
            cur.execute(f"CREATE TABLE bare.{S.PG_TABLES[table]} (LIKE {parent})")  # type: ignore[arg-type]
        conn.commit()
        rows = 0
        started = time.perf_counter()
        cur.execute("SET TimeZone = 'UTC'")  # as the ETL reads the same CSV
        for table, chunks in rendered.items():
            cols = ", ".join(S.quote(c) for c in S.columns(table))
            with cur.copy(f"COPY bare.{S.PG_TABLES[table]} ({cols}) FROM STDIN (FORMAT csv)") as copy:  # type: ignore[arg-type]
                for chunk in chunks:
                    copy.write(chunk)
                    rows += chunk.count(b"\n")
        conn.commit()
        return time.perf_counter() - started, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scalp", type=int, default=100_000)
    ap.add_argument("--swing", type=int, default=20_000)
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--records-per-frame", type=int, default=2)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-etl-", dir="/tmp"))
    try:
        data = base / "data"
        write_day(data, args.scalp, args.swing, args.frames, args.records_per_frame)
        day = DAY.date()
        started = time.perf_counter()
        manifest = Export(data, base / "parquet").run(day)
        export_s = time.perf_counter() - started
        export_rows = sum(f.rows for f in manifest.files)
        groups = day_groups(data, day)
        rendered = {g.table: [csv_of(b, day) for b in batches(g)] for g in groups}
        etl_runs: list[float] = []
        bare_runs: list[float] = []
        with postgres() as pg:
            loader = Loader(pg.dsn)
            loader.load_day(data, day)  # creates the schema; the timed runs below are full reloads
            for _ in range(args.rounds):  # interleaved, so that a noisy neighbour hits both alike
                started = time.perf_counter()
                result = loader.load_day(data, day, force=True)
                etl_runs.append(time.perf_counter() - started)
                bare_s, bare_rows = bare_copy(pg.dsn, rendered)
                bare_runs.append(bare_s)
        etl_rows = sum(result.rows.values())
        assert etl_rows == bare_rows, (etl_rows, bare_rows)
        etl_s, bare_s = statistics.median(etl_runs), statistics.median(bare_runs)
        ratios = sorted(b / e for b, e in zip(bare_runs, etl_runs, strict=True))
        print(
            f"rows: {etl_rows} (scalp {args.scalp}, swing {args.swing}, trades {args.frames * args.records_per_frame})"
        )
        print(
            f"etl (archive -> PostgreSQL, keys, attach): median {etl_s:.2f} s, {etl_rows / etl_s:,.0f} rows/s"
        )
        print(
            f"bare COPY of the same rows (pre-rendered CSV): median {bare_s:.2f} s, {bare_rows / bare_s:,.0f} rows/s"
        )
        print(
            f"ratio etl / bare: {bare_s / etl_s:.2f}x of medians; per round "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f" (goal >= 0.5x; {args.rounds} interleaved rounds)"
        )
        size = sum(f.bytes for f in manifest.files)
        print(
            f"export (archive -> Parquet zstd, counts checked, SHA-256): {export_s:.2f} s, "
            f"{export_rows / export_s:,.0f} rows/s, {size / 1e6:.1f} MB"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
