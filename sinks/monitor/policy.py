"""The DESIGN numbers the health rules apply: alert rules (severity, Telegram or log only), the
text of each health reason, and the anomalous-day criteria."""

from __future__ import annotations

from dataclasses import dataclass

from observer.schema import Severity

REASON_TEXT: dict[str, str] = {
    "scalp_stale": "no scalp sample for a slot within the freshness window",
    "swing_missing": "no swing sweep at its 10-minute mark",
    "symbols_silent": "slot symbols acknowledged by the server but silent",
    "ws_silent": "WebSocket connected but no frame within the receive watchdog",
    "ws_disconnected": "WebSocket disconnected during the session",
    "scalp_paused": "scalp recording paused",
    "disk_error": "the writer reports a disk error",
    "disk_high": "disk usage > 80 %",
    "cpu_high": "CPU > 90 % for 10 min",
    "track_a_rate_low": "Track A rate < 95 % (latest sweep)",
    "track_b_rate_low": "Track B rate < 90 % (5 min)",
    "ws_reconnects_high": "WS reconnects > 20 today",
    "mitigation": "mitigation level raised",
    "stats_missing": "no stats from a worker during the session",
}


@dataclass(frozen=True, slots=True)
class AlertRule:
    severity: Severity
    telegram: bool


ALERT_RULES: dict[str, AlertRule] = {
    "track_a_rate_low": AlertRule("WARNING", telegram=False),
    "track_b_rate_low": AlertRule("WARNING", telegram=True),
    "ws_reconnects_high": AlertRule("WARNING", telegram=True),
    "disk_high": AlertRule("CRITICAL", telegram=True),
    "cpu_high": AlertRule("CRITICAL", telegram=True),
    "disk_error": AlertRule("CRITICAL", telegram=True),
    "scalp_stale": AlertRule("CRITICAL", telegram=True),
    "swing_missing": AlertRule("CRITICAL", telegram=True),
    "symbols_silent": AlertRule("CRITICAL", telegram=True),
    "ws_silent": AlertRule("CRITICAL", telegram=True),
    "scalp_paused": AlertRule("CRITICAL", telegram=True),
}


@dataclass(frozen=True, slots=True)
class Policy:
    """The DESIGN numbers (alerts and the anomalous-day criteria)."""

    track_a_min_rate: float = 0.95
    track_b_min_rate: float = 0.90
    track_b_window_s: float = 300.0
    reconnects_alert_over: int = 20
    disk_max_pct: float = 80.0
    cpu_alert_pct: float = 90.0
    cpu_alert_s: float = 600.0
    anomalous_reconnects: int = 20
    anomalous_disconnected_s: float = 600.0
    anomalous_silences: int = 2
    anomalous_scalp_rate: float = 0.97
    anomalous_cpu_pct: float = 85.0
    anomalous_cpu_s: float = 600.0
