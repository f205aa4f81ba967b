"""The subscription manager's bookkeeping: cap, unsubscribe-before-replace, every ack code."""

from __future__ import annotations

import msgspec

from collectors.kis.subscriptions import SUBSCRIBE, UNSUBSCRIBE, Request, SubscriptionManager, request_text
from collectors.kis.ws_parser import ControlFrame
from observer.config import Secret


def ack(symbol: str, code: str, rt_cd: str = "0") -> ControlFrame:
    return ControlFrame(kind="ack", tr_id="H0STCNT0", tr_key=symbol, rt_cd=rt_cd, msg_cd=code)


def codes(n: int, offset: int = 0) -> list[str]:
    return [f"{i + offset:06d}" for i in range(n)]


def subscribe_all(m: SubscriptionManager, now: float = 0.0) -> list[Request]:
    reqs = m.next_requests(now)
    for r in reqs:
        if r.tr_type == SUBSCRIBE:
            m.handle_ack(ack(r.symbol, "OPSP0000"), now)
    return reqs


def test_never_more_than_41_held_and_replacements_wait_for_unsubscribe() -> None:
    m = SubscriptionManager(max_registrations=41)
    m.set_desired(codes(50))
    reqs = subscribe_all(m)
    assert len(reqs) == 41 and all(r.tr_type == SUBSCRIBE for r in reqs)
    assert m.held == 41 and m.registered == codes(41)
    # the core swaps 5 symbols: unsubscribes go out first, nothing new until they are acked
    m.set_desired(codes(36) + codes(5, offset=100))
    reqs = m.next_requests(1.0)
    assert reqs == [Request(UNSUBSCRIBE, s) for s in codes(5, offset=36)]
    assert m.next_requests(1.1) == []
    assert m.held == 41
    for i, s in enumerate(codes(5, offset=36)):
        m.handle_ack(ack(s, "OPSP0001" if i % 2 else "OPSP0003"), 1.2)
    reqs = m.next_requests(1.3)
    assert reqs == [Request(SUBSCRIBE, s) for s in codes(5, offset=100)]
    assert m.peak_registrations == 41


def test_already_subscribed_counts_as_registered() -> None:
    m = SubscriptionManager()
    m.set_desired(["005930"])
    m.next_requests(0.0)
    m.handle_ack(ack("005930", "OPSP0002", rt_cd="1"), 0.1)
    assert m.registered == ["005930"] and m.settled


def test_cap_reached_backs_the_symbol_off() -> None:
    m = SubscriptionManager(cap_backoff_s=30.0)
    m.set_desired(["005930", "000660"])
    m.next_requests(0.0)
    m.handle_ack(ack("005930", "OPSP0000"), 0.1)
    out = m.handle_ack(ack("000660", "OPSP0008", rt_cd="1"), 0.1)
    assert out.action == "event" and out.symbol == "000660"
    assert m.held == 1
    assert m.next_requests(10.0) == []
    assert m.next_requests(30.2) == [Request(SUBSCRIBE, "000660")]


def test_session_level_codes() -> None:
    m = SubscriptionManager()
    assert m.handle_ack(ack("005930", "OPSP8996", "9"), 0).action == "session_in_use"
    assert m.handle_ack(ack("005930", "OPSP0011", "1"), 0).action == "invalid_key"
    bad = m.handle_ack(ack("", "OPSP9999", "9"), 0)
    assert bad.action == "event" and bad.severity == "ERROR"


def test_unanswered_requests_are_sent_again() -> None:
    m = SubscriptionManager(ack_timeout_s=2.0)
    m.set_desired(["005930"])
    assert m.next_requests(0.0) == [Request(SUBSCRIBE, "005930")]
    assert m.next_requests(1.0) == []
    assert m.next_requests(2.0) == [Request(SUBSCRIBE, "005930")]
    assert m.resends == 1


def test_ack_without_tr_key_matches_the_oldest_request() -> None:
    m = SubscriptionManager()
    m.set_desired(["A", "B"])
    m.next_requests(0.0)
    m.handle_ack(ack("", "OPSP0000"), 0.1)
    assert m.registered == ["A"]


def test_reset_resubscribes_everything() -> None:
    m = SubscriptionManager()
    m.set_desired(codes(41))
    subscribe_all(m)
    m.reset()
    assert m.held == 0
    assert len(m.next_requests(5.0)) == 41


def test_silent_symbols_are_reported_once_until_they_stream_again() -> None:
    m = SubscriptionManager(silent_after_s=10.0)
    m.set_desired(["A", "B"])
    subscribe_all(m, 0.0)
    m.note_data("A", 9.0)
    assert m.silent_symbols(10.0) == ["B"]
    assert m.silent_symbols(11.0) == []
    assert m.silent_symbols(19.5) == ["A"]
    m.note_data("B", 20.0)
    assert m.silent_symbols(31.0) == ["B"]


def test_request_text_is_the_kis_shape() -> None:
    doc = msgspec.json.decode(request_text(Secret("K" * 36), "H0STCNT0", Request(UNSUBSCRIBE, "005930")))
    assert doc == {
        "header": {"approval_key": "K" * 36, "custtype": "P", "tr_type": "2", "content-type": "utf-8"},
        "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}},
    }
