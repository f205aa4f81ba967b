"""Normalisation at the edge: KIS string fields -> ints, signs, tolerance, master files."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from collectors.kis.normalize import (
    NormalizeError,
    parse_master,
    quote_from_inquire_price,
    quote_from_multprice_row,
    signed_change,
    to_int,
)
from collectors.kis_sim.master import master_zip
from collectors.kis_sim.universe import build_listings
from observer.clock import KST

AT = datetime(2026, 3, 13, 10, 0, 5, tzinfo=KST)
ROW = {  # a recorded-shaped intstock-multprice row, change unsigned as KIS sometimes sends it
    "kospi_kosdaq_cls_name": "KOSPI",
    "mrkt_trtm_cls_name": "",
    "hour_cls_code": "0",
    "inter_shrn_iscd": "005930",
    "inter_kor_isnm": "삼성전자",
    "inter2_prpr": "71500",
    "inter2_prdy_vrss": "500",
    "prdy_vrss_sign": "5",
    "prdy_ctrt": "-0.69",
    "acml_vol": "14371024",
    "inter2_oprc": "72000",
    "inter2_hgpr": "72300",
    "inter2_lwpr": "71300",
    "inter2_llam": "50400",
    "inter2_mxpr": "93600",
    "inter2_askp": "71600",
    "inter2_bidp": "71500",
    "seln_rsqn": "120311",
    "shnu_rsqn": "98544",
    "total_askp_rsqn": "",
    "acml_tr_pbmn": "1027431256800",
    "inter2_prdy_clpr": "72000",
    "a_field_kis_added_later": "x",
    "inter2_sdpr": "72000",
}


def test_multprice_row_becomes_a_quote_snapshot() -> None:
    q = quote_from_multprice_row(
        ROW, provider="kis", market="KOSPI", sweep_id="20260313T1000", received_at=AT
    )
    assert (q.symbol, q.price, q.open, q.high, q.low) == ("005930", 71500, 72000, 72300, 71300)
    assert (q.volume, q.value_krw, q.prev_close) == (14371024, 1027431256800, 72000)
    assert (q.bid_price, q.ask_price, q.bid_size, q.ask_size) == (71500, 71600, 98544, 120311)
    assert (q.upper_limit, q.lower_limit, q.name, q.sweep_id) == (93600, 50400, "삼성전자", "20260313T1000")


def test_missing_prev_close_is_derived_from_the_signed_change() -> None:
    row = {k: v for k, v in ROW.items() if k not in ("inter2_prdy_clpr", "inter2_sdpr")}
    q = quote_from_multprice_row(row, provider="kis", market="KOSPI", sweep_id="s", received_at=AT)
    assert q.prev_close == 72000  # 71500 - (-500): the unsigned "500" is a fall (sign 5)


def test_blank_and_missing_fields_are_tolerated_but_a_missing_price_is_not() -> None:
    sparse = {"inter_shrn_iscd": "000660", "inter2_prpr": " 190,500 ", "acml_vol": "", "inter2_oprc": "abc"}
    q = quote_from_multprice_row(sparse, provider="kis", market="KOSPI", sweep_id="s", received_at=AT)
    assert (q.price, q.volume, q.open, q.prev_close) == (190500, 0, 0, 190500)
    with pytest.raises(NormalizeError):
        quote_from_multprice_row(
            {"inter_shrn_iscd": "000660", "inter2_prpr": ""},
            provider="kis",
            market="KOSPI",
            sweep_id="s",
            received_at=AT,
        )
    with pytest.raises(NormalizeError):
        quote_from_multprice_row(
            {"inter_shrn_iscd": "", "inter2_prpr": "1"},
            provider="kis",
            market="KOSPI",
            sweep_id="s",
            received_at=AT,
        )


def test_signs() -> None:
    assert signed_change("500", "5") == -500 and signed_change("-500", "4") == -500
    assert signed_change("500", "2") == 500 and signed_change("300", "1") == 300
    assert signed_change("7", "3") == 0 and signed_change("-7", "") == -7
    assert to_int("1.50") == 1 and to_int(None) == 0 and to_int("-3") == -3


def test_inquire_price_output_halted_and_exchange_time() -> None:
    output = {
        "stck_prpr": "4150",
        "prdy_vrss": "35",
        "prdy_vrss_sign": "5",
        "stck_oprc": "4200",
        "stck_hgpr": "4200",
        "stck_lwpr": "4100",
        "acml_vol": "1200",
        "acml_tr_pbmn": "4990000",
        "stck_mxpr": "5480",
        "stck_llam": "2960",
        "iscd_stat_cls_code": "58",
        "temp_stop_yn": "N",
        "stck_cntg_hour": "100003",
    }
    q = quote_from_inquire_price(
        output, symbol="123450", provider="kis", market="KOSDAQ", sweep_id="s", received_at=AT
    )
    assert q.halted and q.prev_close == 4185 and q.price == 4150
    assert q.exchange_at == datetime(2026, 3, 13, 10, 0, 3, tzinfo=KST)


def test_master_files_parse_group_base_price_and_flags() -> None:
    listings = build_listings(7, 300)
    for market in ("KOSPI", "KOSDAQ"):
        mine = [x for x in listings if x.market == market]
        bases = {x.code: x.ref_close_krw for x in mine}
        data = master_zip(listings, market, bases, date(2026, 3, 13))
        entries, bad = parse_master(data, market)
        assert bad == 0 and len(entries) == len(mine)
        by_code = {e.symbol: e for e in entries}
        for x in mine:
            e = by_code[x.code]
            assert (e.name, e.group, e.base_price, e.isin) == (x.name, x.group, x.ref_close_krw, x.isin)
            assert (e.halted, e.liquidation) == (x.halted, x.liquidation)
    entries, bad = parse_master(b"garbage line\n" + "x".encode("cp949"), "KOSPI")
    assert entries == [] and bad == 2
