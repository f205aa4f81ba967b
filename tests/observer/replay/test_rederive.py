"""Re-derivation of a recorded simulated session: its raw/ frames, swing/ snapshots, the collectors'
events, the supervisor's word on the collectors, the recorded slot table and mitigation levels through a fresh core and writer (real
processes, their own runtime dir) into a new archive; every scalp line comes out identical.

Inherent differences, and why (the rest must be equal):

* ``generated_at``: when the core built the line — now, not then;
* raw ``record_id`` (``raw:<producer>:<run>:<seq>``): the feeding run and its seqs are new;
* the core's, writer's and other workers' own events, overflow/ and metrics/: not inputs;
* scalp windows after the recording's last one: the recorded core stopped with the pipeline, the
  fresh one runs to the recorded end plus a second so that every recorded window closes;
* around a recorded slot change: the fresh core applies it when it handles the pin/unpin command, a
  few ms after the recorded time (more on a loaded machine); when a 500 ms window boundary, or a
  tick of the new symbol, falls in between, the symbols of that change differ in the window next to
  it. Only those lines (the symbols of a change, one window either side of it) may differ.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.observer.replay.conftest import Recording, observer_cmd
from tests.observer.replay.test_replay import tree_digest


def _lines(root: Path, pattern: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(root.glob(pattern)):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            out[rec["record_id"]] = rec
    return out


def _window(rec: dict[str, Any]) -> str:
    return str(rec["observation"]["instruments"][0]["window_start"])


def _near_slot_changes(data: Path) -> set[str]:
    """Scalp record ids of the symbols of each recorded slot change, one window either side of it."""
    out: set[str] = set()
    for ev in _lines(data, "system/events/*/*.jsonl").values():
        if ev.get("type") not in ("slot_change", "slots_seeded") or ev.get("source") != "observer":
            continue
        at = datetime.fromisoformat(ev["at"])
        start = at - timedelta(microseconds=at.microsecond % 500_000)
        details = ev["details"]
        symbols = [e.split(":")[1] for e in details.get("added", []) + details.get("removed", [])]
        symbols += details.get("symbols", [])
        for symbol in symbols:
            for k in (-1, 0, 1, 2):
                w = start + timedelta(milliseconds=500 * k)
                out.add(f"scalp:{symbol}:{w:%Y%m%dT%H%M%S}.{w.microsecond // 1000:03d}")
    return out


def _first_difference(
    recorded: dict[str, dict[str, Any]], derived: dict[str, dict[str, Any]], ids: list[str]
) -> str:
    """The first unexplained line, field by field: what a failure report needs to be read."""
    for record_id in ids:
        a, b = recorded.get(record_id), derived.get(record_id)
        if a is None or b is None:
            return f"{record_id}: only {'derived' if a is None else 'recorded'}: {json.dumps(a or b)[:600]}"
        flat_a, flat_b = _flatten(a), _flatten(b)
        diff = {
            k: (flat_a.get(k), flat_b.get(k)) for k in flat_a.keys() | flat_b.keys() if k != "generated_at"
        }
        return f"{record_id}: " + json.dumps({k: v for k, v in diff.items() if v[0] != v[1]})[:1500]
    return ""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}


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

    recorded = _lines(recording.data, "scalp/*/*/*/*.jsonl")
    derived = _lines(out, "scalp/*/*/*/*.jsonl")
    last = max(_window(r) for r in recorded.values())
    derived = {k: v for k, v in derived.items() if _window(v) <= last}  # the tail: see the docstring
    assert len(recorded) > 1000
    near_change = _near_slot_changes(recording.data)
    only_recorded = sorted(set(recorded) - set(derived))
    only_derived = sorted(set(derived) - set(recorded))
    differing = []
    for record_id in set(recorded) & set(derived):
        a, b = dict(recorded[record_id]), dict(derived[record_id])
        a.pop("generated_at")
        b.pop("generated_at")
        if a != b:
            differing.append(record_id)
    unexplained = [r for r in only_recorded + only_derived + differing if r not in near_change]
    assert not unexplained, (
        unexplained[:5],
        len(only_recorded),
        len(only_derived),
        len(differing),
        _first_difference(recorded, derived, unexplained),
    )
    print(
        f"re-derivation: {len(recorded)} scalp lines, {len(only_recorded)} only recorded, "
        f"{len(only_derived)} only derived, {len(differing)} differing, all next to a slot change"
    )

    # the supervisor's word on the ws-collector (its shutdown here) reached the fresh core: its flags
    supervisor = [
        e for e in _lines(out, "system/events/*/*.jsonl").values() if e.get("source") == "supervisor"
    ]
    assert {(e["details"]["worker"], e["details"]["from"]) for e in supervisor} >= {
        ("ws-collector", "RUNNING")
    }

    # swing lines: the same snapshots, the same records
    swing_rec, swing_der = _lines(recording.data, "swing/*/*/*/*.jsonl"), _lines(out, "swing/*/*/*/*.jsonl")
    assert sorted(swing_rec) == sorted(swing_der)
    for record_id, rec in swing_rec.items():
        a, b = dict(rec), dict(swing_der[record_id])
        assert a.pop("generated_at") and b.pop("generated_at")
        assert a == b, record_id
    # raw frames: every frame again, byte for byte (only the record id names the new run)
    raw_rec = sorted(
        (r["received_at"], r["frame"]) for r in _lines(recording.data, "raw/*/*/*/*.jsonl").values()
    )
    raw_der = sorted((r["received_at"], r["frame"]) for r in _lines(out, "raw/*/*/*/*.jsonl").values())
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
