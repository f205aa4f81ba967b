"""`Simulator`: market + REST gateway + WebSocket feed + admin endpoint, started and stopped together.

URL layout once started (ports may be 0 in `SimOptions`; the bound ones are on the instance)::

    http://HOST:REST_PORT/oauth2/{tokenP,Approval,revokeP}
    http://HOST:REST_PORT/uapi/domestic-stock/v1/quotations/{inquire-price,intstock-multprice,...}
    http://HOST:REST_PORT/master/{kospi_code.mst.zip,kosdaq_code.mst.zip}
    ws://HOST:WS_PORT/<any path>
    http://HOST:ADMIN_PORT/admin/{health,truth,faults}

The virtual clock is the shared session clock (`observer.clock.SessionClock` from the config's
``[clock]`` section and ``$OBSERVER_CLOCK_ANCHOR``) or any injected `Clock`; the wall clock
(tokens, rate windows, PINGPONG, fault windows) is injectable too.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date

from collectors.kis_sim.admin import admin_server
from collectors.kis_sim.auth import AuthRegistry
from collectors.kis_sim.calendar import SimCalendar
from collectors.kis_sim.faults import FaultBoard, stamp
from collectors.kis_sim.httpbase import StoppableHTTPServer
from collectors.kis_sim.market import Market
from collectors.kis_sim.rest import RestService, rest_server
from collectors.kis_sim.rfc6455 import WsServer
from collectors.kis_sim.schema import ExpireTokens, Health, PublishedTrades, Truth
from collectors.kis_sim.truth import Ledger
from collectors.kis_sim.universe import build_listings
from collectors.kis_sim.ws_service import KisWsService
from collectors.kis_sim.ws_session import WsOptions
from observer.clock import Clock, SessionClock, SystemClock, anchor_from_env, parse_start_at
from observer.config import Config, SimConfig, sim_accounts

log = logging.getLogger(__name__)
_SIM_DEFAULTS = SimConfig()


@dataclass(frozen=True)
class SimOptions:
    """Everything the simulator can be told. `from_config` maps the shared config onto it."""

    host: str = "127.0.0.1"
    rest_port: int = 0
    ws_port: int = 0
    admin_port: int = 0
    seed: int = 20_260_101
    symbol_count: int = 4_000
    account: str = "real"
    app_key: str = _SIM_DEFAULTS.app_key  # KIS-shaped: 36 characters
    app_secret: str = _SIM_DEFAULTS.app_secret  # 180 characters
    activity_scale: float = 1.0  # every trade rate x this (`activity`)
    keys: int = 1  # accounts: app_key/app_secret and keys - 1 derived from them (`sim_accounts`)
    extra_accounts: dict[str, str] = field(default_factory=dict)
    holidays: tuple[date, ...] = ()
    weekends_closed: bool = True
    rate_limit_per_s: int | None = None  # None: 20 (real) / 2 (mock)
    token_ttl_s: float = 86_400.0
    token_reuse_s: float = 6 * 3_600.0
    token_min_interval_s: float = 60.0
    # give every symbol its first look in a background thread at start, so the first full-market
    # query (a multprice sweep, volume-rank) does not pay for it
    warm_up: bool = True
    ws: WsOptions = field(default_factory=WsOptions)

    @classmethod
    def from_config(cls, cfg: Config, **overrides: object) -> SimOptions:
        """The config's ``[sim]`` section, holidays from ``[calendar]`` and ``[sim]``; weekends are closed (a
        time-only session start already rolls a weekend forward to Monday, see `parse_start_at`)."""
        sim = cfg.sim
        base = cls(
            host=sim.host,
            rest_port=sim.rest_port,
            ws_port=sim.ws_port,
            admin_port=sim.admin_port,
            seed=sim.seed,
            symbol_count=sim.symbol_count,
            account=sim.account,
            app_key=sim.app_key,
            app_secret=sim.app_secret,
            activity_scale=sim.activity_scale,
            keys=sim.keys,
            holidays=tuple(cfg.calendar.holidays) + tuple(sim.holidays),
            weekends_closed=True,
        )
        return replace(base, **overrides)  # type: ignore[arg-type]


def clock_from_config(cfg: Config, today: date | None = None) -> Clock:
    """The shared virtual clock: wall time in ``real`` mode, else the session clock."""
    if cfg.clock.mode == "real":
        return SystemClock()
    wall_today = today or SystemClock().now().date()
    start = parse_start_at(cfg.clock.start_at, wall_today)
    return SessionClock(start, cfg.clock.speed, anchor_from_env())


class Simulator:
    """The whole simulator. `start()` binds and serves on threads; `stop()` joins them all."""

    def __init__(self, options: SimOptions, clock: Clock, wall_clock: Clock | None = None):
        self.options = options
        self.clock = clock
        self.wall = wall_clock or SystemClock()
        self.calendar = SimCalendar(options.holidays, options.weekends_closed)
        self.market = Market(
            build_listings(options.seed, options.symbol_count),
            options.seed,
            clock,
            self.calendar,
            options.activity_scale,
        )
        accounts = {
            **dict(sim_accounts(options.app_key, options.app_secret, options.keys)),
            **options.extra_accounts,
        }
        self.auth = AuthRegistry(
            accounts,
            self.wall,
            token_ttl_s=options.token_ttl_s,
            token_reuse_s=options.token_reuse_s,
            token_min_interval_s=options.token_min_interval_s,
            seed=options.seed,
        )
        self.faults = FaultBoard(self.wall, clock)
        self.faults.on_add(self._instant_faults)
        self.ledger = Ledger()
        self._stopping = threading.Event()
        self.rest = RestService(
            self.market,
            self.auth,
            self.faults,
            self.ledger,
            self.wall,
            account=options.account,
            rate_limit_per_s=options.rate_limit_per_s,
            sleep=self._stopping.wait,
        )
        self.ws = KisWsService(self.market, self.auth, self.faults, self.ledger, self.wall, options.ws)
        self._rest_server: StoppableHTTPServer | None = None
        self._admin_server: StoppableHTTPServer | None = None
        self._ws_server: WsServer | None = None
        self._warm_up: threading.Thread | None = None
        self.rest_port = self.ws_port = self.admin_port = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Simulator:
        o = self.options
        self._rest_server = rest_server(self.rest, o.host, o.rest_port)
        self._admin_server = admin_server(
            o.host, o.admin_port, self.faults, self.truth, self.health, self.trades
        )
        self._ws_server = WsServer(o.host, o.ws_port, self.ws.handle, gate=self.ws.accepting)
        self.rest_port = self._rest_server.port
        self.admin_port = self._admin_server.port
        self.ws_port = int(self._ws_server.port)
        self._rest_server.serve_in_thread("sim-rest")
        self._admin_server.serve_in_thread("sim-admin")
        self._ws_server.start()
        self.ws.start()
        if o.warm_up:
            self._warm_up = threading.Thread(target=self._warm_up_market, name="sim-warm-up", daemon=True)
            self._warm_up.start()
        return self

    def _warm_up_market(self) -> None:
        started = time.monotonic()
        done = self.market.warm_up(self._stopping)
        log.info(
            "simulator warm-up: %d symbols advanced to %s in %.2f s",
            done,
            self.market.now().isoformat(timespec="seconds"),
            time.monotonic() - started,
        )

    def stop(self) -> None:
        self._stopping.set()
        if self._warm_up is not None:
            self._warm_up.join(10.0)
        self.ws.stop()
        for server in (self._ws_server, self._rest_server, self._admin_server):
            if server is not None:
                server.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ URLs
    @property
    def urls(self) -> dict[str, str]:
        h = self.options.host
        return {
            "rest": f"http://{h}:{self.rest_port}",
            "ws": f"ws://{h}:{self.ws_port}",
            "admin": f"http://{h}:{self.admin_port}",
            "master": f"http://{h}:{self.rest_port}/master",
        }

    # ------------------------------------------------------------------ reports
    def truth(self, symbols: list[str] | None = None) -> Truth:
        """Ground truth now: published records per symbol and session, fault windows, REST counts."""
        codes = set(symbols or ()) | set(self.ledger.published_codes())
        quotes = self.market.quotes(sorted(codes))
        totals = {c: (q.trades, q.acml_vol) for c, q in quotes.items()}
        return Truth(
            at=stamp(self.wall.now(), self.market.now()),
            symbols=self.ledger.symbols(totals),
            sessions=self.ledger.sessions(),
            faults=self.faults.windows(),
            rest=self.ledger.rest(),
        )

    def trades(self, symbols: list[str] | None = None) -> PublishedTrades:
        """Every trade record the WS feed wrote, per symbol (`symbols` empty: all)."""
        return PublishedTrades(
            at=stamp(self.wall.now(), self.market.now()),
            day=self.market.now().date().isoformat(),
            symbols=self.ledger.trades(symbols or ()),
        )

    def health(self) -> Health:
        now = self.market.now()
        pump_alive = self.ws.pump_alive()
        return Health(
            status="ok" if pump_alive else "degraded",
            at=stamp(self.wall.now(), now),
            market_open=self.market.is_open_at(now),
            sessions=len(self.ws.sessions()),
            symbols=len(self.market.listings),
            account=self.options.account,
            urls=self.urls,
            pump_alive=pump_alive,
            pump_errors=self.ws.pump_errors,
            warmed_up=self.market.warmed_up,
        )

    def _instant_faults(self, spec: object) -> None:
        if isinstance(spec, ExpireTokens):
            self.auth.expire_all()
