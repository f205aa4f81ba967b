"""The `observer` command line: every command group its packages declare is registered."""

from __future__ import annotations

import importlib

import click

from observer.cli import COMMAND_MODULES, cli


def test_every_declared_command_group_is_on_the_command_line() -> None:
    for module_name, attr in COMMAND_MODULES:
        found = getattr(importlib.import_module(module_name), attr)
        commands = found if isinstance(found, list | tuple) else [found]
        assert commands, module_name
        for command in commands:
            assert isinstance(command, click.Command)
            assert cli.commands[command.name or ""] is command, f"{module_name}: {command.name}"
