"""`observer report` opened in a real headless Chromium: a screenshot, every image decoded, and the
headline figures equal to what `observer verify` and the archive itself say."""

from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from tests.e2e.support import scalp_rate
from tests.sinks.research.conftest import Day, frame_records

# the first test of a session pays for the shared simulated day (a real pipeline run)
pytestmark = pytest.mark.timeout(600)

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def report(research_day: Day, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    done = research_day.pipeline.observer("report", "--day", research_day.key, "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out / research_day.key


def test_report_in_headless_chromium(research_day: Day, report: Path, tmp_path: Path) -> None:
    page = (report / "report.html").as_uri()
    shot = tmp_path / "report.png"
    taken = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,4000", page)
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    pixels = mpimg.imread(shot)
    assert pixels.shape[0] == 4000 and pixels.std() > 0.05, "a rendered page, not a blank one"

    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page).stdout
    body = re.search(r'<body data-images="(\d+)" data-images-ok="(\d+)"', dom)
    assert body is not None, dom[:500]
    assert body.group(1) == body.group(2) == str(dom.count("<img ")) == "6", "no broken image"
    assert "http://" not in dom and "https://" not in dom, "self-contained: nothing fetched"
    cell = dict(re.findall(r'<td id="([a-z0-9-]+)">([^<]*)</td>', dom))

    verify = research_day.pipeline.observer("verify", str(research_day.data))
    assert verify.returncode == 0, verify.stdout
    counted = dict(re.findall(r"(\w+) (\d+)", verify.stdout.split("lines (", 1)[1]))
    assert {k: cell[f"lines-{k}"] for k in counted} == counted

    d = research_day
    written, expected, symbols = scalp_rate(d.data)
    assert cell["track-b-rate"] == f"{written / expected * 100:.2f} %"
    assert cell["track-b-symbols"] == str(symbols)
    universe = sum(
        len(json.loads(p.read_text())["symbols"]) for p in (d.data.parent / "universe").glob("*.json")
    )
    by_sweep: dict[str, set[str]] = defaultdict(set)
    for rec in d.jsonl(f"swing/*/*/{d.key}/*.jsonl"):
        inst = rec["observation"]["instruments"][0]
        by_sweep[inst["sweep_id"]].add(inst["symbol"])
    assert cell["universe"] == str(universe)
    assert cell["track-a-sweeps"] == str(len(by_sweep))
    assert cell["track-a-worst"] == f"{min(len(s) for s in by_sweep.values()) / universe * 100:.2f} %"
    gaps = [e for e in d.jsonl(f"system/events/*/{d.key}.jsonl") if e.get("type") == "gap_marker"]
    assert cell["gap-count"] == str(len(gaps)) != "0"
    assert cell["trades"] == str(
        sum(len(frame_records(r["frame"])) for r in d.jsonl(f"raw/*/*/{d.key}/*.jsonl"))
    )
    for g in gaps:
        assert g["reason"] in dom, "every gap's cause is on the page"

    summary = (report / "summary.txt").read_text()
    assert cell["track-b-rate"] in summary and f"Gaps: {len(gaps)} markers" in summary
    assert sorted(p.name for p in report.iterdir()) == sorted(
        ["report.html", "summary.txt", "summary.json", "track_a.png", "track_b_rate.png",
         "track_b_heatmap.png", "gaps.png", "latency.png", "system.png"]
    )  # fmt: skip


def test_no_data_day_is_a_clear_message_and_no_report(research_day: Day, tmp_path: Path) -> None:
    done = research_day.pipeline.observer("report", "--day", "2026-12-25", "--out", str(tmp_path))
    assert done.returncode == 1
    assert "no archive files for 2026-12-25" in done.stderr
    assert list(tmp_path.iterdir()) == []
