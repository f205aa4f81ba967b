"""The simulator as a supervised worker (``observer worker sim``): it serves only where the config
says so (``[sim] enabled = true``, config/demo.toml, what `make run` uses). Otherwise it serves
nothing and says so once; it stays up (heartbeating) so the supervisor does not count it as failing
(`observer run` does not even start it then)."""

from __future__ import annotations

from collectors.kis_sim.server import SimOptions, Simulator
from observer.worker_base import Worker


class SimulatorWorker(Worker):
    name = "sim"
    tick_interval_s = 0.2

    def on_start(self) -> None:
        self.sim: Simulator | None = None
        if not self.cfg.sim.enabled:
            self.log.info("[sim] enabled is false: the simulator stays idle; collectors use the KIS servers")
            return
        self.sim = Simulator(SimOptions.from_config(self.cfg), self.clock).start()
        self.log.info("KIS simulator serving", extra={"urls": self.sim.urls, "account": self.cfg.sim.account})

    def on_stop(self) -> None:
        if self.sim is not None:
            self.sim.stop()

    def stats(self) -> dict[str, float]:
        if self.sim is None:
            return {"serving": 0.0}
        return {"serving": 1.0, "ws_sessions": float(len(self.sim.ws.sessions()))}
