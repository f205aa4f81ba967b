"""KIS answers -> our vocabulary. The provider's field names stop here.

KIS sends every value as a string; fields go missing, new ones appear, change fields may arrive
unsigned (``prdy_vrss_sign`` carries the sign: 1 upper limit, 2 up, 3 flat, 4 lower limit,
5 down). Everything here is tolerant: a blank or missing field becomes 0 (or None where 0 would
lie), an unparseable one raises `NormalizeError` only when the field is essential (the price).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from datetime import date, datetime

import msgspec

from observer.clock import KST
from observer.schema import QuoteSnapshot

_DOWN_SIGNS = frozenset({"4", "5"})


class NormalizeError(ValueError):
    """An answer lacks what makes it usable (no price, no symbol)."""


class CodeMismatch(NormalizeError):
    """The answer names another code than the one asked for: a wrong answer, never data."""

    def __init__(self, asked: str, answered: str):
        super().__init__(f"asked for {asked}, the answer is for {answered}")
        self.asked, self.answered = asked, answered


def check_code(fields: Mapping[str, str], key: str, asked: str) -> None:
    """Raise `CodeMismatch` when the answer's own code (`key`, e.g. ``stck_shrn_iscd``) is set and
    differs from the code asked for (a blank code is tolerated: it says nothing)."""
    answered = str(fields.get(key, "")).strip()
    if answered and answered != asked:
        raise CodeMismatch(asked, answered)


def int_or_zero(text: str) -> int:
    """A KIS numeric field as sent: ``"-3"`` -> -3, ``"1.50"`` -> 1, blank/garbage -> 0 (the WS
    parser's per-field path: no cleaning)."""
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            return 0


def to_int(value: object) -> int:
    """``"  12,345 "`` -> 12345, ``"-3"`` -> -3, ``"1.50"`` -> 1, blank/missing/garbage -> 0."""
    if value is None:
        return 0
    return int_or_zero(str(value).strip().replace(",", ""))


def to_float(value: object) -> float:
    text = "" if value is None else str(value).strip().replace(",", "")
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def signed_change(change: object, sign: object) -> int:
    """The change with the sign `prdy_vrss_sign` gives it (fields may arrive unsigned)."""
    magnitude = abs(to_int(change))
    code = str(sign or "").strip()
    if code in _DOWN_SIGNS:
        return -magnitude
    if code == "3":
        return 0
    if code in ("1", "2"):
        return magnitude
    return to_int(change)  # no sign given: trust what the field says


def _essential_price(fields: Mapping[str, str], key: str, symbol: str) -> int:
    price = to_int(fields.get(key))
    if price <= 0:
        raise NormalizeError(f"{symbol}: no price in the answer (field {key})")
    return price


def _exchange_at(fields: Mapping[str, str], day: date) -> datetime | None:
    hhmmss = str(fields.get("stck_cntg_hour", "")).strip()
    if len(hhmmss) != 6 or not hhmmss.isdigit():
        return None
    return datetime(
        day.year, day.month, day.day, int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:]), tzinfo=KST
    )


def quote_from_inquire_price(
    output: Mapping[str, str],
    *,
    symbol: str,
    provider: str,
    market: str,
    sweep_id: str,
    received_at: datetime,
    name: str = "",
) -> QuoteSnapshot:
    """`inquire-price` (FHKST01010100) ``output`` -> QuoteSnapshot. Sample (abridged)::

        {"iscd_stat_cls_code": "55", "temp_stop_yn": "N", "stck_prpr": "71500",
         "prdy_vrss": "500", "prdy_vrss_sign": "5", "prdy_ctrt": "-0.69",
         "acml_tr_pbmn": "1027431256800", "acml_vol": "14371024", "stck_oprc": "72000",
         "stck_hgpr": "72300", "stck_lwpr": "71300", "stck_mxpr": "93600", "stck_llam": "50400",
         "stck_sdpr": "72000", "wghn_avrg_stck_prc": "71493.20", "aspr_unit": "100", ...}

    ``stck_sdpr`` (base price) is the previous close; when it is missing it is derived from the
    signed change. An answer whose ``stck_shrn_iscd`` is another code raises `CodeMismatch`.
    """
    check_code(output, "stck_shrn_iscd", symbol)
    price = _essential_price(output, "stck_prpr", symbol)
    prev_close = to_int(output.get("stck_sdpr"))
    if prev_close <= 0:
        prev_close = price - signed_change(output.get("prdy_vrss"), output.get("prdy_vrss_sign"))
    halted = str(output.get("iscd_stat_cls_code", "")).strip() == "58" or (
        str(output.get("temp_stop_yn", "")).strip().upper() == "Y"
    )
    return QuoteSnapshot(
        provider=provider,
        market=market,
        symbol=symbol,
        sweep_id=sweep_id,
        exchange_at=_exchange_at(output, received_at.astimezone(KST).date()),
        received_at=received_at,
        price=price,
        open=to_int(output.get("stck_oprc")),
        high=to_int(output.get("stck_hgpr")),
        low=to_int(output.get("stck_lwpr")),
        volume=to_int(output.get("acml_vol")),
        value_krw=to_int(output.get("acml_tr_pbmn")),
        prev_close=prev_close,
        upper_limit=to_int(output.get("stck_mxpr")),
        lower_limit=to_int(output.get("stck_llam")),
        bid_price=to_int(output.get("bidp1", output.get("bidp"))),
        ask_price=to_int(output.get("askp1", output.get("askp"))),
        halted=halted,
        name=name or str(output.get("hts_kor_isnm", "")).strip(),
    )


def quote_from_multprice_row(
    row: Mapping[str, str],
    *,
    provider: str,
    market: str,
    sweep_id: str,
    received_at: datetime,
) -> QuoteSnapshot:
    """One `intstock-multprice` (FHKST11300006) row -> QuoteSnapshot. Sample row (abridged)::

        {"kospi_kosdaq_cls_name": "KOSPI", "mrkt_trtm_cls_name": "", "hour_cls_code": "0",
         "inter_shrn_iscd": "005930", "inter_kor_isnm": "삼성전자", "inter2_prpr": "71500",
         "inter2_prdy_vrss": "500", "prdy_vrss_sign": "5", "prdy_ctrt": "-0.69",
         "acml_vol": "14371024", "inter2_oprc": "72000", "inter2_hgpr": "72300",
         "inter2_lwpr": "71300", "inter2_llam": "50400", "inter2_mxpr": "93600",
         "inter2_askp": "71600", "inter2_bidp": "71500", "seln_rsqn": "120311",
         "shnu_rsqn": "98544", "acml_tr_pbmn": "1027431256800", "inter2_prdy_clpr": "72000",
         "inter2_sdpr": "72000", ...}

    ``inter2_prdy_vrss`` may be unsigned: the sign comes from ``prdy_vrss_sign``.
    """
    symbol = str(row.get("inter_shrn_iscd", "")).strip()
    if not symbol:
        raise NormalizeError("multprice row without inter_shrn_iscd")
    price = _essential_price(row, "inter2_prpr", symbol)
    prev_close = to_int(row.get("inter2_prdy_clpr")) or to_int(row.get("inter2_sdpr"))
    if prev_close <= 0:
        prev_close = price - signed_change(row.get("inter2_prdy_vrss"), row.get("prdy_vrss_sign"))
    return QuoteSnapshot(
        provider=provider,
        market=market,
        symbol=symbol,
        sweep_id=sweep_id,
        exchange_at=None,
        received_at=received_at,
        price=price,
        open=to_int(row.get("inter2_oprc")),
        high=to_int(row.get("inter2_hgpr")),
        low=to_int(row.get("inter2_lwpr")),
        volume=to_int(row.get("acml_vol")),
        value_krw=to_int(row.get("acml_tr_pbmn")),
        prev_close=prev_close,
        upper_limit=to_int(row.get("inter2_mxpr")),
        lower_limit=to_int(row.get("inter2_llam")),
        bid_price=to_int(row.get("inter2_bidp")),
        ask_price=to_int(row.get("inter2_askp")),
        bid_size=to_int(row.get("shnu_rsqn")),
        ask_size=to_int(row.get("seln_rsqn")),
        name=str(row.get("inter_kor_isnm", "")).strip(),
    )


def prev_close_of_row(row: Mapping[str, str]) -> int:
    """Previous close of a multprice row (``inter2_prdy_clpr``, else ``inter2_sdpr``), 0 if absent."""
    return to_int(row.get("inter2_prdy_clpr")) or to_int(row.get("inter2_sdpr"))


def prev_close_of_price_output(output: Mapping[str, str]) -> int:
    """Previous close of an inquire-price ``output`` (``stck_sdpr``), 0 if absent."""
    return to_int(output.get("stck_sdpr"))


# --------------------------------------------------------------------------- KRX master files


class MasterEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a KRX master file, in our words."""

    symbol: str
    isin: str
    name: str
    market: str
    group: str
    base_price: int
    halted: bool
    liquidation: bool


# Fixed-width tails (characters, counted from the end of the decoded line; ASCII only), as in the
# official KIS sample parsers: (offset, width) of the fields we use.
MASTER_TAIL = {"KOSPI": 227, "KOSDAQ": 221}
MASTER_FIELDS = {
    "KOSPI": {"group": (0, 2), "base": (41, 9), "halt": (60, 1), "liquidation": (61, 1)},
    "KOSDAQ": {"group": (0, 2), "base": (36, 9), "halt": (55, 1), "liquidation": (56, 1)},
}
MASTER_FILES = {"KOSPI": "kospi_code.mst", "KOSDAQ": "kosdaq_code.mst"}


def parse_master(data: bytes, market: str) -> tuple[list[MasterEntry], int]:
    """Parse a master file (the zip as downloaded, or the bare ``.mst``). Returns (entries, bad
    line count). A line of the official KOSPI file (cp949; name padded, tail abridged)::

        005930   KR7005930003삼성전자                                ST1001300000000NNNN...

    The name is variable width; the tail (227 characters KOSPI, 221 KOSDAQ) is cut from the end.
    """
    if market not in MASTER_TAIL:
        raise NormalizeError(f"no master file layout for market {market!r}")
    if data[:2] == b"PK":
        data = _unzip_master(data, market)
    text = data.decode("cp949", errors="replace")
    tail_len = MASTER_TAIL[market]
    fields = MASTER_FIELDS[market]
    entries: list[MasterEntry] = []
    bad = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        if len(line) < tail_len + 21:
            bad += 1
            continue
        head, tail = line[:-tail_len], line[-tail_len:]
        symbol = head[0:9].strip()
        if not symbol:
            bad += 1
            continue

        def cut(key: str, tail: str = tail) -> str:
            offset, width = fields[key]
            return tail[offset : offset + width]

        entries.append(
            MasterEntry(
                symbol=symbol,
                isin=head[9:21].strip(),
                name=head[21:].strip(),
                market=market,
                group=cut("group").strip(),
                base_price=to_int(cut("base")),
                halted=cut("halt") == "Y",
                liquidation=cut("liquidation") == "Y",
            )
        )
    return entries, bad


def _unzip_master(data: bytes, market: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            wanted = MASTER_FILES[market]
            name = wanted if wanted in names else next((n for n in names if n.endswith(".mst")), "")
            if not name:
                raise NormalizeError(f"master zip for {market} holds no .mst file: {names}")
            return zf.read(name)
    except (zipfile.BadZipFile, KeyError) as e:
        raise NormalizeError(f"master zip for {market} is unreadable: {e}") from e
