"""Track A fixtures: an in-process KIS simulator and a test-side receiver on the ingest hop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
import zmq

from collectors.kis_sim.server import SimOptions, Simulator
from observer.bus import ingest_decoder
from observer.clock import Clock
from observer.config import Config
from observer.reliable import ReliableReceiver, hop_endpoints
from observer.schema import IngestBody


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Simulator]]:
    """start_sim(clock, **SimOptions fields) -> a started Simulator on free ports; stopped after."""
    sims: list[Simulator] = []

    def start(clock: Clock, **options: Any) -> Simulator:
        sim = Simulator(SimOptions(**options), clock).start()
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.stop()


def sim_toml(sim: Simulator, extra: str = "") -> str:
    """Config TOML pointing the KIS client at `sim` (no credentials in the environment)."""
    return (
        f"[sim]\nenabled = true\nrest_port = {sim.rest_port}\nws_port = {sim.ws_port}\nadmin_port = {sim.admin_port}\n"
        f'account = "{sim.options.account}"\n' + extra
    )


class IngestTap:
    """The core's end of the ingest hop, for tests: receives, decodes and acknowledges everything."""

    def __init__(self, cfg: Config):
        self.ctx: zmq.Context[Any] = zmq.Context()
        data, ack = hop_endpoints(cfg, "ingest")
        self.receiver = ReliableReceiver(self.ctx, cfg, "test-core", data, ack)
        self.bodies: list[IngestBody] = []

    def poll(self) -> list[IngestBody]:
        for env in self.receiver.receive():
            self.bodies.append(ingest_decoder.decode(env.body))
            self.receiver.ack(env.producer, env.run_id, env.seq)
        self.receiver.republish_acks()
        return self.bodies

    def of(self, kind: type[msgspec.Struct]) -> list[Any]:
        return [b for b in self.bodies if isinstance(b, kind)]

    def close(self) -> None:
        self.receiver.close()
        self.ctx.destroy(linger=0)


@pytest.fixture
def tap_factory() -> Iterator[Callable[[Config], IngestTap]]:
    taps: list[IngestTap] = []

    def make(cfg: Config) -> IngestTap:
        tap = IngestTap(cfg)
        taps.append(tap)
        return tap

    yield make
    for tap in taps:
        tap.close()
