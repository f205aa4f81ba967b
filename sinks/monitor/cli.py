"""`observer status`: the operator's live view (refreshed every second; Ctrl-C exits) and
`observer status --once --json` for scripts. Data sources: see `sinks.monitor.view`."""

from __future__ import annotations

import json
import sys
import time

import click

from observer.cli import config_of
from observer.clock import SystemClock
from sinks.monitor.view import gather, render

_CLEAR = "\x1b[H\x1b[2J"


@click.command("status")
@click.option("--once", is_flag=True, help="print one status and exit")
@click.option("--json", "as_json", is_flag=True, help="one JSON document (implies --once)")
@click.option("--interval-s", default=1.0, show_default=True, help="refresh period of the live view")
@click.option("--timeout-s", default=0.5, show_default=True, help="how long to wait for the supervisor")
@click.pass_context
def status(ctx: click.Context, once: bool, as_json: bool, interval_s: float, timeout_s: float) -> None:
    """Workers, slots, per-track rates, lag, mitigation level, last gaps and disk."""
    cfg = config_of(ctx)
    clock = SystemClock()  # the operator's wall clock (KST), whatever the pipeline's clock mode
    if as_json:
        click.echo(json.dumps(gather(cfg, clock, timeout_s=timeout_s), indent=2, default=str))
        return
    colour = sys.stdout.isatty()
    if once:
        click.echo(render(gather(cfg, clock, timeout_s=timeout_s), colour=colour), nl=False)
        return
    try:
        while True:
            started = time.monotonic()
            text = render(gather(cfg, clock, timeout_s=timeout_s), colour=colour)
            sys.stdout.write(_CLEAR + text + "\n(Ctrl-C to exit)\n")
            sys.stdout.flush()
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))  # the refresh period
    except KeyboardInterrupt:
        sys.stdout.write("\n")


commands = [status]
