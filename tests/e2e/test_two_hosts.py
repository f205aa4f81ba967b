"""Split hosts on loopback tcp with CURVE: three supervisors, each with its own runtime and data dir
as on its own machine — the market (the simulator, never killed: it keeps the ground truth), the
collectors host (rest- and ws-collector) and the core host (observer core and writer). The
collectors reach the core's ingest over tcp+CURVE and hear its slot commands through
``events_upstream``. Under a realistic load, either side's supervisor is killed with SIGKILL (its
workers die with it) and started again, ten times in all; then the archive accounts for every
published trade exactly once (archived, or inside a gap marker naming it), and a peer with a key
the core host does not know is refused and logged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest
import requests
import zmq
from click.testing import CliRunner

from collectors.kis_sim.schema import PublishedTrades
from observer.bus import context, make_socket
from observer.cli import cli
from observer.clock import ANCHOR_ENV
from observer.config import load_config
from observer.control import ControlClient, NoSupervisor, reply_data
from observer.curve import secure_client
from observer.schema import Command
from testkit.closure import close_accounts
from testkit.config import make_config, write_config
from testkit.soak import RawQuiet, raw_size
from tests.conftest import REPO, free_port, wait_for
from tests.e2e.support import clean_env, lines

KILLS = 10


class Host:
    """One supervisor (`observer run`) with its own config, as on a machine of its own."""

    def __init__(self, base: Path, name: str, toml: str, env: dict[str, str]):
        self.name = name
        self.base = base / name
        self.base.mkdir(mode=0o700)
        self.cfg_path = write_config(self.base, toml)
        self.cfg = load_config(self.cfg_path, env={})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        err = (self.base / f"supervisor-{self.starts}.stderr").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "observer", "--config", str(self.cfg_path), "run"],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        err.close()

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.stderr()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def workers(self) -> dict[str, str]:
        try:
            reply = ControlClient(self.cfg, timeout_s=3.0, tries=1).request(Command(action="status"))
        except NoSupervisor:
            return {}
        return {str(w["name"]): str(w["state"]) for w in reply_data(reply).get("workers", [])}

    def running(self, *names: str) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.stderr()
        states = self.workers()
        return all(states.get(n) == "RUNNING" for n in names)

    def request(self, command: Command) -> None:
        ControlClient(self.cfg, timeout_s=5.0, tries=2).request(command)

    def stderr(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.base.glob("supervisor-*.stderr")))


def _grows(data: Path) -> object:
    """A predicate: raw/ has grown since the predicate was made (the pipeline carries trades)."""
    before = raw_size(data)
    return lambda: raw_size(data) > before


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_hosts_over_curve_survive_ten_kill9s_of_either_side_exactly_once(short_tmp: Path) -> None:
    keys = short_tmp / "keys"
    for name in ("collectors", "core", "intruder"):
        out = CliRunner().invoke(cli, ["keys", "gen", "--dir", str(keys), "--name", name])
        assert out.exit_code == 0, out.output
    authorized = keys / "authorized"
    authorized.mkdir(mode=0o700)
    for name in ("collectors", "core"):  # the keys both hosts accept
        (authorized / f"{name}.key").write_bytes((keys / f"{name}.key").read_bytes())

    ingest, ingest_ack, core_export, collectors_export = (f"tcp://127.0.0.1:{free_port()}" for _ in range(4))
    sim = (
        f'[clock]\nmode = "session"\nstart_at = "09:29:50"\nspeed = 1.0\n'
        f"[sim]\nenabled = true\nrest_port = {free_port()}\nws_port = {free_port()}\n"
        f"admin_port = {(admin_port := free_port())}\nsymbol_count = 1500\nseed = 7\n"
        "[monitor]\ncpu_level1_pct = 101.0\ncpu_level2_pct = 101.0\n"
    )

    def bus(me: str, other: str, other_export: str, my_export: str) -> str:
        """Each host exports its own events and imports the other's (slots one way, heartbeats and
        stats the other); the collectors reach the core host's ingest."""
        return (
            f'[bus]\ncurve_secret_key_file = "{keys}/{me}.key_secret"\ncurve_server_key_file = "{keys}/core.key"\n'
            f'curve_authorized_dir = "{authorized}"\nevents_upstream = "{other_export}"\n'
            f'events_upstream_key_file = "{keys}/{other}.key"\n'
            f'[bus.endpoints]\ningest = "{ingest}"\ningest_ack = "{ingest_ack}"\nevents_export = "{my_export}"\n'
        )

    env = clean_env(**{ANCHOR_ENV: repr(time.time())})  # one session clock for the three machines
    market = Host(short_tmp, "market", sim + '[supervisor]\nworkers = ["sim"]\n', env)
    core = Host(
        short_tmp,
        "core",
        sim
        + '[supervisor]\nworkers = ["observer", "writer"]\n'
        + bus("core", "collectors", collectors_export, core_export),
        env,
    )
    collectors = Host(
        short_tmp,
        "collectors",
        sim
        + '[supervisor]\nworkers = ["rest-collector", "ws-collector"]\n'
        + bus("collectors", "core", core_export, collectors_export),
        env,
    )
    data = core.base / "data"
    admin = f"http://127.0.0.1:{admin_port}/admin"
    hosts = (market, core, collectors)
    try:
        market.start()
        wait_for(lambda: market.running("sim"), 60, 0.2, "the simulator")
        core.start()
        collectors.start()
        wait_for(lambda: list(data.glob("scalp/*/*/*/*.jsonl")), 120, 0.5, "scalp samples on the core host")
        wait_for(_grows(data), 60, 0.5, "raw frames over tcp")

        # a peer whose key the core host does not know: refused (and logged), nothing delivered
        cfg_x = make_config(
            short_tmp / "intruder",
            f'[bus]\ncurve_secret_key_file = "{keys}/intruder.key_secret"\n'
            f'curve_server_key_file = "{keys}/core.key"\n',
        )
        push = make_socket(context(), zmq.PUSH, cfg_x)
        secure_client(push, cfg_x)
        push.connect(ingest)  # the handshake is refused by the core's authenticator (ZAP)

        def refused() -> bool:
            logs = "".join(p.read_text() for p in (core.base / "logs").glob("observer-*.jsonl"))
            return "CURVE key not authorized" in logs

        wait_for(refused, 30, 0.2, "the refusal in the core's log")
        push.close(linger=0)

        for n in range(KILLS):
            victim = core if n % 2 == 0 else collectors
            victim.kill9()
            victim.start()
            names = ("observer", "writer") if victim is core else ("rest-collector", "ws-collector")
            wait_for(lambda v=victim, w=names: v.running(*w), 90, 0.2, f"{victim.name} back ({n + 1})")
            wait_for(_grows(data), 90, 0.2, f"raw frames archived again after kill {n + 1}")

        # settle: the feed falls silent before the ws-collector stops, so nothing is left on the wire
        requests.post(f"{admin}/faults", json={"kind": "silence", "symbols": []}, timeout=10)
        wait_for(RawQuiet(data), 60, 0.5, "the last frames archived")
        collectors.request(Command(action="stop", target="ws-collector"))
        wait_for(
            lambda: collectors.workers().get("ws-collector") in ("STOPPED", "EXITED"), 60, 0.5, "ws stopped"
        )
        truth = msgspec.json.decode(
            requests.get(f"{admin}/trades", timeout=120).content, type=PublishedTrades
        )
        for host in (collectors, core, market):
            assert host.stop() == 0, host.stderr()
    finally:
        for host in hosts:
            host.stop()
    report = close_accounts(data, truth)
    assert report.ok and report.closure == 1.0, report.render()
    assert report.total("archived") > 1000, report.render()
    events = lines(data, "system/events/*/*.jsonl")
    kinds = Counter(e.get("type") for e in events)
    reasons = Counter(str(e.get("reason")) for e in events if e.get("type") == "gap_marker")
    assert reasons["collector_restart"] == KILLS // 2, reasons  # one per kill of the collectors host
    # the universe the collectors built reached the core host over the bus (its own universe_dir)
    received = {e["details"]["market"] for e in events if e.get("type") == "universe_received"}
    assert received == set(core.cfg.provider.markets), kinds
    assert len(list((core.base / "universe").glob("*.json"))) == len(received)
    # five core restarts resumed the slots; none flagged every slot silent at once
    assert kinds["slots_resumed"] == KILLS // 2 and kinds["slot_silent"] == 0, kinds
    assert os.stat(data).st_mode & 0o777 == 0o700
