"""Every archive line's ``record_id`` is minted here, in one format: ``kind:part:part...``.

An id is deterministic wherever the same line can be produced twice (a restarted core deriving a
record again, a producer resending after a lost ack, an event that happens once per day): the
writer keeps the first and drops the repeat, across restarts.

========  =================================================  ========================================
kind      parts                                              where
========  =================================================  ========================================
swing     ``{symbol}:{sweep_id}``                            core, one snapshot of a Track A sweep
scalp     ``{symbol}:{window start KST YYYYMMDDTHHMMSS.fff}``  core, one Track B sample
raw       ``{producer}:{run_id}:{seq}``                      core, one WS frame (its ingest envelope)
evt       ``{source}:{run_id}:{n}``                          an event a process raises (n-th of the run)
evt       ``{source}:{type}:{key...}``                       an event that happens once per key (a day)
evt       ``housekeeping:{provider}:{condition key}``       a backup/retention condition: the same id
                                                             from the housekeeper and from its CLI
gap       ``bus:{producer}:{run_id}:{first}-{last}``         a seq hole on a reliable hop
gap       ``{cause}:{key...}``                               any other lost range (see observer.gap_markers)
overflow  ``{symbol}:{at KST YYYYMMDDTHHMMSS}``               a Track B candidate that found no slot
metrics   ``{provider}:{window start KST YYYYMMDDTHHMMSS}``  one metrics line
========  =================================================  ========================================

Archives written before this module used dashes in some event and gap ids (``evt-…``, ``gap-…``);
``observer verify`` only needs a string id unique within its track, so they stay valid.
"""

from __future__ import annotations

from datetime import datetime

from observer.clock import KST

SEP = ":"


def _join(kind: str, *parts: object) -> str:
    return SEP.join((kind, *(str(p) for p in parts)))


def kst_stamp(at: datetime) -> str:
    """``YYYYMMDDTHHMMSS.fff`` in KST: millisecond resolution, sortable."""
    k = at.astimezone(KST)
    return f"{k:%Y%m%dT%H%M%S}.{k.microsecond // 1000:03d}"


def swing(symbol: str, sweep_id: str) -> str:
    return _join("swing", symbol, sweep_id)


def scalp(symbol: str, window_start: datetime) -> str:
    return _join("scalp", symbol, kst_stamp(window_start))


def raw(producer: str, run_id: str, seq: int) -> str:
    return _join("raw", producer, run_id, seq)


def event(source: str, *key: object) -> str:
    """``evt:{source}:{run_id}:{n}`` for the n-th event of a run, or ``evt:{source}:{type}:{key}``
    for one that must be archived once per key."""
    return _join("evt", source, *key)


def housekeeping(provider: str, key: str) -> str:
    """One id per backup/retention condition, whichever of the housekeeper or its CLI saw it."""
    return event("housekeeping", provider, key)


def gap(*key: object) -> str:
    return _join("gap", *key)


def seq_gap(producer: str, run_id: str, first: int, last: int) -> str:
    return gap("bus", producer, run_id, f"{first}-{last}")


def overflow(symbol: str, at: datetime) -> str:
    return _join("overflow", symbol, f"{at.astimezone(KST):%Y%m%dT%H%M%S}")


def metrics(provider: str, window_start: datetime) -> str:
    return _join("metrics", provider, f"{window_start.astimezone(KST):%Y%m%dT%H%M%S}")


class EventIds:
    """``evt:{source}:{run_id}:{n}`` for one process run: n counts up from 1."""

    def __init__(self, source: str, run_id: str):
        self.source, self.run_id = source, run_id
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return event(self.source, self.run_id, self._n)
