"""Re-derivation of a recorded simulated session: its raw/ frames, swing/ snapshots, the collectors'
events, the supervisor's word on the collectors, the recorded slot table and mitigation levels through a fresh core and writer (real
processes, their own runtime dir) into a new archive; every scalp line comes out identical.

Inherent differences, and why (the rest must be equal):

* ``generated_at``: when the core built the line — now, not then;
* raw ``record_id`` (``raw:<producer>:<run>:<seq>``): the feeding run and its seqs are new;
* the core's, writer's and other workers' own events, overflow/ and metrics/: not inputs;
* scalp windows after the recording's last one, and next to a recorded slot change: named and
  classified in `testkit.rederive` (shared with bench/bench_replay_hour.py, which re-derives a
  recorded simulated hour). Only the lines next to a slot change may differ.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testkit.rederive import compare_scalp, lines_by_id
from tests.conftest import REPO
from tests.observer.replay.conftest import Recording, observer_cmd
from tests.observer.replay.test_replay import tree_digest


def rederive(rec: Recording, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        observer_cmd(rec.cfg_path, "replay", "--rederive", "--day", rec.day, "--out", str(out), *extra),
        cwd=REPO,
        env=rec.env,
        capture_output=True,
        text=True,
        timeout=400,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rederived_scalp_lines_are_identical(recording: Recording, short_tmp: Path) -> None:
    before = tree_digest(recording.data)
    out = short_tmp / "rederived"
    done = rederive(recording, out, "--data", str(recording.data))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "re-derived" in done.stderr
    assert tree_digest(recording.data) == before, "re-derivation wrote into the archive it read"

    cmp = compare_scalp(recording.data, out)
    assert len(cmp.recorded) > 1000
    unexplained = cmp.unexplained
    assert not unexplained, (
        unexplained[:5],
        len(cmp.only_recorded),
        len(cmp.only_derived),
        len(cmp.differing),
        cmp.first_difference(unexplained),
    )
    print(
        f"re-derivation: {len(cmp.recorded)} scalp lines, {len(cmp.only_recorded)} only recorded, "
        f"{len(cmp.only_derived)} only derived, {len(cmp.differing)} differing, all next to a slot change"
    )

    # the supervisor's word on the ws-collector (its shutdown here) reached the fresh core: its flags
    supervisor = [
        e for e in lines_by_id(out, "system/events/*/*.jsonl").values() if e.get("source") == "supervisor"
    ]
    assert {(e["details"]["worker"], e["details"]["from"]) for e in supervisor} >= {
        ("ws-collector", "RUNNING")
    }

    # swing lines: the same snapshots, the same records
    swing_rec, swing_der = (
        lines_by_id(recording.data, "swing/*/*/*/*.jsonl"),
        lines_by_id(out, "swing/*/*/*/*.jsonl"),
    )
    assert sorted(swing_rec) == sorted(swing_der)
    for record_id, rec in swing_rec.items():
        a, b = dict(rec), dict(swing_der[record_id])
        assert a.pop("generated_at") and b.pop("generated_at")
        assert a == b, record_id
    # raw frames: every frame again, byte for byte (only the record id names the new run)
    raw_rec = sorted(
        (r["received_at"], r["frame"]) for r in lines_by_id(recording.data, "raw/*/*/*/*.jsonl").values()
    )
    raw_der = sorted((r["received_at"], r["frame"]) for r in lines_by_id(out, "raw/*/*/*/*.jsonl").values())
    assert raw_rec == raw_der

    verify = subprocess.run(
        observer_cmd(recording.cfg_path, "verify", str(out)),
        cwd=REPO,
        env=recording.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_out_at_the_live_archive_or_a_used_dir_is_refused(recording: Recording, short_tmp: Path) -> None:
    before = tree_digest(recording.data)
    live = rederive(recording, recording.data)  # the config's data_dir is the recording
    assert live.returncode == 2 and "is the live archive" in live.stderr, live.stderr
    inside = rederive(recording, recording.data / "again", "--data", str(recording.data))
    assert inside.returncode == 2 and "overlaps the archive it reads" in inside.stderr, inside.stderr
    used = short_tmp / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    other = rederive(recording, used, "--data", str(recording.data))
    assert other.returncode == 2 and "is not an empty directory" in other.stderr, other.stderr
    assert tree_digest(recording.data) == before
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
