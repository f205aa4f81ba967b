"""``observer backup create|verify|pull|list`` and ``observer retention plan|run``.

Exit codes: 0 done (or nothing to do), 1 failure (a mismatch, a failed package, a refused host
key), 2 bad usage. ``retention run`` and ``backup create`` also send their system events to the
core (ingest hop) when it is running; when it is not, the events are printed as not delivered.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import click

from observer.clock import KST, SystemClock
from observer.config import Config, data_dir
from observer.schema import DetailValue, Severity, SystemEvent

_ACK_WAIT_S = 2.0


def _cfg(ctx: click.Context) -> Config:
    from observer.cli import config_of

    return config_of(ctx)


def _day(text: str | None) -> date:
    from sinks.housekeeping.layout import parse_day

    if text is None:
        return SystemClock().now().date()
    try:
        return parse_day(text)
    except ValueError:
        raise click.BadParameter(f"not a day (YYYYMMDD or YYYY-MM-DD): {text!r}") from None


def _deliver(cfg: Config, events: list[SystemEvent]) -> None:
    """Best effort: push `events` to the core and wait briefly for its acks."""
    if not events:
        return
    from observer.bus import context
    from observer.reliable import ReliableSender, hop_endpoints

    ctx = context()
    data, ack = hop_endpoints(cfg, "ingest")
    sender = ReliableSender(ctx, cfg, "housekeeping-cli", data, ack)
    try:
        for event in events:
            sender.send(event)
        if not sender.wait_all_acked(_ACK_WAIT_S):
            click.echo(f"{sender.unacked} system event(s) not delivered: is the observer running?", err=True)
    finally:
        sender.close()


def _event(cfg: Config, type_: str, severity: Severity, message: str, **details: DetailValue) -> SystemEvent:
    import time

    return SystemEvent(
        record_id=f"evt-housekeeping-cli-{time.time_ns()}",
        type=type_,
        severity=severity,
        at=datetime.now(KST),
        source="housekeeping-cli",
        provider=cfg.provider.name,
        message=message,
        details=details,
    )


@click.group("backup")
def backup_group() -> None:
    """Daily backup packages: create, verify, pull (backup PC), list."""


@backup_group.command("create")
@click.option("--day", "day_text", default=None, help="KST day (YYYYMMDD or YYYY-MM-DD); default today")
@click.option(
    "--quiet-s", type=float, default=None, help="seconds without writes required (default from config)"
)
@click.option("--no-events", is_flag=True, help="do not send system events to the core")
@click.pass_context
def backup_create(ctx: click.Context, day_text: str | None, quiet_s: float | None, no_events: bool) -> None:
    """Build backup/YYYYMMDD/ for a day (does nothing if it exists)."""
    from sinks.housekeeping.backup import BackupError, create_package

    cfg = _cfg(ctx)
    day = _day(day_text)
    try:
        result = create_package(cfg, day, now=SystemClock().now(), quiet_real_s=quiet_s)
    except BackupError as e:
        click.echo(f"backup of {day} FAILED: {e}", err=True)
        if not no_events:
            _deliver(
                cfg, [_event(cfg, "backup_failed", "CRITICAL", f"backup of {day} failed: {e}", day=str(day))]
            )
        sys.exit(1)
    match result.status:
        case "created":
            click.echo(
                f"created {result.path}: {result.files} files, {result.members} archive files, "
                f"{result.bytes_in} -> {result.bytes_out} bytes in {result.duration_s:.1f} s"
                + (f"; empty: {', '.join(result.empty_families)}" if result.empty_families else "")
            )
            if not no_events:
                _deliver(
                    cfg,
                    [
                        _event(
                            cfg,
                            "backup_created",
                            "INFO",
                            f"backup package of {day} created",
                            day=str(day),
                            bytes_out=result.bytes_out,
                        )
                    ],
                )
        case "exists":
            click.echo(f"{result.path} exists: nothing to do")
        case "empty":
            click.echo(f"no archive files for {day}: nothing to package")
        case "postponed":
            click.echo(f"not packaged: {result.reason}", err=True)
            sys.exit(1)


@backup_group.command("verify")
@click.argument("path", type=click.Path(path_type=Path, exists=True, file_okay=False))
def backup_verify(path: Path) -> None:
    """Check a package directory against its manifest (files and every archive file in the tars)."""
    from sinks.housekeeping.manifest import verify_package

    report = verify_package(path)
    if report.ok:
        click.echo(
            f"OK {path}: {report.files_checked} files, {report.members_checked} archive files, "
            f"{report.bytes_checked} bytes; manifest sha256 {report.manifest_sha256}"
        )
        return
    click.echo(f"FAILED {path}: {len(report.problems)} problem(s)", err=True)
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@backup_group.command("list")
@click.pass_context
def backup_list(ctx: click.Context) -> None:
    """Packages on this host and whether the backup PC has verified them."""
    from sinks.housekeeping.layout import DAY_KEY, backup_root, parse_day, tree_bytes
    from sinks.housekeeping.receipts import read_marker

    cfg = _cfg(ctx)
    root = backup_root(cfg)
    names = sorted(p.name for p in root.iterdir() if DAY_KEY.match(p.name)) if root.is_dir() else []
    if not names:
        click.echo("no backup packages")
    for name in names:
        marker = read_marker(cfg, parse_day(name))
        state = (
            f"verified by {marker.checked_by} at {marker.checked_at.isoformat()}"
            if marker
            else "NOT verified"
        )
        click.echo(f"{name}  {tree_bytes(root / name):>14,d} bytes  {state}")


@backup_group.command("pull")
@click.option("--host", required=True)
@click.option("--port", type=int, default=22, show_default=True)
@click.option("--user", required=True)
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path), help="private key file")
@click.option(
    "--known-hosts", required=True, type=click.Path(path_type=Path), help="known_hosts with the host key"
)
@click.option("--remote-dir", default="/backup", show_default=True, help="directory of YYYYMMDD packages")
@click.option("--receipt-dir", default="/receipts", show_default=True, help="where receipts are uploaded")
@click.option("--dest", required=True, type=click.Path(path_type=Path), help="local directory for packages")
@click.option("--day", "days", multiple=True, help="day(s) to pull; default: every package not pulled yet")
def backup_pull(
    host: str,
    port: int,
    user: str,
    key_path: Path,
    known_hosts: Path,
    remote_dir: str,
    receipt_dir: str,
    dest: Path,
    days: tuple[str, ...],
) -> None:
    """(backup PC) Pull packages over SFTP, verify every checksum, upload a receipt."""
    from sinks.housekeeping.backup_pull import PullError, PullTarget, pull

    wanted = [f"{_day(d):%Y%m%d}" for d in days] or None
    target = PullTarget(host, port, user, key_path, known_hosts, remote_dir, receipt_dir)
    try:
        results = pull(target, dest, wanted)
    except PullError as e:
        click.echo(f"CRITICAL backup pull failed: {e}", err=True)
        sys.exit(1)
    if not results:
        click.echo("nothing new to pull")
    failed = False
    for r in results:
        if r.status == "verified" and r.ok:
            click.echo(
                f"verified {r.day}: {r.files} files, {r.members} archive files, {r.bytes} bytes "
                f"in {r.duration_s:.1f} s -> {r.path}"
            )
        else:
            failed = True
            click.echo(f"CRITICAL backup {r.day} NOT verified:", err=True)
            for problem in r.problems:
                click.echo(f"  {problem}", err=True)
    sys.exit(1 if failed else 0)


@click.group("retention")
def retention_group() -> None:
    """Retention of raw/ and of verified backup packages."""


def _print_plan(the_plan: object) -> None:
    from sinks.housekeeping.retention import RetentionPlan

    assert isinstance(the_plan, RetentionPlan)
    usage = "unknown" if the_plan.disk_percent is None else f"{the_plan.disk_percent:.1f}%"
    click.echo(f"today {the_plan.today} (KST), disk usage {usage}")
    for d in the_plan.deletions:
        click.echo(f"DELETE {d.day} {d.what:<7} {d.bytes:>14,d} bytes  {d.reason}")
    for k in the_plan.kept:
        click.echo(f"keep   {k.day} {k.what:<7} {'':>14}        {k.reason}")
    for b in the_plan.blocked:
        click.echo(f"CRITICAL {b.message}")


@retention_group.command("plan")
@click.option("--today", "today_text", default=None, help="pretend today is this KST day")
@click.pass_context
def retention_plan(ctx: click.Context, today_text: str | None) -> None:
    """Print what retention would delete today and why; deletes nothing."""
    from sinks.housekeeping.retention import FilesystemProbe, plan, survey

    cfg = _cfg(ctx)
    _print_plan(plan(cfg, _day(today_text), survey(cfg), FilesystemProbe(data_dir(cfg))))


@retention_group.command("run")
@click.option("--today", "today_text", default=None, help="pretend today is this KST day")
@click.option("--no-events", is_flag=True, help="do not send system events to the core")
@click.pass_context
def retention_run(ctx: click.Context, today_text: str | None, no_events: bool) -> None:
    """Apply retention now (the housekeeper does this daily)."""
    from sinks.housekeeping.retention import FilesystemProbe, run

    cfg = _cfg(ctx)
    events: list[SystemEvent] = []

    def deleted(d: object) -> None:
        from sinks.housekeeping.retention import Deletion

        assert isinstance(d, Deletion)
        click.echo(f"deleted {d.day} {d.what}: {d.bytes:,d} bytes ({d.reason})")
        events.append(
            _event(
                cfg,
                "retention_deleted",
                "INFO",
                f"retention deleted {d.what} of {d.day}",
                day=str(d.day),
                what=d.what,
                bytes_freed=d.bytes,
                reason=d.reason,
            )
        )

    report = run(cfg, _day(today_text), FilesystemProbe(data_dir(cfg)), on_deleted=deleted)
    for b in report.plan.blocked:
        click.echo(f"CRITICAL {b.message}", err=True)
        events.append(_event(cfg, "retention_blocked", "CRITICAL", b.message, reason=b.reason))
    for err in report.errors:
        click.echo(f"ERROR {err}", err=True)
    click.echo(f"{len(report.deleted)} deletion(s), {report.bytes_freed:,d} bytes freed")
    if not no_events:
        _deliver(cfg, events)
    sys.exit(1 if report.errors else 0)


commands = [backup_group, retention_group]
