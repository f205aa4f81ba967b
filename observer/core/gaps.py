"""Gap detection in the core: what was lost becomes a GapMarker with its range and cause.

* **bus** — a seq hole on either reliable hop (`SeqGap` from the ingest receiver, or from the
  core's own archive sender when its replay buffer overflowed): `observer.gap_markers.seq_gap`,
  at the detection time on the pipeline's clock (seqs carry no time; wall time would put a session
  clock's marker on the wrong day).
* **collector restart** — a WS producer's frames come from a new run (it crashed or was restarted):
  track ``scalp``, reason ``collector_restart``, from the previous run's last frame the core
  received to the new run's first frame, naming every subscribed (slotted) symbol; one per
  outage (the record id names the previous run).
* **missed trades** — KIS ACML_VOL grows by exactly CNTG_VOL per trade, so a tick whose cumulative
  volume exceeds the previous tick's plus its own trade volume means trades never reached us:
  track ``scalp``, reason ``missed_trades``, start/end = the two ticks' exchange times, details =
  the missed volume and a trade-count estimate (missed volume / the symbol's mean trade size).
  The record id is derived from the two cumulative volumes, so a replay after a core restart
  yields the same marker (dropped by the writer as a duplicate).
"""

from __future__ import annotations

from dataclasses import dataclass

from observer.core.feed_outage import Restart
from observer.gap_markers import lost_range
from observer.schema import GapMarker, Tick


def restart_gap_marker(
    restart: Restart, provider: str, market: str, symbols: list[str], detected_by: str
) -> GapMarker:
    previous = restart.previous
    return lost_range(
        key=("collector_restart", restart.producer, previous.run_id),
        track="scalp",
        provider=provider,
        market=market,
        symbols=symbols,
        start=previous.start,
        end=restart.until,
        reason="collector_restart",
        detected_by=detected_by,
        details={
            "producer": restart.producer,
            "previous_run_id": previous.run_id,
            "run_id": restart.run_id,
            "last_frame_received_at": previous.received_at.isoformat(),
        },
    )


@dataclass(slots=True)
class _Last:
    cumulative_volume: int
    tick: Tick
    trades: int
    traded_volume: int


class MissedTradeDetector:
    """Per symbol: compare each tick's ACML_VOL with the previous tick's plus CNTG_VOL."""

    def __init__(self, provider: str, detected_by: str = "observer"):
        self._provider = provider
        self._detected_by = detected_by
        self._last: dict[str, _Last] = {}
        self.missed_volume = 0

    def seed(self, tick: Tick) -> None:
        """Start from a known tick (the restored checkpoint after a restart)."""
        self._last[tick.symbol] = _Last(tick.cumulative_volume, tick, 1, max(tick.trade_volume, 1))

    def forget(self, symbol: str) -> None:
        """The symbol (re)enters a slot: its trades while no slot watched it were never ours to miss,
        so continuity starts again from its first tick, as on its first subscription of the day."""
        self._last.pop(symbol, None)

    def observe(self, tick: Tick, market: str) -> GapMarker | None:
        last = self._last.get(tick.symbol)
        if last is None:
            self.seed(tick)
            return None
        if tick.cumulative_volume <= last.cumulative_volume:
            return None  # a replay or a repeat; validation deals with decreases
        expected = last.cumulative_volume + tick.trade_volume
        marker = None
        if tick.cumulative_volume > expected:
            missed = tick.cumulative_volume - expected
            mean_size = max(last.traded_volume / max(last.trades, 1), 1.0)
            self.missed_volume += missed
            marker = lost_range(
                key=("missed_trades", tick.symbol, f"{last.cumulative_volume}-{tick.cumulative_volume}"),
                track="scalp",
                provider=self._provider,
                market=market,
                symbols=[tick.symbol],
                start=last.tick.exchange_at,
                end=tick.exchange_at,
                reason="missed_trades",
                detected_by=self._detected_by,
                details={
                    "missed_volume": missed,
                    "estimated_trades": max(1, round(missed / mean_size)),
                    "cumulative_before": last.cumulative_volume,
                    "cumulative_after": tick.cumulative_volume,
                },
            )
        last.cumulative_volume = tick.cumulative_volume
        last.tick = tick
        last.trades += 1
        last.traded_volume += tick.trade_volume
        return marker
