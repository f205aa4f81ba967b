"""Recorded-shaped KIS H0STCNT0 payloads (records and frames) for tests and benches (no simulator needed)."""

from __future__ import annotations

# A real H0STCNT0 record (KIS, 2023-03-24), one line on the wire.
REAL_RECORD = (
    "005930^112616^62700^2^400^0.64^62700.41^62700^63000^62300^62700^62600^125^9694968^"
    "607878273600^25807^15918^-9889^93.01^4614191^4291558^1^0.45^63.03^090013^3^0^090646^5^"
    "-300^100741^2^400^20230324^20^N^71292^244009^2795345^2044512^0.16^5367918^180.61^0^^62700"
)


def record(
    code: str = "005930",
    hhmmss: str = "093015",
    price: int = 71500,
    qty: int = 10,
    acml_vol: int = 1523400,
    *,
    day: str = "20261126",
    sign: str = "2",
    change: int = 500,
    side: str = "1",
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The 46 fields of one trade record (plus `extra` trailing fields)."""
    fields = [
        code,
        hhmmss,
        str(price),
        sign,
        str(change),
        "0.70",
        "71420.55",
        "71000",
        "71600",
        "70900",
        str(price),
        str(price - 100),
        str(qty),
        str(acml_vol),
        str(acml_vol * price),
        "5012",
        "6120",
        "1108",
        "122.11",
        "356012",
        "434102",
        side,
        "55.01",
        "61.23",
        "090000",
        "2",
        "500",
        "091522",
        "5",
        "-100",
        "090011",
        "2",
        "600",
        day,
        "20",
        "N",
        "1200",
        "3400",
        "812000",
        "953000",
        "0.03",
        "1423000",
        "107.05",
        "0",
        "",
        "",
    ]
    assert len(fields) == 46
    return fields + list(extra)


def frame(records: list[list[str]], tr_id: str = "H0STCNT0", enc: str = "0") -> str:
    payload = "^".join("^".join(r) for r in records)
    return f"{enc}|{tr_id}|{len(records):03d}|{payload}"
