"""Fault windows, switched on and off at run time through the admin endpoint.

`FaultBoard.add` opens a window (now, on both clocks) and returns it; a window with a duration
closes itself when the duration has passed (its end is the planned end, stamped on both clocks);
`clear` closes windows early. Components ask `active(kind)` at the moment they act, so a fault
starts and stops exactly when the board says. Instant actions (dropping sessions, expiring tokens)
are carried out by hooks the server registers with `on_add`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec

from collectors.kis_sim.errors import FaultSpecError
from collectors.kis_sim.schema import CorruptFrames, FaultSpec, FaultWindow, Stamp, TruncateFrames
from observer.clock import KST, Clock, to_rfc3339

F = TypeVar("F", bound=msgspec.Struct)


def stamp(real: datetime, virtual: datetime) -> Stamp:
    return Stamp(real=to_rfc3339(real.astimezone(KST)), virtual=to_rfc3339(virtual.astimezone(KST)))


@dataclass(slots=True)
class _Window:
    id: int
    spec: FaultSpec
    start_real: datetime
    start_virtual: datetime
    end_real: datetime | None = None
    end_virtual: datetime | None = None
    planned_real: datetime | None = None
    planned_virtual: datetime | None = None
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def kind(self) -> str:
        return str(type(self.spec).__struct_config__.tag)


class FaultBoard:
    """Thread-safe registry of fault windows."""

    def __init__(self, wall_clock: Clock, virtual_clock: Clock):
        self._wall = wall_clock
        self._virtual = virtual_clock
        self._lock = threading.Lock()
        self._windows: list[_Window] = []
        self._next_id = 1
        self._hooks: list[Callable[[FaultSpec], None]] = []

    def on_add(self, hook: Callable[[FaultSpec], None]) -> None:
        """Call `hook(spec)` after every new window (for instant actions)."""
        self._hooks.append(hook)

    def add(self, spec: FaultSpec) -> FaultWindow:
        _validate(spec)
        real, virtual = self._wall.now(), self._virtual.now()
        window = _Window(self._take_id(), spec, real, virtual)
        if spec.duration_s is not None:
            speed = float(getattr(self._virtual, "speed", 1.0))
            window.planned_real = real + timedelta(seconds=spec.duration_s)
            window.planned_virtual = virtual + timedelta(seconds=spec.duration_s * speed)
        with self._lock:
            self._windows.append(window)
        for hook in self._hooks:
            hook(spec)
        return self._render(window, real)

    def clear(self, window_id: int | None = None) -> list[FaultWindow]:
        """Close the window `window_id` (or every active one) now; returns the closed windows."""
        real, virtual = self._wall.now(), self._virtual.now()
        closed = []
        with self._lock:
            for w in self._windows:
                if (window_id is None or w.id == window_id) and self._is_active(w, real):
                    w.end_real, w.end_virtual = real, virtual
                    closed.append(w)
        return [self._render(w, real) for w in closed]

    def active(self, kind: type[F]) -> list[F]:
        """The specs of `kind` whose window is open now."""
        real = self._wall.now()
        with self._lock:
            return [w.spec for w in self._windows if isinstance(w.spec, kind) and self._is_active(w, real)]

    def tick(self, kind: type[TruncateFrames | CorruptFrames]) -> bool:
        """For counted faults (truncate, corrupt): True on every `every_n`-th call while active."""
        real = self._wall.now()
        with self._lock:
            for w in self._windows:
                if isinstance(w.spec, kind) and self._is_active(w, real):
                    w.counter[0] += 1
                    n = max(int(getattr(w.spec, "every_n", 1)), 1)
                    if w.counter[0] % n == 0:
                        return True
        return False

    def windows(self) -> list[FaultWindow]:
        real = self._wall.now()
        with self._lock:
            return [self._render(w, real) for w in self._windows]

    def _take_id(self) -> int:
        with self._lock:
            wid = self._next_id
            self._next_id += 1
            return wid

    @staticmethod
    def _is_active(w: _Window, now: datetime) -> bool:
        if w.end_real is not None:
            return False
        return w.planned_real is None or now < w.planned_real

    def _render(self, w: _Window, now: datetime) -> FaultWindow:
        active = self._is_active(w, now)
        end: Stamp | None = None
        if w.end_real is not None and w.end_virtual is not None:
            end = stamp(w.end_real, w.end_virtual)
        elif not active and w.planned_real is not None and w.planned_virtual is not None:
            end = stamp(w.planned_real, w.planned_virtual)
        planned = (
            stamp(w.planned_real, w.planned_virtual)
            if w.planned_real is not None and w.planned_virtual is not None
            else None
        )
        return FaultWindow(
            id=w.id,
            kind=w.kind,
            spec=w.spec,
            start=stamp(w.start_real, w.start_virtual),
            end=end,
            planned_end=planned,
            active=active,
        )


def _validate(spec: FaultSpec) -> None:
    if spec.duration_s is not None and spec.duration_s < 0:
        raise FaultSpecError(f"duration_s must be >= 0, got {spec.duration_s}")
    for attr in ("every_n", "delay_ms"):
        value = getattr(spec, attr, None)
        if value is not None and value < (1 if attr == "every_n" else 0):
            raise FaultSpecError(f"{attr} out of range: {value}")
    key = getattr(spec, "key", None)
    if key is not None and key < 1:
        raise FaultSpecError(f"key is an app key number from 1, got {key}")
    status = getattr(spec, "status", None)
    if status is not None and not 500 <= status <= 599:
        raise FaultSpecError(f"rest_5xx status must be 5xx, got {status}")
