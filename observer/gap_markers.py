"""The one builder of `GapMarker`s: whatever was lost (a time range of a track, a seq range of a
reliable hop) becomes a marker with its exact range, cause and who noticed, id from
`observer.record_ids`. Gaps are never back-filled; the marker is the proof.

Built here for: the core (missed trades, seq holes on its hops), the REST collector (symbols a
sweep could not record, its replay buffer overflowing), the WS collector (feed outages, its
frame queue overflowing), the writer (seq holes on the archive hop), the housekeeper and the
monitor (their replay buffers overflowing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from observer import record_ids
from observer.clock import ns_to_datetime
from observer.reliable import SeqGap
from observer.schema import DetailValue, GapMarker

GapTrack = Literal["swing", "scalp", "raw", "bus", "system"]


def lost_range(
    *,
    track: GapTrack,
    provider: str,
    market: str,
    symbols: list[str],
    start: datetime,
    end: datetime,
    reason: str,
    detected_by: str,
    key: tuple[object, ...],
    details: dict[str, DetailValue] | None = None,
) -> GapMarker:
    """A marker for ``[start, end]`` of `track`; ``key`` makes its id (``gap:{key...}``), so the
    same loss noticed twice yields the same id. ``end`` is never before ``start``."""
    return GapMarker(
        record_id=record_ids.gap(*key),
        track=track,
        provider=provider,
        market=market,
        symbols=list(symbols),
        start=start,
        end=max(start, end),
        reason=reason,
        detected_by=detected_by,
        details=details or {},
    )


def seq_gap(
    gap: SeqGap,
    *,
    provider: str,
    detected_by: str,
    market: str = "",
    since: datetime | None = None,
    at: datetime | None = None,
) -> GapMarker:
    """A seq hole on a reliable hop (track ``bus``): the producer, run and exact seq range in the
    details. Seqs carry no time: the range runs from ``since`` (the last message known to have
    passed, when the detector knows it) to the detection time ``at`` (give the pipeline's clock:
    wall time would put a session clock's marker on the wrong day; default the hole's wall time)."""
    if at is None:
        at = ns_to_datetime(gap.at_ns)
    return GapMarker(
        record_id=record_ids.seq_gap(gap.producer, gap.run_id, gap.first, gap.last),
        track="bus",
        provider=provider,
        market=market,
        symbols=[],
        start=at if since is None else min(since, at),
        end=at,
        reason=gap.reason,
        detected_by=detected_by,
        details={
            "producer": gap.producer,
            "run_id": gap.run_id,
            "first_seq": gap.first,
            "last_seq": gap.last,
            "count": gap.count,
            "hop_receiver": gap.detected_by,
        },
    )
