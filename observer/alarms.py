"""Standing CRITICAL conditions, kept on disk: ``state/alarms/<kind>-<key>.json``.

Shared by the process that raises them (the housekeeper, the ``observer backup|retention``
commands) and the one that shows them (``observer status``, red while any stands), which is why
it lives here and not in a wing.

An alarm is an *episode*: it is raised once (the caller logs and alerts only then, so a package
waiting for its pull does not log a line every poll) and stands until the condition is gone
(`clear`). Because it is a file, it outlives processes: a ``retention run`` while the pipeline
is down leaves its record here, and ``observer status`` turns red while any alarm stands,
whichever process raised it.

Kinds: ``backup_failed`` (package not written, damaged beyond rebuild, a failed or rejected
receipt), ``backup_unverified`` (no valid receipt ``verify_deadline_h`` after the package),
``retention_blocked`` (an unverified day past ``max_retention_days``, or disk pressure with
nothing deletable; key ``disk``).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec

from observer.atomic import write_atomic
from observer.config import Config, state_dir

AlarmKind = Literal["backup_failed", "backup_unverified", "retention_blocked"]
KINDS: tuple[AlarmKind, ...] = ("backup_failed", "backup_unverified", "retention_blocked")
_NAME = re.compile(r"^([a-z_]+)-([A-Za-z0-9_]+)\.json$")


class Alarm(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: AlarmKind
    key: str  # YYYYMMDD, or "disk"
    message: str
    since: datetime  # when the episode started (the pipeline's clock)
    by: str  # housekeeper | housekeeping-cli


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Alarm)


def alarms_dir(cfg: Config) -> Path:
    return state_dir(cfg) / "alarms"


def _path(cfg: Config, kind: AlarmKind, key: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_]+", key):
        raise ValueError(f"bad alarm key {key!r}")
    return alarms_dir(cfg) / f"{kind}-{key}.json"


def raise_alarm(cfg: Config, kind: AlarmKind, key: str, message: str, at: datetime, by: str) -> bool:
    """Record the alarm; True when this starts a new episode (it was not standing)."""
    path = _path(cfg, kind, key)
    if path.exists():
        return False
    alarm = Alarm(kind=kind, key=key, message=message, since=at, by=by)
    write_atomic(path, _encoder.encode(alarm) + b"\n")
    return True


def clear(cfg: Config, kind: AlarmKind, key: str) -> bool:
    """End the episode; True when an alarm was standing."""
    try:
        _path(cfg, kind, key).unlink()
    except FileNotFoundError:
        return False
    return True


def standing(cfg: Config, kind: AlarmKind | None = None) -> list[Alarm]:
    """Every standing alarm (of `kind`), by kind and key."""
    try:
        names = sorted(os.listdir(alarms_dir(cfg)))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out: list[Alarm] = []
    for name in names:
        m = _NAME.match(name)
        if not m or m.group(1) not in KINDS or (kind is not None and m.group(1) != kind):
            continue
        try:
            out.append(_decoder.decode((alarms_dir(cfg) / name).read_bytes()))
        except (OSError, msgspec.DecodeError):
            continue  # being replaced
    return out


def sync(cfg: Config, kind: AlarmKind, current: dict[str, str], at: datetime, by: str) -> set[str]:
    """Make the standing alarms of `kind` exactly `current` (key -> message): raise the new ones,
    clear the ones whose condition is gone. Returns the keys whose episode starts now."""
    new = {key for key, message in current.items() if raise_alarm(cfg, kind, key, message, at, by)}
    for alarm in standing(cfg, kind):
        if alarm.key not in current:
            clear(cfg, kind, alarm.key)
    return new
