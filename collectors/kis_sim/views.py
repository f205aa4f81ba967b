"""REST bodies rendered from market snapshots. Every value is a string, as KIS sends them.

Field names follow the KIS portal (inquire-price ``output``, intstock-multprice rows,
inquire-daily-price rows, volume-rank rows, chk-holiday rows). Values the synthetic market does
not model carry plausible constants rather than being left out, since clients must tolerate
both; ``apprch_rate`` is left out on purpose, as in real answers.
"""

from __future__ import annotations

from datetime import date, timedelta

from collectors.kis_sim.calendar import SimCalendar
from collectors.kis_sim.pricing import ceil_to_tick, change_sign, floor_to_tick, tick_size
from collectors.kis_sim.records import book_levels
from collectors.kis_sim.state import CLOSE_S, OPEN_S, Quote, hhmmss
from collectors.kis_sim.universe import Listing, daily_close, unit_hash

MULTPRICE_FIELDS = (
    "kospi_kosdaq_cls_name",
    "mrkt_trtm_cls_name",
    "hour_cls_code",
    "inter_shrn_iscd",
    "inter_kor_isnm",
    "inter2_prpr",
    "inter2_prdy_vrss",
    "prdy_vrss_sign",
    "prdy_ctrt",
    "acml_vol",
    "inter2_oprc",
    "inter2_hgpr",
    "inter2_lwpr",
    "inter2_llam",
    "inter2_mxpr",
    "inter2_askp",
    "inter2_bidp",
    "seln_rsqn",
    "shnu_rsqn",
    "total_askp_rsqn",
    "total_bidp_rsqn",
    "acml_tr_pbmn",
    "inter2_prdy_clpr",
    "oprc_vrss_hgpr_rate",
    "intr_antc_cntg_vrss",
    "intr_antc_cntg_vrss_sign",
    "intr_antc_cntg_prdy_ctrt",
    "intr_antc_vol",
    "inter2_sdpr",
)


def _pct(num: float, den: float) -> str:
    return f"{num / den * 100:.2f}" if den else "0.00"


def inquire_price_output(q: Quote) -> dict[str, str]:
    """``output`` of FHKST01010100 for one symbol."""
    lst = q.listing
    price, opn, high, low = q.price, q.open, q.high, q.low  # open/high/low are 0 until the first trade
    change = price - q.base
    _, _, ask_qty, bid_qty = book_levels(q)
    avg = q.acml_tr_pbmn // q.acml_vol if q.acml_vol else 0
    cap_100m = price * lst.shares_listed // 100_000_000
    return {
        "iscd_stat_cls_code": "58" if lst.halted else "55",
        "marg_rate": "20.00",
        "rprs_mrkt_kor_name": "KOSPI" if lst.market == "KOSPI" else "KOSDAQ",
        "new_hgpr_lwpr_cls_code": "",
        "bstp_kor_isnm": "전기.전자" if lst.market == "KOSPI" else "IT S/W & SVC",
        "temp_stop_yn": "Y" if lst.halted else "N",
        "oprc_rang_cont_yn": "N",
        "clpr_rang_cont_yn": "N",
        "crdt_able_yn": "Y",
        "grmn_rate_cls_code": "40",
        "elw_pblc_yn": "N",
        "stck_prpr": str(price),
        "prdy_vrss": str(change),
        "prdy_vrss_sign": change_sign(price, q.base, q.upper, q.lower),
        "prdy_ctrt": _pct(change, q.base),
        "acml_tr_pbmn": str(q.acml_tr_pbmn),
        "acml_vol": str(q.acml_vol),
        "prdy_vrss_vol_rate": _pct(q.acml_vol, q.prdy_vol),
        "stck_oprc": str(opn),
        "stck_hgpr": str(high),
        "stck_lwpr": str(low),
        "stck_mxpr": str(q.upper),
        "stck_llam": str(q.lower),
        "stck_sdpr": str(q.base),
        "wghn_avrg_stck_prc": f"{avg:.2f}",
        "hts_frgn_ehrt": f"{unit_hash(lst.code, 'frgn') * 50:.2f}",
        "frgn_ntby_qty": "0",
        "pgtr_ntby_qty": "0",
        "pvt_scnd_dmrs_prc": str(q.base),
        "pvt_frst_dmrs_prc": str(q.base),
        "pvt_pont_val": str(q.base),
        "pvt_frst_dmsp_prc": str(q.base),
        "pvt_scnd_dmsp_prc": str(q.base),
        "dmrs_val": str(q.base),
        "dmsp_val": str(q.base),
        "cpfn": str(lst.shares_listed * lst.face_value_krw // 100_000_000),
        "rstc_wdth_prc": str(q.upper - q.base),
        "stck_fcam": str(lst.face_value_krw),
        "stck_sspr": str(q.base * 7 // 10),
        "aspr_unit": str(tick_size(price)),
        "hts_deal_qty_unit_val": "1",
        "lstn_stcn": str(lst.shares_listed),
        "hts_avls": str(cap_100m),
        "per": "12.34",
        "pbr": "1.23",
        "stac_month": "12",
        "vol_tnrt": _pct(q.acml_vol, lst.shares_listed),
        "eps": str(max(q.base // 12, 1)),
        "bps": str(max(q.base * 8 // 10, 1)),
        "d250_hgpr": str(q.upper),
        "d250_hgpr_date": (q.day - timedelta(days=90)).strftime("%Y%m%d"),
        "d250_hgpr_vrss_prpr_rate": _pct(price - q.upper, q.upper),
        "d250_lwpr": str(q.lower),
        "d250_lwpr_date": (q.day - timedelta(days=200)).strftime("%Y%m%d"),
        "d250_lwpr_vrss_prpr_rate": _pct(price - q.lower, q.lower),
        "stck_dryy_hgpr": str(q.upper),
        "dryy_hgpr_vrss_prpr_rate": _pct(price - q.upper, q.upper),
        "dryy_hgpr_date": (q.day - timedelta(days=30)).strftime("%Y%m%d"),
        "stck_dryy_lwpr": str(q.lower),
        "dryy_lwpr_vrss_prpr_rate": _pct(price - q.lower, q.lower),
        "dryy_lwpr_date": (q.day - timedelta(days=60)).strftime("%Y%m%d"),
        "w52_hgpr": str(q.upper),
        "w52_hgpr_vrss_prpr_ctrt": _pct(price - q.upper, q.upper),
        "w52_hgpr_date": (q.day - timedelta(days=90)).strftime("%Y%m%d"),
        "w52_lwpr": str(q.lower),
        "w52_lwpr_vrss_prpr_ctrt": _pct(price - q.lower, q.lower),
        "w52_lwpr_date": (q.day - timedelta(days=200)).strftime("%Y%m%d"),
        "whol_loan_rmnd_rate": "0.00",
        "ssts_yn": "Y",
        "stck_shrn_iscd": lst.code,
        "fcam_cnnm": f"{lst.face_value_krw:,}",
        "cpfn_cnnm": f"{lst.shares_listed * lst.face_value_krw // 100_000_000:,} 억",
        "frgn_hldn_qty": str(lst.shares_listed // 5),
        "vi_cls_code": "N",
        "ovtm_vi_cls_code": "N",
        "last_ssts_cntg_qty": "0",
        "invt_caful_yn": "N",
        "mrkt_warn_cls_code": "00",
        "short_over_yn": "N",
        "sltr_yn": "Y" if lst.liquidation else "N",
        "mang_issu_cls_code": "N",
        "askp1": str(q.ask),
        "bidp1": str(q.bid),
        "total_askp_rsqn": str(sum(ask_qty)),
        "total_bidp_rsqn": str(sum(bid_qty)),
        "stck_cntg_hour": hhmmss(q.last_trade_s) if q.trades else "",
    }


def unknown_price_output() -> dict[str, str]:
    """inquire-price for a code that does not exist: a success with zeroed values, like KIS."""
    row = {k: "0" for k in ("stck_prpr", "prdy_vrss", "prdy_ctrt", "acml_vol", "acml_tr_pbmn")}
    row.update(
        {
            "prdy_vrss_sign": "3",
            "stck_oprc": "0",
            "stck_hgpr": "0",
            "stck_lwpr": "0",
            "stck_mxpr": "0",
            "stck_llam": "0",
            "stck_sdpr": "0",
            "iscd_stat_cls_code": "",
            "temp_stop_yn": "N",
            "stck_shrn_iscd": "",
        }
    )
    return row


def multprice_row(q: Quote) -> dict[str, str]:
    """One row of intstock-multprice (FHKST11300006). Changes are unsigned; apply the sign code."""
    price = q.price
    change = price - q.base
    _, _, ask_qty, bid_qty = book_levels(q)
    return {
        "kospi_kosdaq_cls_name": "코스피" if q.listing.market == "KOSPI" else "코스닥",
        "mrkt_trtm_cls_name": "정상",
        "hour_cls_code": "0",
        "inter_shrn_iscd": q.listing.code,
        "inter_kor_isnm": q.listing.name,
        "inter2_prpr": str(price),
        "inter2_prdy_vrss": str(abs(change)),
        "prdy_vrss_sign": change_sign(price, q.base, q.upper, q.lower),
        "prdy_ctrt": f"{abs(change) / q.base * 100:.2f}",
        "acml_vol": str(q.acml_vol),
        "inter2_oprc": str(q.open),
        "inter2_hgpr": str(q.high),
        "inter2_lwpr": str(q.low),
        "inter2_llam": str(q.lower),
        "inter2_mxpr": str(q.upper),
        "inter2_askp": str(q.ask),
        "inter2_bidp": str(q.bid),
        "seln_rsqn": str(q.ask_rsqn1),
        "shnu_rsqn": str(q.bid_rsqn1),
        "total_askp_rsqn": str(sum(ask_qty)),
        "total_bidp_rsqn": str(sum(bid_qty)),
        "acml_tr_pbmn": str(q.acml_tr_pbmn),
        "inter2_prdy_clpr": str(q.base),
        "oprc_vrss_hgpr_rate": _pct(q.high - q.open, q.open),
        "intr_antc_cntg_vrss": "0",
        "intr_antc_cntg_vrss_sign": "3",
        "intr_antc_cntg_prdy_ctrt": "0.00",
        "intr_antc_vol": "0",
        "inter2_sdpr": str(q.base),
    }


def blank_multprice_row() -> dict[str, str]:
    """What KIS returns in place of an unknown code: every field present and empty."""
    return dict.fromkeys(MULTPRICE_FIELDS, "")


def daily_rows(
    listing: Listing, seed: int, calendar: SimCalendar, today: Quote | None, day: date, period: str
) -> list[dict[str, str]]:
    """Up to 30 rows of inquire-daily-price, newest first (today's row from the live state if trading)."""
    rows: list[dict[str, str]] = []
    step = {"D": 1, "W": 5, "M": 21}.get(period, 1)
    if today is not None and today.trades:
        rows.append(
            _daily_row(today.day, today.open, today.high, today.low, today.price, today.acml_vol, today.base)
        )
    days = calendar.open_days_before(day, 31 * step)
    for i in range(0, len(days), step):
        if len(rows) >= 30:
            break
        d = days[i]
        close = daily_close(listing, seed, d)
        prev = daily_close(listing, seed, calendar.previous_open_day(d))
        if listing.halted:
            rows.append(_daily_row(d, 0, 0, 0, close, 0, prev))
            continue
        opn = round(prev * (1 + (unit_hash(seed, listing.code, d, "o") - 0.5) * 0.02))
        hi = max(opn, close) * (1 + unit_hash(seed, listing.code, d, "h") * 0.02)
        lo = min(opn, close) * (1 - unit_hash(seed, listing.code, d, "l") * 0.02)
        vol = int(
            listing.base_rate_per_s
            * (CLOSE_S - OPEN_S)
            * listing.qty_scale
            * 2.5
            * (0.6 + 0.8 * unit_hash(seed, listing.code, d, "v"))
        )
        rows.append(_daily_row(d, floor_to_tick(opn), floor_to_tick(hi), ceil_to_tick(lo), close, vol, prev))
    return rows


def _daily_row(d: date, opn: int, hi: int, lo: int, close: int, vol: int, prev: int) -> dict[str, str]:
    change = close - prev
    return {
        "stck_bsop_date": d.strftime("%Y%m%d"),
        "stck_oprc": str(opn),
        "stck_hgpr": str(max(hi, close)),
        "stck_lwpr": str(min(lo, close) if lo else lo),
        "stck_clpr": str(close),
        "acml_vol": str(vol),
        "prdy_vrss_vol_rate": "0.00",
        "prdy_vrss": str(change),
        "prdy_vrss_sign": "2" if change > 0 else "5" if change < 0 else "3",
        "prdy_ctrt": _pct(change, prev),
        "hts_frgn_ehrt": "0.00",
        "frgn_ntby_qty": "0",
        "flng_cls_code": "00",
        "acml_prtt_rate": "0.00",
    }


def volume_rank_rows(quotes: list[Quote], limit: int = 30) -> list[dict[str, str]]:
    """volume-rank (FHPST01710000) rows: the top `limit` by accumulated volume."""
    ranked = sorted(quotes, key=lambda q: (-q.acml_vol, q.listing.code))[:limit]
    rows = []
    for rank, q in enumerate(ranked, start=1):
        change = q.price - q.base
        rows.append(
            {
                "hts_kor_isnm": q.listing.name,
                "mksc_shrn_iscd": q.listing.code,
                "data_rank": str(rank),
                "stck_prpr": str(q.price),
                "prdy_vrss_sign": change_sign(q.price, q.base, q.upper, q.lower),
                "prdy_vrss": str(change),
                "prdy_ctrt": _pct(change, q.base),
                "acml_vol": str(q.acml_vol),
                "prdy_vol": str(q.prdy_vol),
                "lstn_stcn": str(q.listing.shares_listed),
                "avrg_vol": str(q.prdy_vol),
                "n_befr_clpr_vrss_prpr_rate": _pct(change, q.base),
                "vol_inrt": _pct(q.acml_vol, q.prdy_vol),
                "vol_tnrt": _pct(q.acml_vol, q.listing.shares_listed),
                "nday_vol_tnrt": _pct(q.prdy_vol, q.listing.shares_listed),
                "avrg_tr_pbmn": str(q.prdy_vol * q.base),
                "tr_pbmn_tnrt": "0.00",
                "nday_tr_pbmn_tnrt": "0.00",
                "acml_tr_pbmn": str(q.acml_tr_pbmn),
            }
        )
    return rows


def holiday_rows(calendar: SimCalendar, start: date, count: int = 10) -> list[dict[str, str]]:
    """chk-holiday (CTCA0903R) rows from `start`: ``opnd_yn`` Y on open days."""
    rows = []
    for i in range(count):
        d = start + timedelta(days=i)
        is_open = "Y" if calendar.is_open(d) else "N"
        rows.append(
            {
                "bass_dt": d.strftime("%Y%m%d"),
                "wday_dvsn_cd": f"{(d.isoweekday() % 7) + 1:02d}",
                "bzdy_yn": is_open,
                "tr_day_yn": is_open,
                "opnd_yn": is_open,
                "sttl_day_yn": is_open,
            }
        )
    return rows
