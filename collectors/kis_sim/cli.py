"""``sim`` click group: ``serve`` (run the simulator in the foreground), ``fault`` and ``truth``
(talk to a running simulator's admin endpoint). `observer sim` and ``python -m collectors.kis_sim``
run this same group.

``serve`` prints one JSON line once every port is listening::

    {"event": "ready", "pid": 123, "rest_port": .., "ws_port": .., "admin_port": ..,
     "urls": {"rest": .., "ws": .., "admin": .., "master": ..}, "virtual_now": ..}

and stops cleanly on SIGTERM / SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click
import msgspec
import requests

from collectors.kis_sim.errors import AdminClientError
from collectors.kis_sim.schema import FAULT_KINDS
from collectors.kis_sim.server import SimOptions, Simulator, clock_from_config
from observer.clock import to_rfc3339
from observer.config import ConfigError, load_config

DEFAULT_ADMIN = "http://127.0.0.1:18444"


@click.group(name="sim")
def sim() -> None:
    """The local KIS simulator."""


@sim.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="observer.toml")
@click.option("--rest-port", type=int, default=None)
@click.option("--ws-port", type=int, default=None)
@click.option("--admin-port", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--symbols", "symbol_count", type=int, default=None, help="number of listings")
@click.option("--account", type=click.Choice(["real", "mock"]), default=None)
@click.option("--speed", type=float, default=None, help="session clock speed (implies a session clock)")
@click.option("--start-at", default=None, help="virtual start, HH:MM[:SS] KST or RFC 3339 (session clock)")
@click.option("--ready-file", type=click.Path(dir_okay=False), default=None)
@click.pass_context
def serve(
    ctx: click.Context,
    config_path: str | None,
    rest_port: int | None,
    ws_port: int | None,
    admin_port: int | None,
    seed: int | None,
    symbol_count: int | None,
    account: str | None,
    speed: float | None,
    start_at: str | None,
    ready_file: str | None,
) -> None:
    """Serve REST, WebSocket and admin until SIGTERM/SIGINT.

    The config is ``--config`` here, else ``observer --config X sim serve``'s, else the default."""
    if config_path is None and isinstance(ctx.obj, dict):
        config_path = ctx.obj.get("config_path")
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    if speed is not None or start_at is not None:
        clock_cfg = msgspec.structs.replace(
            cfg.clock,
            mode="session",
            speed=speed if speed is not None else cfg.clock.speed,
            start_at=start_at if start_at is not None else cfg.clock.start_at,
        )
        cfg = msgspec.structs.replace(cfg, clock=clock_cfg)
    overrides = {
        k: v
        for k, v in {
            "rest_port": rest_port,
            "ws_port": ws_port,
            "admin_port": admin_port,
            "seed": seed,
            "symbol_count": symbol_count,
            "account": account,
        }.items()
        if v is not None
    }
    options = SimOptions.from_config(cfg, **overrides)
    simulator = Simulator(options, clock_from_config(cfg))
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        simulator.start()
    except OSError as e:
        raise click.ClickException(f"cannot listen: {e}") from e
    ready = json.dumps(
        {
            "event": "ready",
            "pid": os.getpid(),
            "rest_port": simulator.rest_port,
            "ws_port": simulator.ws_port,
            "admin_port": simulator.admin_port,
            "urls": simulator.urls,
            "virtual_now": to_rfc3339(simulator.market.now()),
            "account": options.account,
        }
    )
    click.echo(ready)
    sys.stdout.flush()
    if ready_file:
        tmp = Path(ready_file + ".tmp")
        tmp.write_text(ready + "\n")
        tmp.replace(ready_file)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        simulator.stop()
        click.echo(json.dumps({"event": "stopped", "pid": os.getpid()}))


def _admin(method: str, url: str, body: dict[str, object] | None = None) -> object:
    try:
        r = requests.request(method, url, json=body, timeout=10)
    except requests.RequestException as e:
        raise AdminClientError(f"admin endpoint unreachable: {e}") from e
    if r.status_code != 200:
        raise AdminClientError(f"admin answered {r.status_code}: {r.text[:300]}")
    return r.json()


@sim.command()
@click.argument("kind", type=click.Choice([*FAULT_KINDS, "clear"]))
@click.option("--admin", "admin_url", default=DEFAULT_ADMIN, show_default=True)
@click.option("--duration", "duration_s", type=float, default=None, help="seconds (default: until cleared)")
@click.option("--delay-ms", type=int, default=None)
@click.option("--every-n", type=int, default=None)
@click.option("--status", type=int, default=None)
@click.option("--sleep", "sleep_s", type=float, default=None)
@click.option("--symbols", default=None, help="comma-separated codes (silence)")
@click.option("--key", "key", type=int, default=None, help="app key number, 1.. (revoke_key)")
@click.option("--id", "window_id", type=int, default=None, help="window to clear (clear)")
def fault(
    kind: str,
    admin_url: str,
    duration_s: float | None,
    delay_ms: int | None,
    every_n: int | None,
    status: int | None,
    sleep_s: float | None,
    symbols: str | None,
    key: int | None,
    window_id: int | None,
) -> None:
    """Open a fault window (or `clear` one / all) on a running simulator."""
    try:
        if kind == "clear":
            suffix = f"/{window_id}" if window_id is not None else ""
            result = _admin("DELETE", f"{admin_url}/admin/faults{suffix}")
        else:
            body: dict[str, object] = {"kind": kind}
            for name, value in (
                ("duration_s", duration_s),
                ("delay_ms", delay_ms),
                ("every_n", every_n),
                ("key", key),
                ("status", status),
                ("sleep_s", sleep_s),
            ):
                if value is not None:
                    body[name] = value
            if symbols is not None:
                body["symbols"] = [s for s in symbols.split(",") if s]
            result = _admin("POST", f"{admin_url}/admin/faults", body)
    except AdminClientError as e:
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps(result, ensure_ascii=False))


@sim.command()
@click.option("--admin", "admin_url", default=DEFAULT_ADMIN, show_default=True)
@click.option("--symbols", default=None, help="comma-separated codes to include")
@click.option("--trades", is_flag=True, help="every published trade per symbol (ACML_VOL, virtual ms)")
def truth(admin_url: str, symbols: str | None, trades: bool) -> None:
    """Print the ground truth of a running simulator (JSON)."""
    query = f"?symbols={symbols}" if symbols else ""
    try:
        result = _admin("GET", f"{admin_url}/admin/{'trades' if trades else 'truth'}{query}")
    except AdminClientError as e:
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps(result, ensure_ascii=False, indent=2))


def main() -> None:
    sim(prog_name="python -m collectors.kis_sim")
