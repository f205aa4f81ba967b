"""``observer replay --rederive`` arguments through click's CliRunner: what it cannot honour is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from observer.cli import cli
from testkit.config import write_config


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--from", "10:00", "--to", "11:00"], "--from, --to"),
        (["--tracks", "scalp"], "--tracks"),
        (["--symbols", "005930"], "--symbols"),
        (["--market", "KOSPI"], "--market"),
        (["--endpoint", "ipc:///tmp/x.sock"], "--endpoint"),
    ],
)
def test_a_narrower_selection_is_refused_not_ignored(short_tmp: Path, extra: list[str], named: str) -> None:
    path = write_config(short_tmp)
    data = short_tmp / "recorded"
    (data / "raw/kis/KRX/20261207").mkdir(parents=True)
    (data / "raw/kis/KRX/20261207/09_00.jsonl").write_bytes(b"")
    out = short_tmp / "rederived"
    argv = ["--config", str(path), "replay", "--rederive", "--day", "20261207", "--data", str(data)]
    result = CliRunner().invoke(cli, [*argv, "--out", str(out), *extra])
    assert result.exit_code == 2, result.output
    assert f"--rederive re-derives the whole recorded day; {named} cannot narrow it" in result.output
    assert not out.exists()
