"""What the rest-collector says besides quotes: sweep summaries, gap markers, the closed-day event,
answers for another code than the one asked for (``wrong_code_rejected``: rejected, counted, reported),
an app key that failed during a sweep (``kis_key_failed``, named by its index; the other keys took
its share).

Data flow::

    rest-collector loop -> RestReport.sweep_done / missed / market_closed / bus_gap
      -> GapMarker | SystemEvent bodies -> the worker's ReliableSender (ingest) -> core -> system/

Gap marker ids are deterministic so a repeat (a resend, a restarted collector reporting the same
mark) is archived once: ``gap:swing:<sweep_id>:missed`` for a mark not swept (``universe_unavailable``,
``sweep_overrun``, ``collector_down``), ``gap:swing:<sweep_id>:failed`` for symbols that failed after
retries, ``gap-bus-<producer>-<run>-<first seq>`` for a replay-buffer overflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from collectors.providers import SweepResult
from observer import record_ids
from observer.clock import Clock
from observer.gap_markers import lost_range, seq_gap
from observer.reliable import SeqGap
from observer.schema import DetailValue, GapMarker, SweepSummary, SystemEvent
from observer.sessions import sweep_id_of

MakeEvent = Callable[..., SystemEvent]


@dataclass(frozen=True, slots=True)
class SweepDone:
    sweep_id: str
    slot: datetime
    started_at: datetime
    ended_at: datetime
    duration_s: float
    universe: dict[str, str]
    result: SweepResult


class RestReport:
    """Builds the rest-collector's system messages and keeps its counters."""

    def __init__(
        self,
        worker: str,
        provider: str,
        clock: Clock,
        make_event: MakeEvent,
        next_event_id: Callable[[], str],
    ):
        self.worker = worker
        self.provider = provider
        self.clock = clock
        self.make_event = make_event
        self.next_event_id = next_event_id
        self.counters: dict[str, float] = {
            "sweeps": 0,
            "quotes_sent": 0,
            "symbols_failed": 0,
            "missed_slots": 0,
            "bus_gaps": 0,
            "wrong_code_rejected": 0,
            "keys_failed": 0,
        }

    def sweep_summary(self, done: SweepDone) -> SweepSummary:
        r = done.result
        total = len(done.universe)
        rate = r.recorded / total if total else 0.0
        return SweepSummary(
            record_id=self.next_event_id(),
            at=self.clock.now(),
            source=self.worker,
            provider=self.provider,
            severity="INFO" if rate >= 0.995 else "WARNING",
            sweep_id=done.sweep_id,
            duration_s=round(done.duration_s, 3),
            calls=r.calls,
            universe=total,
            recorded=r.recorded,
            failed=len(r.failed),
            collection_rate=round(rate, 5),
            rate_limited=r.rate_limited,
            fallback_symbols=r.fallback_symbols,
            wrong_code=r.wrong_code,
            errors_by_code=[f"{code}={n}" for code, n in sorted(r.errors_by_code.items())],
        )

    def sweep_done(
        self, done: SweepDone, summary: SweepSummary
    ) -> list[GapMarker | SystemEvent | SweepSummary]:
        r = done.result
        self.counters["sweeps"] += 1
        self.counters["symbols_failed"] += len(r.failed)
        out: list[GapMarker | SystemEvent | SweepSummary] = []
        for index, code in sorted(r.keys_failed.items()):
            self.counters["keys_failed"] += 1
            out.append(
                self.make_event(
                    "kis_key_failed",
                    "WARNING",
                    f"sweep {done.sweep_id}: app key {index} failed ({code}); the other keys took its share",
                    sweep_id=done.sweep_id,
                    key_index=index,
                    code=code,
                    keys=len(r.calls_by_key),
                )
            )
        if r.wrong_code:
            self.counters["wrong_code_rejected"] += r.wrong_code
            out.append(
                self.make_event(
                    "wrong_code_rejected",
                    "WARNING",
                    f"sweep {done.sweep_id}: {r.wrong_code} answers for another code than the one asked "
                    "for were rejected (never archived)",
                    sweep_id=done.sweep_id,
                    rejected=r.wrong_code,
                    examples=r.wrong_code_examples,
                )
            )
        if r.failed:
            out.append(
                self.gap(
                    done.slot,
                    done.ended_at,
                    sorted(r.failed),
                    "rest_failed_after_retries",
                    ("swing", done.sweep_id, "failed"),
                    {"sweep_id": done.sweep_id, "codes": sorted(set(r.failed.values()))},
                    done.universe,
                )
            )
        out.append(summary)
        return out

    def missed(
        self, slot: datetime, end: datetime, reason: str, symbols: dict[str, str]
    ) -> list[GapMarker | SystemEvent]:
        """A mark not swept: its gap marker (after a ``sweep_overrun`` event when that is why)."""
        self.counters["missed_slots"] += 1
        sweep_id = sweep_id_of(slot)
        out: list[GapMarker | SystemEvent] = []
        if reason == "sweep_overrun":
            out.append(
                self.make_event(
                    "sweep_overrun",
                    "WARNING",
                    f"sweep still running at {sweep_id}; slot skipped",
                    sweep_id=sweep_id,
                )
            )
        out.append(
            self.gap(
                slot,
                end,
                sorted(symbols),
                reason,
                ("swing", sweep_id, "missed"),
                {"sweep_id": sweep_id},
                symbols,
            )
        )
        return out

    def gap(
        self,
        start: datetime,
        end: datetime,
        symbols: list[str],
        reason: str,
        key: tuple[object, ...],
        details: dict[str, DetailValue],
        universe: dict[str, str],
    ) -> GapMarker:
        markets = sorted({universe.get(s, "") for s in symbols} - {""})
        return lost_range(
            key=key,
            track="swing",
            provider=self.provider,
            market=markets[0] if len(markets) == 1 else "KRX",
            symbols=symbols,
            start=start,
            end=end,
            reason=reason,
            detected_by=self.worker,
            details=details,
        )

    def market_closed(self, day: date) -> SystemEvent:
        return SystemEvent(
            record_id=record_ids.event(self.worker, "market_closed", self.provider, f"{day:%Y%m%d}"),
            type="market_closed",
            severity="INFO",
            at=self.clock.now(),
            source=self.worker,
            provider=self.provider,
            message=f"{day} is not a trading day; Track A collects nothing",
            details={"day": day.isoformat(), "weekday": day.strftime("%A")},
        )

    def bus_gap(self, gap: SeqGap) -> GapMarker:
        """The replay buffer overflowed (the core has been away for long): exactly what was lost."""
        self.counters["bus_gaps"] += gap.count
        return seq_gap(
            gap, provider=self.provider, detected_by=self.worker, market="KRX", at=self.clock.now()
        )
