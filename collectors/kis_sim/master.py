"""KRX master files (``kospi_code.mst`` / ``kosdaq_code.mst``), zipped, cp949, fixed width.

Each line is ``part1 + tail + "\\n"``, following the official KIS sample parsers
(``kis_kospi_code_mst.py`` reads ``row[-228:]`` including the newline, ``kis_kosdaq_code_mst.py``
``row[-222:]``):

* part1: short code (9 chars, left-aligned), standard code / ISIN (12), Korean name padded with
  spaces to 40 **bytes** in cp949 (readers strip it, so only the tail needs fixed widths);
* tail: 227 characters (KOSPI) or 221 (KOSDAQ), all ASCII, so the tail can be cut from the end of
  the decoded line.

Offsets used inside the tail (0-based, end exclusive)::

                                    KOSPI       KOSDAQ
    group code (ST, EF, EN, RT)     [0:2]       [0:2]
    market-cap size class           [2:3]       [2:3]
    index sector large/medium/small [3:15]      [3:15]
    base price (stck_sdpr), 9 chars [41:50]     [36:45]
    regular lot size, 5             [50:55]     [45:50]
    trading halt  Y/N               [60:61]     [55:56]
    liquidation   Y/N               [61:62]     [56:57]
    administrative issue Y/N        [62:63]     [57:58]
    market warning code, 2          [63:65]     [58:60]
    margin rate, 3                  [74:77]     [69:72]
    previous volume, 12             [81:93]     [76:88]
    face value, 12                  [93:105]    [88:100]
    listing date YYYYMMDD           [105:113]   [100:108]
    shares listed (thousands), 15   [113:128]   [108:123]
    capital, 21                     [128:149]   [123:144]
    settlement month, 2             [149:151]   [144:146]
    preferred-share code, 1         [158:159]   [153:154]
    KRX300 Y/N                      [161:162]   [156:157]
    market cap (100M KRW), 9        [212:221]   [206:215]

Numbers are right-aligned, zero-padded; every other field is filled with plausible constants.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from datetime import date

from collectors.kis_sim.universe import Listing

KOSPI_TAIL = 227
KOSDAQ_TAIL = 221
NAME_BYTES = 40

# (offset, width) inside the tail, per market; see the module docstring.
_OFFSETS: dict[str, dict[str, tuple[int, int]]] = {
    "KOSPI": {
        "group": (0, 2),
        "size": (2, 1),
        "sector": (3, 12),
        "base": (41, 9),
        "lot": (50, 5),
        "halt": (60, 1),
        "liquidation": (61, 1),
        "admin": (62, 1),
        "warning": (63, 2),
        "margin": (74, 3),
        "prev_vol": (81, 12),
        "face": (93, 12),
        "listed_on": (105, 8),
        "shares_k": (113, 15),
        "capital": (128, 21),
        "settle": (149, 2),
        "pref": (158, 1),
        "krx300": (161, 1),
        "cap": (212, 9),
    },
    "KOSDAQ": {
        "group": (0, 2),
        "size": (2, 1),
        "sector": (3, 12),
        "base": (36, 9),
        "lot": (45, 5),
        "halt": (55, 1),
        "liquidation": (56, 1),
        "admin": (57, 1),
        "warning": (58, 2),
        "margin": (69, 3),
        "prev_vol": (76, 12),
        "face": (88, 12),
        "listed_on": (100, 8),
        "shares_k": (108, 15),
        "capital": (123, 21),
        "settle": (144, 2),
        "pref": (153, 1),
        "krx300": (156, 1),
        "cap": (206, 9),
    },
}
FILE_NAMES = {"KOSPI": "kospi_code.mst", "KOSDAQ": "kosdaq_code.mst"}


def tail_offsets(market: str) -> dict[str, tuple[int, int]]:
    """(offset, width) of each field this module writes into the tail of `market`'s file."""
    return dict(_OFFSETS[market])


def master_line(listing: Listing, base_price: int) -> str:
    """One line (with its ``\\n``) of the master file for `listing`."""
    tail_len = KOSPI_TAIL if listing.market == "KOSPI" else KOSDAQ_TAIL
    tail = ["0"] * tail_len
    for i in range(15, 40 if listing.market == "KOSPI" else 36):
        tail[i] = "N"
    values = {
        "group": listing.group,
        "size": "2",
        "sector": "0013" + "0000" + "0000",
        "base": f"{base_price:09d}",
        "lot": "00001",
        "halt": "Y" if listing.halted else "N",
        "liquidation": "Y" if listing.liquidation else "N",
        "admin": "N",
        "warning": "00",
        "margin": "040",
        "prev_vol": f"{0:012d}",
        "face": f"{listing.face_value_krw:012d}",
        "listed_on": listing.listed_on.strftime("%Y%m%d"),
        "shares_k": f"{listing.shares_listed // 1_000:015d}",
        "capital": f"{listing.shares_listed * listing.face_value_krw:021d}",
        "settle": "12",
        "pref": "1" if listing.code.endswith("5") and listing.group == "ST" else "0",
        "krx300": "N",
        "cap": f"{base_price * listing.shares_listed // 100_000_000:09d}"[-9:],
    }
    for key, (offset, width) in _OFFSETS[listing.market].items():
        text = values[key]
        assert len(text) == width, (key, text)
        tail[offset : offset + width] = list(text)
    name_bytes = listing.name.encode("cp949")[:NAME_BYTES]
    name = name_bytes.decode("cp949", errors="ignore")
    padding = " " * (NAME_BYTES - len(name.encode("cp949")))
    return f"{listing.code:<9}{listing.isin:<12}{name}{padding}{''.join(tail)}\n"


def master_file(listings: Iterable[Listing], market: str, base_prices: dict[str, int]) -> bytes:
    """The cp949 bytes of `market`'s master file."""
    lines = [master_line(x, base_prices[x.code]) for x in listings if x.market == market]
    return "".join(lines).encode("cp949")


def master_zip(listings: Iterable[Listing], market: str, base_prices: dict[str, int], day: date) -> bytes:
    """`master_file` zipped under its official name (``kospi_code.mst`` / ``kosdaq_code.mst``)."""
    buf = io.BytesIO()
    info = zipfile.ZipInfo(FILE_NAMES[market], date_time=(day.year, day.month, day.day, 6, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, master_file(listings, market, base_prices))
    return buf.getvalue()
