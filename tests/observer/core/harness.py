"""A real core process between a test-side collector (ReliableSender on the ingest hop) and a
test-side writer stand-in (ReliableReceiver on the archive hop that records and acks), on a
shared session clock so that Track B is open whatever the wall time is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import zmq

from observer.bus import Forwarder, archive_decoder, context
from observer.clock import ANCHOR_ENV, KST, SessionClock, parse_start_at
from observer.config import Config, load_config
from observer.reliable import ReliableReceiver, ReliableSender, hop_endpoints
from observer.schema import (
    ArchiveRecord,
    EventBody,
    PatternRecord,
    QuoteSnapshot,
    SweepSummary,
    SystemEvent,
    Tick,
    TradeFrame,
)
from observer.universe import UniverseEntry, UniverseSnapshot, write_snapshot_once
from testkit.config import write_config
from tests.conftest import REPO, wait_for

T = TypeVar("T")

BASE_TOML = """
[provider]
markets = ["KOSPI"]
[clock]
mode = "session"
start_at = "{start_at}"
speed = 1.0
[bus]
resend_after_ms = 300
resend_max_ms = 1000
ack_republish_ms = 200
{bus_extra}
[core]
stats_interval_s = 0.5
slot_publish_interval_s = 0.5
slot_rebalance_s = 0.2
rejection_event_interval_s = 0.5
restart_catchup_ms = 1500
sample_grace_ms = 150
[supervisor]
heartbeat_interval_ms = 500
"""

_pattern = msgspec.json.Decoder(PatternRecord)
_event = msgspec.json.Decoder(SystemEvent)


def write_universe(cfg: Config, day: Any, symbols: list[str], prev_close: int = 10_000) -> None:
    snap = UniverseSnapshot(
        date=day,
        market="KOSPI",
        provider="kis",
        created_at=datetime.now(KST),
        source="test",
        min_prev_close_krw=4_000,
        symbols=[UniverseEntry(symbol=s, name=s, market="KOSPI", prev_close=prev_close) for s in symbols],
    )
    write_snapshot_once(Path(cfg.paths.universe_dir), snap)


class WriterStandIn:
    """Receives ArchiveRecords, keeps them, acks each at once (as if fsynced)."""

    def __init__(self, ctx: zmq.Context[Any], cfg: Config):
        self.rx = ReliableReceiver(ctx, cfg, "writer", *hop_endpoints(cfg, "archive"))
        self.records: list[ArchiveRecord] = []

    def poll(self) -> None:
        for env in self.rx.receive():
            self.records.append(archive_decoder.decode(env.body))
            self.rx.ack(env.producer, env.run_id, env.seq)
        self.rx.republish_acks()

    def ids(self, track: str | None = None) -> Counter[str]:
        return Counter(r.record_id for r in self.records if track is None or r.track == track)

    def lines(self, track: str) -> list[ArchiveRecord]:
        return [r for r in self.records if r.track == track]

    def patterns(self, track: str) -> list[PatternRecord]:
        return [_pattern.decode(r.line) for r in self.records if r.track == track]

    def events(self, type_: str | None = None) -> list[SystemEvent]:
        out = []
        for r in self.records:
            if r.track == "system" and b'"kind":"system_event"' in bytes(r.line):
                e = _event.decode(r.line)
                if type_ is None or e.type == type_:
                    out.append(e)
        return out


class CoreHarness:
    def __init__(
        self,
        base: Path,
        toml: str = "",
        start_at: str = "10:00:00",
        forwarder: bool = False,
        replay_buffer_bytes: int | None = None,
        bus_extra: str = "",
    ):
        self.base = base
        self.anchor = time.time()
        self.cfg_path = write_config(base, BASE_TOML.format(start_at=start_at, bus_extra=bus_extra) + toml)
        self.cfg = load_config(self.cfg_path, env={})
        today = datetime.now(KST).date()
        self.clock = SessionClock(parse_start_at(start_at, today), 1.0, self.anchor)
        self.day = self.clock.now().date()
        self.ctx = context()
        self.forwarder: Forwarder | None = None
        if forwarder:
            self.forwarder = Forwarder(self.ctx, self.cfg)
            self.forwarder.start()
        self.writer = WriterStandIn(self.ctx, self.cfg)
        self.collector = ReliableSender(
            self.ctx,
            self.cfg,
            "ws-test",
            *hop_endpoints(self.cfg, "ingest"),
            replay_buffer_bytes=replay_buffer_bytes,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.subscriber: Any = None
        self._cum: dict[str, int] = {}
        self._last_price: dict[str, int] = {}

    # -- process control
    def start_core(self) -> None:
        env = dict(os.environ, **{ANCHOR_ENV: repr(self.anchor)})
        err = open(self.base / "core.stderr", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "observer", "--config", str(self.cfg_path), "worker", "observer"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        err.close()

    def kill_core(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.collector.close()
        self.writer.rx.close()
        if self.subscriber is not None:
            self.subscriber.close()
        if self.forwarder is not None:
            self.forwarder.stop()

    def poll(self) -> None:
        self.collector.pump()
        self.writer.poll()
        if self.subscriber is not None:
            while (item := self.subscriber.recv_nowait()) is not None:
                self.events_seen.append(item)

    def until(self, predicate: Callable[[], T], timeout_s: float = 15.0, what: str = "") -> T:
        """Poll the test-side sockets while waiting for `predicate` (with a deadline)."""

        def check() -> T:
            self.poll()
            return predicate()

        return wait_for(check, timeout_s, what=what)

    def subscribe(self, topics: list[str]) -> None:
        from observer.bus import EventSubscriber

        self.subscriber = EventSubscriber(self.ctx, self.cfg, topics)
        self.events_seen: list[tuple[str, EventBody]] = []

    def publish(self, topic: str, body: EventBody) -> None:
        from observer.bus import EventPublisher

        if not hasattr(self, "_pub"):
            self._pub = EventPublisher(self.ctx, self.cfg)
        self._pub.publish(topic, body)

    # -- inputs
    def tick(
        self,
        symbol: str,
        *,
        price: int | None = None,
        volume: int = 10,
        at: datetime | None = None,
        **overrides: Any,
    ) -> Tick:
        at = at or self.clock.now()
        price = price if price is not None else self._last_price.get(symbol, 10_000)
        self._last_price[symbol] = price
        cum = self._cum.get(symbol, 0) + volume
        self._cum[symbol] = cum
        fields: dict[str, Any] = dict(
            symbol=symbol,
            exchange_at=at,
            received_at=at,
            price=price,
            change=price - 10_000,
            open=10_000,
            high=max(price, 10_500),
            low=min(price, 9_500),
            trade_volume=volume,
            cumulative_volume=cum,
            cumulative_value=cum * price,
            ask_price=price + 10,
            bid_price=price,
        )
        fields.update(overrides)
        return Tick(**fields)

    def frame(self, ticks: list[Tick], raw: str = "0|H0STCNT0|001|...", **kw: Any) -> TradeFrame:
        at = ticks[0].received_at if ticks else self.clock.now()
        return TradeFrame(
            provider="kis", market="KOSPI", received_at=at, raw=raw, tr_id="H0STCNT0", ticks=ticks, **kw
        )

    def snapshot(
        self, symbol: str, sweep_id: str, *, price: int = 10_000, volume: int = 1_000, **kw: Any
    ) -> QuoteSnapshot:
        fields: dict[str, Any] = dict(
            provider="kis",
            market="KOSPI",
            symbol=symbol,
            sweep_id=sweep_id,
            exchange_at=None,
            received_at=self.clock.now(),
            price=price,
            open=10_000,
            high=max(price, 10_000),
            low=min(price, 10_000),
            volume=volume,
            prev_close=10_000,
            bid_price=price - 10,
            ask_price=price,
        )
        fields.update(kw)
        return QuoteSnapshot(**fields)

    def sweep_summary(self, sweep_id: str, symbols: int) -> SweepSummary:
        """What the rest-collector sends when a sweep of `symbols` is over."""
        return SweepSummary(
            record_id=f"evt:rest-collector:test:{sweep_id}",
            at=self.clock.now(),
            source="rest-collector",
            provider="kis",
            severity="INFO",
            sweep_id=sweep_id,
            duration_s=1.0,
            calls=symbols,
            universe=symbols,
            recorded=symbols,
            failed=0,
            collection_rate=1.0,
        )

    def send(self, body: msgspec.Struct) -> int:
        return self.collector.send(body)

    def now(self) -> datetime:
        return self.clock.now()

    def later(self, seconds: float) -> datetime:
        return self.clock.now() + timedelta(seconds=seconds)
