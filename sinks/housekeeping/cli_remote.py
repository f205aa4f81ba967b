"""The backup PC's commands: ``observer backup pull|check|prune`` (deploy/krx-backup-*.timer run them).

They need no observer config. Every failure is a ``CRITICAL`` line on stderr and exit 1, which
systemd records (``systemctl --failed``, the journal).
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

from observer.clock import SystemClock
from observer.days import day_key, day_option


def _day_key(text: str) -> str:
    return day_key(day_option(text))


@click.command("pull")
@click.option("--host", required=True)
@click.option("--port", type=int, default=22, show_default=True)
@click.option("--user", required=True)
@click.option(
    "--key", "key_path", required=True, type=click.Path(path_type=Path), help="SSH private key file"
)
@click.option(
    "--known-hosts",
    required=True,
    type=click.Path(path_type=Path),
    help="known_hosts with the host key ([host]:port for a port other than 22)",
)
@click.option(
    "--sign-key",
    required=True,
    type=click.Path(path_type=Path),
    help="Ed25519 receipt signing key (ssh-keygen -t ed25519); its .pub goes to the observer host",
)
@click.option("--remote-dir", default="/backup", show_default=True, help="directory of YYYYMMDD packages")
@click.option("--receipt-dir", default="/receipts", show_default=True, help="where receipts are uploaded")
@click.option("--dest", required=True, type=click.Path(path_type=Path), help="local directory for packages")
@click.option("--day", "days", multiple=True, help="day(s) to pull; default: every package not pulled yet")
@click.option("--timeout-s", type=float, default=15.0, show_default=True, help="connect/banner/auth timeout")
def backup_pull(
    host: str,
    port: int,
    user: str,
    key_path: Path,
    known_hosts: Path,
    sign_key: Path,
    remote_dir: str,
    receipt_dir: str,
    dest: Path,
    days: tuple[str, ...],
    timeout_s: float,
) -> None:
    """(backup PC) Pull packages over SFTP, verify every checksum, upload a signed receipt."""
    from sinks.housekeeping.backup_pull import PullError, PullTarget, pull

    wanted = [_day_key(d) for d in days] or None
    target = PullTarget(host, port, user, key_path, known_hosts, remote_dir, receipt_dir, sign_key, timeout_s)
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
                f"in {r.duration_s:.1f} s -> {r.path}; signed receipt sent"
            )
        else:
            failed = True
            click.echo(f"CRITICAL backup {r.day} NOT verified:", err=True)
            for problem in r.problems:
                click.echo(f"  {problem}", err=True)
    sys.exit(1 if failed else 0)


@click.command("check")
@click.option(
    "--dest", required=True, type=click.Path(path_type=Path, file_okay=False), help="the pull's --dest"
)
def backup_check(dest: Path) -> None:
    """(backup PC) Re-check every kept copy (weekly): every SHA-256, every archive file in the tars."""
    from sinks.housekeeping.remote import recheck

    checks = recheck(dest, SystemClock().now())
    bad = [c for c in checks if not c.ok]
    for c in checks:
        if c.ok:
            click.echo(f"OK {c.day}: {c.files_checked} files, {c.members_checked} archive files")
        else:
            click.echo(
                f"CRITICAL copy {c.day} is damaged (pulled again while the observer has it):", err=True
            )
            for problem in c.problems[:20]:
                click.echo(f"  {problem}", err=True)
    click.echo(f"{len(checks)} cop{'y' if len(checks) == 1 else 'ies'} checked, {len(bad)} damaged")
    sys.exit(1 if bad else 0)


@click.command("prune")
@click.option(
    "--dest", required=True, type=click.Path(path_type=Path, file_okay=False), help="the pull's --dest"
)
@click.option("--keep-days", type=int, default=30, show_default=True)
@click.option("--today", "today_text", default=None, help="pretend today is this KST day")
def backup_prune(dest: Path, keep_days: int, today_text: str | None) -> None:
    """(backup PC) Delete copies older than --keep-days, only when a newer copy is good."""
    from sinks.housekeeping.remote import prune

    today: date = day_option(today_text)
    report = prune(dest, today, keep_days)
    for day, freed in report.deleted:
        click.echo(f"deleted copy {day:%Y%m%d}: {freed:,d} bytes")
    for day, why in report.kept_old:
        click.echo(f"kept {day:%Y%m%d}: {why}")
    click.echo(f"{len(report.deleted)} cop{'y' if len(report.deleted) == 1 else 'ies'} deleted")
