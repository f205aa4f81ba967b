"""What the monitor keeps across its own restarts: ``state_dir/monitor.json`` (0600, atomic).

Data flow::

    every monitor sample -> Memory (mitigation level, the day's counters, alerts in progress,
                            the newest sweep mark) -> monitor.json
    monitor start -> Memory of the same KST day -> MitigationState.level, HealthRules' day,
                     AlertSender's active episodes (not sent again), the sweep mark

Without it a restarted monitor would drop the level to 0 while the machine is still overloaded,
count the day's WS reconnects, disconnected time and log silences from zero (the anomalous-day
verdict), and send every alert still in progress a second time. A memory of an earlier day is
ignored: a new day starts from zero.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

import msgspec

from observer.atomic import write_atomic
from observer.clock import KST
from observer.config import ensure_private_dir
from sinks.monitor.alerts import AlertSender
from sinks.monitor.health import HealthRules
from sinks.monitor.mitigation import MitigationState

log = logging.getLogger(__name__)


class Memory(msgspec.Struct, frozen=True, kw_only=True):
    day: date
    level: int = 0
    reconnects: int = 0  # WS reconnects today before this monitor run
    disconnected_s: float = 0.0
    silences: int = 0
    anomalous_reported: bool = False
    active_alerts: list[str] = []
    sweep_mark_s: float | None = None


_decoder = msgspec.json.Decoder(Memory)
_encoder = msgspec.json.Encoder()


def load(path: Path, today: date) -> Memory | None:
    """The memory of `today`, or None (none, unreadable, or of another day)."""
    try:
        memory = _decoder.decode(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError) as e:
        log.warning("monitor memory unreadable; starting afresh", extra={"path": str(path), "error": str(e)})
        return None
    return memory if memory.day == today else None


def save(path: Path, memory: Memory) -> None:
    try:
        ensure_private_dir(path.parent)
        write_atomic(path, _encoder.encode(memory), fsync=False)
    except OSError as e:  # the monitor goes on; only a restart would forget
        log.warning("monitor memory not written", extra={"path": str(path), "error": str(e)})


def resume(
    path: Path, now: datetime, mitigation: MitigationState, rules: HealthRules, alerts: AlertSender | None
) -> Memory | None:
    """Put today's memory of an earlier run back in place; returns it (None: nothing to resume)."""
    remembered = load(path, now.astimezone(KST).date())
    if remembered is None:
        return None
    mitigation.level = remembered.level
    day = rules.day_counters(now)
    day.reconnects_before = remembered.reconnects
    day.disconnected_s = remembered.disconnected_s
    day.silences = remembered.silences
    day.anomalous_reported = remembered.anomalous_reported
    rules.sweep_mark_s = remembered.sweep_mark_s
    if alerts is not None:
        alerts.resume(remembered.active_alerts)
    return remembered


def remember(
    path: Path, now: datetime, mitigation: MitigationState, rules: HealthRules, alerts: AlertSender | None
) -> None:
    day = rules.day_counters(now)
    reconnects = rules.reconnects_today()
    save(
        path,
        Memory(
            day=day.day,
            level=mitigation.level,
            reconnects=day.reconnects_before if reconnects is None else reconnects,
            disconnected_s=day.disconnected_s,
            silences=day.silences,
            anomalous_reported=day.anomalous_reported,
            active_alerts=sorted(alerts.active) if alerts is not None else [],
            sweep_mark_s=rules.sweep_mark_s,
        ),
    )
