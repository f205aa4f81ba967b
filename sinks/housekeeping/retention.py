"""Retention of the archive and of backup packages on the observer host.

What the daily rules delete:

* ``raw/{provider}/{market}/YYYYMMDD/`` (every WS frame as received): the bulky, re-derivable part;
* ``backup/YYYYMMDD/`` packages: duplicates whose verified copy is on the backup PC.

swing/, scalp/, system/, metrics/ are the research archive and are kept — unless the disk fills
(rule 4), when whole verified days go, every family, oldest first. Universe snapshots are kept.

Rules for day D, with ``age = today - D`` in calendar days (KST) and a day *verified* when
``state/backup_verified/YYYYMMDD.json`` exists (see `sinks.housekeeping.receipts`):

1. raw/ of D is deleted when ``age > keep`` and D is verified; ``keep`` is ``raw_retention_days``
   (3), or ``anomalous_retention_days`` (7) when system/events of D hold a ``day_anomalous``
   event; ``keep`` never exceeds ``max_retention_days`` (10).
2. Never before a verified backup: an unverified D is kept. When that makes it older than
   ``max_retention_days`` the backup rule wins and a CRITICAL ``retention_blocked`` event
   escalates (once per D per day while it lasts).
3. The package of D is deleted when ``age > backup_retention_days`` and D is verified.
4. Disk pressure (usage of the data dir's filesystem > ``disk_pressure_pct``, 80 %, well before
   the disk is full): after 1-3, the *oldest verified* day goes first, family by family (raw/,
   package, scalp/, swing/, metrics/, system/), re-measuring after each, then the next oldest,
   until usage is back under the threshold. Nothing unverified is deleted even then: if pressure
   remains, ``retention_blocked`` (CRITICAL, reason ``disk_pressure``). A verified day stays
   restorable from the backup PC (``observer backup restore``).

A day with no package is never verified; the plan says so and names the command that makes one
(``observer backup create --day D``, or ``--missing`` for every such day).

Every deletion is logged and becomes a ``retention_deleted`` event (day, what, bytes freed).
`plan` answers the same question without deleting anything (``observer retention plan``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from observer import alarms
from observer.config import Config, data_dir
from sinks.housekeeping.days import DayState, DiskProbe, FilesystemProbe, What, survey
from sinks.housekeeping.layout import (
    tree_bytes,
)

log = logging.getLogger(__name__)
PRESSURE = "disk pressure"
PRESSURE_ORDER: tuple[What, ...] = ("raw", "package", "scalp", "swing", "metrics", "system")


@dataclass(frozen=True, slots=True)
class Deletion:
    day: date
    what: What
    paths: tuple[Path, ...]
    bytes: int
    reason: str


@dataclass(frozen=True, slots=True)
class Kept:
    day: date
    what: What
    reason: str


@dataclass(frozen=True, slots=True)
class Blocked:
    """A CRITICAL condition: ``day`` is None for disk pressure with nothing left to delete."""

    day: date | None
    reason: Literal["unverified_past_max", "disk_pressure"]
    message: str
    age_days: int = 0


@dataclass(slots=True)
class RetentionPlan:
    today: date
    disk_percent: float | None
    deletions: list[Deletion] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)


@dataclass(slots=True)
class RetentionReport:
    plan: RetentionPlan
    deleted: list[Deletion] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    disk_percent_after: float | None = None

    @property
    def bytes_freed(self) -> int:
        return sum(d.bytes for d in self.deleted)


def plan(cfg: Config, today: date, states: list[DayState], probe: DiskProbe) -> RetentionPlan:
    """What retention would do today (rules 1-4 of the module docstring); deletes nothing."""
    hk = cfg.housekeeping
    out = RetentionPlan(today, probe.percent())
    for st in states:
        age = (today - st.day).days
        if age <= 0:
            continue
        keep = min(
            hk.anomalous_retention_days if st.anomalous else hk.raw_retention_days, hk.max_retention_days
        )
        kind = "anomalous day" if st.anomalous else "normal day"
        if st.raw_dirs:
            if age <= keep:
                out.kept.append(Kept(st.day, "raw", f"{kind}, age {age} <= {keep} days"))
            elif st.verified:
                out.deletions.append(
                    Deletion(
                        st.day,
                        "raw",
                        tuple(st.raw_dirs),
                        st.raw_bytes,
                        f"{kind}, age {age} > {keep} days, backup verified",
                    )
                )
            else:
                why = _why_unverified(st)
                out.kept.append(Kept(st.day, "raw", f"{kind}, age {age} > {keep} days, {why}"))
                if age > hk.max_retention_days:
                    out.blocked.append(
                        Blocked(
                            st.day,
                            "unverified_past_max",
                            f"raw/ of {st.day} is {age} days old (max {hk.max_retention_days}) and kept: {why}",
                            age,
                        )
                    )
        if st.package is not None:
            if st.verified and age > hk.backup_retention_days:
                out.deletions.append(
                    Deletion(
                        st.day,
                        "package",
                        (st.package,),
                        st.package_bytes,
                        f"package age {age} > {hk.backup_retention_days} days, verified copy on the backup PC",
                    )
                )
            elif not st.verified:
                out.kept.append(Kept(st.day, "package", "not verified by the backup PC yet"))
            else:
                out.kept.append(
                    Kept(st.day, "package", f"verified, age {age} <= {hk.backup_retention_days} days")
                )
    _plan_pressure(cfg, out, states, probe)
    return out


def _why_unverified(st: DayState) -> str:
    key = f"{st.day:%Y%m%d}"
    if st.package is None:
        return (
            f'no backup package: run "observer backup create --day {key}" (or --missing for every such day)'
        )
    return "backup not verified: no valid receipt from the backup PC yet (observer backup list)"


def _plan_pressure(cfg: Config, out: RetentionPlan, states: list[DayState], probe: DiskProbe) -> None:
    threshold = cfg.housekeeping.disk_pressure_pct
    if out.disk_percent is None or out.disk_percent <= threshold:
        return
    total = probe.total_bytes() or 1
    estimate = out.disk_percent - 100.0 * sum(d.bytes for d in out.deletions) / total
    planned = {(d.day, d.what) for d in out.deletions}
    for st in states:  # oldest first
        if estimate <= threshold:
            break
        if not st.verified:
            continue
        reason = f"{PRESSURE} {out.disk_percent:.1f}% > {threshold:.0f}%: oldest verified day first"
        for what in PRESSURE_ORDER:
            if estimate <= threshold:
                break
            paths = st.paths(cfg, what)
            if paths and (st.day, what) not in planned:
                size = sum(tree_bytes(p) for p in paths)
                out.deletions.append(Deletion(st.day, what, paths, size, reason))
                out.kept = [k for k in out.kept if (k.day, k.what) != (st.day, what)]
                estimate -= 100.0 * size / total
    if estimate > threshold:
        out.blocked.append(
            Blocked(
                None,
                "disk_pressure",
                f"disk usage {out.disk_percent:.1f}% > {threshold:.0f}% and no verified day is left "
                "to delete: only unverified days remain (see observer backup list)",
            )
        )


def delete(deletion: Deletion, root: Path) -> int:
    """Remove the paths of `deletion` (real dirs or files under `root`). Returns bytes freed."""
    freed = 0
    root_resolved = root.resolve()
    for path in deletion.paths:
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            raise OSError(f"{path} is not a directory or a regular file")
        if root_resolved not in path.resolve().parents:
            raise OSError(f"{path} is outside {root}")
        size = tree_bytes(path)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        freed += size
    return freed


def run(
    cfg: Config,
    today: date,
    probe: DiskProbe | None = None,
    on_deleted: Callable[[Deletion], None] = lambda d: None,
) -> RetentionReport:
    """Apply rules 1-3, then relieve disk pressure one oldest verified day at a time, re-measuring."""
    probe = probe or FilesystemProbe(data_dir(cfg))
    states = survey(cfg)
    the_plan = plan(cfg, today, states, probe)
    report = RetentionReport(the_plan)
    for deletion in the_plan.deletions:
        if not deletion.reason.startswith(PRESSURE):
            _apply(cfg, deletion, report, on_deleted)
    threshold = cfg.housekeeping.disk_pressure_pct
    done: set[tuple[date, What]] = {(d.day, d.what) for d in report.deleted}
    while True:
        usage = probe.percent()
        if usage is None or usage <= threshold:
            break
        step = _next_pressure_step(cfg, done)
        if step is None:
            break
        day, what, paths = step
        done.add((day, what))
        reason = f"{PRESSURE} {usage:.1f}% > {threshold:.0f}%: oldest verified day first"
        _apply(cfg, Deletion(day, what, paths, 0, reason), report, on_deleted)
    report.disk_percent_after = probe.percent()
    the_plan.blocked = [b for b in the_plan.blocked if b.reason != "disk_pressure"]
    still = report.disk_percent_after
    if still is not None and still > threshold:
        the_plan.blocked.append(
            Blocked(
                None,
                "disk_pressure",
                f"disk usage {still:.1f}% > {threshold:.0f}% and no verified day is left to delete: "
                "only unverified days remain (see observer backup list)",
            )
        )
    return report


def _next_pressure_step(
    cfg: Config, done: set[tuple[date, What]]
) -> tuple[date, What, tuple[Path, ...]] | None:
    """The next family of the oldest verified day that still has files (rule 4)."""
    for st in survey(cfg):
        if not st.verified:
            continue
        for what in PRESSURE_ORDER:
            paths = st.paths(cfg, what)
            if paths and (st.day, what) not in done:
                return st.day, what, paths
    return None


def record_blocked(cfg: Config, report: RetentionReport, at: datetime, by: str) -> set[str]:
    """Make the standing ``retention_blocked`` alarms those of `report`; the keys that are new."""
    current = {(f"{b.day:%Y%m%d}" if b.day is not None else "disk"): b.message for b in report.plan.blocked}
    return alarms.sync(cfg, "retention_blocked", current, at, by)


def _apply(
    cfg: Config, deletion: Deletion, report: RetentionReport, on_deleted: Callable[[Deletion], None]
) -> bool:
    try:
        freed = delete(deletion, data_dir(cfg))
    except OSError as e:
        report.errors.append(f"{deletion.what} of {deletion.day}: {e}")
        log.error("retention could not delete", extra={"day": str(deletion.day), "error": str(e)})
        return False
    done = Deletion(deletion.day, deletion.what, deletion.paths, freed, deletion.reason)
    report.deleted.append(done)
    log.info(
        "retention deleted",
        extra={"day": str(done.day), "what": done.what, "bytes_freed": freed, "reason": done.reason},
    )
    on_deleted(done)
    return True
