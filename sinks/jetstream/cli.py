"""CLI commands of the JetStream sink: ``observer archive from-jetstream --out DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec

from observer.cli import config_of
from sinks.jetstream.rebuild import RebuildError, rebuild


@click.group("archive")
def archive() -> None:
    """Archive copies outside the writer (the JetStream archive stream)."""


@archive.command("from-jetstream")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="an empty dir")
@click.option("--url", default=None, help="NATS server (default: [jetstream] url)")
@click.option("--stream", default=None, help="stream name (default: [jetstream] stream)")
@click.option("--durable", default="observer-rebuild", show_default=True, help="durable consumer name")
@click.pass_context
def from_jetstream(ctx: click.Context, out: Path, url: str | None, stream: str | None, durable: str) -> None:
    """Rebuild an archive from the stream, byte-identical to the writer's; exit 1 on any hole."""
    jcfg = config_of(ctx).jetstream
    jcfg = msgspec.structs.replace(jcfg, url=url or jcfg.url, stream=stream or jcfg.stream)
    try:
        report = rebuild(jcfg, out, durable=durable)
    except RebuildError as e:
        click.echo(f"observer archive from-jetstream: {e}", err=True)
        sys.exit(2)
    except OSError as e:  # no server, a disk error
        click.echo(f"observer archive from-jetstream: {e}", err=True)
        sys.exit(2)
    for problem in report.problems[:200]:
        click.echo(problem, err=True)
    click.echo(report.summary(), err=not report.ok)
    sys.exit(0 if report.ok else 1)


commands = [archive]
