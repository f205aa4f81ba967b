"""A real Prometheus (Debian's package, on loopback) scrapes a running demo pipeline's /metrics:
PromQL over its HTTP API returns the expected series, a kill -9 of a worker shows in
``krx_observer_worker_restarts_total`` and the restart alert fires in Prometheus's own rule
evaluation (the shipped rules file, evaluated every second)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REPO, free_port, terminate, wait_for
from tests.e2e.support import Pipeline

PROMETHEUS = "/usr/bin/prometheus"  # `make test` installs Debian's prometheus package


@contextmanager
def prometheus(base: Path, target_port: int) -> Iterator[str]:
    port = free_port()
    rules = REPO / "deploy" / "prometheus" / "krx-observer.rules.yml"
    cfg = base / "prometheus.yml"
    cfg.write_text(
        f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: krx-observer
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
"""
    )
    log = (base / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={base / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        terminate(proc, 20)
        log.close()


def query(url: str, promql: str) -> list[dict[str, Any]]:
    try:
        doc = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    except (requests.RequestException, ValueError):  # Prometheus still starting: not an answer yet
        return []
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def value(url: str, promql: str) -> float | None:
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else None


def firing(url: str, alertname: str) -> list[dict[str, Any]]:
    try:
        alerts = requests.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    except (requests.RequestException, ValueError):
        return []
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_prometheus_scrapes_the_pipeline_and_a_killed_worker_fires_an_alert(short_tmp: Path) -> None:
    metrics_port = free_port()
    p = Pipeline(short_tmp, f'[monitor]\nmetrics_listen = "127.0.0.1:{metrics_port}"\n')
    with p.running(), prometheus(short_tmp, metrics_port) as prom:
        wait_for(
            lambda: value(prom, 'up{job="krx-observer"}') == 1, 60, 0.5, "Prometheus to scrape the monitor"
        )
        wait_for(
            lambda: value(prom, 'krx_observer_worker_up{worker="writer"}') == 1,
            60,
            0.5,
            "writer up in Prometheus",
        )
        workers = {r["metric"]["worker"] for r in query(prom, "krx_observer_worker_up")}
        assert {"writer", "observer", "monitor", "rest-collector", "ws-collector", "sim"} <= workers
        wait_for(
            lambda: (value(prom, 'sum(krx_observer_records_archived_total{kind="scalp"})') or 0) > 0,
            90,
            0.5,
            "archived scalp records in Prometheus",
        )
        wait_for(lambda: value(prom, "krx_observer_slots_used") == 41, 60, 0.5, "41 slots in Prometheus")
        assert value(prom, "krx_observer_slots_capacity") == 41
        assert value(prom, "krx_observer_mitigation_level") is not None
        assert value(prom, "krx_observer_health_status") is not None
        wait_for(
            lambda: (value(prom, "sum(krx_observer_receive_to_fsync_seconds_count)") or 0) > 0,
            60,
            0.5,
            "the receive->fsync histogram",
        )
        assert value(prom, 'krx_observer_worker_restarts_total{worker="writer"}') == 0
        assert not firing(prom, "KrxObserverWorkerRestarting")
        # no symbol ever becomes a label
        for series in query(prom, '{__name__=~"krx_observer_.*"}'):
            assert not set(series["metric"]) & {"symbol", "code"}, series["metric"]

        writer = next(w for w in p.status()["workers"] if w["name"] == "writer")
        os.kill(int(writer["pid"]), signal.SIGKILL)
        wait_for(
            lambda: value(prom, 'krx_observer_worker_restarts_total{worker="writer"}') == 1,
            60,
            0.5,
            "the writer's restart in Prometheus",
        )
        alerts = wait_for(lambda: firing(prom, "KrxObserverWorkerRestarting"), 60, 0.5, "the restart alert")
        assert alerts[0]["labels"]["worker"] == "writer" and alerts[0]["labels"]["severity"] == "warning"
    assert p.returncode == 0, p.stderr[-3000:]
    assert "metrics http://127.0.0.1:" in p.stderr  # the banner names the metrics URL
