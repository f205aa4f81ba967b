"""The ws-collector as the supervisor runs it: `observer worker ws-collector`, a fresh interpreter
configured by file and environment only; SIGTERM stops it cleanly; no secret in its logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from observer.clock import ANCHOR_ENV, SessionClock
from observer.config import SimConfig, load_config
from testkit.config import write_config
from tests.collectors.ws_harness import SESSION_START, Bus, busy_codes, start_simulator
from tests.conftest import REPO, wait_for


def test_worker_process_streams_and_stops_on_sigterm(short_tmp: Path) -> None:
    clock = SessionClock(SESSION_START, 1.0)
    sim = start_simulator(clock)
    try:
        path = write_config(
            short_tmp,
            f'[clock]\nmode = "session"\nstart_at = "{SESSION_START.isoformat()}"\nspeed = 1.0\n'
            f"[sim]\nenabled = true\nrest_port = {sim.rest_port}\nws_port = {sim.ws_port}\n"
            '[track_b]\nstart = "09:00"\nstats_interval_s = 0.2\n',
        )
        cfg = load_config(path)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "OBSERVER_"))}
        env |= {"OBSERVER_CONFIG": str(path), ANCHOR_ENV: repr(clock.anchor_epoch_s)}
        bus = Bus(cfg).start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "observer", "worker", "ws-collector"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            codes = busy_codes(sim, 5)
            bus.set_slots(codes)
            wait_for(lambda: len(bus.got.records_by_symbol()) == 5, 20, what="streaming from the process")
            wait_for(
                lambda: (st := bus.got.latest_stats()) is not None and st.subscribed == 5, 5, what="stats"
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            bus.stop()
        assert proc.stderr is not None
        logs = proc.stderr.read().decode()
        for log_file in (short_tmp / "logs").glob("*.jsonl"):
            logs += log_file.read_text()
        assert "worker stopped" in logs
        approval_keys = list(sim.auth._approvals)
        assert approval_keys
        for secret in [SimConfig().app_key, SimConfig().app_secret, *approval_keys]:
            assert secret not in logs
        assert not sim.ws.sessions()  # the session was closed on the way out
    finally:
        sim.stop()
