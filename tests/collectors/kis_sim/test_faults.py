"""Faults switched at run time through the admin endpoint, and the windows the ground truth reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import requests
import websocket

from observer.clock import ManualClock
from tests.collectors.kis_sim.conftest import Feed, Kis, SimFactory, busy_codes, split_frame, wait_for


def _fault(sim, **spec: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = requests.post(sim.urls["admin"] + "/admin/faults", json=spec, timeout=5)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _clear(sim) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return list(requests.delete(sim.urls["admin"] + "/admin/faults", timeout=5).json())


def _subscribed(sim, codes: list[str]) -> Feed:  # type: ignore[no-untyped-def]
    feed = Feed(sim, Kis(sim).approval())
    for code in codes:
        feed.send("1", "H0STCNT0", code)
        assert feed.next_json()["body"]["msg_cd"] == "OPSP0000"
    return feed


def _data_frames(feed: Feed, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        text = feed.recv()
        if not text.startswith("{"):
            out.append(text)
    return out


def test_admin_rejects_bad_specs(make_sim: SimFactory) -> None:
    sim = make_sim()
    for spec in (
        {"kind": "nope"},
        {"kind": "delay", "delay_ms": -1},
        {"kind": "rest_5xx", "status": 404},
        {"kind": "silence", "bogus": 1},
    ):
        assert requests.post(sim.urls["admin"] + "/admin/faults", json=spec, timeout=5).status_code == 400
    health = requests.get(sim.urls["admin"] + "/admin/health", timeout=5).json()
    assert (
        health["status"] == "ok"
        and health["market_open"] is True
        and health["urls"]["ws"].startswith("ws://")
    )


def test_silence_chosen_symbols(make_sim: SimFactory) -> None:
    sim = make_sim()
    quiet_code, loud_code = busy_codes(sim, 2)
    feed = _subscribed(sim, [quiet_code, loud_code])
    window = _fault(sim, kind="silence", symbols=[quiet_code])
    assert (
        window["active"] and window["end"] is None and window["start"]["virtual"].startswith("2026-01-05T09:")
    )
    # frames already queued before the window may still arrive (a busy market queues many): skip
    # to the first frame traded after the window opened; from there on only loud remains
    opened = window["start"]["virtual"][11:19].replace(":", "")
    wait_for(lambda: split_frame(_data_frames(feed, 1)[0])[3][0][1] > opened, what="a frame after the window")
    for text in _data_frames(feed, 10):
        assert {r[0] for r in split_frame(text)[3]} == {loud_code}
    closed = _clear(sim)
    assert closed[0]["id"] == window["id"] and closed[0]["end"]["real"] >= closed[0]["start"]["real"]
    wait_for(
        lambda: quiet_code in {r[0] for t in _data_frames(feed, 1) for r in split_frame(t)[3]},
        what="silenced symbol back",
    )
    feed.close()


def test_blackhole_then_recovery(make_sim: SimFactory) -> None:
    sim = make_sim()
    code = busy_codes(sim, 1)[0]
    feed = _subscribed(sim, [code])
    _data_frames(feed, 2)
    window = _fault(sim, kind="blackhole", duration_s=0.6)
    feed.ws.settimeout(0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        while True:
            feed.recv()  # drains what was in flight, then nothing: the socket stays open
    feed.ws.settimeout(5)
    _data_frames(feed, 2)  # the window ended by itself
    faults = sim.truth().faults
    assert faults[0].id == window["id"] and not faults[0].active and faults[0].end is not None
    assert faults[0].end.virtual > faults[0].start.virtual
    feed.close()


def test_drop_sessions_refuses_for_a_while(make_sim: SimFactory) -> None:
    sim = make_sim()
    feed = _subscribed(sim, busy_codes(sim, 1))
    _fault(sim, kind="drop_sessions", duration_s=0.5)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        while True:
            feed.recv()
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(sim.urls["ws"], timeout=5)
    ok = wait_for(lambda: not sim.faults.windows()[0].active, what="window over")
    assert ok
    again = _subscribed(sim, busy_codes(sim, 1))
    _data_frames(again, 1)
    again.close()
    assert any(s.close_reason == "dropped_by_fault" for s in sim.truth().sessions)


def test_delay_truncate_corrupt(make_sim: SimFactory) -> None:
    sim = make_sim()
    code = busy_codes(sim, 1)[0]
    feed = _subscribed(sim, [code])
    _fault(sim, kind="truncate", duration_s=None, every_n=1)
    damaged = 0
    for text in _data_frames(feed, 30):
        try:
            split_frame(text)
        except (AssertionError, ValueError):
            damaged += 1
    assert damaged >= 10
    _clear(sim)
    _fault(sim, kind="corrupt", every_n=2)
    assert any("?" in t for t in _data_frames(feed, 30))
    _clear(sim)
    _fault(sim, kind="delay", delay_ms=400)
    feed.send("1", "H0STASP0", code)
    import time

    sent = time.monotonic()
    assert feed.next_json()["body"]["msg_cd"] == "OPSP0000"
    assert time.monotonic() - sent >= 0.35
    _clear(sim)
    truth = sim.truth()
    assert truth.symbols[code].damaged_records > 0 and truth.sessions[0].frames["damaged"] > 0
    assert [w.kind for w in truth.faults] == ["truncate", "corrupt", "delay"] and all(
        w.end for w in truth.faults
    )
    feed.close()


def test_rest_faults(make_sim: SimFactory) -> None:
    wall = ManualClock(datetime.fromisoformat("2026-01-05T08:00:00+09:00"))
    sim = make_sim(wall=wall)
    kis = Kis(sim)
    kis.get_token()
    code = busy_codes(sim, 1)[0]
    _fault(sim, kind="rest_5xx")
    r = kis.price(code)
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW00300"
    _clear(sim)
    _fault(sim, kind="rest_5xx", status=502)
    assert kis.price(code).status_code == 502
    _clear(sim)
    _fault(sim, kind="rate_limit")
    r = kis.price(code)
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW00201"
    _clear(sim)
    _fault(sim, kind="expire_tokens")
    r = kis.price(code)
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW00123"
    wall.advance(61)
    kis.get_token()
    assert kis.price(code).status_code == 200
    _fault(sim, kind="expire_tokens", duration_s=None)
    assert kis.price(code).json()["msg_cd"] == "EGW00123"
    _clear(sim)
    _fault(sim, kind="rest_timeout", sleep_s=0.8)
    with pytest.raises(requests.Timeout):
        kis.http.get(
            kis.base + "/uapi/domestic-stock/v1/quotations/inquire-price",
            headers=kis.headers("FHKST01010100"),
            params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code},
            timeout=0.3,
        )
    _clear(sim)
    kinds = [w["kind"] for w in requests.get(sim.urls["admin"] + "/admin/faults", timeout=5).json()]
    assert kinds == ["rest_5xx", "rest_5xx", "rate_limit", "expire_tokens", "expire_tokens", "rest_timeout"]
