"""``observer report``: one day on one page. `DayStats` -> charts -> a self-contained HTML page.

Output (``<research>/reports/YYYYMMDD/``, written in a temporary directory and renamed, so a
report is whole or absent): ``report.html`` (charts embedded as data URIs, nothing fetched),
the same charts as ``*.png``, ``summary.txt`` (the few lines the monitor sends to Telegram with
``track_b_rate.png``) and ``summary.json``. Headline cells carry ids (``track-b-rate``,
``lines-scalp``, ...) so a reader — or a test in a browser — can find each figure.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import msgspec

from observer.clock import KST
from observer.days import day_key
from sinks.research import charts
from sinks.research.daystats import TRACK_A_TARGET, TRACK_B_TARGET, DayStats, compute

REPORT, SUMMARY_TXT, SUMMARY_JSON = "report.html", "summary.txt", "summary.json"


class Summary(msgspec.Struct, frozen=True):
    day: str
    text: str
    chart: str  # file name next to summary.json


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f} %"


def _verdict(value: float | None, target: float) -> str:
    return "n/a" if value is None else ("OK" if value >= target else "BELOW TARGET")


def summary_text(stats: DayStats, provider: str) -> str:
    worst = stats.worst_sweep
    reasons = Counter(g["reason"] for g in stats.gaps)
    level = max((m["mitigation_level"] for m in stats.metrics), default=0)
    lines = [
        f"KRX observer day summary {stats.day.isoformat()} ({provider})",
        f"Track A: {len(stats.sweeps)} sweeps, worst {pct(worst.rate if worst else None)} of {stats.universe} "
        f"symbols (target 99.5 %: {_verdict(worst.rate if worst else None, TRACK_A_TARGET)})",
        f"Track B: {pct(stats.track_b_rate)} of expected samples, {stats.scalp_symbols} symbols "
        f"(target 97 %: {_verdict(stats.track_b_rate, TRACK_B_TARGET)})",
        f"Gaps: {len(stats.gaps)} markers, {stats.gap_seconds:.1f} s"
        + (" (" + ", ".join(f"{r} x{n}" for r, n in reasons.most_common(3)) + ")" if reasons else ""),
        f"Warnings: {sum(n for *_, n, _ in stats.warnings)} events of {len(stats.warnings)} kinds; "
        f"highest mitigation level {level}",
        f"Records: swing {stats.lines.get('swing', 0)}, scalp {stats.lines.get('scalp', 0)}, "
        f"raw frames {stats.lines.get('raw', 0)} ({stats.trades} trades), system {stats.lines.get('system', 0)}",
    ]
    return "\n".join(lines)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _rows(rows: list[list[str]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)


_CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.images = images.length;
  document.body.dataset.imagesOk = images.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>"""


def _html(stats: DayStats, provider: str, pngs: dict[str, Path], generated_at: datetime) -> str:
    worst = stats.worst_sweep
    head = [
        ("universe", "Universe (symbols)", str(stats.universe)),
        ("track-a-sweeps", "Track A sweeps", str(len(stats.sweeps))),
        ("track-a-worst", "Track A worst sweep (target 99.5 %)", pct(worst.rate if worst else None)),
        ("track-b-rate", "Track B samples recorded (target 97 %)", pct(stats.track_b_rate)),
        ("track-b-symbols", "Track B symbols", str(stats.scalp_symbols)),
        ("gap-count", "Gap markers", str(len(stats.gaps))),
        ("gap-seconds", "Time in gaps (s)", f"{stats.gap_seconds:.1f}"),
        ("trades", "Trades in raw/ frames", str(stats.trades)),
    ] + [(f"lines-{k}", f"Archive lines: {k}", str(v)) for k, v in sorted(stats.lines.items())]
    headline = "".join(
        f'<tr><th>{html.escape(label)}</th><td id="{key}">{html.escape(value)}</td></tr>'
        for key, label, value in head
    )
    gaps = _rows(
        [
            [g["track"], g["start"].astimezone(KST).strftime("%H:%M:%S.%f")[:-3],
             g["end"].astimezone(KST).strftime("%H:%M:%S.%f")[:-3], g["reason"], g["detected_by"], str(len(g["symbols"]))]
            for g in stats.gaps
        ]
    )  # fmt: skip
    warnings = _rows([[s, t, str(n), m] for s, t, n, m in stats.warnings])
    house = _rows(
        [[r["at"].astimezone(KST).isoformat(timespec="seconds"), r["type"], r["severity"], r["message"]] for r in stats.housekeeping]
    )  # fmt: skip
    mitigation = _rows(
        [[r["at"].astimezone(KST).isoformat(timespec="seconds"), r["message"], r["severity"], r["details"]]
         for r in stats.mitigation_changes]
    )  # fmt: skip
    sweeps = _rows([[s.sweep_id, str(s.recorded), str(s.universe), pct(s.rate)] for s in stats.sweeps])
    img = {name: _img(path, name) for name, path in pngs.items()}
    title = f"KRX observer — {stats.day.isoformat()} ({provider})"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; font-size: 0.9em; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0 1.5em; }}
h2 {{ border-bottom: 1px solid #ddd; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Generated {generated_at.isoformat(timespec="seconds")} from the archive.</p>
<h2>Headline</h2><table id="headline">{headline}</table>
<h2>Track A — coverage per sweep</h2>{img["track_a.png"]}
<table><tr><th>sweep</th><th>recorded</th><th>universe</th><th>coverage</th></tr>{sweeps}</table>
<h2>Track B — samples</h2>{img["track_b_rate.png"]}{img["track_b_heatmap.png"]}
<h2>Gap markers</h2>{img["gaps.png"]}
<table><tr><th>track</th><th>start</th><th>end</th><th>cause</th><th>detected by</th><th>symbols</th></tr>{gaps}</table>
<h2>Latency, receive → fsync</h2>{img["latency.png"]}
<h2>Machine and mitigation level</h2>{img["system.png"]}
<table><tr><th>at</th><th>change</th><th>severity</th><th>reasons</th></tr>{mitigation or '<tr><td colspan="4">no level change</td></tr>'}</table>
<h2>Backup and retention</h2>
<table><tr><th>at</th><th>event</th><th>severity</th><th>message</th></tr>{house or '<tr><td colspan="4">no backup or retention event about this day yet</td></tr>'}</table>
<h2>Warnings</h2>
<table><tr><th>severity</th><th>type</th><th>count</th><th>first message</th></tr>{warnings or '<tr><td colspan="4">none</td></tr>'}</table>
{_CHECK_IMAGES}
</body></html>
"""


def build_report(data_dir: Path, universe_dir: Path, day: date, out_dir: Path, provider: str) -> Path:
    """Write the day's report directory; returns it. Raises `NoData` for a day without files."""
    stats = compute(data_dir, universe_dir, day)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = out_dir / day_key(day)
    partial = out_dir / f".{day_key(day)}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    try:
        pngs = {name: draw(stats, partial / name) for name, draw in charts.CHARTS.items()}
        text = summary_text(stats, provider)
        (partial / REPORT).write_text(_html(stats, provider, pngs, datetime.now(KST)))
        (partial / SUMMARY_TXT).write_text(text + "\n")
        summary = Summary(day=day.isoformat(), text=text, chart=charts.SUMMARY_CHART)
        (partial / SUMMARY_JSON).write_bytes(msgspec.json.encode(summary))
        for path in partial.iterdir():
            path.chmod(0o600)
        old = out_dir / f".{day_key(day)}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        partial.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final
