"""`observer replay` on a recorded simulated session, consumed by `observer tap` (real processes,
real sockets): exactly the selected lines, in time order, at the recorded pace or faster; pause and
resume; bad input reported with file:line; a missing day or an empty range refused; the archive
never written to."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from observer.replay.reader import line_time
from tests.conftest import REPO, terminate, wait_for
from tests.observer.replay.conftest import ARCHIVE_GLOBS, Recording, observer_cmd, tap_messages

_n = 0


def _track(rel: Path) -> str:
    if rel.parts[0] == "system":
        return "system" if rel.parts[1] == "events" else "overflow"
    return rel.parts[0]


def expected_lines(
    data: Path,
    start: datetime | None = None,
    end: datetime | None = None,
    tracks: set[str] | None = None,
    symbols: set[str] | None = None,
) -> list[tuple[datetime, str]]:
    """(time, record_id) of every archive line the selection takes, in time order."""
    out = []
    for pattern in ARCHIVE_GLOBS:
        for path in sorted(data.glob(pattern)):
            track = _track(path.relative_to(data))
            if tracks and track not in tracks:
                continue
            for raw in path.read_bytes().splitlines():
                record_id, at = line_time(track, raw)
                if (start and at < start) or (end and at >= end):
                    continue
                if symbols and track in ("swing", "scalp") and record_id.split(":")[1] not in symbols:
                    continue
                out.append((at, record_id))
    return sorted(out, key=lambda x: x[0])


def replay_with_tap(
    rec: Recording, *args: str, timeout: float = 120
) -> tuple[list[dict[str, Any]], str, int, float]:
    """Run a tap, then `observer replay ARGS` to it; (messages, replay stderr, exit code, seconds)."""
    global _n
    _n += 1
    endpoint = f"ipc://{rec.base}/rp{_n}.sock"
    out = rec.base / f"tap{_n}.jsonl"
    tap = subprocess.Popen(
        observer_cmd(rec.cfg_path, "tap", "--endpoint", endpoint, "--until-final"),
        cwd=REPO,
        env=rec.env,
        stdout=out.open("w"),
        stderr=subprocess.DEVNULL,
    )
    try:
        t0 = time.monotonic()
        done = subprocess.run(
            observer_cmd(
                rec.cfg_path, "replay", "--data", str(rec.data), "--endpoint", endpoint, "--quiet", *args
            ),
            cwd=REPO,
            env=rec.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        seconds = time.monotonic() - t0
        if done.returncode == 0:
            tap.wait(30)
    finally:
        terminate(tap, 5)
    return [m for m in tap_messages(out) if m["kind"] == "feed"], done.stderr, done.returncode, seconds


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _day(rec: Recording) -> str:
    return f"{rec.day[:4]}-{rec.day[4:6]}-{rec.day[6:]}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_replay_at_x10_publishes_exactly_the_day_in_time_order(recording: Recording) -> None:
    before = tree_digest(recording.data)
    expected = expected_lines(recording.data)
    span_s = (expected[-1][0] - expected[0][0]).total_seconds()
    messages, err, rc, seconds = replay_with_tap(recording, "--day", recording.day, "--speed", "10")
    assert rc == 0, err
    assert len(messages) == len(expected)
    assert [(datetime.fromisoformat(m["at"]), m["line"]["record_id"]) for m in messages] == expected
    assert all(m["replay"] for m in messages)
    assert seconds >= span_s / 10 * 0.9, (seconds, span_s)
    assert f"replayed {len(expected)} lines" in err
    assert tree_digest(recording.data) == before, "replay wrote into the archive"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_replay_at_x1_keeps_the_recorded_pace_for_a_selection(recording: Recording) -> None:
    first = expected_lines(recording.data, tracks={"scalp"})[0][0]
    start = first.replace(microsecond=0) + timedelta(seconds=5)
    end = start + timedelta(seconds=6)
    symbols = sorted({r.split(":")[1] for _, r in expected_lines(recording.data, start, end, {"scalp"})})[:3]
    expected = expected_lines(recording.data, start, end, {"scalp", "swing"}, set(symbols))
    messages, err, rc, _ = replay_with_tap(
        recording,
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
        "--tracks",
        "scalp,swing",
        "--symbols",
        ",".join(symbols),
        "--speed",
        "1",
    )
    assert rc == 0, err
    assert [(datetime.fromisoformat(m["at"]), m["line"]["record_id"]) for m in messages] == expected
    # inter-message timing follows the recorded times (the bench measures the p99 precisely)
    sent = [m["sent_at_ns"] / 1e9 for m in messages]
    recorded = [t.timestamp() for t, _ in expected]
    errors = [abs((s - sent[0]) - (r - recorded[0])) for s, r in zip(sent, recorded, strict=True)]
    assert max(errors) < 0.25, max(errors)
    assert recorded[-1] - recorded[0] >= 5.0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigtstp_pauses_and_sigcont_resumes_where_it_stopped(recording: Recording) -> None:
    first = expected_lines(recording.data, tracks={"scalp"})[0][0]
    start = first.replace(microsecond=0) + timedelta(seconds=2)
    end = start + timedelta(seconds=6)
    expected = expected_lines(recording.data, start, end, {"scalp"})
    endpoint = f"ipc://{recording.base}/pause.sock"
    out = recording.base / "pause.jsonl"
    tap = subprocess.Popen(
        observer_cmd(recording.cfg_path, "tap", "--endpoint", endpoint, "--until-final"),
        cwd=REPO,
        env=recording.env,
        stdout=out.open("w"),
        stderr=subprocess.DEVNULL,
    )
    replay = subprocess.Popen(
        observer_cmd(
            recording.cfg_path,
            "replay",
            "--data",
            str(recording.data),
            "--endpoint",
            endpoint,
            "--quiet",
            "--from",
            start.isoformat(),
            "--to",
            end.isoformat(),
            "--tracks",
            "scalp",
        ),
        cwd=REPO,
        env=recording.env,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: out.stat().st_size > 0, 30, 0.05, "the first replayed lines")
        replay.send_signal(signal.SIGTSTP)
        wait_for(lambda: _state(replay.pid) == "T", 10, 0.02, "the replay to stop")
        size = out.stat().st_size
        paused_at = time.monotonic()
        wait_for(lambda: time.monotonic() - paused_at >= 2.0, 5, 0.1)
        assert _state(replay.pid) == "T" and out.stat().st_size == size, "lines flowed while paused"
        replay.send_signal(signal.SIGCONT)
        assert replay.wait(60) == 0, replay.stderr.read().decode() if replay.stderr else ""
        tap.wait(30)
    finally:
        terminate(replay, 5)
        terminate(tap, 5)
    messages = [m for m in tap_messages(out) if m["kind"] == "feed"]
    assert [m["line"]["record_id"] for m in messages] == [r for _, r in expected]
    # after SIGCONT the schedule is shifted by the pause: no burst to catch up
    sent = [m["sent_at_ns"] / 1e9 for m in messages]
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert max(gaps) >= 2.0  # the pause itself
    recorded = [t.timestamp() for t, _ in expected]
    assert sent[-1] - sent[0] >= (recorded[-1] - recorded[0]) + 2.0 - 0.3


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_torn_and_garbage_lines_are_skipped_and_reported(recording: Recording, short_tmp: Path) -> None:
    data = short_tmp / "copy"
    shutil.copytree(recording.data, data, ignore=shutil.ignore_patterns("logs", "state"))
    raw_file = sorted(data.glob("raw/*/*/*/*.jsonl"))[0]
    scalp_file = sorted(data.glob("scalp/*/*/*/*.jsonl"))[0]
    with raw_file.open("ab") as f:
        f.write(b'{"record_id":"raw:torn:1","provider":"kis","mark')  # a torn last line
    lines = scalp_file.read_bytes().splitlines(keepends=True)
    scalp_file.write_bytes(b"".join(lines[:10]) + b"this is not json at all\n" + b"".join(lines[10:]))
    expected = expected_lines(recording.data)
    before = tree_digest(data)
    rec = Recording(**{**recording.__dict__, "data": data})
    messages, err, rc, _ = replay_with_tap(rec, "--day", recording.day, "--speed", "max")
    assert rc == 0, err
    assert sorted(m["line"]["record_id"] for m in messages) == sorted(r for _, r in expected)
    assert "skipped 2 bad line(s) (1 torn)" in err, err
    raw_rel, scalp_rel = raw_file.relative_to(data), scalp_file.relative_to(data)
    assert f"{raw_rel}:{len(raw_file.read_bytes().splitlines())}: torn line" in err, err
    assert f"{scalp_rel}:11: not a valid scalp line" in err, err
    assert tree_digest(data) == before, "replay changed the archive"


def test_missing_day_and_empty_range_are_clear_errors(short_tmp: Path) -> None:
    data = short_tmp / "data"
    (data / "scalp/kis/KOSPI/20261207").mkdir(parents=True)
    (data / "scalp/kis/KOSPI/20261207/09_30_00.jsonl").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVER_", "KIS_"))}
    cfg = short_tmp / "c.toml"
    cfg.write_text(f'[paths]\nruntime_dir = "{short_tmp}/run"\n')
    base = ["replay", "--data", str(data), "--no-wait", "--quiet", "--endpoint", f"ipc://{short_tmp}/x.sock"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            observer_cmd(cfg, *base, *args), cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )

    before = tree_digest(short_tmp)
    missing = run("--day", "2026-12-08")
    assert missing.returncode == 2
    assert "no recorded day 2026-12-08" in missing.stderr and "days present: 20261207" in missing.stderr
    empty = run("--day", "20261207", "--from", "10:00", "--to", "11:00")
    assert empty.returncode == 2 and "nothing to replay" in empty.stderr, empty.stderr
    bad = run("--day", "20261207", "--speed", "fast")
    assert bad.returncode == 2 and "--speed 'fast'" in bad.stderr
    assert tree_digest(short_tmp) == before, "a refused replay left files behind"
