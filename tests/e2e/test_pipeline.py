"""End to end: the `make run` pipeline (supervisor, simulator and every worker as real processes)
on a virtual trading day, with one injected WebSocket outage; then the archive is verified and the
rates and gap markers are checked against the simulator's ground truth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REPO, free_port, wait_for, write_config

RUN_S = 75  # real seconds of Track B after the session opens


def _lines(pattern: str, root: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(root.glob(pattern)):
        out.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return out


def _observer(cfg_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observer", "--config", str(cfg_path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "TELEGRAM_", "OBSERVER_"))}
    return env


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pipeline_on_the_simulator(short_tmp: Path) -> None:
    admin_port = free_port()
    cfg_path = write_config(
        short_tmp,
        f"""
[clock]
mode = "session"
start_at = "09:29:50"
speed = 1.0
[sim]
rest_port = {free_port()}
ws_port = {free_port()}
admin_port = {admin_port}
symbol_count = 1500
[monitor]
cpu_level1_pct = 101.0
cpu_level2_pct = 101.0
""",
    )
    data = short_tmp / "data"
    admin = f"http://127.0.0.1:{admin_port}/admin"
    sup = subprocess.Popen(
        [sys.executable, "-m", "observer", "--config", str(cfg_path), "run"],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: list(data.glob("swing/kis/*/*/*.jsonl")), 90, 0.2, "swing/ to fill")
        wait_for(lambda: list(data.glob("scalp/kis/*/*/*.jsonl")), 90, 0.2, "scalp/ to fill")
        wait_for(lambda: list(data.glob("raw/kis/*/*/*.jsonl")), 30, 0.2, "raw/ to fill")
        wait_for(lambda: list(data.glob("system/events/kis/*.jsonl")), 30, 0.2, "system/ to fill")

        status = json.loads(_observer(cfg_path, "status", "--once", "--json").stdout)
        states = {w["name"]: w["state"] for w in status["workers"]}
        assert set(states) >= {"sim", "writer", "observer", "monitor", "rest-collector", "ws-collector"}
        assert all(s == "RUNNING" for s in states.values()), states
        wait_for(
            lambda: (
                json.loads(_observer(cfg_path, "status", "--once", "--json").stdout)["slots"]["used"] == 41
            ),
            30,
            0.5,
            "41 slots in the status view",
        )

        # one WebSocket outage: every session dropped once
        started = datetime.now().astimezone()
        requests.post(
            f"{admin}/faults", json={"kind": "drop_sessions", "duration_s": 0}, timeout=5
        ).raise_for_status()

        def ws_gap() -> list[dict[str, Any]]:
            return [
                g
                for g in _lines("system/events/kis/*.jsonl", data)
                if g.get("type") == "gap_marker" and g.get("detected_by") == "ws-collector"
            ]

        wait_for(ws_gap, 45, 0.5, "the outage's gap marker")
        remaining = RUN_S - (datetime.now().astimezone() - started).total_seconds()
        if remaining > 0:
            wait_for(lambda: (datetime.now().astimezone() - started).total_seconds() >= RUN_S, RUN_S + 5, 0.5)
        truth = requests.get(f"{admin}/truth", timeout=10).json()
    finally:
        sup.send_signal(signal.SIGTERM)
        try:
            rc = sup.wait(60)
        except subprocess.TimeoutExpired:
            sup.kill()
            rc = -9
        stderr = sup.stderr.read().decode() if sup.stderr else ""
    assert rc == 0, stderr[-3000:]

    verify = _observer(cfg_path, "verify", str(data))
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # Track A: the 09:30 sweep recorded >= 99.5 % of the universe
    universe = sum(len(json.loads(p.read_text())["symbols"]) for p in (short_tmp / "universe").glob("*.json"))
    swing = _lines("swing/kis/*/*/*.jsonl", data)
    by_sweep: dict[str, set[str]] = defaultdict(set)
    for rec in swing:
        inst = rec["observation"]["instruments"][0]
        by_sweep[inst["sweep_id"]].add(inst["symbol"])
    sweep_0930 = next(s for s in by_sweep if s.endswith("T0930"))
    assert len(by_sweep[sweep_0930]) / universe >= 0.995, (len(by_sweep[sweep_0930]), universe)

    # Track B: one sample per slot per 0.5 s window between each slot's first and last sample
    scalp = _lines("scalp/kis/*/*/*.jsonl", data)
    windows: dict[str, set[str]] = defaultdict(set)
    for rec in scalp:
        inst = rec["observation"]["instruments"][0]
        windows[inst["symbol"]].add(inst["window_start"])
        assert rec["interpretation"]["slot_number"] is not None
    assert len(windows) >= 41
    expected = written = 0
    for starts in windows.values():
        times = sorted(datetime.fromisoformat(s) for s in starts)
        expected += int((times[-1] - times[0]) / timedelta(milliseconds=500)) + 1
        written += len(times)
    assert written / expected >= 0.97, (written, expected)

    # gaps: the injected outage and nothing else
    gaps = [g for g in _lines("system/events/kis/*.jsonl", data) if g.get("type") == "gap_marker"]
    ws_gaps = [g for g in gaps if g["detected_by"] == "ws-collector"]
    assert len(ws_gaps) == 1, ws_gaps
    fault = next(f for f in truth["faults"] if f["kind"] == "drop_sessions")
    fault_at = datetime.fromisoformat(fault["start"]["virtual"])
    gap_start = datetime.fromisoformat(ws_gaps[0]["start"])
    gap_end = datetime.fromisoformat(ws_gaps[0]["end"])
    assert abs((gap_start - fault_at).total_seconds()) <= 2.0, (gap_start, fault_at)
    assert timedelta(0) <= gap_end - gap_start <= timedelta(seconds=10)
    assert not [g for g in gaps if g["track"] == "bus"], "no message lost on the bus"
