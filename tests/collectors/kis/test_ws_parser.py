"""The H0STCNT0 parser on recorded-shaped frames: 1-20 records, extra fields, fuzzed and truncated."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from collectors.kis.ws_parser import is_pingpong, parse_control_frame, parse_data_frame
from observer.clock import KST
from testkit.kis_frames import REAL_RECORD, frame, record

RECEIVED = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=KST)


def test_real_record_fields_map_to_tick() -> None:
    parsed = parse_data_frame(f"0|H0STCNT0|001|{REAL_RECORD}", RECEIVED)
    assert parsed.error == ""
    (t,) = parsed.ticks
    assert t.symbol == "005930"
    assert t.exchange_at == datetime(2023, 3, 24, 11, 26, 16, tzinfo=KST)
    assert t.exchange_at.utcoffset().total_seconds() == 9 * 3600  # type: ignore[union-attr]
    assert t.received_at == RECEIVED
    assert (t.price, t.change, t.open, t.high, t.low) == (62700, 400, 62700, 63000, 62300)
    assert (t.ask_price, t.bid_price, t.ask_size, t.bid_size) == (62700, 62600, 71292, 244009)
    assert (t.trade_volume, t.cumulative_volume, t.cumulative_value) == (125, 9694968, 607878273600)
    assert t.side == "buy" and not t.halted
    assert (t.session_code, t.hour_class) == ("20", "0")


@pytest.mark.parametrize("count", [1, 2, 3, 7, 13, 20])
def test_multi_record_frames(count: int) -> None:
    recs = [record(code=f"{i:06d}", qty=i + 1, acml_vol=1000 + i) for i in range(count)]
    parsed = parse_data_frame(frame(recs), RECEIVED)
    assert parsed.error == ""
    assert parsed.record_count == count
    assert [t.symbol for t in parsed.ticks] == [f"{i:06d}" for i in range(count)]
    assert [t.trade_volume for t in parsed.ticks] == [i + 1 for i in range(count)]


def test_extra_trailing_fields_per_record_are_accepted() -> None:
    recs = [record(code=f"{i:06d}", extra=("X1", "", "X3")) for i in range(5)]
    parsed = parse_data_frame(frame(recs), RECEIVED)
    assert parsed.error == ""
    assert [t.symbol for t in parsed.ticks] == [f"{i:06d}" for i in range(5)]
    assert all(t.price == 71500 for t in parsed.ticks)


def test_a_trailing_separator_is_an_extra_field_only_in_a_single_record_frame() -> None:
    assert len(parse_data_frame(frame([record()]) + "^", RECEIVED).ticks) == 1
    parsed = parse_data_frame(frame([record(), record(code="000660")]) + "^", RECEIVED)
    assert "do not divide" in parsed.error


def test_signs_and_sides() -> None:
    down = record(sign="5", change=300, side="5")
    flat = record(sign="3", change=0, side="3")
    limit_down = record(sign="4", change=-900)
    parsed = parse_data_frame(frame([down, flat, limit_down]), RECEIVED)
    assert [t.change for t in parsed.ticks] == [-300, 0, -900]
    assert [t.side for t in parsed.ticks] == ["sell", "none", "buy"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "bad header"),
        ("0|H0STCNT0|001", "bad header"),
        ("1|H0STCNT0|001|" + REAL_RECORD, "encrypted"),
        ("x|H0STCNT0|001|" + REAL_RECORD, "bad enc"),
        ("0|H0STCNT0|abc|" + REAL_RECORD, "bad record count"),
        ("0|H0STCNT0|000|" + REAL_RECORD, "record count 0"),
        ("0|H0STCNT0|1000|" + REAL_RECORD, "bad record count"),
        ("0|H0STASP0|001|" + REAL_RECORD, "unsupported tr_id"),
        ("0|H0STCNT0|002|" + REAL_RECORD + "^x", "do not divide"),
        ("0|H0STCNT0|002|" + REAL_RECORD, "23 fields per record"),
        ("0|H0STCNT0|001|" + REAL_RECORD.replace("^62700^2^", "^abc^2^", 1), "STCK_PRPR not an integer"),
        ("0|H0STCNT0|001|" + REAL_RECORD.replace("20230324", "20231324"), "bad exchange time"),
        ("0|H0STCNT0|001|" + REAL_RECORD.replace("^112616^", "^11261^"), "bad exchange time"),
    ],
)
def test_bad_frames_are_rejected_whole_with_a_reason(text: str, reason: str) -> None:
    parsed = parse_data_frame(text, RECEIVED)
    assert parsed.ticks == []
    assert reason in parsed.error


def test_one_bad_record_rejects_the_whole_frame() -> None:
    recs = [record(code=f"{i:06d}") for i in range(4)]
    recs[2][13] = ""  # ACML_VOL empty: the record is unusable
    parsed = parse_data_frame(frame(recs), RECEIVED)
    assert parsed.ticks == []
    assert "record 3/4" in parsed.error


def test_empty_optional_fields_are_tolerated() -> None:
    rec = record()
    for i in (5, 6, 10, 11, 14, 36, 37, 43, 44, 45):
        rec[i] = ""
    (t,) = parse_data_frame(frame([rec]), RECEIVED).ticks
    assert (t.ask_price, t.bid_price, t.cumulative_value, t.ask_size) == (0, 0, 0, 0)


def test_truncated_frames_never_yield_wrong_ticks() -> None:
    recs = [record(code=f"{i:06d}", qty=i + 1) for i in range(10)]
    text = frame(recs)
    good = parse_data_frame(text, RECEIVED).ticks
    for cut in range(0, len(text), 7):
        parsed = parse_data_frame(text[:cut], RECEIVED)
        if parsed.error:
            assert parsed.ticks == []
        else:  # a cut can only leave a valid frame when it removes nothing that matters
            assert parsed.ticks == good[: len(parsed.ticks)]


def test_fuzzed_frames_give_plausible_ticks_or_a_rejection() -> None:
    rng = random.Random(7)
    alphabet = "0123456789^|-. ABCxyz\x00\ufffd"
    text = frame([record(code=f"{i:06d}", qty=i + 1) for i in range(3)])
    rejected = 0
    for _ in range(3000):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(chars))
            if op < 0.4:
                chars[pos] = rng.choice(alphabet)
            elif op < 0.7:
                del chars[pos]
            else:
                chars.insert(pos, rng.choice(alphabet))
        parsed = parse_data_frame("".join(chars), RECEIVED)
        if parsed.error:
            rejected += 1
            assert parsed.ticks == []
        else:
            assert len(parsed.ticks) == parsed.record_count
            for t in parsed.ticks:
                assert t.symbol and t.price > 0 and t.cumulative_volume >= t.trade_volume >= 0
                assert t.exchange_at.tzinfo is not None
    assert rejected > 1000


@pytest.mark.parametrize("count", [2, 5, 20])
def test_a_shifted_field_in_a_multi_record_frame_is_always_rejected(count: int) -> None:
    recs = [record(code=f"{i:06d}") for i in range(count)]
    text = frame(recs)
    header, payload = text[:15], text[15:]
    seps = [i for i, ch in enumerate(payload) if ch == "^"]
    for pos in seps[:: max(1, len(seps) // 40)]:
        inserted = header + payload[:pos] + "^" + payload[pos:]
        merged = header + payload[:pos] + payload[pos + 1 :]
        for mutated in (inserted, merged):
            parsed = parse_data_frame(mutated, RECEIVED)
            assert parsed.error and parsed.ticks == []


def test_random_bytes_never_raise() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        parsed = parse_data_frame(junk.decode("utf-8", "replace"), RECEIVED)
        assert parsed.error and parsed.ticks == []
        ctl = parse_control_frame(b"{" + junk)
        assert ctl.kind == "invalid"


def test_control_frames() -> None:
    ack = parse_control_frame(
        b'{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},'
        b'"body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS  ","output":{"iv":"a","key":"b"}}}'
    )
    assert (ack.kind, ack.tr_id, ack.tr_key, ack.rt_cd, ack.msg_cd, ack.message) == (
        "ack",
        "H0STCNT0",
        "005930",
        "0",
        "OPSP0000",
        "SUBSCRIBE SUCCESS",
    )
    ping = b'{"header":{"tr_id":"PINGPONG","datetime":"20261126093015"}}'
    assert parse_control_frame(ping).kind == "pingpong"
    assert is_pingpong(ping) and not is_pingpong(b"0|H0STCNT0|001|PINGPONG")
    err = parse_control_frame(
        b'{"header":{"tr_id":"","tr_key":""},"body":{"rt_cd":"9","msg_cd":"OPSP9999","msg1":"JSON PARSING ERROR"}}'
    )
    assert (err.kind, err.rt_cd) == ("ack", "9")
    # the second-session refusal as recorded from KIS: rt_cd 9 and a null header tr_id
    in_use = parse_control_frame(
        b'{"header":{"tr_id":null,"tr_key":"005930","encrypt":"N"},'
        b'"body":{"rt_cd":"9","msg_cd":"OPSP8996","msg1":"ALREADY IN USE appkey"}}'
    )
    assert (in_use.kind, in_use.tr_id, in_use.rt_cd, in_use.msg_cd) == ("ack", "", "9", "OPSP8996")
    assert parse_control_frame(b'{"header":{"tr_id":"H0STCNT0"}}').kind == "invalid"
    assert parse_control_frame(b"[1,2]").kind == "invalid"
