"""`observer status` through click's CliRunner, against a control REP server standing in for the
supervisor (the real `ControlServer` socket, a canned status) and real archive files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from click.testing import CliRunner

from observer.cli import cli
from observer.clock import KST
from observer.config import Config, load_config
from observer.control import make_reply
from observer.schema import (
    Command,
    CommandReply,
    GapMarker,
    HealthValues,
    MitigationLevel,
    MonitorStats,
    PeerSeen,
    SlotAssignment,
    SlotCommand,
)
from supervisor.control import ControlServer
from testkit.config import write_config
from tests.conftest import REPO, wait_for

NOW = datetime.now(KST)


def _status(cmd: Command) -> CommandReply:
    if cmd.action != "status":
        return make_reply(False, "unexpected")
    slots = SlotCommand(
        version=3,
        at=NOW,
        slots=[
            SlotAssignment(slot_number=i + 1, symbol=f"{5930 + i:06d}", rule="volume_surge", since=NOW)
            for i in range(3)
        ],
    )
    monitor = MonitorStats(
        worker="monitor",
        at=NOW,
        health=2,
        reasons={"symbols_silent": 2, "mitigation": 1},
        values=HealthValues(
            track_a_rate=0.998,
            track_b_rate=0.981,
            lag_s=0.012,
            disk_latency_ms=3.5,
            mitigation_level=1,
            ws_reconnects_today=2,
        ),
        mitigation_level=1,
        # what the monitor hears: its own supervisor's workers and the collectors of another host
        peers={
            "writer": PeerSeen(pid=100, age_s=0.4),
            "rest-collector": PeerSeen(pid=777, age_s=1.25),
            "ws-collector": PeerSeen(pid=103, age_s=0.2),
        },
    )
    return make_reply(
        True,
        "ok",
        supervisor={
            "pid": 4321,
            "uptime_s": 3700.0,
            "clock_now": NOW.replace(hour=9, minute=45, second=0).isoformat(),
            "clock_mode": "session",
        },
        workers=[
            {
                "name": n,
                "state": "RUNNING",
                "pid": 100 + i,
                "restarts": i,
                "uptime_s": 60.0,
                "heartbeat_age_s": 0.4,
            }
            for i, n in enumerate(["writer", "observer", "monitor", "ws-collector"])
        ],
        mitigation=MitigationLevel(level=1, at=NOW, reasons=["cpu_pct 83% >= 80% for >= 300 s"]),
        slots=slots,
        stats={"monitor": monitor},
        heartbeat_stats={},
    )


@pytest.fixture
def fake_supervisor(short_tmp: Path) -> Iterator[Config]:
    path = write_config(short_tmp)
    cfg = load_config(path, env={})
    ctx: zmq.Context[Any] = zmq.Context()
    server = ControlServer(ctx, cfg, _status)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if server.sock.poll(50):
                server.handle_ready()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield cfg
    stop.set()
    thread.join(2)
    server.close()
    ctx.destroy(linger=0)


def _write_archive(cfg: Config) -> None:
    root = Path(cfg.paths.data_dir)
    day = NOW.strftime("%Y%m%d")
    events = root / "system" / "events" / "kis"
    events.mkdir(parents=True)
    gap = GapMarker(
        record_id="gap-1",
        track="scalp",
        provider="kis",
        market="KOSPI",
        symbols=["005930", "000660"],
        start=NOW.replace(hour=10, minute=1, second=2, microsecond=0),
        end=NOW.replace(hour=10, minute=1, second=30, microsecond=0),
        reason="ws_disconnected",
        detected_by="ws-collector",
    )
    lines = [msgspec.json.encode(gap), b'{"type": "reconnect", "record_id": "e1"}', b"{not json", b""]
    (events / f"{day}.jsonl").write_bytes(b"\n".join(lines))
    (root / "metrics").mkdir()
    (root / "metrics" / f"{day}.jsonl").write_text(
        json.dumps(
            {"at": NOW.isoformat(), "latency_p50_ms": 1.5, "latency_p95_ms": 3.0, "latency_p99_ms": 9.0}
        )
        + "\n"
    )


def _run(cfg_path: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--config", str(cfg_path), "status", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_status_once_json_reports_workers_slots_rates_level_gaps_disk_health(
    fake_supervisor: Config, short_tmp: Path
) -> None:
    _write_archive(fake_supervisor)
    doc = json.loads(_run(short_tmp / "observer.toml", "--once", "--json"))
    assert set(doc) >= {
        "workers",
        "slots",
        "rates",
        "lag",
        "mitigation",
        "gaps",
        "disk",
        "health",
        "supervisor",
    }
    assert doc["supervisor"]["reachable"] is True and doc["supervisor"]["pid"] == 4321
    # this supervisor's workers, then the one the monitor hears from another host (split hosts)
    assert [w["name"] for w in doc["workers"]] == [
        "writer",
        "observer",
        "monitor",
        "ws-collector",
        "rest-collector",
    ]
    assert [w["state"] for w in doc["workers"]] == ["RUNNING"] * 4 + ["REMOTE"]
    remote = doc["workers"][-1]
    assert remote["pid"] == 777 and remote["restarts"] is None and remote["heartbeat_age_s"] >= 1.2
    assert doc["slots"]["used"] == 3 and doc["slots"]["max"] == 41
    assert [s["symbol"] for s in doc["slots"]["table"]] == ["005930", "005931", "005932"]
    assert doc["rates"] == {
        "track_a": 0.998,
        "track_b": 0.981,
        "track_b_window": "5 min",
        "ws_reconnects_today": 2.0,
        "source": "monitor",
    }
    assert doc["lag"]["event_lag_s"] == 0.012 and doc["lag"]["p99_ms"] == 9.0
    assert doc["mitigation"]["level"] == 1 and "cpu_pct" in doc["mitigation"]["reasons"][0]
    assert len(doc["gaps"]) == 1
    gap = doc["gaps"][0]
    assert (gap["track"], gap["reason"], gap["detected_by"], gap["symbols"]) == (
        "scalp",
        "ws_disconnected",
        "ws-collector",
        2,
    )
    assert 0 < doc["disk"]["used_pct"] <= 100
    assert doc["health"]["status"] == "red"
    assert {r["key"]: r["severity"] for r in doc["health"]["reasons"]} == {
        "mitigation": "amber",
        "symbols_silent": "red",
    }


def test_status_text_view(fake_supervisor: Config, short_tmp: Path) -> None:
    _write_archive(fake_supervisor)
    before = datetime.now(KST)  # wall time now, not at import: the suite may cross an hour (or midnight)
    out = _run(short_tmp / "observer.toml", "--once")
    after = datetime.now(KST)
    assert "health RED" in out and "mitigation level 1" in out
    assert "ws-collector" in out and "RUNNING" in out
    assert re.search(r"^rest-collector\s+REMOTE\s+777\s+-\s+-\s+\d+\.\ds$", out, re.M), out
    assert "Track A 99.8 %" in out and "Track B 98.1 %" in out
    assert "3/41" in out and "005930" in out
    assert "10:01:02-10:01:30 scalp" in out and "ws_disconnected" in out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    # the pipeline's (session) clock next to wall time; counts as integers
    assert "pipeline 09:45:00 KST (session clock)" in out
    assert any(f"wall {t:%H}:" in out for t in (before, after)), out
    assert re.search(r"WS reconnects today 2$", out, re.M), out


def test_status_without_a_supervisor_says_so(short_tmp: Path) -> None:
    path = write_config(short_tmp)
    out = _run(path, "--once", "--timeout-s", "0.2")
    assert "supervisor not reachable" in out
    doc = json.loads(_run(path, "--json", "--timeout-s", "0.2"))
    assert doc["supervisor"]["reachable"] is False and doc["workers"] == []
    assert doc["health"]["status"] == "unknown"


def test_live_view_refreshes_and_exits_cleanly_on_ctrl_c(fake_supervisor: Config, short_tmp: Path) -> None:
    out_path = short_tmp / "live.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSERVER_")}
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "observer",
                "--config",
                str(short_tmp / "observer.toml"),
                "status",
                "--interval-s",
                "0.1",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: out_path.read_bytes().count(b"\x1b[H\x1b[2J") >= 3, 20, what="three refreshes")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    text = out_path.read_text()
    assert "Traceback" not in text and "ws-collector" in text and "(Ctrl-C to exit)" in text
