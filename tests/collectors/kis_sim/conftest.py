"""Fixtures for the simulator suite: real servers on free ports, plain requests / websocket-client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import pytest
import requests
import websocket

from collectors.kis_sim.server import SimOptions, Simulator
from collectors.kis_sim.ws_session import WsOptions
from observer.clock import KST, Clock, ManualClock, SessionClock
from observer.config import SimConfig
from testkit.wait import poll_until

T = TypeVar("T")
APP_KEY = SimConfig().app_key
APP_SECRET = SimConfig().app_secret
MONDAY_0900 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=KST)
QUOT = "/uapi/domestic-stock/v1/quotations/"


def wait_for(check: Callable[[], T], timeout_s: float = 5.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail the test at the deadline."""
    return poll_until(check, timeout_s, 0.01, what, error=AssertionError)


SimFactory = Callable[..., Simulator]


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    """Start simulators (ports 0) and stop them all after the test."""
    started: list[Simulator] = []

    def factory(
        clock: Clock | None = None, wall: Clock | None = None, ws: WsOptions | None = None, **overrides: Any
    ) -> Simulator:
        opts = {"symbol_count": 300, **overrides}
        if ws is not None:
            opts["ws"] = ws
        sim = Simulator(SimOptions(**opts), clock or SessionClock(MONDAY_0900, speed=20.0), wall)
        started.append(sim.start())
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def wall() -> ManualClock:
    return ManualClock(datetime(2026, 1, 5, 8, 0, 0, tzinfo=KST))


class Kis:
    """A minimal protocol-following REST client."""

    def __init__(self, sim: Simulator, app_key: str = APP_KEY, app_secret: str = APP_SECRET):
        self.base = sim.urls["rest"]
        self.app_key, self.app_secret = app_key, app_secret
        self.http = requests.Session()
        self.token = ""

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.http.post(self.base + path, json=body, timeout=5)

    def get_token(self) -> str:
        r = self.post(
            "/oauth2/tokenP",
            {"grant_type": "client_credentials", "appkey": self.app_key, "appsecret": self.app_secret},
        )
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]
        return self.token

    def approval(self) -> str:
        r = self.post(
            "/oauth2/Approval",
            {"grant_type": "client_credentials", "appkey": self.app_key, "secretkey": self.app_secret},
        )
        assert r.status_code == 200, r.text
        return str(r.json()["approval_key"])

    def headers(self, tr_id: str, **extra: str) -> dict[str, str]:
        h = {
            "authorization": f"Bearer {self.token}",
            "appkey": self.app_key,
            "appsecret": self.app_secret,
            "tr_id": tr_id,
            "custtype": "P",
            "content-type": "application/json; charset=utf-8",
        }
        h.update(extra)
        return h

    def get(self, name: str, tr_id: str, params: dict[str, str], **headers: str) -> requests.Response:
        return self.http.get(
            self.base + QUOT + name, headers=self.headers(tr_id, **headers), params=params, timeout=5
        )

    def price(self, code: str) -> requests.Response:
        return self.get(
            "inquire-price", "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code}
        )


class Feed:
    """A minimal protocol-following WebSocket client (echoes PINGPONG, parses frames)."""

    def __init__(
        self,
        sim: Simulator,
        approval: str,
        path: str = "/tryitout",
        answer_ping: bool = True,
        **connect: Any,
    ):
        self.ws = websocket.create_connection(sim.urls["ws"] + path, timeout=5, **connect)
        self.approval = approval
        self.answer_ping = answer_ping
        self.pings = 0

    def send(self, tr_type: str, tr_id: str, tr_key: str, approval: str | None = None) -> None:
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "approval_key": approval or self.approval,
                        "custtype": "P",
                        "tr_type": tr_type,
                        "content-type": "utf-8",
                    },
                    "body": {"input": {"tr_id": tr_id, "tr_key": tr_key}},
                }
            )
        )

    def recv(self) -> str:
        text = self.ws.recv()
        assert isinstance(text, str)
        return text

    def next_json(self, timeout_s: float = 5.0, skip_data: bool = True) -> dict[str, Any]:
        """The next JSON message that is not a PINGPONG (data frames are skipped)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.recv()
            if text.startswith("{"):
                doc = json.loads(text)
                if doc["header"]["tr_id"] == "PINGPONG":
                    self.pings += 1
                    if self.answer_ping:
                        self.ws.send(text)
                    continue
                return dict(doc)
            if not skip_data:
                raise AssertionError(f"data frame while waiting for JSON: {text[:80]}")
        raise AssertionError("no JSON message")

    def close(self) -> None:
        self.ws.close()


def split_frame(text: str) -> tuple[str, str, int, list[list[str]]]:
    """(enc, tr_id, count, records) of a data frame; N = len(fields) / count."""
    enc, tr_id, count_text, payload = text.split("|", 3)
    count = int(count_text)
    fields = payload.split("^")
    per = len(fields) // count
    assert per * count == len(fields), (len(fields), count)
    return enc, tr_id, count, [fields[i * per : (i + 1) * per] for i in range(count)]


def busy_codes(sim: Simulator, n: int = 3) -> list[str]:
    codes = [x.code for x in sim.market.listings if x.activity == "busy"]
    codes.sort(key=lambda c: -sim.market.by_code[c].base_rate_per_s)
    return codes[:n]
