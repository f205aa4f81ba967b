"""`observer run` (the supervisor) and `observer ctl ...` (its control socket client)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
import msgspec

from observer.bus import BusError
from observer.cli import config_of
from observer.config import (
    Config,
    ConfigError,
    MissingCredentials,
    Secrets,
    VolatileDataDir,
    data_dir,
    log_dir,
    require_durable_data_dir,
    require_source,
    resolve_config_path,
)
from observer.control import ControlClient, NoSupervisor, reply_data
from observer.logs import setup_logging
from observer.schema import Command, CommandReply
from observer.worker_registry import SOURCE_WORKERS, registry
from supervisor.lock import AlreadyRunning
from supervisor.supervisor import Supervisor


def _config_path(ctx: click.Context) -> str | None:
    path = resolve_config_path(ctx.obj.get("config_path"))
    return str(path.resolve()) if path.exists() else None


@click.command("run")
@click.option("--workers", default=None, help="comma-separated worker names (default: [supervisor] workers)")
@click.pass_context
def run(ctx: click.Context, workers: str | None) -> None:
    """Run the supervisor: start every worker, keep them alive, stop them in order on SIGTERM."""
    cfg = config_of(ctx)
    names = [n.strip() for n in workers.split(",") if n.strip()] if workers else list(cfg.supervisor.workers)
    if not cfg.sim.enabled and not workers:
        names = [n for n in names if n != "sim"]  # the simulator runs only where [sim] enabled says so
    known = registry()
    unknown = [n for n in names if n not in known]
    if unknown:
        click.echo(f"unknown worker(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}", err=True)
        sys.exit(2)
    try:
        secrets = Secrets()
        if any(n in SOURCE_WORKERS for n in names):
            require_source(cfg, secrets)
        require_durable_data_dir(cfg)
    except (MissingCredentials, VolatileDataDir) as e:
        click.echo(f"observer run: refusing to start: {e}", err=True)
        sys.exit(2)
    except ConfigError as e:
        click.echo(f"config error: {e}", err=True)
        sys.exit(2)
    setup_logging("supervisor", cfg.logging.level, log_dir(cfg), secrets.values())
    click.echo(banner(cfg, names, _config_path(ctx)), err=True)
    try:
        code = Supervisor(cfg, names, config_path=_config_path(ctx)).run()
    except (AlreadyRunning, BusError) as e:
        click.echo(f"observer run: {e}", err=True)
        sys.exit(1)
    sys.exit(code)


def banner(cfg: Config, names: list[str], config_path: str | None) -> str:
    """What a person starting the pipeline needs first: where data lands, how to watch, how to stop."""
    cfg_arg = f" --config {config_path}" if config_path else ""
    clock = cfg.clock
    when = (
        "wall clock (KST)"
        if clock.mode == "real"
        else f"session clock from {clock.start_at} KST x{clock.speed:g}"
    )
    metrics = (
        f"http://{cfg.monitor.metrics_listen}/metrics"
        if cfg.monitor.metrics_listen
        else "off ([monitor] metrics_listen)"
    )
    return "\n".join(
        [
            f"KRX observer: {len(names)} workers ({', '.join(names)}), {when}",
            f"  archive   {data_dir(cfg).resolve()}",
            f"  logs      {log_dir(cfg).resolve()}",
            f"  watch     make status  |  observer{cfg_arg} status  |  metrics {metrics}",
            "  stop      Ctrl-C (or SIGTERM): collectors first, the writer last after its final fsync",
        ]
    )


# --------------------------------------------------------------------------- ctl


def _request(ctx: click.Context, action: str, target: str = "") -> CommandReply:
    client = ControlClient(config_of(ctx), timeout_s=ctx.obj.get("ctl_timeout_s", 2.0))
    try:
        return client.request(Command(action=action, target=target))
    except NoSupervisor as e:
        click.echo(f"observer ctl: {e}", err=True)
        sys.exit(1)


def _finish(reply: CommandReply) -> None:
    click.echo(reply.message, err=not reply.ok)
    if not reply.ok:
        sys.exit(1)


@click.group("ctl")
@click.option("--timeout", "timeout_s", type=float, default=2.0, show_default=True, help="seconds per try")
@click.pass_context
def ctl(ctx: click.Context, timeout_s: float) -> None:
    """Talk to the running supervisor over its control socket."""
    ctx.obj["ctl_timeout_s"] = timeout_s


@ctl.command("status")
@click.option("--json", "as_json", is_flag=True, help="the full status as JSON")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Every worker's state, pid, restarts and uptime."""
    reply = _request(ctx, "status")
    if not reply.ok:
        _finish(reply)
    data = reply_data(reply)
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(data), indent=2).decode())
        return
    click.echo(format_status(data))


def format_status(data: dict[str, Any]) -> str:
    sup = data.get("supervisor", {})
    lines = [f"supervisor pid {sup.get('pid')}  run {sup.get('run_id')}  up {_duration(sup.get('uptime_s'))}"]
    if sup.get("shutting_down"):
        lines[0] += "  (shutting down)"
    header = ("NAME", "STATE", "PID", "RESTARTS", "UPTIME", "HEARTBEAT", "LAST EXIT")
    rows = [header]
    for w in data.get("workers", []):
        hb = w.get("heartbeat_age_s")
        rows.append(
            (
                w["name"],
                w["state"],
                str(w["pid"] or "-"),
                str(w["restarts"]),
                _duration(w.get("uptime_s")),
                "-" if hb is None else f"{hb:.1f}s ago",
                "-"
                if w.get("last_exit_code") is None
                else f"{w['last_exit_code']} ({w.get('last_stop_path')})",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    mitigation = data.get("mitigation")
    if mitigation:
        lines.append(f"mitigation level {mitigation['level']} since {mitigation['at']}")
    slots = data.get("slots")
    if slots:
        lines.append(f"slots: {len(slots['slots'])} in use (version {slots['version']})")
    return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s"
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _wait_for_state(
    ctx: click.Context, name: str, done: set[str], old_pid: int | None, timeout_s: float
) -> str:
    """Poll `status` until `name` is in one of `done` (with a pid other than `old_pid`, if given)."""
    deadline = time.monotonic() + timeout_s
    state = "?"
    while time.monotonic() < deadline:
        for w in reply_data(_request(ctx, "status")).get("workers", []):
            if w["name"] == name:
                state = w["state"]
                if state in done and (old_pid is None or w["pid"] != old_pid):
                    return state
        time.sleep(0.1)  # operator-facing poll of a remote state, not a test wait
    return state


def _worker_action(ctx: click.Context, action: str, name: str, wait: bool) -> None:
    reply = _request(ctx, action, name)
    _finish(reply)
    if not wait:
        return
    before = reply_data(reply).get("worker") or {}
    timeout_s = config_of(ctx).supervisor.stop_timeout_s + 5.0
    if action == "stop":
        state = _wait_for_state(ctx, name, {"STOPPED"}, None, timeout_s)
    elif action == "restart":
        state = _wait_for_state(ctx, name, {"STARTING", "RUNNING"}, before.get("pid"), timeout_s)
    else:
        state = _wait_for_state(ctx, name, {"STARTING", "RUNNING", "BACKOFF", "FATAL"}, None, timeout_s)
    click.echo(f"{name}: {state}")


@ctl.command("start")
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True, help="wait until the state settles")
@click.pass_context
def start(ctx: click.Context, name: str, wait: bool) -> None:
    """Start one worker (also one that went FATAL)."""
    _worker_action(ctx, "start", name, wait)


@ctl.command("stop")
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True, help="wait until it is STOPPED")
@click.pass_context
def stop(ctx: click.Context, name: str, wait: bool) -> None:
    """Stop one worker; it stays STOPPED until `observer ctl start NAME`."""
    _worker_action(ctx, "stop", name, wait)


@ctl.command("restart")
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True, help="wait for the new process")
@click.pass_context
def restart(ctx: click.Context, name: str, wait: bool) -> None:
    """Stop one worker gracefully and start it again."""
    _worker_action(ctx, "restart", name, wait)


@ctl.group("slots")
def slots() -> None:
    """Track B slots: list, pin, unpin (the core acts on pins)."""


@slots.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def slots_list(ctx: click.Context, as_json: bool) -> None:
    """The latest slot assignment the core published."""
    reply = _request(ctx, "slots_list")
    if not reply.ok:
        _finish(reply)
    data = reply_data(reply).get("slots")
    if as_json:
        click.echo(msgspec.json.encode(data).decode())
    elif not data:
        click.echo("no slot assignment seen yet")
    else:
        click.echo(f"version {data['version']} at {data['at']}{'  (paused)' if data.get('paused') else ''}")
        for s in data["slots"]:
            pin = "  pinned" if s.get("pinned") else ""
            click.echo(f"{s['slot_number']:>3}  {s['symbol']:<8} {s['rule']:<16} since {s['since']}{pin}")


@slots.command("pin")
@click.argument("symbol")
@click.pass_context
def pin(ctx: click.Context, symbol: str) -> None:
    """Ask the core to keep SYMBOL in a slot."""
    _finish(_request(ctx, "pin", symbol))


@slots.command("unpin")
@click.argument("symbol")
@click.pass_context
def unpin(ctx: click.Context, symbol: str) -> None:
    """Release a pinned SYMBOL."""
    _finish(_request(ctx, "unpin", symbol))


commands = [run, ctl]
