"""``observer universe build|show``: build the day's universe by hand, or print one."""

from __future__ import annotations

import sys

import click

from collectors.providers import ProviderError, build_provider
from collectors.universe_build import UniverseBuilder, universe_dir
from observer.cli import config_of
from observer.clock import SystemClock
from observer.config import ConfigError, Secrets
from observer.days import day_option
from observer.schema import DetailValue
from observer.universe import UniverseError, load_universe


@click.group("universe")
def universe() -> None:
    """The day's universe: config/universe/YYYYMMDD_{market}.json (written once, never changed)."""


@universe.command("build")
@click.option("--date", "day_text", default=None, help="KST date (default: today)")
@click.pass_context
def build_cmd(ctx: click.Context, day_text: str | None) -> None:
    """Build and write the day's universe unless it exists; print what is in use."""
    cfg = config_of(ctx)
    day = day_option(day_text)
    try:
        provider = build_provider(cfg, Secrets())
    except (ProviderError, ConfigError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)

    def echo_event(type_: str, severity: str, message: str, details: dict[str, DetailValue]) -> None:
        click.echo(f"{severity} {type_}: {message}", err=severity != "INFO")

    try:
        loaded = UniverseBuilder(
            cfg,
            provider,
            SystemClock(),
            emit=echo_event,
            built=lambda b: click.echo(f"INFO universe_built: {b.message}"),
        ).ensure(day)
    except UniverseError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    finally:
        provider.close()
    for market, lu in loaded.items():
        click.echo(f"{market} {lu.snapshot.date} {len(lu.snapshot.symbols)} symbols {lu.path}")


@universe.command("show")
@click.option("--date", "day_text", default=None, help="KST date (default: today)")
@click.option("--market", default=None, help="one market (default: every configured market)")
@click.option("--symbols/--no-symbols", default=False, help="list every symbol")
@click.pass_context
def show_cmd(ctx: click.Context, day_text: str | None, market: str | None, symbols: bool) -> None:
    """Print the universe in use for a day (falling back to the latest earlier snapshot)."""
    cfg = config_of(ctx)
    day = day_option(day_text)
    status = 0
    for m in [market] if market else cfg.provider.markets:
        try:
            lu = load_universe(universe_dir(cfg), day, m)
        except UniverseError as e:
            click.echo(f"{m}: {e}", err=True)
            status = 1
            continue
        note = f" (fallback: no snapshot for {day})" if lu.fallback_from else ""
        snap = lu.snapshot
        click.echo(
            f"{m} {snap.date} {len(snap.symbols)} symbols, prev close >= {snap.min_prev_close_krw} KRW, "
            f"created {snap.created_at.isoformat()} from {snap.source}{note}\n  {lu.path}"
        )
        if symbols:
            for entry in snap.symbols:
                click.echo(f"  {entry.symbol} {entry.prev_close:>9} {entry.name}")
    sys.exit(status)


commands = [universe]
