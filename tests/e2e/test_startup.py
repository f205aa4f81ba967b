"""Start-up refusals on a real `observer run` process: the production config with an empty
environment (no silent simulator; the simulator's data is provider ``kis-sim``), and a data dir in
memory (tmpfs) under the real clock."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from observer.config import filesystem_type, load_config
from tests.conftest import REPO
from tests.supervisor.conftest import FAST, SupervisorRun


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observer", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_config_with_an_empty_environment_refuses_to_start(short_tmp: Path) -> None:
    data, run = short_tmp / "data", short_tmp / "run"
    env = {"PATH": "/usr/bin:/bin", "OBSERVER_DATA_DIR": str(data), "OBSERVER_RUNTIME_DIR": str(run)}
    done = _run(["--config", str(REPO / "config/observer.toml"), "run"], env)
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message  # one clear line, no traceback
    assert "KIS_APP_KEY" in message and "KIS_APP_SECRET" in message and "refusing to start" in message
    assert not data.exists() and not run.exists()  # nothing started, nothing written

    # one variable set: the message names only the other; the value never appears
    key = "PSkeyvalue0123456789012345678901234"
    done = _run(["--config", str(REPO / "config/observer.toml"), "run"], env | {"KIS_APP_KEY": key})
    assert done.returncode == 2 and "KIS_APP_SECRET" in done.stderr and "KIS_APP_KEY " not in done.stderr
    assert key not in done.stderr + done.stdout

    # a collector started on its own refuses just the same (it would otherwise reach for a server)
    done = _run(["--config", str(REPO / "config/observer.toml"), "worker", "rest-collector"], env)
    assert done.returncode != 0 and "KIS_APP_KEY" in done.stderr, done.stderr[-2000:]


def test_only_the_demo_config_runs_the_simulator_and_names_it() -> None:
    demo, prod = (
        load_config(REPO / "config/demo.toml", env={}),
        load_config(REPO / "config/observer.toml", env={}),
    )
    assert demo.sim.enabled and demo.archive_provider == "kis-sim"
    assert not prod.sim.enabled and prod.archive_provider == "kis"


def test_a_data_dir_in_memory_is_refused_under_the_real_clock() -> None:
    """/dev/shm is a real tmpfs: the archive there would vanish at the next reboot."""
    base = Path(tempfile.mkdtemp(prefix="realday-", dir="/dev/shm"))
    try:
        assert filesystem_type(base / "data") == "tmpfs"
        refused = SupervisorRun(base, ["fake-ok"])  # [clock] mode = "real" by default
        assert refused.proc.wait(60) == 2
        message = refused.output().strip()
        assert len(message.splitlines()) == 1, message  # one clear line
        assert f"data dir {base / 'data'} is on tmpfs" in message and "allow_volatile_data_dir" in message
        assert not (base / "run").exists()  # nothing started
        refused.cleanup()

        # the override (tests only) starts it; a session clock never asks
        # (write_config's text begins with [paths]: a bare key at the head of the TOML lands there)
        for toml in ("allow_volatile_data_dir = true\n" + FAST, FAST + '[clock]\nmode = "session"\n'):
            run = SupervisorRun(base, ["fake-ok"], toml)
            try:
                run.wait_ready(30)
            finally:
                assert run.terminate() == 0
                run.cleanup()
    finally:
        shutil.rmtree(base, ignore_errors=True)
