"""The Makefile's control targets act on a running pipeline: they never reinstall the package (a
`git pull` that touches pyproject.toml must not make `make stop-writer` run pip on a production host)
and they honour CONFIG=."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("target", ["stop-writer", "start-ws-collector", "restart-observer", "status"])
def test_control_targets_only_run_the_control_command(target: str) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }  # under `make test`
    out = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "-W",
            "pyproject.toml",
            target,
            "CONFIG=/etc/krx-observer/observer.toml",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    commands = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(commands) == 1, commands  # `-W pyproject.toml`: as if it had just changed; no pip
    assert "pip" not in commands[0]
    assert "--config /etc/krx-observer/observer.toml ctl" in commands[0]
