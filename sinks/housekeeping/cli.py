"""``observer backup create|verify|list|restore`` and ``observer retention plan|run`` (observer host);
the backup PC's ``observer backup pull|check|prune`` live in `cli_remote`.

Every command uses the config's clock ("today" is the pipeline's today, also on the demo's
session clock). Exit codes: 0 done (or nothing to do), 1 failure or a CRITICAL condition (a
mismatch, a failed or damaged package, retention blocked), 2 bad usage. Commands that change
something record their system events on disk first (`cli_support.record`): delivered to the core
when it runs, sent by the housekeeper later when it does not. CRITICAL conditions also stand as
alarms (`observer.alarms`) until they are gone, which turns ``observer status`` red.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import click

from observer.config import data_dir
from observer.days import day_option
from observer.schema import Severity, SystemEvent
from sinks.housekeeping.cli_remote import backup_check, backup_prune, backup_pull
from sinks.housekeeping.cli_support import clock, config, event, record


@click.group("backup")
def backup_group() -> None:
    """Daily backup packages: create, verify, list, restore; pull, check, prune (backup PC)."""


for _command in (backup_pull, backup_check, backup_prune):
    backup_group.add_command(_command)


def _missing_days(ctx: click.Context) -> list[date]:
    """Days with archive data, no package and no verified backup, before today (oldest first)."""
    from sinks.housekeeping.layout import days_with_data, package_dir
    from sinks.housekeeping.receipts import verified_days

    cfg = config(ctx)
    today = day_option(None, clock(cfg))
    done = verified_days(cfg)
    return sorted(
        d for d in days_with_data(cfg) if d < today and d not in done and not package_dir(cfg, d).exists()
    )


@backup_group.command("create")
@click.option("--day", "day_texts", multiple=True, help="KST day (YYYYMMDD or YYYY-MM-DD); default today")
@click.option("--missing", is_flag=True, help="every past day with data but no package (however old)")
@click.option(
    "--quiet-s", type=float, default=None, help="seconds without writes required (default from config)"
)
@click.option("--no-events", is_flag=True, help="do not record system events")
@click.pass_context
def backup_create(
    ctx: click.Context, day_texts: tuple[str, ...], missing: bool, quiet_s: float | None, no_events: bool
) -> None:
    """Build backup/YYYYMMDD/ for a day. An existing package is checked (every file's SHA-256) and
    rebuilt when damaged; its modes follow the current config."""
    from observer import alarms
    from sinks.housekeeping.backup import BackupError, create_package

    cfg = config(ctx)
    clk = clock(cfg)
    days = [day_option(t, clk) for t in day_texts]
    if missing:
        days += _missing_days(ctx)
        if not days:
            click.echo("no past day without a package")
    elif not days:
        days = [day_option(None, clk)]
    events: list[SystemEvent] = []
    failed = False
    for day in sorted(set(days)):
        key = f"{day:%Y%m%d}"
        try:
            result = create_package(cfg, day, now=clk.now(), quiet_real_s=quiet_s)
        except BackupError as e:
            failed = True
            message = f"backup of {day} failed: {e}"
            click.echo(f"CRITICAL {message}", err=True)
            alarms.raise_alarm(cfg, "backup_failed", key, message, clk.now(), "housekeeping-cli")
            events.append(event(cfg, clk, "backup_failed", "CRITICAL", message, day=day.isoformat()))
            continue
        match result.status:
            case "created":
                alarms.clear(cfg, "backup_failed", key)
                click.echo(
                    f"created {result.path}: {result.files} files, {result.members} archive files, "
                    f"{result.bytes_in} -> {result.bytes_out} bytes in {result.duration_s:.1f} s"
                    + (f"; empty: {', '.join(result.empty_families)}" if result.empty_families else "")
                    + (f"; replaced a damaged package ({result.reason})" if result.replaced_damaged else "")
                )
                events.append(
                    event(
                        cfg,
                        clk,
                        "backup_created",
                        "INFO",
                        f"backup package of {day} created",
                        record_id=f"backup_created-{key}-{result.path.stat().st_mtime_ns}",
                        day=day.isoformat(),
                        bytes_out=result.bytes_out,
                        replaced_damaged=result.replaced_damaged,
                    )
                )
            case "exists":
                click.echo(f"{result.path} exists and checks out: nothing to do")
            case "empty":
                click.echo(f"no archive files for {day}: nothing to package")
            case "postponed":
                failed = True
                click.echo(f"{day} not packaged: {result.reason}", err=True)
    if not no_events:
        record(cfg, events)
    sys.exit(1 if failed else 0)


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
    """Read the backup PC's receipts now, then list packages, whether each is verified, and the
    standing backup alarms. Exit 1 while a CRITICAL backup alarm stands."""
    from observer import alarms
    from observer.days import DAY_KEY, parse_day
    from sinks.housekeeping.layout import backup_root, tree_bytes
    from sinks.housekeeping.receipts import ingest_receipts, read_marker

    cfg = config(ctx)
    clk = clock(cfg)
    events: list[SystemEvent] = []
    for outcome in ingest_receipts(cfg, clk.now()):
        line = f"receipt {outcome.kind}: {outcome.message}"
        click.echo(line if outcome.kind == "verified" else f"CRITICAL {line}")
        ok = outcome.kind == "verified"
        severity: Severity = "INFO" if ok else "CRITICAL"
        type_ = "backup_verified" if ok else "backup_failed"
        day = outcome.day.isoformat() if outcome.day else None
        rid = f"receipt-{outcome.kind}-{outcome.receipt_sha256[:16]}"
        if not ok and not outcome.new_episode:
            continue  # the day's backup_failed episode was already recorded
        events.append(event(cfg, clk, type_, severity, outcome.message, record_id=rid, day=day))
    record(cfg, events)
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
    standing = [a for a in alarms.standing(cfg) if a.kind != "retention_blocked"]
    for alarm in standing:
        click.echo(f"CRITICAL {alarm.kind} {alarm.key} since {alarm.since.isoformat()}: {alarm.message}")
    sys.exit(1 if standing else 0)


@backup_group.command("restore")
@click.argument("day_text", metavar="DAY")
@click.option(
    "--to", "target", required=True, type=click.Path(path_type=Path), help="directory to restore into"
)
@click.option(
    "--from",
    "source",
    default=None,
    type=click.Path(path_type=Path),
    help="a package dir, or a dir of YYYYMMDD packages (the backup PC's --dest); default this host's backup/",
)
@click.pass_context
def backup_restore(ctx: click.Context, day_text: str, target: Path, source: Path | None) -> None:
    """Restore the archive files of DAY from its package: checksums first, then `observer verify`."""
    from observer.days import parse_day
    from sinks.housekeeping.layout import backup_root
    from sinks.housekeeping.restore import RestoreError, find_package, restore_package

    try:
        key = f"{parse_day(day_text):%Y%m%d}"
    except ValueError:
        raise click.BadParameter(f"not a day (YYYYMMDD or YYYY-MM-DD): {day_text!r}") from None
    try:
        package = find_package(source if source is not None else backup_root(config(ctx)), key)
        result = restore_package(package, target)
    except RestoreError as e:
        click.echo(f"restore of {key} FAILED: {e}", err=True)
        sys.exit(1)
    click.echo(
        f"restored {len(result.written)} file(s), {result.bytes:,d} bytes of {key} from {package} "
        f"into {target}" + (f"; {len(result.unchanged)} already there" if result.unchanged else "")
    )
    # the archive's own checker, as an operator would run it (the writer wing owns it)
    verified = subprocess.run(
        [sys.executable, "-m", "observer", "verify", str(target)], capture_output=True, text=True, check=False
    )
    click.echo(f"observer verify: {'OK' if verified.returncode == 0 else 'FAILED'}")
    click.echo(verified.stdout + verified.stderr, nl=False, err=verified.returncode != 0)
    sys.exit(0 if verified.returncode == 0 else 1)


@click.group("retention")
def retention_group() -> None:
    """Retention of the archive and of verified backup packages."""


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
    """Print what retention would delete today and why; deletes nothing. Exit 1 on CRITICAL."""
    from sinks.housekeeping.days import FilesystemProbe, survey
    from sinks.housekeeping.retention import plan

    cfg = config(ctx)
    the_plan = plan(cfg, day_option(today_text, clock(cfg)), survey(cfg), FilesystemProbe(data_dir(cfg)))
    _print_plan(the_plan)
    sys.exit(1 if the_plan.blocked else 0)


@retention_group.command("run")
@click.option("--today", "today_text", default=None, help="pretend today is this KST day")
@click.option("--no-events", is_flag=True, help="do not record system events")
@click.pass_context
def retention_run(ctx: click.Context, today_text: str | None, no_events: bool) -> None:
    """Apply retention now (the housekeeper does this daily). Exit 1 on CRITICAL or an error."""
    from sinks.housekeeping.days import FilesystemProbe
    from sinks.housekeeping.retention import Deletion, record_blocked, run

    cfg = config(ctx)
    clk = clock(cfg)
    events: list[SystemEvent] = []

    def deleted(d: Deletion) -> None:
        click.echo(f"deleted {d.day} {d.what}: {d.bytes:,d} bytes ({d.reason})")
        events.append(
            event(
                cfg,
                clk,
                "retention_deleted",
                "INFO",
                f"retention deleted {d.what} of {d.day}",
                day=str(d.day),
                what=d.what,
                bytes_freed=d.bytes,
                reason=d.reason,
            )
        )

    today = day_option(today_text, clk)
    report = run(cfg, today, FilesystemProbe(data_dir(cfg)), on_deleted=deleted)
    record_blocked(cfg, report, clk.now(), "housekeeping-cli")
    for b in report.plan.blocked:
        click.echo(f"CRITICAL {b.message}", err=True)
        what = f"{b.day:%Y%m%d}" if b.day is not None else "disk"
        events.append(
            event(
                cfg,
                clk,
                "retention_blocked",
                "CRITICAL",
                b.message,
                record_id=f"retention_blocked-{what}-{today:%Y%m%d}",
                reason=b.reason,
            )
        )
    for err in report.errors:
        click.echo(f"ERROR {err}", err=True)
        events.append(event(cfg, clk, "retention_failed", "ERROR", f"retention could not delete {err}"))
    click.echo(f"{len(report.deleted)} deletion(s), {report.bytes_freed:,d} bytes freed")
    if not no_events:
        record(cfg, events)
    sys.exit(1 if report.errors or report.plan.blocked else 0)


commands = [backup_group, retention_group]
