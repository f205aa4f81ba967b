"""The `observer` command line: every command its packages declare is on it, loaded on first use."""

from __future__ import annotations

import subprocess
import sys

import click

from observer.cli import COMMAND_MODULES, cli, declared_commands
from tests.conftest import REPO


def test_every_declared_command_is_on_the_command_line() -> None:
    ctx = click.Context(cli)
    assert set(COMMAND_MODULES) <= set(cli.list_commands(ctx))
    for name in COMMAND_MODULES:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name, name
        assert command in declared_commands(name)


def test_a_worker_process_does_not_load_the_research_stack() -> None:
    """`observer worker NAME` imports the CLI: the commands it does not run stay unloaded."""
    code = (
        "import sys; import observer.cli; from observer.worker_registry import registry; registry(); "
        "print(sorted(m for m in ('pyarrow', 'pandas', 'matplotlib', 'psycopg', 'nats') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
