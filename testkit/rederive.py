"""Comparing a re-derived archive's scalp lines with the recorded ones (`observer replay --rederive`).

`compare_scalp(recorded, derived)` pairs the lines by ``record_id`` and sorts them into identical,
differing, only recorded and only derived, ``generated_at`` aside (when a line was built: now, not
then). Two differences are inherent, and named here so the re-derivation test and the hour bench
classify them alike:

* the tail: scalp windows after the recording's last one exist only in the re-derivation (the
  recorded core stopped with the pipeline; the fresh one runs a second past the recorded end so
  that every recorded window closes): cut before comparing, counted in ``tail``;
* next to a recorded slot change: the fresh core applies it when it handles the pin/unpin
  command, a few ms after the recorded time (more on a loaded machine); when a 500 ms window
  boundary, or a tick of the new symbol, falls in between, the symbols of that change differ in
  the window next to it. Only those lines (the symbols of a change, one window before it to two
  after) are ``near_change``; any other difference is ``unexplained``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SCALP_GLOB = "scalp/*/*/*/*.jsonl"
EVENTS_GLOB = "system/events/*/*.jsonl"


def lines_by_id(root: Path, pattern: str) -> dict[str, dict[str, Any]]:
    """Every line of the files under `root` matching `pattern`, by record id."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(root.glob(pattern)):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            out[rec["record_id"]] = rec
    return out


def window_of(rec: dict[str, Any]) -> str:
    return str(rec["observation"]["instruments"][0]["window_start"])


def near_slot_changes(data: Path) -> set[str]:
    """Scalp record ids of the symbols of each recorded slot change, one window before it to two
    after (the window it falls in and the next)."""
    out: set[str] = set()
    for ev in lines_by_id(data, EVENTS_GLOB).values():
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


@dataclass
class ScalpComparison:
    recorded: dict[str, dict[str, Any]]
    derived: dict[str, dict[str, Any]]  # the tail cut
    tail: int  # derived windows after the recording's last one (inherent, cut)
    identical: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    only_recorded: list[str] = field(default_factory=list)
    only_derived: list[str] = field(default_factory=list)
    near_change: set[str] = field(default_factory=set)

    @property
    def unexplained(self) -> list[str]:
        """Differences not next to a recorded slot change: none is inherent."""
        return [
            r for r in self.only_recorded + self.only_derived + self.differing if r not in self.near_change
        ]

    def first_difference(self, ids: list[str]) -> str:
        """The first of `ids` field by field: what a failure report needs to be read."""
        for record_id in ids:
            a, b = self.recorded.get(record_id), self.derived.get(record_id)
            if a is None or b is None:
                return (
                    f"{record_id}: only {'derived' if a is None else 'recorded'}: {json.dumps(a or b)[:600]}"
                )
            flat_a, flat_b = _flatten(a), _flatten(b)
            diff = {
                k: (flat_a.get(k), flat_b.get(k))
                for k in flat_a.keys() | flat_b.keys()
                if k != "generated_at"
            }
            return f"{record_id}: " + json.dumps({k: v for k, v in diff.items() if v[0] != v[1]})[:1500]
        return ""


def compare_scalp(recorded_dir: Path, derived_dir: Path) -> ScalpComparison:
    """Every recorded scalp line against the re-derived one with its record id."""
    recorded = lines_by_id(recorded_dir, SCALP_GLOB)
    derived_all = lines_by_id(derived_dir, SCALP_GLOB)
    last = max((window_of(r) for r in recorded.values()), default="")
    derived = {k: v for k, v in derived_all.items() if window_of(v) <= last}
    cmp = ScalpComparison(recorded, derived, len(derived_all) - len(derived))
    cmp.near_change = near_slot_changes(recorded_dir)
    cmp.only_recorded = sorted(set(recorded) - set(derived))
    cmp.only_derived = sorted(set(derived) - set(recorded))
    for record_id in sorted(set(recorded) & set(derived)):
        a, b = dict(recorded[record_id]), dict(derived[record_id])
        a.pop("generated_at")
        b.pop("generated_at")
        (cmp.identical if a == b else cmp.differing).append(record_id)
    return cmp


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}
