"""CURVE on tcp endpoints: `observer keys gen`, the archive hop over loopback tcp with CURVE to a real
writer process (kill -9 under load -> exactly once), a peer with a wrong or no key refused and logged."""

from __future__ import annotations

import signal
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import zmq
from click.testing import CliRunner

from observer.bus import context
from observer.cli import cli
from observer.config import ConfigError
from testkit.config import make_config
from tests.conftest import free_port, wait_for
from tests.sinks.writer.conftest import WRITER_TOML, Rig
from tests.sinks.writer.support import Producer, read_archive
from tests.sinks.writer.test_kill import nominal

KILLS = 4


def _keys(base: Path, *names: str) -> Path:
    keys = base / "keys"
    for name in names:
        result = CliRunner().invoke(cli, ["keys", "gen", "--dir", str(keys), "--name", name])
        assert result.exit_code == 0, result.output
    return keys


def _endpoints(port: int) -> str:
    return (
        f'[bus.endpoints]\narchive = "tcp://127.0.0.1:{port}"\narchive_ack = "tcp://127.0.0.1:{port + 1}"\n'
    )


def _server_toml(keys: Path, port: int) -> str:
    authorized = keys / "authorized"
    authorized.mkdir(exist_ok=True)
    (authorized / "core.key").write_bytes((keys / "core.key").read_bytes())
    return WRITER_TOML.replace(
        "[bus]\n",
        f'[bus]\ncurve_secret_key_file = "{keys}/writer.key_secret"\ncurve_authorized_dir = "{authorized}"\n',
    ) + _endpoints(port)


def _client_toml(keys: Path, port: int, name: str) -> str:
    return WRITER_TOML.replace(
        "[bus]\n",
        f'[bus]\ncurve_secret_key_file = "{keys}/{name}.key_secret"\ncurve_server_key_file = "{keys}/writer.key"\n',
    ) + _endpoints(port)


def test_keys_gen_private_files_and_no_overwrite(short_tmp: Path) -> None:
    keys = _keys(short_tmp, "a")
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for f in ("a.key", "a.key_secret"):
        assert stat.S_IMODE((keys / f).stat().st_mode) == 0o600
    secret = (keys / "a.key_secret").read_text()
    result = CliRunner().invoke(cli, ["keys", "gen", "--dir", str(keys), "--name", "a"])
    assert result.exit_code == 2 and (keys / "a.key_secret").read_text() == secret
    assert "secret-key" not in result.output


def test_tcp_endpoints_without_keys_are_a_config_error(short_tmp: Path) -> None:
    with pytest.raises(ConfigError, match="curve_secret_key_file"):
        make_config(short_tmp, _endpoints(free_port()))


def _free_pair() -> int:
    while True:
        port = free_port()
        if port < 65000:
            return port


@pytest.mark.timeout(120)
def test_archive_hop_over_tcp_curve_kill9_exactly_once_and_wrong_keys_refused(short_tmp: Path) -> None:
    keys = _keys(short_tmp, "writer", "core", "intruder")
    port = _free_pair()
    rig = Rig(short_tmp, _server_toml(keys, port))
    ctx: zmq.Context[Any] = context()
    client_cfg = make_config(short_tmp, _client_toml(keys, port, "core"))
    intruder_cfg = make_config(short_tmp, _client_toml(keys, port, "intruder"))
    prod = Producer(ctx, client_cfg)
    intruder = Producer(ctx, intruder_cfg, producer="intruder")
    plain = ctx.socket(zmq.PUSH)  # no CURVE at all
    plain.setsockopt(zmq.LINGER, 0)
    plain.connect(f"tcp://127.0.0.1:{port}")
    prod.start(nominal, 82.0, count=1_000_000)
    intruder.start()
    try:
        for n in range(KILLS):
            writer = rig.start_writer()
            wait_for(
                lambda a=prod.sender.acked: prod.sender.acked > a + 5, 30, what=f"writer {n} acks over tcp"
            )
            intruder.submit([nominal(10_000_000 + n)])
            writer.send_signal(signal.SIGKILL)
            assert writer.wait(10) == -signal.SIGKILL
        total = prod.stop_schedule()
        writer = rig.start_writer()
        wait_for(prod.all_acked, 60, what="everything acknowledged over tcp")
        logs = "\n".join(p.read_text(errors="replace") for p in (short_tmp / "logs").glob("writer*"))
        wait_for(
            lambda: (
                "CURVE key not authorized"
                in "\n".join(p.read_text(errors="replace") for p in (short_tmp / "logs").glob("writer*"))
            ),
            30,
            what="the intruder's refusal logged",
        )
        logs = "\n".join(p.read_text(errors="replace") for p in (short_tmp / "logs").glob("writer*"))
        assert "CURVE handshake failed" in logs  # the peer without a key
        assert intruder.sender.acked == 0
        writer.terminate()
        assert writer.wait(15) == 0, rig.output()[-3000:]
    finally:
        prod.close()
        intruder.close()
        plain.close(linger=0)
        rig.cleanup()
    archive = read_archive(rig.root)
    ids = Counter(d["record_id"] for key in ("scalp", "swing") for d in archive[key])
    expected = {nominal(i).record_id for i in range(total)}
    assert set(ids) == expected and max(ids.values()) == 1  # the intruder's records are not there
    assert total > 100 and prod.sender.resend_rounds >= 1
    result = CliRunner().invoke(cli, ["verify", str(rig.root)])
    assert result.exit_code == 0, result.output
