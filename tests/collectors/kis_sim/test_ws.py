"""WebSocket conformance: acks and codes, limits, sessions, frames, PINGPONG, RFC 6455 framing."""

from __future__ import annotations

import itertools
import json
import socket
from datetime import datetime

import pytest
import requests
import websocket

from collectors.kis_sim.ws_session import WsOptions
from observer.clock import KST, ManualClock
from tests.collectors.kis_sim.conftest import Feed, Kis, SimFactory, busy_codes, split_frame, wait_for


def _feed(sim, path: str = "/tryitout", **kw) -> Feed:  # type: ignore[no-untyped-def]
    return Feed(sim, Kis(sim).approval(), path, **kw)


def _body(doc: dict) -> tuple[str, str]:  # type: ignore[type-arg]
    return doc["body"]["rt_cd"], doc["body"]["msg_cd"]


def test_subscribe_frames_unsubscribe(make_sim: SimFactory) -> None:
    sim = make_sim()
    code = busy_codes(sim)[0]
    feed = _feed(sim, path="/any/path/at/all")
    feed.send("1", "H0STCNT0", code)
    ack = feed.next_json()
    assert ack["header"] == {"tr_id": "H0STCNT0", "tr_key": code, "encrypt": "N"}
    assert ack["body"]["msg1"] == "SUBSCRIBE SUCCESS" and _body(ack) == ("0", "OPSP0000")
    assert set(ack["body"]["output"]) == {"iv", "key"}
    frames = 0
    while frames < 5:
        text = feed.recv()
        if text.startswith("{"):
            continue
        enc, tr_id, count, records = split_frame(text)
        assert enc == "0" and tr_id == "H0STCNT0" and 1 <= count <= 20 and text[11:15] == f"{count:03d}|"
        assert all(len(r) == 46 and r[0] == code for r in records)
        frames += 1
    feed.send("1", "H0STCNT0", code)
    assert _body(feed.next_json()) == ("1", "OPSP0002")
    feed.send("2", "H0STCNT0", "000000")
    assert _body(feed.next_json()) == ("1", "OPSP0003")
    feed.send("2", "H0STCNT0", code)
    ack = feed.next_json()
    assert _body(ack) == ("0", "OPSP0001") and ack["body"]["msg1"] == "UNSUBSCRIBE SUCCESS"
    feed.close()


def test_41_registrations_then_max_subscribe_over(make_sim: SimFactory) -> None:
    sim = make_sim()
    busy = busy_codes(sim, 1)[0]
    others = [x.code for x in sim.market.listings if x.code != busy][:40]
    feed = _feed(sim)
    for code in [busy, *others]:
        feed.send("1", "H0STCNT0", code)
        assert _body(feed.next_json()) == ("0", "OPSP0000")
    feed.send("1", "H0STCNT0", sim.market.listings[-1].code)
    assert _body(feed.next_json()) == ("1", "OPSP0008")
    feed.send("1", "H0STASP0", busy)  # counted per (tr_id, tr_key): also over
    assert _body(feed.next_json()) == ("1", "OPSP0008")
    seen = set()
    while busy not in seen:
        text = feed.recv()
        if not text.startswith("{"):
            seen.update(r[0] for r in split_frame(text)[3])
    feed.send("2", "H0STCNT0", others[0])
    assert _body(feed.next_json()) == ("0", "OPSP0001")
    feed.send("1", "H0STASP0", busy)
    assert _body(feed.next_json()) == ("0", "OPSP0000")
    feed.close()


def test_error_codes(make_sim: SimFactory) -> None:
    sim = make_sim()
    code = busy_codes(sim)[0]
    feed = _feed(sim)
    feed.send("1", "H0STCNT0", code, approval="00000000-0000-0000-0000-000000000000")
    assert _body(feed.next_json()) == ("1", "OPSP0011")
    feed.ws.send("this is not json")
    rt_cd, msg_cd = _body(feed.next_json())
    assert rt_cd == "9" and msg_cd.startswith("OPSP")
    feed.ws.send(json.dumps({"header": {"approval_key": feed.approval}}))
    assert _body(feed.next_json())[0] == "9"
    feed.send("1", "H0XXXXX0", code)
    assert _body(feed.next_json()) == ("9", "OPSP8991")
    feed.send("1", "H0STCNT0", "")
    assert _body(feed.next_json()) == ("9", "OPSP8992")
    feed.send("0", "H0STCNT0", code)  # "0" is not unsubscribe, whatever some docstrings say
    assert _body(feed.next_json())[0] == "9"
    feed.close()


def test_one_session_per_app_key(make_sim: SimFactory) -> None:
    sim = make_sim()
    code = busy_codes(sim)[0]
    first = _feed(sim)
    first.send("1", "H0STCNT0", code)
    assert _body(first.next_json()) == ("0", "OPSP0000")
    second = _feed(sim)
    second.send("1", "H0STCNT0", code)
    ack = second.next_json()
    assert _body(ack) == ("9", "OPSP8996") and ack["body"]["msg1"] == "ALREADY IN USE appkey"
    assert ack["header"]["tr_id"] is None  # as recorded from KIS
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        while True:
            second.recv()
    first.close()
    wait_for(lambda: not sim.ws.sessions(), what="first session closed")
    third = _feed(sim)
    third.send("1", "H0STCNT0", code)
    assert _body(third.next_json()) == ("0", "OPSP0000")
    third.close()
    reasons = {s.close_reason for s in sim.truth().sessions}
    assert "appkey_in_use" in reasons


def test_unknown_code_acked_then_silent_and_orderbook(make_sim: SimFactory) -> None:
    sim = make_sim()
    code = busy_codes(sim)[0]
    halted = next(x.code for x in sim.market.listings if x.halted)
    feed = _feed(sim)
    for tr_id, key in (("H0STCNT0", "999999"), ("H0STCNT0", halted), ("H0STASP0", code), ("H0STCNT0", code)):
        feed.send("1", tr_id, key)
        assert _body(feed.next_json()) == ("0", "OPSP0000")
    books, trades = 0, 0
    while books < 3 or trades < 3:
        text = feed.recv()
        if text.startswith("{"):
            continue
        _, tr_id, count, records = split_frame(text)
        for r in records:
            assert r[0] == code
        if tr_id == "H0STASP0":
            assert count == 1 and len(records[0]) == 62
            books += 1
        else:
            trades += 1
    feed.close()


def test_pingpong_answered_and_unanswered(make_sim: SimFactory) -> None:
    sim = make_sim(ws=WsOptions(ping_idle_s=0.2, ping_max_unanswered=2))
    kis = Kis(sim)
    patient = Feed(sim, kis.approval())
    patient.send("1", "H0STCNT0", "999999")  # acked, silent: the session is idle
    patient.next_json()
    while patient.pings < 4:
        with pytest.raises(AssertionError):
            patient.next_json(timeout_s=0.5)
    assert len(sim.ws.sessions()) == 1
    patient.close()
    wait_for(lambda: not sim.ws.sessions(), what="session gone")
    deaf = Feed(sim, kis.approval(), answer_ping=False)
    deaf.send("1", "H0STCNT0", "999999")
    deaf.next_json()
    wait_for(lambda: any(s.close_reason == "pingpong_unanswered" for s in sim.truth().sessions), what="close")
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, AssertionError)):
        while True:
            deaf.next_json()


def test_pong_frame_counts_as_answer(make_sim: SimFactory) -> None:
    sim = make_sim(ws=WsOptions(ping_idle_s=0.2, ping_max_unanswered=2))
    feed = Feed(sim, Kis(sim).approval(), answer_ping=False)
    feed.send("1", "H0STCNT0", "999999")
    feed.next_json()
    for _ in range(5):
        text = feed.recv()
        assert json.loads(text)["header"]["tr_id"] == "PINGPONG"
        feed.ws.pong(text)
    assert len(sim.ws.sessions()) == 1
    feed.close()


def test_rfc6455_framing(make_sim: SimFactory) -> None:
    sim = make_sim()
    feed = _feed(sim)
    msg = json.dumps(
        {
            "header": {
                "approval_key": feed.approval,
                "custtype": "P",
                "tr_type": "1",
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "999999"}},
        }
    )
    half = len(msg) // 2
    feed.ws.send_frame(websocket.ABNF.create_frame(msg[:half], websocket.ABNF.OPCODE_TEXT, fin=0))
    feed.ws.ping(b"hello")  # a control frame between fragments is allowed
    feed.ws.send_frame(websocket.ABNF.create_frame(msg[half:], websocket.ABNF.OPCODE_CONT, fin=1))
    opcode, data = feed.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG and data == b"hello"
    assert _body(feed.next_json()) == ("0", "OPSP0000")
    feed.close()
    # an unmasked client frame is a protocol error: close 1002
    host, port = sim.options.host, sim.ws_port
    raw = socket.create_connection((host, port), timeout=5)
    raw.sendall(
        b"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(1024)
    assert b"101" in head.split(b"\r\n")[0] and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    raw.sendall(b"\x81\x02hi")
    data = head.split(b"\r\n\r\n", 1)[1]
    while len(data) < 4:
        chunk = raw.recv(1024)
        if not chunk:
            break
        data += chunk
    assert data[0] == 0x88 and int.from_bytes(data[2:4], "big") == 1002
    raw.close()
    r = requests.get(f"http://{host}:{port}/", timeout=5)
    assert r.status_code == 400


SLOW_KEY, SLOW_SECRET = "SLOW-APP-KEY", "SLOW-APP-SECRET"


def _data(feed: Feed, n: int) -> list[list[str]]:
    """The records of the next `n` H0STCNT0 frames."""
    records: list[list[str]] = []
    frames = 0
    while frames < n:
        text = feed.recv()
        if text.startswith("{"):
            continue
        _, tr_id, _, recs = split_frame(text)
        if tr_id == "H0STCNT0":
            records.extend(recs)
            frames += 1
    return records


def test_one_full_queue_does_not_stop_the_feed(make_sim: SimFactory) -> None:
    """A session that stops reading overflows its queue and is closed; the others keep streaming."""
    sim = make_sim(ws=WsOptions(queue_max_frames=32), extra_accounts={SLOW_KEY: SLOW_SECRET})
    codes = busy_codes(sim, 3)
    tiny = 4096
    slow = Feed(
        sim,
        Kis(sim, SLOW_KEY, SLOW_SECRET).approval(),
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, tiny),),
    )
    for code in codes:
        slow.send("1", "H0STCNT0", code)
        assert _body(slow.next_json()) == ("0", "OPSP0000")
    server_side = next(s for s in sim.ws.sessions() if s.app_key == SLOW_KEY)
    server_side.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, tiny)
    fast = _feed(sim)
    for code in codes:
        fast.send("1", "H0STCNT0", code)
        assert _body(fast.next_json()) == ("0", "OPSP0000")
    # `slow` reads nothing more: the socket buffers fill, then its queue
    wait_for(
        lambda: any(s.close_reason == "send_queue_overflow" for s in sim.truth().sessions),
        timeout_s=20,
        what="the slow session closed on overflow",
    )
    _data(fast, 3)  # whatever was queued before the close
    records = _data(fast, 10)
    assert {r[0] for r in records} <= set(codes) and len(records) >= 10
    assert sim.ws.pump_alive() and sim.ws.pump_errors == 0
    [fast_truth] = [s for s in sim.truth().sessions if s.close_reason is None]
    assert fast_truth.records > 0
    health = requests.get(sim.urls["admin"] + "/admin/health", timeout=5).json()
    assert health["status"] == "ok" and health["pump_alive"] is True and health["pump_errors"] == 0
    slow.close()
    fast.close()


def test_pump_error_in_one_session_is_counted_and_contained(make_sim: SimFactory) -> None:
    sim = make_sim(extra_accounts={SLOW_KEY: SLOW_SECRET})
    code = busy_codes(sim, 1)[0]
    broken = Feed(sim, Kis(sim, SLOW_KEY, SLOW_SECRET).approval())
    broken.send("1", "H0STCNT0", code)
    assert _body(broken.next_json()) == ("0", "OPSP0000")
    healthy = _feed(sim)
    healthy.send("1", "H0STCNT0", code)
    assert _body(healthy.next_json()) == ("0", "OPSP0000")

    def boom(frame: object) -> bool:
        raise RuntimeError("injected: this session's queue is broken")

    victim = next(s for s in sim.ws.sessions() if s.app_key == SLOW_KEY)
    victim.offer = boom  # type: ignore[method-assign]
    wait_for(lambda: sim.ws.pump_errors >= 1, what="the error counted")
    wait_for(
        lambda: any(s.close_reason == "internal_error" for s in sim.truth().sessions),
        what="the broken session closed",
    )
    _data(healthy, 3)
    assert len(_data(healthy, 5)) >= 5 and sim.ws.pump_alive()
    health = requests.get(sim.urls["admin"] + "/admin/health", timeout=5).json()
    assert health["pump_errors"] == sim.ws.pump_errors >= 1 and health["pump_alive"] is True
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        while True:
            broken.recv()
    healthy.close()


def _records(feed: Feed, n: int) -> list[list[str]]:
    """Exactly the next `n` H0STCNT0 records (fails if a frame carries more than asked for)."""
    out: list[list[str]] = []
    while len(out) < n:
        text = feed.recv()
        if not text.startswith("{"):
            out.extend(split_frame(text)[3])
    assert len(out) == n
    return out


@pytest.mark.parametrize("warm_up", [False, True])
def test_first_subscription_mid_session_gets_only_later_trades(make_sim: SimFactory, warm_up: bool) -> None:
    """No replay of the morning: the first record continues the totals of the moment of subscription."""
    clock = ManualClock(datetime(2026, 1, 5, 9, 29, 40, tzinfo=KST))
    sim = make_sim(clock=clock, warm_up=warm_up)
    code = busy_codes(sim, 1)[0]
    feed = _feed(sim)
    feed.send("1", "H0STCNT0", code)
    assert _body(feed.next_json()) == ("0", "OPSP0000")
    at_subscribe = sim.market.quote(code)
    assert at_subscribe is not None and at_subscribe.trades > 5_000  # the morning happened, unpublished
    clock.advance(3.0)
    now = sim.market.quote(code)
    assert now is not None
    records = _records(feed, now.trades - at_subscribe.trades)
    assert int(records[0][13]) - int(records[0][12]) == at_subscribe.acml_vol
    for prev, rec in itertools.pairwise(records):
        assert int(rec[13]) == int(prev[13]) + int(rec[12])
    assert all("092940" <= r[1] <= "092943" for r in records)
    # the ledger counts a frame once its send returned: the reader may see the frame first
    wait_for(
        lambda: sim.truth().symbols[code].published_records == len(records), 5, what="the ledger caught up"
    )
    truth = sim.truth().symbols[code]
    assert truth.published_records == len(records) and truth.first_acml_vol == int(records[0][13])
    assert truth.market_trades == now.trades > truth.published_records
    assert truth.market_acml_vol == now.acml_vol == truth.last_acml_vol
    feed.close()


def test_second_subscriber_gets_nothing_from_before_its_subscription(make_sim: SimFactory) -> None:
    """Trades retained for an earlier subscriber but not pumped yet do not go to a new one."""
    clock = ManualClock(datetime(2026, 1, 5, 10, 0, 0, tzinfo=KST))
    pump_by_hand = WsOptions(pump_interval_s=3_600.0)
    sim = make_sim(clock=clock, ws=pump_by_hand, extra_accounts={SLOW_KEY: SLOW_SECRET})
    code = busy_codes(sim, 1)[0]
    first = _feed(sim)
    first.send("1", "H0STCNT0", code)
    assert _body(first.next_json()) == ("0", "OPSP0000")
    at_first = sim.market.quote(code)
    clock.advance(2.0)
    sim.market.quote(code)  # trades retained for `first`, not pumped yet
    second = Feed(sim, Kis(sim, SLOW_KEY, SLOW_SECRET).approval())
    second.send("1", "H0STCNT0", code)
    assert _body(second.next_json()) == ("0", "OPSP0000")
    at_second = sim.market.quote(code)
    clock.advance(2.0)
    end = sim.market.quote(code)
    assert at_first is not None and at_second is not None and end is not None
    assert at_first.trades < at_second.trades < end.trades
    sim.ws.pump_once()
    got_first = _records(first, end.trades - at_first.trades)
    got_second = _records(second, end.trades - at_second.trades)
    assert got_second == got_first[-len(got_second) :]
    assert int(got_second[0][13]) - int(got_second[0][12]) == at_second.acml_vol
    expected = sorted([len(got_first), len(got_second)])
    wait_for(  # the ledger counts a frame once its send returned: the reader may see it first
        lambda: sorted(s.records for s in sim.truth().sessions) == expected, 5, what="the ledger caught up"
    )
    first.close()
    second.close()
