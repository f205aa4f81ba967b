"""CURVE on tcp endpoints: `observer keys gen`, the archive hop over loopback tcp with CURVE to a real
writer process (kill -9 under load -> exactly once), a peer with a wrong or no key refused and logged."""

from __future__ import annotations

import signal
import stat
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zmq
from click.testing import CliRunner

from observer import curve
from observer.bus import MITIGATION, EventPublisher, EventSubscriber, Forwarder, context
from observer.cli import cli
from observer.config import Config, ConfigError
from observer.curve import secure_server
from observer.schema import MitigationLevel
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


def test_events_upstream_brings_the_other_hosts_events_over_curve(short_tmp: Path) -> None:
    """Split hosts: the collectors host's forwarder also hands on the core host's events (e.g. slots,
    mitigation) from its tcp events_out, over CURVE; an unauthorized host hears nothing."""
    keys = _keys(short_tmp, "writer", "core", "intruder")
    _server_toml(keys, 0)  # writes keys/authorized with core.key
    port = _free_pair()
    out = f"tcp://127.0.0.1:{port}"
    core_host = make_config(
        short_tmp / "b",
        f'[bus]\ncurve_secret_key_file = "{keys}/writer.key_secret"\n'
        f'curve_authorized_dir = "{keys}/authorized"\n[bus.endpoints]\nevents_out = "{out}"\n',
    )

    def collectors_host(name: str, sub: str) -> Config:
        return make_config(
            short_tmp / sub,
            f'[bus]\ncurve_secret_key_file = "{keys}/{name}.key_secret"\n'
            f'curve_server_key_file = "{keys}/writer.key"\nevents_upstream = "{out}"\n',
        )

    ctx_b, ctx_a, ctx_x = zmq.Context(), zmq.Context(), zmq.Context()
    fwd_b = Forwarder(ctx_b, core_host)
    fwd_a = Forwarder(ctx_a, collectors_host("core", "a"))
    fwd_x = Forwarder(ctx_x, collectors_host("intruder", "x"))
    for fwd in (fwd_b, fwd_a, fwd_x):
        fwd.start()
    pub = EventPublisher(ctx_b, core_host)
    sub_a = EventSubscriber(ctx_a, collectors_host("core", "a"), [MITIGATION])
    sub_x = EventSubscriber(ctx_x, collectors_host("intruder", "x"), [MITIGATION])
    try:
        level = MitigationLevel(level=1, at=datetime.now(UTC), reasons=["test"])

        def heard() -> bool:
            pub.publish(MITIGATION, level)  # PUB/SUB: published until the subscription has arrived
            return sub_a.recv_nowait() is not None

        wait_for(heard, 30, interval_s=0.1, what="the core host's event on the collectors host")
        assert sub_x.recv_nowait() is None
    finally:
        for s in (pub, sub_a, sub_x):
            s.close()
        for fwd in (fwd_b, fwd_a, fwd_x):
            fwd.stop()
        for c in (ctx_b, ctx_a, ctx_x):
            c.destroy(linger=0)


def _thread_cpu_ticks(thread: threading.Thread) -> int:
    """utime + stime (clock ticks) of `thread`, from /proc."""
    stat_line = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    fields = stat_line.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_the_refusal_monitor_rests_once_every_watched_socket_is_closed(short_tmp: Path) -> None:
    """The monitor thread outlives the sockets it watches (one per process): with none left it must
    wait, not spin (a spinning thread starved every other thread of the process of the GIL)."""
    keys = _keys(short_tmp, "writer", "core")
    port = _free_pair()
    cfg = make_config(short_tmp, _server_toml(keys, port))
    ctx: zmq.Context[Any] = context()
    sock = ctx.socket(zmq.PULL)
    secure_server(sock, cfg, f"tcp://127.0.0.1:{port}")
    sock.bind(f"tcp://127.0.0.1:{port}")
    sock.close(linger=0)
    wait_for(lambda: not curve._guard.watching(), 5, 0.02, "the monitor to drop the closed socket")
    monitor = curve._guard._thread
    assert monitor is not None and monitor.is_alive()
    before = _thread_cpu_ticks(monitor)
    threading.Event().wait(1.0)  # a measurement window, not a wait for something
    used = _thread_cpu_ticks(monitor) - before
    assert used <= 5, f"the idle refusal monitor used {used} ticks of CPU in 1 s"
