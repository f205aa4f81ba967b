"""CLI commands of the writer package: ``observer verify PATH``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sinks.writer.verify import verify_archive


@click.command("verify")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--max-problems", default=200, show_default=True, help="problems printed before the summary")
def verify(path: Path, max_problems: int) -> None:
    """Check every archive file under PATH; exit 1 with a file:line report on any damage."""
    report = verify_archive(path)
    click.echo(report.format(max_problems), err=not report.ok)
    sys.exit(0 if report.ok else 1)


commands = [verify]
