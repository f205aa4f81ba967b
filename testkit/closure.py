"""Accounting closure: every trade the simulator published is in the archive, or inside a gap marker.

Inputs: an archive directory and the simulator's per-trade ground truth (`PublishedTrades`, from
``GET /admin/trades`` / ``observer sim truth --trades``). For each symbol and each published trade
(ACML_VOL identifies a trade; the truth also gives its virtual time):

* **archived** — a raw/ frame carries a record of that symbol with that ACML_VOL;
* **explained** — not archived, but inside a gap marker *naming that symbol*: a ``missed_trades``
  marker whose cumulative range holds it, or any marker whose [start, end] holds its time (the
  exchange time has 1 s resolution, so the start is taken to the second);
* **unexplained** — neither: a silent loss.

Also counted: **duplicates** (the same trade in more than one raw/ record, or one record_id on more
than one line of a track), **scalp windows** missing between a slotted symbol's samples that no
marker naming the symbol covers, and `observer verify`. ``closure`` is
(archived + explained) / published; the run passes only at 100 % with no duplicate, no
unexplained window and a sound archive.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import msgspec

from collectors.kis.ws_parser import TRADE_FIELDS
from collectors.kis_sim.schema import PublishedTrades
from observer.clock import KST

_ACML_VOL = [name for name, _ in TRADE_FIELDS].index("ACML_VOL")
_TRADE_TR = "H0STCNT0"


@dataclass(frozen=True, slots=True)
class _Marker:
    start_ms: int  # epoch ms
    end_ms: int
    reason: str
    acml_range: tuple[int, int] | None  # missed_trades: (cumulative_before, cumulative_after)


@dataclass(slots=True)
class SymbolClosure:
    published: int = 0
    archived: int = 0
    explained: int = 0
    unexplained: int = 0
    damaged: int = 0  # of the published: written damaged (truncated / corrupted) on the wire
    duplicates: int = 0
    missing_windows: int = 0
    unexplained_windows: int = 0
    first_unexplained_ms: int | None = None


@dataclass(slots=True)
class ClosureReport:
    symbols: dict[str, SymbolClosure] = field(default_factory=dict)
    raw_records: int = 0
    raw_frames: int = 0
    raw_unparsed_frames: int = 0
    duplicate_record_ids: int = 0
    markers: int = 0
    markers_without_symbols: int = 0
    marker_reasons: Counter[str] = field(default_factory=Counter)
    verify_ok: bool = True
    verify_output: str = ""

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.symbols.values())

    @property
    def closure(self) -> float:
        published = self.total("published")
        return 1.0 if published == 0 else (self.total("archived") + self.total("explained")) / published

    @property
    def ok(self) -> bool:
        return (
            self.total("unexplained") == 0
            and self.total("duplicates") == 0
            and self.duplicate_record_ids == 0
            and self.total("unexplained_windows") == 0
            and self.verify_ok
        )

    def render(self) -> str:
        t = self.total
        lines = [
            f"trades published {t('published')} (damaged on the wire {t('damaged')}) over "
            f"{len(self.symbols)} symbols: archived {t('archived')}, inside a gap marker {t('explained')}, "
            f"unexplained {t('unexplained')}",
            f"raw/: {self.raw_frames} frames ({self.raw_unparsed_frames} unparsed), {self.raw_records} "
            f"trade records; duplicate trades {t('duplicates')}, duplicate record ids {self.duplicate_record_ids}",
            f"gap markers {self.markers} ({self.markers_without_symbols} name no symbol): "
            + ", ".join(f"{r}={n}" for r, n in self.marker_reasons.most_common()),
            f"scalp windows missing {t('missing_windows')}, outside every marker {t('unexplained_windows')}",
            f"observer verify: {'ok' if self.verify_ok else 'FAILED'}",
        ]
        bad = sorted(
            (
                (c, s)
                for c, s in self.symbols.items()
                if s.unexplained or s.duplicates or s.unexplained_windows
            ),
            key=lambda x: -(x[1].unexplained + x[1].duplicates + x[1].unexplained_windows),
        )
        for code, s in bad[:10]:
            first = (
                datetime.fromtimestamp(s.first_unexplained_ms / 1000, KST).strftime("%H:%M:%S.%f")[:-3]
                if s.first_unexplained_ms is not None
                else "-"
            )
            lines.append(
                f"  {code}: unexplained {s.unexplained}/{s.published} (first at {first}), "
                f"duplicates {s.duplicates}, unexplained windows {s.unexplained_windows}"
            )
        if not self.verify_ok:
            lines.append("  verify: " + self.verify_output.strip()[-800:])
        lines.append(f"closure {math.floor(self.closure * 100_000) / 1_000:.3f}%")  # never rounds up to 100
        return "\n".join(lines)


class _Line(msgspec.Struct):
    record_id: str = ""
    type: str = ""
    kind: str = ""


def _lines(root: Path, pattern: str) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(root.glob(pattern)):
        out.extend(line for line in path.read_bytes().split(b"\n") if line)
    return out


def _epoch_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def close_accounts(data_dir: Path, truth: PublishedTrades, *, verify: bool = True) -> ClosureReport:
    """Account for every published trade of `truth` in the archive under `data_dir`."""
    report = ClosureReport()
    archived, slotted = _raw(data_dir, report), _slot_spans(data_dir)
    markers = _markers(data_dir, report)
    day0_ms = round(datetime.combine(date.fromisoformat(truth.day), time(0), KST).timestamp() * 1000)
    for code, trades in truth.symbols.items():
        s = report.symbols.setdefault(code, SymbolClosure())
        got = archived.get(code, Counter())
        s.duplicates = sum(n - 1 for n in got.values() if n > 1)
        mine = markers.get(code, [])
        for vols, times, damaged in (
            (trades.acml_vol, trades.at_ms, False),
            (trades.damaged_acml_vol, trades.damaged_at_ms, True),
        ):
            for acml, at_ms in zip(vols, times, strict=True):
                s.published += 1
                s.damaged += damaged
                if acml in got:
                    s.archived += 1
                elif _inside(mine, acml, day0_ms + at_ms):
                    s.explained += 1
                else:
                    s.unexplained += 1
                    t = day0_ms + at_ms
                    s.first_unexplained_ms = (
                        t if s.first_unexplained_ms is None else min(s.first_unexplained_ms, t)
                    )
    _scalp_windows(data_dir, report, markers, slotted)
    report.duplicate_record_ids = _duplicate_ids(data_dir)
    if verify:
        proc = subprocess.run(
            [sys.executable, "-m", "observer", "verify", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        report.verify_ok, report.verify_output = proc.returncode == 0, proc.stdout + proc.stderr
    return report


def _raw(data_dir: Path, report: ClosureReport) -> dict[str, Counter[int]]:
    """(symbol -> ACML_VOL -> how many raw/ records carry it)."""
    out: dict[str, Counter[int]] = defaultdict(Counter)
    for line in _lines(data_dir, "raw/*/*/*/*.jsonl"):
        doc: dict[str, Any] = msgspec.json.decode(line)
        rec = doc.get("observation", doc)
        frame = rec.get("frame") if isinstance(rec, dict) else None
        if not isinstance(frame, str):
            continue
        report.raw_frames += 1
        parts = frame.split("|", 3)
        if rec.get("parse_error") or len(parts) != 4 or parts[1] != _TRADE_TR or not parts[2].isdigit():
            report.raw_unparsed_frames += 1
            continue
        count, fields = int(parts[2]), parts[3].split("^")
        if count <= 0 or len(fields) < count * (_ACML_VOL + 1):
            report.raw_unparsed_frames += 1
            continue
        per = len(fields) // count
        for i in range(count):
            code, acml = fields[i * per], fields[i * per + _ACML_VOL]
            if acml.isdigit():
                out[code][int(acml)] += 1
                report.raw_records += 1
    return out


def _markers(data_dir: Path, report: ClosureReport) -> dict[str, list[_Marker]]:
    out: dict[str, list[_Marker]] = defaultdict(list)
    for line in _lines(data_dir, "system/events/*/*.jsonl"):
        if b'"gap_marker"' not in line:
            continue
        doc: dict[str, Any] = msgspec.json.decode(line)
        if doc.get("type") != "gap_marker":
            continue
        report.markers += 1
        report.marker_reasons[str(doc.get("reason"))] += 1
        symbols = doc.get("symbols") or []
        if not symbols:
            report.markers_without_symbols += 1
        details = doc.get("details") or {}
        before, after = details.get("cumulative_before"), details.get("cumulative_after")
        marker = _Marker(
            start_ms=_epoch_ms(doc["start"]) // 1000 * 1000,
            end_ms=_epoch_ms(doc["end"]),
            reason=str(doc.get("reason")),
            acml_range=(int(before), int(after)) if before is not None and after is not None else None,
        )
        for code in symbols:
            out[code].append(marker)
    return out


def _inside(markers: list[_Marker], acml: int, at_ms: int) -> bool:
    for m in markers:
        if m.acml_range is not None and m.acml_range[0] < acml < m.acml_range[1]:
            return True
        if m.start_ms <= at_ms // 1000 * 1000 <= m.end_ms:
            return True
    return False


def _slot_spans(data_dir: Path) -> dict[str, list[tuple[int, int]]]:
    """Per symbol, the (start, end) epoch-ms spans it held a slot (from the slot events)."""
    events: list[tuple[int, str, list[str], list[str]]] = []
    for line in _lines(data_dir, "system/events/*/*.jsonl"):
        if b'"slot' not in line:
            continue
        doc: dict[str, Any] = msgspec.json.decode(line)
        kind, details = doc.get("type"), doc.get("details") or {}
        at = _epoch_ms(doc["at"]) if "at" in doc else 0
        if kind == "slots_seeded":
            events.append((at, "seed", list(details.get("symbols") or []), []))
        elif kind == "slot_change":
            added = [str(a).split(":")[1] for a in details.get("added") or []]
            removed = [str(r).split(":")[1] for r in details.get("removed") or []]
            events.append((at, "change", added, removed))
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    open_at: dict[str, int] = {}
    for at, kind, added, removed in sorted(events, key=lambda e: e[0]):
        if kind == "seed":  # a new day's table (or a re-seed): what is not seeded now is not slotted
            for code in [c for c in open_at if c not in added]:
                spans[code].append((open_at.pop(code), at))
        for code in removed:
            if code in open_at:
                spans[code].append((open_at.pop(code), at))
        for code in added:
            open_at.setdefault(code, at)
    for code, at in open_at.items():
        spans[code].append((at, 2**62))
    return spans


def _scalp_windows(
    data_dir: Path,
    report: ClosureReport,
    markers: dict[str, list[_Marker]],
    slotted: dict[str, list[tuple[int, int]]],
) -> None:
    windows: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for line in _lines(data_dir, "scalp/*/*/*/*.jsonl"):
        doc: dict[str, Any] = msgspec.json.decode(line)
        inst = doc["observation"]["instruments"][0]
        if inst.get("window_start") and inst.get("window_end"):
            windows[inst["symbol"]].append((_epoch_ms(inst["window_start"]), _epoch_ms(inst["window_end"])))
    for code, spans in windows.items():
        s = report.symbols.setdefault(code, SymbolClosure())
        spans.sort()
        for (_, prev_end), (next_start, _) in itertools.pairwise(spans):
            if next_start <= prev_end:
                continue
            t = prev_end
            while t < next_start:  # in 0.5 s windows (2 Hz; longer windows at a mitigation level)
                w_end = min(t + 500, next_start)
                s.missing_windows += 1
                held = any(a <= t and w_end <= b for a, b in slotted.get(code, []))
                covered = any(m.start_ms < w_end and m.end_ms >= t for m in markers.get(code, []))
                if held and not covered:
                    s.unexplained_windows += 1
                t = w_end


def _duplicate_ids(data_dir: Path) -> int:
    dups = 0
    for track in ("raw", "scalp", "swing"):
        ids = Counter(
            msgspec.json.decode(line, type=_Line).record_id
            for line in _lines(data_dir, f"{track}/*/*/*/*.jsonl")
        )
        dups += sum(n - 1 for n in ids.values() if n > 1)
    return dups
