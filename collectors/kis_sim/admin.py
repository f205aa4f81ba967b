"""The admin HTTP endpoint: health, ground truth and faults, for tests, the CLI and operators.

Routes (JSON; times RFC 3339 KST on both the real and the virtual clock, see `schema`):

* ``GET  /admin/health``                -> `schema.Health`
* ``GET  /admin/truth[?symbols=A,B]``   -> `schema.Truth` (symbols: those published on the WS feed,
  plus the requested ones, each advanced to now with the market's own totals)
* ``GET  /admin/trades[?symbols=A,B]``  -> `schema.PublishedTrades` (every trade record written,
  per symbol: the per-trade ground truth)
* ``GET  /admin/faults``                -> ``[FaultWindow]``
* ``POST /admin/faults``  body `schema.FaultSpec` (tagged by ``kind``) -> the opened `FaultWindow`
* ``DELETE /admin/faults[/ID]``         -> ``[FaultWindow]`` closed now
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import msgspec

from collectors.kis_sim.errors import FaultSpecError
from collectors.kis_sim.faults import FaultBoard
from collectors.kis_sim.httpbase import JsonHandler, StoppableHTTPServer
from collectors.kis_sim.schema import FaultSpec, Health, PublishedTrades, Truth

_fault_decoder = msgspec.json.Decoder(FaultSpec)


def make_handler(
    faults: FaultBoard,
    truth: Callable[[list[str]], Truth],
    health: Callable[[], Health],
    trades: Callable[[list[str]], PublishedTrades],
) -> type[JsonHandler]:
    class AdminHandler(JsonHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/admin/health":
                self.send_json(200, health())
            elif url.path == "/admin/truth":
                wanted = [s for v in parse_qs(url.query).get("symbols", []) for s in v.split(",") if s]
                self.send_json(200, truth(wanted))
            elif url.path == "/admin/trades":
                wanted = [s for v in parse_qs(url.query).get("symbols", []) for s in v.split(",") if s]
                self.send_json(200, trades(wanted))
            elif url.path == "/admin/faults":
                self.send_json(200, faults.windows())
            else:
                self.send_json(404, {"error": f"no route {url.path}"})

        def do_POST(self) -> None:
            body = self.read_body()
            if urlsplit(self.path).path != "/admin/faults":
                self.send_json(404, {"error": "no route"})
                return
            try:
                spec = _fault_decoder.decode(body)
                self.send_json(200, faults.add(spec))
            except (msgspec.DecodeError, FaultSpecError) as e:
                self.send_json(400, {"error": str(e)})

        def do_DELETE(self) -> None:
            path = urlsplit(self.path).path
            if path == "/admin/faults":
                self.send_json(200, faults.clear())
            elif path.startswith("/admin/faults/") and path.rsplit("/", 1)[-1].isdigit():
                self.send_json(200, faults.clear(int(path.rsplit("/", 1)[-1])))
            else:
                self.send_json(404, {"error": "no route"})

    return AdminHandler


def admin_server(
    host: str,
    port: int,
    faults: FaultBoard,
    truth: Callable[[list[str]], Truth],
    health: Callable[[], Health],
    trades: Callable[[list[str]], PublishedTrades],
) -> StoppableHTTPServer:
    return StoppableHTTPServer((host, port), make_handler(faults, truth, health, trades))
