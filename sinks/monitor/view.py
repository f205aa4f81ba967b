"""The operator's status document and its terminal rendering.

Sources, each optional (what cannot be read is said, never guessed):

* the supervisor's control socket (``Command(action="status")``): workers, the latest slot table,
  mitigation level and every worker's stats Struct — including the monitor's own ``stats.monitor``
  (health, rates, lag, reasons);
* files under the data dir: today's gap markers (tail of ``system/events/*/YYYYMMDD.jsonl``) and the
  latest metrics line (``metrics/YYYYMMDD.jsonl``), the fallback for rates when the bus is away;
* psutil: disk usage of the data dir.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import msgspec

from observer import alarms
from observer.clock import KST, Clock
from observer.config import Config, data_dir, track_b_capacity
from observer.control import ControlClient, NoSupervisor, reply_data
from observer.schema import Command, HealthValues, MonitorStats
from sinks.monitor.health import REASON_TEXT, STATUS_NAMES
from sinks.monitor.metrics import disk_usage_pct

TAIL_BYTES = 256 * 1024
MAX_GAPS = 10
_json_line = msgspec.json.Decoder()


def tail_lines(path: Path, max_bytes: int = TAIL_BYTES) -> list[bytes]:
    """The complete lines in the last `max_bytes` of `path` (a partial first line is dropped)."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            fh.seek(start)
            data = fh.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]
    return [line for line in lines if line.strip()]


def _decode(line: bytes) -> dict[str, Any] | None:
    try:
        doc = _json_line.decode(line)
    except msgspec.DecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _day_file(directory: Path, day: date, pattern: str) -> Path | None:
    """``directory/<day>.jsonl`` or, when today has none yet, the most recent one there."""
    today = directory / pattern.format(day=day.strftime("%Y%m%d"))
    if today.exists():
        return today
    found = sorted(directory.glob(pattern.format(day="[0-9]" * 8)))
    return found[-1] if found else None


def recent_gaps(root: Path, day: date, limit: int = MAX_GAPS) -> list[dict[str, Any]]:
    gaps: list[dict[str, Any]] = []
    for provider_dir in sorted((root / "system" / "events").glob("*")):
        path = _day_file(provider_dir, day, "{day}.jsonl")
        if path is None:
            continue
        for line in tail_lines(path):
            doc = _decode(line)
            if doc is None or doc.get("type") != "gap_marker":
                continue
            symbols = doc.get("symbols") or []
            gaps.append(
                {
                    "track": doc.get("track"),
                    "start": doc.get("start"),
                    "end": doc.get("end"),
                    "reason": doc.get("reason"),
                    "detected_by": doc.get("detected_by"),
                    "symbols": len(symbols) if isinstance(symbols, list) else 0,
                    "provider": provider_dir.name,
                }
            )
    gaps.sort(key=lambda g: str(g.get("end") or ""))
    return gaps[-limit:]


def latest_metrics(root: Path, day: date) -> dict[str, Any] | None:
    path = _day_file(root / "metrics", day, "{day}.jsonl")
    if path is None:
        return None
    for line in reversed(tail_lines(path, 64 * 1024)):
        doc = _decode(line)
        if doc is not None:
            return doc
    return None


def _supervisor(cfg: Config, timeout_s: float) -> tuple[dict[str, Any] | None, str]:
    try:
        reply = ControlClient(cfg, timeout_s=timeout_s, tries=1).request(Command(action="status"))
    except NoSupervisor as e:
        return None, str(e)
    if not reply.ok:
        return None, f"supervisor answered: {reply.message}"
    try:
        return reply_data(reply), ""
    except msgspec.DecodeError:
        return None, "supervisor reply could not be decoded"


def gather(cfg: Config, clock: Clock, *, timeout_s: float = 0.5) -> dict[str, Any]:
    """One status document (JSON-able). Never raises for an unreachable source."""
    now = clock.now().astimezone(KST)
    root = data_dir(cfg)
    sup, error = _supervisor(cfg, timeout_s)
    data = sup or {}
    stats = data.get("stats") or {}
    monitor = monitor_stats(stats.get("monitor"))
    values = monitor.values if monitor is not None else HealthValues()
    metrics = latest_metrics(root, now.date())
    slots_doc = data.get("slots") or {}
    table = [
        {k: s.get(k) for k in ("slot_number", "symbol", "rule", "since", "pinned")}
        for s in slots_doc.get("slots") or []
        if isinstance(s, dict)
    ]
    mitigation = data.get("mitigation") or {}
    level = mitigation.get("level", monitor.mitigation_level if monitor is not None else None)
    if level is None and metrics is not None:
        level = metrics.get("mitigation_level")
    usage = disk_usage_pct(root)
    return {
        "at": now.isoformat(),
        "supervisor": {
            "reachable": sup is not None,
            "error": error,
            **(
                {
                    k: data["supervisor"].get(k)
                    for k in ("pid", "uptime_s", "clock_now", "clock_mode")
                    if k in data["supervisor"]
                }
                if isinstance(data.get("supervisor"), dict)
                else {}
            ),
        },
        "workers": _workers(data.get("workers") or [], monitor, now),
        "slots": {
            "used": len(table) if slots_doc else None,
            "max": track_b_capacity(cfg),
            "paused": bool(slots_doc.get("paused", False)),
            "table": table,
        },
        "rates": _rates(values, metrics),
        "lag": {
            "event_lag_s": values.lag_s,
            "disk_write_latency_ms": values.disk_latency_ms,
            "p50_ms": metrics.get("latency_p50_ms") if metrics else None,
            "p95_ms": metrics.get("latency_p95_ms") if metrics else None,
            "p99_ms": metrics.get("latency_p99_ms") if metrics else None,
        },
        "mitigation": {"level": level, "reasons": mitigation.get("reasons", [])},
        "gaps": recent_gaps(root, now.date()),
        "disk": {"path": str(root), "used_pct": usage},
        "health": _health(monitor, alarms.standing(cfg)),
        "metrics_at": metrics.get("at") if metrics else None,
    }


def _workers(local: list[Any], monitor: MonitorStats | None, now: datetime) -> list[dict[str, Any]]:
    """This supervisor's workers, then those the monitor hears that it does not run (another
    host's, split hosts): state ``REMOTE``, their pid there and their heartbeat's age."""
    keys = ("name", "state", "pid", "restarts", "uptime_s", "heartbeat_age_s")
    rows = [{k: w.get(k) for k in keys} for w in local if isinstance(w, dict)]
    if monitor is not None:
        ours = {row["name"] for row in rows}
        late = max(0.0, (now - monitor.at).total_seconds())  # the stats' own age
        rows += [
            dict(name=name, state="REMOTE", pid=peer.pid, restarts=None, uptime_s=None,
                 heartbeat_age_s=round(peer.age_s + late, 1))
            for name, peer in sorted(monitor.peers.items())
            if name not in ours
        ]  # fmt: skip
    return rows


def monitor_stats(doc: Any) -> MonitorStats | None:
    """The monitor's `MonitorStats` from the supervisor's status (None if absent or not one)."""
    if not isinstance(doc, dict):
        return None
    try:
        return msgspec.convert(doc, MonitorStats)
    except msgspec.ValidationError:
        return None


def _rates(values: HealthValues, metrics: dict[str, Any] | None) -> dict[str, Any]:
    a: float | None = values.track_a_rate
    b: float | None = values.track_b_rate
    b_window = "5 min"
    if b is None and values.track_b_rate_so_far is not None:
        b, b_window = values.track_b_rate_so_far, "so far"
    source = "monitor"
    if a is None and b is None and metrics is not None:
        a, b = metrics.get("track_a_collection_rate"), metrics.get("track_b_collection_rate")
        source = "metrics file"
    return {
        "track_a": a,
        "track_b": b,
        "track_b_window": b_window,
        "ws_reconnects_today": values.ws_reconnects_today,
        "source": source,
    }


def _health(monitor: MonitorStats | None, standing: list[alarms.Alarm]) -> dict[str, Any]:
    """The monitor's health, turned red by any standing CRITICAL alarm (backup, retention), which
    holds whether or not the monitor runs."""
    raised = [
        {"key": f"{a.kind}.{a.key}", "severity": "red", "text": f"{a.message} (since {a.since.isoformat()})"}
        for a in standing
    ]
    code = monitor.health if monitor is not None else None
    if monitor is None or code is None:
        return {
            "status": "red" if raised else "unknown",
            "reasons": [
                *raised,
                {"key": "monitor", "severity": "unknown", "text": "no health summary from the monitor"},
            ],
        }
    reasons = raised + [
        {"key": key, "severity": STATUS_NAMES.get(value, "?"), "text": REASON_TEXT.get(key, key)}
        for key, value in sorted(monitor.reasons.items())
    ]
    return {"status": "red" if raised else STATUS_NAMES.get(code, "unknown"), "reasons": reasons}


# --------------------------------------------------------------------------- rendering

_COLOURS = {"green": "\x1b[32m", "amber": "\x1b[33m", "red": "\x1b[31m", "unknown": "\x1b[35m"}
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"


def _pct(value: Any) -> str:
    return "?" if value is None else f"{float(value) * 100:.1f} %"


def _num(value: Any, unit: str, digits: int = 2) -> str:
    return "?" if value is None else f"{float(value):.{digits}f}{unit}"


def _count(value: Any) -> str:
    return "?" if value is None else str(int(float(value)))


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = int(float(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _hhmmss(text: Any) -> str:
    try:
        return datetime.fromisoformat(str(text)).astimezone(KST).strftime("%H:%M:%S")
    except ValueError:
        return str(text)


def render(doc: dict[str, Any], colour: bool = True) -> str:
    def paint(status: str) -> str:
        return f"{_COLOURS.get(status, '')}{_BOLD}{status.upper()}{_RESET}" if colour else status.upper()

    health = doc["health"]
    sup = doc["supervisor"]
    clock = f"{_hhmmss(doc['at'])} KST"
    if sup.get("clock_now") and sup.get("clock_mode") != "real":
        clock = f"pipeline {_hhmmss(sup['clock_now'])} KST ({sup['clock_mode']} clock)   wall {clock}"
    lines = [
        f"KRX observer   {clock}   health {paint(health['status'])}   "
        f"mitigation level {_count(doc['mitigation']['level'])}",
    ]
    if sup["reachable"]:
        lines.append(f"supervisor     pid {sup.get('pid')}  up {_duration(sup.get('uptime_s'))}")
    else:
        lines.append(f"supervisor not reachable: {sup['error']}")
    for reason in health["reasons"]:
        lines.append(f"  ! {reason['severity']:<7} {reason['text']} ({reason['key']})")
    lines.append("")
    lines.append(f"{'WORKER':<16}{'STATE':<10}{'PID':>8}{'RESTARTS':>10}{'UPTIME':>10}{'HB AGE':>9}")
    for w in doc["workers"]:
        hb = w.get("heartbeat_age_s")
        lines.append(
            f"{w.get('name') or '?':<16}{w.get('state') or '?':<10}{w.get('pid') or '-':>8}"
            f"{'-' if w.get('restarts') is None else int(w['restarts']):>10}{_duration(w.get('uptime_s')):>10}"
            f"{'-' if hb is None else f'{float(hb):.1f}s':>9}"
        )
    rates, lag = doc["rates"], doc["lag"]
    lines += [
        "",
        f"rates          Track A {_pct(rates['track_a'])} (latest sweep)   Track B {_pct(rates['track_b'])} ({rates['track_b_window']})"
        f"   WS reconnects today {_count(rates['ws_reconnects_today'])}",
        f"lag            event {_num(lag['event_lag_s'], ' s')}   p50/p95/p99 {_num(lag['p50_ms'], '', 1)}/"
        f"{_num(lag['p95_ms'], '', 1)}/{_num(lag['p99_ms'], ' ms', 1)}   disk write "
        f"{_num(lag['disk_write_latency_ms'], ' ms', 1)}",
        f"disk           {doc['disk']['path']}  {_num(doc['disk']['used_pct'], ' % used', 1)}",
    ]
    slots = doc["slots"]
    used = "?" if slots["used"] is None else slots["used"]
    lines += ["", f"slots          {used}/{slots['max']}{'   PAUSED' if slots['paused'] else ''}"]
    row: list[str] = []
    for s in sorted(slots["table"], key=lambda s: s.get("slot_number") or 0):
        pin = "*" if s.get("pinned") else ""
        row.append(
            f"{s.get('slot_number') or 0:>2} {s.get('symbol')}{pin} {str(s.get('rule') or '')[:10]:<10}"
        )
        if len(row) == 4:
            lines.append("  " + "  ".join(row))
            row = []
    if row:
        lines.append("  " + "  ".join(row))
    lines += ["", f"last gaps ({len(doc['gaps'])})"]
    for g in doc["gaps"]:
        lines.append(
            f"  {_hhmmss(g['start'])}-{_hhmmss(g['end'])} {g['track'] or '?':<6} {g['symbols']:>3} sym  "
            f"{g['reason']}  (by {g['detected_by']})"
        )
    return "\n".join(lines) + "\n"
