"""REST conformance: OAuth rules, header checks, rate limits, quotation shapes, calendar, masters."""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

import requests

from collectors.kis_sim.auth import key_id
from collectors.kis_sim.views import MULTPRICE_FIELDS
from observer.clock import ManualClock
from tests.collectors.kis.test_rest_sim import assert_paced
from tests.collectors.kis_sim.conftest import APP_KEY, APP_SECRET, QUOT, Kis, SimFactory, busy_codes

MULT = ("intstock-multprice", "FHKST11300006")


def _all_strings(doc: Any) -> bool:
    if isinstance(doc, dict):
        return all(_all_strings(v) for v in doc.values())
    if isinstance(doc, list):
        return all(_all_strings(v) for v in doc)
    return isinstance(doc, str)


def test_token_rules(make_sim: SimFactory, wall: ManualClock) -> None:
    sim = make_sim(wall=wall)
    kis = Kis(sim)
    r = kis.post(
        "/oauth2/tokenP", {"grant_type": "client_credentials", "appkey": APP_KEY, "appsecret": APP_SECRET}
    )
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 86_400
    assert body["access_token_token_expired"] == "2026-01-06 08:00:00"
    first = body["access_token"]
    again = kis.post(
        "/oauth2/tokenP", {"grant_type": "client_credentials", "appkey": APP_KEY, "appsecret": APP_SECRET}
    )
    assert again.status_code == 403 and again.json()["error_code"] == "EGW00133"
    wall.advance(61)
    assert kis.get_token() == first  # within 6 h: the same token
    wall.advance(6 * 3600)
    assert kis.get_token() != first
    bad = kis.post("/oauth2/tokenP", {"grant_type": "client_credentials", "appkey": "nope", "appsecret": "x"})
    assert bad.status_code == 403 and bad.json()["error_code"] == "EGW00103"
    bad = kis.post(
        "/oauth2/tokenP", {"grant_type": "client_credentials", "appkey": APP_KEY, "appsecret": "x"}
    )
    assert bad.status_code == 403 and bad.json()["error_code"] == "EGW00105"


def test_expired_and_invalid_tokens(make_sim: SimFactory, wall: ManualClock) -> None:
    sim = make_sim(wall=wall)
    kis = Kis(sim)
    kis.get_token()
    code = busy_codes(sim)[0]
    assert kis.price(code).json()["rt_cd"] == "0"
    wall.advance(86_400)
    r = kis.price(code)
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW00123" and r.json()["rt_cd"] == "1"
    kis.token = "garbage"
    r = kis.price(code)
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW00121"
    kis.get_token()
    assert kis.price(code).status_code == 200
    revoke = kis.post("/oauth2/revokeP", {"appkey": APP_KEY, "appsecret": APP_SECRET, "token": kis.token})
    assert revoke.status_code == 200 and revoke.json()["code"] == 200
    assert kis.price(code).json()["msg_cd"] == "EGW00121"


def test_header_checks(make_sim: SimFactory) -> None:
    sim = make_sim()
    kis = Kis(sim)
    kis.get_token()
    code = busy_codes(sim)[0]
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code}
    cases = [
        ({"appkey": "wrong"}, "EGW00103"),
        ({"appsecret": "wrong"}, "EGW00105"),
        ({"authorization": "Basic abc"}, "EGW00205"),
    ]
    for extra, msg_cd in cases:
        r = kis.get("inquire-price", "FHKST01010100", params, **extra)
        assert r.status_code == 500 and r.json()["msg_cd"] == msg_cd, (extra, r.text)
    r = kis.get("inquire-price", "FHKST01010400", params)
    assert r.status_code == 500 and r.json()["msg_cd"] == "OPSQ0002"
    r = kis.get("inquire-price", "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "Q", "FID_INPUT_ISCD": code})
    assert r.json()["msg_cd"] == "OPSQ2001" and r.json()["rt_cd"] != "0"
    r = kis.get("inquire-price", "FHKST01010100", {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "0059"})
    assert r.json()["msg_cd"] == "OPSQ2002"
    assert requests.get(sim.urls["rest"] + "/nowhere", timeout=5).status_code == 404


def test_inquire_price_shape_and_lower_case_query(make_sim: SimFactory) -> None:
    sim = make_sim()
    kis = Kis(sim)
    kis.get_token()
    code = busy_codes(sim)[0]
    r = kis.get("inquire-price", "FHKST01010100", {"fid_cond_mrkt_div_code": "J", "fid_input_iscd": code})
    doc = r.json()
    assert r.status_code == 200 and doc["rt_cd"] == "0" and doc["msg_cd"] == "MCA00000"
    assert doc["msg1"].endswith(" ") and doc["msg1"].strip() == "정상처리 되었습니다."
    out = doc["output"]
    assert _all_strings(doc) and len(out) >= 70 and "apprch_rate" not in out
    q = sim.market.by_code[code]
    assert out["stck_shrn_iscd"] == code and out["lstn_stcn"] == str(q.shares_listed)
    price, base = int(out["stck_prpr"]), int(out["stck_sdpr"])
    assert int(out["prdy_vrss"]) == price - base
    assert int(out["stck_mxpr"]) > base > int(out["stck_llam"])
    halted = next(x.code for x in sim.market.listings if x.halted)
    out = kis.price(halted).json()["output"]
    assert out["iscd_stat_cls_code"] == "58" and out["temp_stop_yn"] == "Y" and out["acml_vol"] == "0"
    unknown = kis.price("999999").json()
    assert unknown["rt_cd"] == "0" and unknown["output"]["stck_prpr"] == "0"


def test_multprice(make_sim: SimFactory) -> None:
    sim = make_sim()
    kis = Kis(sim)
    kis.get_token()
    codes = [x.code for x in sim.market.listings[:29]] + ["999999"]
    params = {}
    for n, code in enumerate(codes, start=1):
        params[f"FID_COND_MRKT_DIV_CODE_{n}"] = "J"
        params[f"FID_INPUT_ISCD_{n}"] = code
    doc = kis.get(*MULT, params).json()
    rows = doc["output"]
    assert doc["rt_cd"] == "0" and isinstance(rows, list) and len(rows) == 30 and _all_strings(rows)
    assert all(set(r) == set(MULTPRICE_FIELDS) and len(r) == 29 for r in rows)
    by_code = {r["inter_shrn_iscd"]: r for r in rows}
    assert "999999" not in by_code and rows[-1]["inter_shrn_iscd"] == ""
    one = kis.price(codes[0]).json()["output"]
    assert by_code[codes[0]]["inter2_prdy_clpr"] == one["stck_sdpr"]
    mock = make_sim(account="mock")
    kis_mock = Kis(mock)
    kis_mock.get_token()
    r = kis_mock.get(*MULT, {"FID_COND_MRKT_DIV_CODE_1": "J", "FID_INPUT_ISCD_1": codes[0]})
    assert r.status_code == 404 and r.json()["rt_cd"] == "1"
    assert kis_mock.price(codes[0]).status_code == 200


def test_rate_limit_real_and_mock(make_sim: SimFactory, wall: ManualClock) -> None:
    sim = make_sim(wall=wall)
    kis = Kis(sim)
    kis.get_token()
    code = busy_codes(sim)[0]
    answers = [kis.price(code) for _ in range(25)]
    assert [a.status_code for a in answers[:20]] == [200] * 20
    for a in answers[20:]:
        assert a.status_code == 500 and a.json()["msg_cd"] == "EGW00201"
    wall.advance(1.0)
    assert kis.price(code).status_code == 200
    rest = sim.truth().rest[key_id(APP_KEY)]
    assert rest.max_per_s == 25 and rest.max_accepted_per_s == 20 and rest.rate_limited == 5
    mock = make_sim(wall=wall, account="mock")
    kis_mock = Kis(mock)
    kis_mock.get_token()
    statuses = [kis_mock.price(code).status_code for _ in range(3)]
    assert statuses == [200, 200, 500]


def test_client_limiter_never_exceeds_20_per_s(make_sim: SimFactory) -> None:
    """A client pacing itself at 18/s against real time: the gateway saw at most 20 in any second."""
    sim = make_sim()
    kis = Kis(sim)
    kis.get_token()
    codes = [x.code for x in sim.market.listings]
    interval = 1 / 18
    start = time.monotonic()
    rows = 0
    for i in range(0, len(codes), 30):
        due = start + (i // 30) * interval
        while time.monotonic() < due:
            time.sleep(0.002)  # pacing the client, not waiting for the server
        params = {}
        for n, code in enumerate(codes[i : i + 30], start=1):
            params[f"FID_COND_MRKT_DIV_CODE_{n}"] = "J"
            params[f"FID_INPUT_ISCD_{n}"] = code
        r = kis.get(*MULT, params)
        assert r.json()["rt_cd"] == "0"
        rows += len(r.json()["output"])
    assert rows == len(codes)
    assert_paced(sim.truth().rest[key_id(APP_KEY)])


def test_daily_volume_rank_holiday(make_sim: SimFactory) -> None:
    from datetime import date

    sim = make_sim(holidays=(date(2026, 1, 6),))
    kis = Kis(sim)
    kis.get_token()
    code = busy_codes(sim)[0]
    wait_sec = sim.market.quote(code)
    assert wait_sec is not None
    doc = kis.get(
        "inquire-daily-price",
        "FHKST01010400",
        {
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": code,
            "FID_PERIOD_DIV_CODE": "D",
            "FID_ORG_ADJ_PRC": "0",
        },
    ).json()
    rows = doc["output"]
    assert doc["rt_cd"] == "0" and 1 <= len(rows) <= 30 and _all_strings(rows)
    dates = [r["stck_bsop_date"] for r in rows]
    assert dates == sorted(dates, reverse=True) and "20260103" not in dates and "20260104" not in dates
    history = [r for r in rows if r["stck_bsop_date"] < "20260105"]
    assert history[0]["stck_clpr"] == str(wait_sec.base)  # yesterday's close is today's base price
    doc = kis.get(
        "volume-rank",
        "FHPST01710000",
        {"FID_COND_MRKT_DIV_CODE": "J", "FID_COND_SCR_DIV_CODE": "20171", "FID_INPUT_ISCD": "0000"},
    ).json()
    ranks = doc["output"]
    assert len(ranks) == 30 and [int(r["acml_vol"]) for r in ranks] == sorted(
        (int(r["acml_vol"]) for r in ranks), reverse=True
    )
    doc = kis.get(
        "chk-holiday", "CTCA0903R", {"BASS_DT": "20260102", "CTX_AREA_NK": "", "CTX_AREA_FK": ""}
    ).json()
    flags = {r["bass_dt"]: r["opnd_yn"] for r in doc["output"]}
    assert flags["20260102"] == "Y" and flags["20260103"] == "N" and flags["20260104"] == "N"
    assert flags["20260105"] == "Y" and flags["20260106"] == "N"


def test_master_downloads(make_sim: SimFactory) -> None:
    sim = make_sim()
    for name, member in (
        ("kospi_code.mst.zip", "kospi_code.mst"),
        ("kosdaq_code.mst.zip", "kosdaq_code.mst"),
    ):
        r = requests.get(f"{sim.urls['master']}/{name}", timeout=5)
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        text = zipfile.ZipFile(io.BytesIO(r.content)).read(member).decode("cp949")
        assert len(text.splitlines()) > 50
    assert QUOT.startswith("/uapi")
