"""Wrong answers never become data: a stand-in KIS server (a real HTTP proxy in front of the
simulator) that answers every code with one symbol's body. The rest-collector rejects every row
whose code (``inter_shrn_iscd`` in multprice, ``stck_shrn_iscd`` in inquire-price) is not the code
it asked for, counts them and reports them; nothing of them reaches the core (what the core
receives is what is archived)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
import zmq

from collectors.kis.provider import KisProvider
from collectors.kis_sim.server import Simulator
from collectors.rest_worker import RestCollectorWorker
from observer.bus import EventPublisher
from observer.clock import KST, ManualClock
from observer.config import Secrets
from observer.schema import GapMarker, QuoteSnapshot, SweepSummary, SystemEvent
from testkit.config import make_config
from tests.collectors.conftest import IngestTap, sim_toml
from tests.conftest import wait_for


class OneBodyProxy(BaseHTTPRequestHandler):
    """Forwards to the simulator; while `lie_as` is set, every quotation asks for that one code."""

    upstream: ClassVar[str] = ""
    lie_as: ClassVar[str] = ""

    def log_message(self, *_: Any) -> None:
        pass

    def _forward(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qsl(url.query, keep_blank_values=True)
        if self.lie_as:
            query = [(k, self.lie_as if k.startswith("FID_INPUT_ISCD") else v) for k, v in query]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        answer = requests.request(
            method, f"{self.upstream}{url.path}?{urlencode(query)}", headers=headers, data=body, timeout=10
        )
        self.send_response(answer.status_code)
        for k, v in answer.headers.items():
            if k.lower() in ("content-type", "tr_id", "tr_cont", "gt_uid"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")


@contextmanager
def one_body_proxy(sim: Simulator) -> Iterator[type[OneBodyProxy]]:
    handler = type("Proxy", (OneBodyProxy,), {"upstream": f"http://127.0.0.1:{sim.rest_port}", "lie_as": ""})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.port = server.server_address[1]  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_answering_every_code_with_one_body_archives_none_of_it(
    start_sim: Callable[..., Simulator], tap_factory: Callable[..., IngestTap], short_tmp: Path
) -> None:
    clock = ManualClock(datetime(2026, 3, 13, 8, 59, 50, tzinfo=KST))
    sim = start_sim(clock, symbol_count=160)
    with one_body_proxy(sim) as proxy:
        port = proxy.port  # type: ignore[attr-defined]
        cfg = make_config(
            short_tmp, sim_toml(sim).replace(f"rest_port = {sim.rest_port}", f"rest_port = {port}")
        )
        tap = tap_factory(cfg)
        provider = KisProvider.from_config(cfg, Secrets({}), clock=clock)
        worker = RestCollectorWorker(cfg, provider=provider, clock=clock, secrets=Secrets({}))
        worker.ctx = zmq.Context()
        worker.events = EventPublisher(worker.ctx, cfg)
        worker.on_start()

        def tick_until(pred: Callable[[], Any], what: str) -> Any:
            def step() -> Any:
                worker.on_tick()
                tap.poll()
                return pred()

            return wait_for(step, timeout_s=60, interval_s=0.01, what=what)

        try:
            symbols = tick_until(
                lambda: worker.plan and worker.plan.symbols, "the day's universe (honest server)"
            )
            universe = dict(symbols)
            liar = sorted(universe)[0]
            proxy.lie_as = liar  # from now on every code is answered with `liar`'s body
            clock.set(datetime(2026, 3, 13, 9, 0, tzinfo=KST))
            [summary] = tick_until(lambda: tap.of(SweepSummary), "the 09:00 sweep")
        finally:
            worker.on_stop()
            worker.events.close()
            worker.ctx.destroy(linger=0)

    quotes = tap.of(QuoteSnapshot)
    assert {q.symbol for q in quotes} <= {liar}  # only the one code that was really answered
    assert len(quotes) <= 1
    others = len(universe) - 1
    assert summary.wrong_code >= others > 50  # every other code rejected, counted
    [rejected] = [e for e in tap.of(SystemEvent) if e.type == "wrong_code_rejected"]
    assert rejected.severity == "WARNING" and rejected.details["rejected"] == summary.wrong_code
    examples = rejected.details["examples"]
    assert isinstance(examples, list) and examples and all(x.endswith(f"->{liar}") for x in examples)
    # the rejected symbols are not silently absent: the sweep's gap marker names them
    [failed] = [g for g in tap.of(GapMarker) if g.record_id.endswith(":failed")]
    assert set(failed.symbols) == set(universe) - {q.symbol for q in quotes}
    assert "wrong_code" in failed.details["codes"]  # type: ignore[operator]
