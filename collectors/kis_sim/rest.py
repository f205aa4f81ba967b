"""The KIS REST gateway: OAuth, quotation endpoints, chk-holiday and the KRX master files.

Order of checks for a ``/uapi`` call, as the gateway applies them: REST faults (timeout, 5xx) ->
``appkey`` (EGW00103) / ``appsecret`` (EGW00105) -> ``authorization: Bearer`` (EGW00205) -> token
(EGW00121 invalid, EGW00123 expired) -> rate limit per app key and wall-clock second (20/s real,
2/s mock: EGW00201) -> ``tr_id`` for the path (OPSQ0002) -> real-only endpoints on a mock account
(HTTP 404) -> query fields (OPSQ2001 market code, OPSQ2002 field length). Errors are
``{"rt_cd","msg_cd","msg1"}`` with HTTP 500 unless noted; OAuth errors are
``{"error_code","error_description"}`` with HTTP 403. Query names are matched case-insensitively.
Success bodies: ``{"output": ..., "rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다." + spaces}``.

Every /uapi request is counted in the ground truth (per key id and second), accepted or not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from collectors.kis_sim.auth import AuthRegistry, key_id
from collectors.kis_sim.errors import KisApiError, OAuthError
from collectors.kis_sim.faults import FaultBoard
from collectors.kis_sim.httpbase import JsonHandler, StoppableHTTPServer
from collectors.kis_sim.market import Market
from collectors.kis_sim.master import master_zip
from collectors.kis_sim.records import book_levels
from collectors.kis_sim.schema import ExpireTokens, RateLimit, RestError, RestTimeout
from collectors.kis_sim.truth import Ledger
from collectors.kis_sim.views import (
    blank_multprice_row,
    daily_rows,
    holiday_rows,
    inquire_price_output,
    multprice_row,
    unknown_price_output,
    volume_rank_rows,
)
from observer.clock import Clock

QUOTATIONS = "/uapi/domestic-stock/v1/quotations/"
OK_MSG = "정상처리 되었습니다.".ljust(40)
RATE_LIMITED = ("EGW00201", "초당 거래건수를 초과하였습니다.")
MARKET_CODES = frozenset({"J", "NX", "UN"})
MULTPRICE_MAX = 30


@dataclass(frozen=True, slots=True)
class Endpoint:
    tr_id: str
    real_only: bool
    handler: str


ENDPOINTS: dict[str, Endpoint] = {
    "inquire-price": Endpoint("FHKST01010100", False, "inquire_price"),
    "intstock-multprice": Endpoint("FHKST11300006", True, "multprice"),
    "inquire-daily-price": Endpoint("FHKST01010400", False, "daily_price"),
    "inquire-asking-price-exp-ccn": Endpoint("FHKST01010200", False, "asking_price"),
    "volume-rank": Endpoint("FHPST01710000", True, "volume_rank"),
    "chk-holiday": Endpoint("CTCA0903R", False, "chk_holiday"),
}


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, body (JSON document or raw bytes), extra headers."""

    status: int
    body: Any
    headers: dict[str, str]
    content_type: str = "application/json; charset=UTF-8"


class RestService:
    """The gateway logic, independent of HTTP plumbing (so it can be unit-tested directly)."""

    def __init__(
        self,
        market: Market,
        auth: AuthRegistry,
        faults: FaultBoard,
        ledger: Ledger,
        wall_clock: Clock,
        *,
        account: str = "real",
        rate_limit_per_s: int | None = None,
        sleep: Callable[[float], bool] | None = None,
    ):
        self.market = market
        self.auth = auth
        self.faults = faults
        self.ledger = ledger
        self.wall = wall_clock
        self.account = account
        self.rate_limit_per_s = rate_limit_per_s or (20 if account == "real" else 2)
        self._sleep = sleep or (lambda s: False)
        self._master_cache: dict[tuple[str, date], bytes] = {}

    # ------------------------------------------------------------------ entry point
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request. `headers` must have lower-case names."""
        path = urlsplit(raw_path).path
        timeouts = self.faults.active(RestTimeout)
        if timeouts and self._sleep(max(t.sleep_s for t in timeouts)):
            return Reply(503, b"stopping", {}, "text/plain")
        errors = self.faults.active(RestError)
        if errors:
            status = errors[0].status
            if status == 500:
                return Reply(
                    500, {"rt_cd": "1", "msg_cd": "EGW00300", "msg1": "GW라우팅 중 오류가 발생했습니다."}, {}
                )
            return Reply(status, f"<html><body>{status} Bad Gateway</body></html>".encode(), {}, "text/html")
        try:
            if method == "POST" and path.startswith("/oauth2/"):
                return self._oauth(path, body)
            if method == "GET" and path.startswith("/master/"):
                return self._master(path)
            if method == "GET" and path.startswith(QUOTATIONS):
                return self._uapi(path[len(QUOTATIONS) :], raw_path, headers)
        except OAuthError as e:
            return Reply(e.status, {"error_description": e.description, "error_code": e.error_code}, {})
        except KisApiError as e:
            return Reply(e.status, {"rt_cd": e.rt_cd, "msg_cd": e.msg_cd, "msg1": e.msg1}, {})
        return Reply(404, {"rt_cd": "1", "msg_cd": "EGW00003", "msg1": "존재하지 않는 URL 입니다."}, {})

    # ------------------------------------------------------------------ oauth
    def _oauth(self, path: str, body: bytes) -> Reply:
        try:
            doc = json.loads(body or b"{}")
        except ValueError as e:
            raise OAuthError(400, "EGW00002", "잘못된 요청입니다.(JSON)") from e
        if not isinstance(doc, dict):
            raise OAuthError(400, "EGW00002", "잘못된 요청입니다.(JSON)")
        app_key = str(doc.get("appkey", ""))
        if path == "/oauth2/tokenP":
            if doc.get("grant_type") != "client_credentials":
                raise OAuthError(403, "EGW00002", "grant_type이 유효하지 않습니다.")
            grant, now = self.auth.issue_token(app_key, str(doc.get("appsecret", "")))
            return Reply(200, grant.body(now), {})
        if path == "/oauth2/Approval":
            approval = self.auth.issue_approval(app_key, str(doc.get("secretkey", "")))
            return Reply(200, {"approval_key": approval}, {})
        if path == "/oauth2/revokeP":
            self.auth.revoke(app_key, str(doc.get("appsecret", "")), str(doc.get("token", "")))
            return Reply(200, {"code": 200, "message": "접근토큰 폐기에 성공하였습니다"}, {})
        return Reply(404, {"error_code": "EGW00003", "error_description": "존재하지 않는 URL 입니다."}, {})

    # ------------------------------------------------------------------ master files
    def _master(self, path: str) -> Reply:
        name = path.rsplit("/", 1)[-1]
        market = {"kospi_code.mst.zip": "KOSPI", "kosdaq_code.mst.zip": "KOSDAQ"}.get(name)
        if market is None:
            return Reply(404, b"not found", {}, "text/plain")
        day = self.market.now().date()
        key = (market, day)
        data = self._master_cache.get(key)
        if data is None:
            bases = {
                x.code: self.market.base_price(x, day) for x in self.market.listings if x.market == market
            }
            data = self._master_cache[key] = master_zip(self.market.listings, market, bases, day)
        return Reply(200, data, {}, "application/zip")

    # ------------------------------------------------------------------ quotations
    def _uapi(self, name: str, raw_path: str, headers: dict[str, str]) -> Reply:
        app_key = headers.get("appkey", "")
        if not self.auth.knows(app_key):
            raise KisApiError(500, "EGW00103", "유효하지 않은 AppKey입니다.")
        try:
            self.auth.check_account(app_key, headers.get("appsecret", ""))
        except OAuthError as e:
            raise KisApiError(500, e.error_code, e.description) from e
        kid = key_id(app_key)
        now = self.wall.now()
        count = self.ledger.rest_request(kid, now)
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.ledger.rest_outcome(kid, now, accepted=False)
            raise KisApiError(500, "EGW00205", "credentials_type이 유효하지 않습니다.(Bearer)")
        try:
            if self.faults.active(ExpireTokens):
                raise KisApiError(500, "EGW00123", "기간이 만료된 token 입니다.")
            self.auth.check_token(token.strip(), app_key)
            if count > self.rate_limit_per_s or self.faults.active(RateLimit):
                raise KisApiError(500, *RATE_LIMITED)
        except KisApiError:
            self.ledger.rest_outcome(kid, now, accepted=False)
            raise
        self.ledger.rest_outcome(kid, now, accepted=True)
        endpoint = ENDPOINTS.get(name)
        if endpoint is None:
            raise KisApiError(404, "EGW00003", "존재하지 않는 URL 입니다.")
        tr_id = headers.get("tr_id", "")
        if tr_id != endpoint.tr_id:
            raise KisApiError(500, "OPSQ0002", "없는 서비스 코드 입니다")
        if endpoint.real_only and self.account == "mock":
            raise KisApiError(404, "EGW00202", "모의투자에서는 해당업무가 제공되지 않습니다.")
        query = {k.upper(): v for k, v in parse_qsl(urlsplit(raw_path).query, keep_blank_values=True)}
        output: dict[str, Any] = getattr(self, "_q_" + endpoint.handler)(query)
        body = {**output, "rt_cd": "0", "msg_cd": "MCA00000", "msg1": OK_MSG}
        return Reply(
            200, body, {"tr_id": tr_id, "tr_cont": "", "gt_uid": f"SIM{int(now.timestamp() * 1e6):x}"}
        )

    @staticmethod
    def _market_code(query: dict[str, str], name: str = "FID_COND_MRKT_DIV_CODE") -> str:
        code = query.get(name, "")
        if code not in MARKET_CODES:
            raise KisApiError(500, "OPSQ2001", f"ERROR INPUT FIELD NOT FOUND  [{name}]", rt_cd="2")
        return code

    @staticmethod
    def _iscd(query: dict[str, str], name: str = "FID_INPUT_ISCD") -> str:
        code = query.get(name, "")
        if len(code) != 6:
            raise KisApiError(500, "OPSQ2002", f"ERROR INPUT FIELD SIZE [{name}]", rt_cd="2")
        return code

    def _q_inquire_price(self, query: dict[str, str]) -> dict[str, Any]:
        self._market_code(query)
        q = self.market.quote(self._iscd(query))
        return {"output": inquire_price_output(q) if q is not None else unknown_price_output()}

    def _q_multprice(self, query: dict[str, str]) -> dict[str, Any]:
        codes: list[str] = []
        for n in range(1, MULTPRICE_MAX + 1):
            code = query.get(f"FID_INPUT_ISCD_{n}")
            if code is None:
                continue
            self._market_code(query, f"FID_COND_MRKT_DIV_CODE_{n}")
            codes.append(self._iscd(query, f"FID_INPUT_ISCD_{n}"))
        if not codes:
            raise KisApiError(500, "OPSQ2001", "ERROR INPUT FIELD NOT FOUND  [FID_INPUT_ISCD_1]", rt_cd="2")
        quotes = self.market.quotes(codes)
        return {"output": [multprice_row(quotes[c]) if c in quotes else blank_multprice_row() for c in codes]}

    def _q_daily_price(self, query: dict[str, str]) -> dict[str, Any]:
        self._market_code(query)
        code = self._iscd(query)
        listing = self.market.by_code.get(code)
        if listing is None:
            return {"output": []}
        now = self.market.now()
        today = self.market.quote(code, now) if self.market.calendar.is_open(now.date()) else None
        period = query.get("FID_PERIOD_DIV_CODE", "D").upper()
        rows = daily_rows(listing, self.market.seed, self.market.calendar, today, now.date(), period)
        return {"output": rows}

    def _q_asking_price(self, query: dict[str, str]) -> dict[str, Any]:
        self._market_code(query)
        q = self.market.quote(self._iscd(query))
        if q is None:
            return {"output1": {}, "output2": {}}
        asks, bids, ask_qty, bid_qty = book_levels(q)
        out1: dict[str, str] = {
            "aspr_acpt_hour": f"{int(q.at_s) // 3600:02d}{int(q.at_s) % 3600 // 60:02d}00"
        }
        for i in range(10):
            out1[f"askp{i + 1}"] = str(asks[i])
            out1[f"bidp{i + 1}"] = str(bids[i])
            out1[f"askp_rsqn{i + 1}"] = str(ask_qty[i])
            out1[f"bidp_rsqn{i + 1}"] = str(bid_qty[i])
        out1["total_askp_rsqn"] = str(sum(ask_qty))
        out1["total_bidp_rsqn"] = str(sum(bid_qty))
        out2 = {
            "antc_cnpr": "0",
            "antc_cntg_vrss": "0",
            "antc_vol": "0",
            "stck_prpr": str(q.price),
            "stck_sdpr": str(q.base),
            "acml_vol": str(q.acml_vol),
        }
        return {"output1": out1, "output2": out2}

    def _q_volume_rank(self, query: dict[str, str]) -> dict[str, Any]:
        self._market_code(query)
        scope = query.get("FID_INPUT_ISCD", "0000")
        wanted = {"0001": "KOSPI", "1001": "KOSDAQ"}.get(scope)
        quotes = [q for q in self.market.all_quotes() if q.listing.group == "ST"]
        if wanted is not None:
            quotes = [q for q in quotes if q.listing.market == wanted]
        return {"output": volume_rank_rows(quotes)}

    def _q_chk_holiday(self, query: dict[str, str]) -> dict[str, Any]:
        text = query.get("BASS_DT", "")
        try:
            start = datetime.strptime(text, "%Y%m%d").date()
        except ValueError as e:
            raise KisApiError(500, "OPSQ2002", "ERROR INPUT FIELD SIZE [BASS_DT]", rt_cd="2") from e
        return {"output": holiday_rows(self.market.calendar, start), "ctx_area_nk": "", "ctx_area_fk": ""}


def make_handler(service: RestService) -> type[JsonHandler]:
    """A request handler class bound to `service`."""

    class RestHandler(JsonHandler):
        def _dispatch(self, method: str) -> None:
            body = self.read_body() if method == "POST" else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = service.handle(method, self.path, headers, body)
            if isinstance(reply.body, bytes):
                self.send_bytes(reply.status, reply.body, reply.content_type, reply.headers)
            else:
                self.send_json(reply.status, reply.body, reply.headers)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

    return RestHandler


def rest_server(service: RestService, host: str, port: int) -> StoppableHTTPServer:
    server = StoppableHTTPServer((host, port), make_handler(service))
    return server
