"""deploy/prometheus: the alert rules pass `promtool check rules` and their unit tests, and the Grafana
dashboard is importable (valid structure) and only queries series the monitor exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from sinks.monitor.prometheus import METRIC_NAMES
from tests.conftest import REPO

PROM_DIR = REPO / "deploy" / "prometheus"
PROMTOOL = "/usr/bin/promtool"  # Debian's prometheus package; `make test` installs it


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=60)


def test_rules_pass_promtool_check() -> None:
    out = _promtool("check", "rules", "krx-observer.rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_rules_unit_tests_pass() -> None:
    out = _promtool("test", "rules", "krx-observer.rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_broken_rule_is_caught_by_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests really evaluate the rules: weakening a threshold makes them fail."""
    rules = (PROM_DIR / "krx-observer.rules.yml").read_text().replace("> 0.80", "> 0.85")
    (tmp_path / "krx-observer.rules.yml").write_text(rules)
    (tmp_path / "krx-observer.rules.test.yml").write_text(
        (PROM_DIR / "krx-observer.rules.test.yml").read_text()
    )
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "krx-observer.rules.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "KrxObserverDiskHigh" in out.stdout + out.stderr


_SERIES = re.compile(r"\bkrx_observer_[a-z0-9_]+")


def _series_base(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name[: -len(suffix)] in METRIC_NAMES:
            return name[: -len(suffix)]
    return name


def test_rules_only_use_exported_series() -> None:
    text = (PROM_DIR / "krx-observer.rules.yml").read_text()
    used = {_series_base(n) for n in _SERIES.findall(text)}
    assert used and used <= METRIC_NAMES, used - METRIC_NAMES


def test_grafana_dashboard_is_importable_and_queries_exported_series() -> None:
    dash = json.loads((PROM_DIR / "grafana-dashboard.json").read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    used: set[str] = set()
    for p in dash["panels"]:
        assert p["type"] in {"timeseries", "stat", "table"}
        assert set(p["gridPos"]) == {"x", "y", "w", "h"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["datasource"]["type"] == "prometheus" and p["targets"]
        for t in p["targets"]:
            used |= {_series_base(n) for n in _SERIES.findall(t["expr"])}
    assert used <= METRIC_NAMES, used - METRIC_NAMES
    # the same panels as `observer status`: workers, slots, rates, lag, level, gaps, disk
    for needed in (
        "krx_observer_worker_up",
        "krx_observer_slots_used",
        "krx_observer_track_a_coverage_ratio",
        "krx_observer_track_b_collection_ratio",
        "krx_observer_receive_to_fsync_seconds",
        "krx_observer_mitigation_level",
        "krx_observer_gap_markers_total",
        "krx_observer_disk_usage_ratio",
    ):
        assert needed in used, needed
