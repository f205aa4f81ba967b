"""What every ``observer backup|retention`` command shares: the config's clock, day arguments, and
system events that reach the archive even when the pipeline is down (`record`)."""

from __future__ import annotations

from pathlib import Path

import click

from observer import record_ids
from observer.clock import KST, Clock
from observer.config import Config
from observer.reliable import new_run_id
from observer.schema import DetailValue, Severity, SystemEvent

SOURCE = "housekeeping-cli"
_ACK_WAIT_S = 2.0


def config(ctx: click.Context) -> Config:
    from observer.cli import config_of

    return config_of(ctx)


def clock(cfg: Config) -> Clock:
    """The pipeline's clock from the config (wall clock, or the demo's session clock), so that
    "today" and every deadline mean the same here as in the workers."""
    from observer.worker_base import clock_from_config

    return clock_from_config(cfg)


def event(
    cfg: Config,
    clk: Clock,
    type_: str,
    severity: Severity,
    message: str,
    record_id: str | None = None,
    **details: DetailValue,
) -> SystemEvent:
    """A system event stamped on the config's clock; `record_id` (deterministic) lets the writer
    archive a repeat once (the housekeeper uses the same ids for the same conditions)."""
    return SystemEvent(
        record_id=(
            record_ids.housekeeping(cfg.archive_provider, record_id)
            if record_id
            else record_ids.event(SOURCE, new_run_id())
        ),
        type=type_,
        severity=severity,
        at=clk.now().astimezone(KST),
        source=SOURCE,
        provider=cfg.archive_provider,
        message=message,
        details=details,
    )


def _deliver(cfg: Config, events: list[SystemEvent]) -> bool:
    """Push `events` to the core and wait briefly for its acknowledgements."""
    from observer.bus import context
    from observer.reliable import ReliableSender, hop_endpoints

    ctx = context()
    data, ack = hop_endpoints(cfg, "ingest")
    sender = ReliableSender(ctx, cfg, SOURCE, data, ack)
    try:
        for e in events:
            sender.send(e)
        return sender.wait_all_acked(_ACK_WAIT_S)
    finally:
        sender.close()


def record(cfg: Config, events: list[SystemEvent]) -> Path | None:
    """Spool `events` on disk, then deliver them; the spool file goes once the core acknowledged.
    Returns the spool file left behind (None when delivered or nothing to record)."""
    from sinks.housekeeping import spool

    path = spool.put(cfg, events)
    if path is None:
        return None
    if _deliver(cfg, events):
        path.unlink(missing_ok=True)
        return None
    click.echo(
        f"{len(events)} system event(s) not delivered now (is the observer running?): kept in {path}; "
        "the housekeeper sends them to the archive when it runs",
        err=True,
    )
    return path
