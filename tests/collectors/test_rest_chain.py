"""The real chain: rest-collector -> core -> writer processes, a full-universe sweep lands in swing/
and `observer verify` finds the archive sound."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import msgspec

from collectors.kis_sim.server import Simulator
from observer.schema import GapMarker, PatternRecord
from testkit.config import write_config
from tests.collectors.conftest import sim_toml
from tests.collectors.kis.test_rest_sim import assert_paced, rest_truth
from tests.collectors.test_rest_worker import FRI, _session, _stop, _worker_env, at
from tests.conftest import REPO, wait_for

_pattern = msgspec.json.Decoder(PatternRecord)


def _start(config: Path, env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [str(REPO / ".venv/bin/python"), "-m", "observer", "--config", str(config), "worker", name],
            env=env,
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def _swing_lines(data: Path) -> list[bytes]:
    return [line for f in sorted((data / "swing").rglob("*.jsonl")) for line in f.read_bytes().splitlines()]


def test_full_universe_sweep_lands_in_swing_and_verifies(
    start_sim: Callable[..., Simulator], short_tmp: Path
) -> None:
    start = at(FRI, 9, 50, 5)
    anchor, clock = _session(start)
    sim = start_sim(clock, symbol_count=4_000)
    config = write_config(
        short_tmp, sim_toml(sim, f'[clock]\nmode = "session"\nstart_at = "{start.isoformat()}"\n')
    )
    env = _worker_env(float(anchor))
    log = short_tmp / "chain.log"
    procs = [_start(config, env, name, log) for name in ("writer", "observer", "rest-collector")]
    data = short_tmp / "data"
    try:
        universe_file = short_tmp / "universe" / "20260313_KOSPI.json"
        wait_for(universe_file.exists, timeout_s=40, what="the universe")
        events_dir = data / "system"

        def summary_written() -> bool:
            return (
                any(b"sweep_summary" in f.read_bytes() for f in events_dir.rglob("*.jsonl"))
                if events_dir.exists()
                else False
            )

        wait_for(summary_written, timeout_s=60, interval_s=0.2, what="the sweep summary in system/")
    finally:
        for proc in reversed(procs):
            _stop(proc)
    universe = sum(
        len(msgspec.json.decode(p.read_bytes())["symbols"])
        for p in (short_tmp / "universe").glob("20260313_*.json")
    )
    records = [_pattern.decode(line) for line in _swing_lines(data)]
    symbols = {r.observation.instruments[0].symbol for r in records if r.record_id.endswith(":20260313T0950")}
    assert universe > 2_000 and len(symbols) >= 0.995 * universe, (len(symbols), universe)
    assert len({r.record_id for r in records}) == len(records)  # exactly once
    gaps = [
        msgspec.json.decode(line, type=GapMarker)
        for f in (data / "system").rglob("*.jsonl")
        for line in f.read_bytes().splitlines()
        if b'"gap_marker"' in line and b'"swing"' in line
    ]
    assert len(symbols) + sum(len(g.symbols) for g in gaps) >= universe
    assert_paced(rest_truth(sim))  # refused requests, if any, were retried: the coverage above
    verify = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "observer", "--config", str(config), "verify", str(data)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
