"""The `observer` command line. Config is loaded and validated once here; a bad config exits 2
with a message naming the file, key and expected type."""

from __future__ import annotations

import importlib
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


# command name -> the module that declares it (and the attribute holding its command or list of
# commands). Loaded on first use: `observer worker writer` must not pay for pyarrow and pandas
# (the research commands) in every worker process.
COMMAND_MODULES: dict[str, tuple[str, str]] = {
    "run": ("supervisor.cli", "commands"),
    "ctl": ("supervisor.cli", "commands"),
    "verify": ("sinks.writer.cli", "commands"),
    "archive": ("sinks.jetstream.cli", "commands"),
    "status": ("sinks.monitor.cli", "commands"),
    "universe": ("collectors.cli", "commands"),
    "sim": ("collectors.kis_sim.cli", "sim"),
    "backup": ("sinks.housekeeping.cli", "commands"),
    "retention": ("sinks.housekeeping.cli", "commands"),
    "export": ("sinks.research.cli", "commands"),
    "etl": ("sinks.research.cli", "commands"),
    "report": ("sinks.research.cli", "commands"),
    "replay": ("observer.replay.cli", "commands"),
    "tap": ("observer.replay.cli", "commands"),
}


def declared_commands(name: str) -> list[click.Command]:
    """The commands of the module that declares `name` (imports it: an import error propagates)."""
    module_name, attr = COMMAND_MODULES[name]
    found = getattr(importlib.import_module(module_name), attr)
    return list(found) if isinstance(found, list | tuple) else [found]


class LazyGroup(click.Group):
    """A click group whose commands from `COMMAND_MODULES` are imported when first named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            for command in declared_commands(cmd_name):
                self.add_command(command)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup)
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
def main() -> None:
    cli(prog_name="observer")
