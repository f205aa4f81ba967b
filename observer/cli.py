"""The `observer` command line. Config is loaded and validated once here; a bad config exits 2
with a message naming the file, key and expected type."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from observer.config import (
    CONFIG_ENV,
    Config,
    ConfigError,
    Secrets,
    effective_config_text,
    load_config,
    resolve_config_path,
)


def _load(config_path: str | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as e:
        click.echo(f"config error: {e}", err=True)
        sys.exit(2)


@click.group()
@click.option("--config", "config_path", envvar="OBSERVER_CONFIG", default=None, help="config file (TOML)")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """KRX market observer: collect, check and archive Korean market data."""
    ctx.obj = {"config_path": config_path}


def config_of(ctx: click.Context) -> Config:
    cfg: Config | None = ctx.obj.get("config")
    if cfg is None:
        cfg = _load(ctx.obj.get("config_path"))
        ctx.obj["config"] = cfg
    return cfg


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate the config and print the effective values, secrets masked."""
    cfg = config_of(ctx)
    try:
        secrets = Secrets()
    except ConfigError as e:
        click.echo(f"config error: {e}", err=True)
        sys.exit(2)
    click.echo(effective_config_text(cfg, secrets))


@cli.group("keys")
def keys_group() -> None:
    """CURVE key pairs for tcp:// bus endpoints."""


@keys_group.command("gen")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="the pair's name: NAME.key (public), NAME.key_secret")
def keys_gen(directory: Path, name: str) -> None:
    """Write a key pair (0600, dir 0700); never overwrites one."""
    from observer.curve import generate

    if not name or "/" in name or name.startswith("."):
        click.echo(f"observer keys gen: bad name {name!r}", err=True)
        sys.exit(2)
    if (directory / f"{name}.key").exists() or (directory / f"{name}.key_secret").exists():
        click.echo(f"observer keys gen: {directory}/{name}.key* exists; not overwritten", err=True)
        sys.exit(2)
    public, secret = generate(directory, name)
    click.echo(f"public key {public} (give it to the peers)\nkey pair   {secret} (keep it here, 0600)")


@cli.command("worker")
@click.argument("name")
@click.pass_context
def worker_cmd(ctx: click.Context, name: str) -> None:
    """Run one worker in the foreground (the supervisor does this for you)."""
    from observer.worker_registry import UnknownWorker, build_worker

    cfg = config_of(ctx)
    # children a worker starts (observer.child_command) re-load the same file
    os.environ[CONFIG_ENV] = str(resolve_config_path(ctx.obj.get("config_path")).resolve())
    try:
        worker = build_worker(name, cfg)
    except UnknownWorker as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    except ConfigError as e:  # e.g. a provider that is declared but not implemented
        click.echo(f"config error: {e}", err=True)
        sys.exit(2)
    sys.exit(worker.run())


#: the command groups that live with their packages: (module, attribute holding a command or a list)
COMMAND_MODULES = (
    ("supervisor.cli", "commands"),
    ("sinks.writer.cli", "commands"),
    ("sinks.jetstream.cli", "commands"),
    ("sinks.monitor.cli", "commands"),
    ("collectors.cli", "commands"),
    ("collectors.kis_sim.cli", "sim"),
    ("sinks.housekeeping.cli", "commands"),
    ("sinks.research.cli", "commands"),
    ("observer.replay.cli", "commands"),
)


def _register_commands() -> None:
    """Add every group of `COMMAND_MODULES`; a module that does not import stops the CLI (no silent skip)."""
    import importlib

    for module_name, attr in COMMAND_MODULES:
        found = getattr(importlib.import_module(module_name), attr)
        for command in found if isinstance(found, list | tuple) else [found]:
            cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="observer")
