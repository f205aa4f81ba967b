"""``observer export``, ``observer etl`` and ``observer report``: research outputs of one KST day.

Exit codes: 0 done, 1 the day could not be produced (no data, a damaged archive, a count
mismatch, an unreachable database: the message says which, and nothing half-written is left
visible), 2 bad usage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from observer.config import Config, data_dir, research_dir
from observer.days import day_option
from sinks.research.errors import ResearchError
from sinks.research.tables import TABLES


def _cfg(ctx: click.Context) -> Config:
    from observer.cli import config_of

    return config_of(ctx)


def _fail(e: ResearchError) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(1)


_day_option = click.option("--day", "day_text", required=True, help="KST trading day, YYYYMMDD")


@click.command("export")
@_day_option
@click.option(
    "--tracks", default=",".join(TABLES), show_default=True, help="tables to write, comma-separated"
)
@click.option("--out", "out", default=None, help="output directory (default <research dir>/parquet)")
@click.pass_context
def export_cmd(ctx: click.Context, day_text: str, tracks: str, out: str | None) -> None:
    """Write one day as typed Parquet (zstd) with a manifest (row counts, SHA-256)."""
    from sinks.research.export import Export

    cfg = _cfg(ctx)
    day = day_option(day_text)
    out_dir = Path(out) if out else research_dir(cfg) / "parquet"
    tables = tuple(t.strip() for t in tracks.split(",") if t.strip())
    try:
        manifest = Export(data_dir(cfg), out_dir, tables).run(day)
    except ResearchError as e:
        _fail(e)
        return
    for f in manifest.files:
        click.echo(f"{f.file}: {f.rows} rows (archive {f.archive_count}) sha256 {f.sha256[:16]}")
    click.echo(f"{out_dir / day.strftime('%Y%m%d')}: {len(manifest.files)} files, manifest.json")


@click.command("etl")
@_day_option
@click.option("--dsn", default=None, help="postgresql://user@host[:port]/db (default [research] etl_dsn)")
@click.option("--force", is_flag=True, help="load again even when the day is loaded from the same files")
@click.pass_context
def etl_cmd(ctx: click.Context, day_text: str, dsn: str | None, force: bool) -> None:
    """Load one day into PostgreSQL (partition per day, COPY, all or nothing)."""
    from sinks.research.etl import Loader

    cfg = _cfg(ctx)
    day = day_option(day_text)
    dsn = dsn or cfg.research.etl_dsn
    if not dsn:
        raise click.UsageError("no database: pass --dsn or set [research] etl_dsn")
    loader = Loader(dsn, cfg.research.etl_connect_timeout_s, progress=lambda m: click.echo(m, err=True))
    try:
        result = loader.load_day(data_dir(cfg), day, force=force)
    except ResearchError as e:
        _fail(e)
        return
    rows = ", ".join(f"{t} {n}" for t, n in sorted(result.rows.items()))
    click.echo(f"{day.isoformat()} {result.status}: {rows}")


@click.command("report")
@_day_option
@click.option("--out", "out", default=None, help="output directory (default <research dir>/reports)")
@click.option("--summary-json", is_flag=True, help="print the summary (text, chart path) as JSON on stdout")
@click.pass_context
def report_cmd(ctx: click.Context, day_text: str, out: str | None, summary_json: bool) -> None:
    """Write the day's report: a self-contained HTML page, PNG charts and a short summary."""
    import msgspec

    from sinks.research.report import SUMMARY_JSON, Summary, build_report

    cfg = _cfg(ctx)
    day = day_option(day_text)
    out_dir = Path(out) if out else research_dir(cfg) / "reports"
    try:
        folder = build_report(data_dir(cfg), Path(cfg.paths.universe_dir), day, out_dir, cfg.archive_provider)
    except ResearchError as e:
        _fail(e)
        return
    summary = msgspec.json.decode((folder / SUMMARY_JSON).read_bytes(), type=Summary)
    if summary_json:
        doc = {"day": summary.day, "text": summary.text, "chart": str(folder / summary.chart)}
        click.echo(msgspec.json.encode(doc).decode())
    else:
        click.echo(summary.text)
        click.echo(f"{folder / 'report.html'}")


commands = [export_cmd, etl_cmd, report_cmd]
