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
        rig.wait_started(writer)  # everything may have been acked before it (the last kill came late)
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


def test_two_hosts_import_each_others_events_over_curve_without_a_loop(short_tmp: Path) -> None:
    """Split hosts: each forwarder exports its own host's events (tcp, CURVE) and imports the other
    host's export, so slots and mitigation reach the collectors host and heartbeats and stats the
    core host. An event arrives once everywhere (an export carries only local events: no loop),
    and a host with an unknown key hears nothing."""
    keys = _keys(short_tmp, "a", "b", "intruder")
    authorized = keys / "authorized"
    authorized.mkdir()
    for name in ("a", "b"):
        (authorized / f"{name}.key").write_bytes((keys / f"{name}.key").read_bytes())
    export_a, export_b = f"tcp://127.0.0.1:{_free_pair()}", f"tcp://127.0.0.1:{_free_pair()}"

    def host(name: str, export: str, upstream: str, upstream_key: str) -> Config:
        return make_config(
            short_tmp / name,
            f'[bus]\ncurve_secret_key_file = "{keys}/{name}.key_secret"\n'
            f'curve_authorized_dir = "{authorized}"\nevents_upstream = "{upstream}"\n'
            f'events_upstream_key_file = "{keys}/{upstream_key}.key"\n'
            f'[bus.endpoints]\nevents_export = "{export}"\n',
        )

    cfg_a = host("a", export_a, export_b, "b")
    cfg_b = host("b", export_b, export_a, "a")
    cfg_x = make_config(
        short_tmp / "x",
        f'[bus]\ncurve_secret_key_file = "{keys}/intruder.key_secret"\n'
        f'events_upstream = "{export_b}"\nevents_upstream_key_file = "{keys}/b.key"\n',
    )
    ctxs = [zmq.Context() for _ in range(3)]
    fwds = [Forwarder(ctx, cfg) for ctx, cfg in zip(ctxs, (cfg_a, cfg_b, cfg_x), strict=True)]
    for fwd in fwds:
        fwd.start()
    pub_a, pub_b = EventPublisher(ctxs[0], cfg_a), EventPublisher(ctxs[1], cfg_b)
    sub_a = EventSubscriber(ctxs[0], cfg_a, [MITIGATION])
    sub_b = EventSubscriber(ctxs[1], cfg_b, [MITIGATION])
    sub_x = EventSubscriber(ctxs[2], cfg_x, [MITIGATION])
    heard: dict[str, list[list[str]]] = {"a": [], "b": [], "x": []}

    def drain() -> None:
        for name, sub in (("a", sub_a), ("b", sub_b), ("x", sub_x)):
            while (got := sub.recv_nowait()) is not None:
                heard[name].append(got[1].reasons)

    try:
        # PUB/SUB: published until the subscriptions have arrived everywhere
        def joined() -> bool:
            pub_a.publish(MITIGATION, MitigationLevel(level=0, at=datetime.now(UTC), reasons=["join a"]))
            pub_b.publish(MITIGATION, MitigationLevel(level=0, at=datetime.now(UTC), reasons=["join b"]))
            drain()
            return all(any(r == [f"join {o}"] for r in heard[n]) for n in "ab" for o in "ab")

        wait_for(joined, 30, interval_s=0.1, what="each host's events on both hosts")
        pub_a.publish(MITIGATION, MitigationLevel(level=1, at=datetime.now(UTC), reasons=["from a"]))
        pub_b.publish(MITIGATION, MitigationLevel(level=2, at=datetime.now(UTC), reasons=["from b"]))

        def tests_heard(name: str) -> list[str]:
            return sorted(r[0] for r in heard[name] if r[0].startswith("from"))

        wait_for(
            lambda: drain() or all(tests_heard(n) == ["from a", "from b"] for n in "ab"), 10, 0.05, "both"
        )
        # an echo would travel the other host's export ahead of what that host publishes next
        pub_a.publish(MITIGATION, MitigationLevel(level=0, at=datetime.now(UTC), reasons=["end a"]))
        pub_b.publish(MITIGATION, MitigationLevel(level=0, at=datetime.now(UTC), reasons=["end b"]))
        wait_for(lambda: drain() or (["end b"] in heard["a"] and ["end a"] in heard["b"]), 10, 0.05, "ends")
        assert tests_heard("a") == tests_heard("b") == ["from a", "from b"], heard
        assert heard["x"] == []  # the intruder's key is not authorized on b's export
    finally:
        for s in (pub_a, pub_b, sub_a, sub_b, sub_x):
            s.close()
        for fwd in fwds:
            fwd.stop()
        for c in ctxs:
            c.destroy(linger=0)


def _thread_cpu_ticks(thread: threading.Thread) -> int:
    """utime + stime (clock ticks) of `thread`, from /proc."""
    stat_line = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    fields = stat_line.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _watched_server(guard: Any, ctx: zmq.Context[Any], cfg: Config, port: int) -> zmq.Socket[Any]:
    """A bound CURVE server socket that `guard`'s refusal monitor watches."""
    sock = ctx.socket(zmq.PULL)
    sock.curve_publickey, sock.curve_secretkey = curve._own_keys(cfg)
    sock.curve_server = True
    guard.watch(sock, f"tcp://127.0.0.1:{port}")
    sock.bind(f"tcp://127.0.0.1:{port}")
    wait_for(lambda: guard.watching() == 1, 5, 0.02, "the monitor to watch the socket")
    return sock


def test_the_refusal_monitor_rests_once_every_watched_socket_is_closed(short_tmp: Path) -> None:
    """The monitor thread outlives the sockets it watches (one per process): with none left it must
    wait, not spin (a spinning thread starved every other thread of the process of the GIL)."""
    keys = _keys(short_tmp, "writer", "core")
    port = _free_pair()
    cfg = make_config(short_tmp, _server_toml(keys, port))
    guard = curve._Guard()  # its own monitor: the process's one may watch other tests' sockets
    ctx: zmq.Context[Any] = zmq.Context()
    guard.authenticator(ctx, cfg.bus.curve_authorized_dir)
    sock = _watched_server(guard, ctx, cfg, port)
    sock.close(linger=0)
    wait_for(lambda: guard.watching() == 0, 5, 0.02, "the monitor to drop the closed socket")
    monitor = guard._thread
    assert monitor is not None and monitor.is_alive()
    before = _thread_cpu_ticks(monitor)
    threading.Event().wait(1.0)  # a measurement window, not a wait for something
    used = _thread_cpu_ticks(monitor) - before
    assert used <= 5, f"the idle refusal monitor used {used} ticks of CPU in 1 s"
    guard.stop()
    ctx.destroy(linger=0)


def test_the_refusal_monitor_survives_its_context_being_destroyed(short_tmp: Path) -> None:
    """A worker's last act is destroying its context, which closes the monitor sockets under the
    thread (between its poll and its read, often): it forgets them, it does not die with a traceback."""
    keys = _keys(short_tmp, "writer", "core")
    cfg = make_config(short_tmp, _server_toml(keys, _free_pair()))
    guard = curve._Guard()
    for _ in range(5):
        ctx: zmq.Context[Any] = zmq.Context()
        _watched_server(guard, ctx, cfg, _free_pair())
        ctx.destroy(linger=0)
        wait_for(lambda: guard.watching() == 0, 5, 0.02, "the monitor to forget the destroyed socket")
        monitor = guard._thread
        assert monitor is not None and monitor.is_alive()
    guard.stop()
