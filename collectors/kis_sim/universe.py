"""The synthetic listing: deterministic symbols, names, groups and reference prices from a seed.

`build_listings(seed, count)` returns about `count` listings, KOSPI and KOSDAQ, with 6-digit codes
(common stock ends in 0, preferred shares in 5), valid ISINs (``KR7`` + code + ``00`` + check
digit), Korean names, group codes (``ST`` common stock, ``EF`` ETF, ``EN`` ETN, ``RT`` REIT), and
reference closes spread log-normally (median ~7,000 KRW) so that roughly two thirds close at or
above 4,000 KRW. Each listing also carries its midday trade rate, from its rank in a long-tailed
rank-activity law (`midday_rate_per_s`, calibrated in `activity`), and its activity class —
``busy`` (the head: the 48 most active, all universe stocks, several trades/s each), ``active``
(>= 0.1 trades/s), ``quiet`` or ``halted`` (exactly one, an ST stock that never trades).

`daily_close(listing, seed, day)` is the close of any calendar day: the reference close moved by
at most +-4 %, hashed from (seed, code, day), so history and "previous close" are reproducible
without simulating the days in between.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import date
from typing import Literal

from collectors.kis_sim.activity import (
    ACTIVE_MIN_RATE_PER_S,
    BUSY_N,
    RATE_NOISE_SIGMA,
    midday_rate_per_s,
)
from collectors.kis_sim.pricing import floor_to_tick

Market = Literal["KOSPI", "KOSDAQ"]
Activity = Literal["busy", "active", "quiet", "halted"]

_PREFIXES = (
    "삼성",
    "현대",
    "한국",
    "대한",
    "동양",
    "신한",
    "우리",
    "세아",
    "한화",
    "엘지",
    "에스케이",
    "코리아",
    "대성",
    "태광",
    "동원",
    "아시아",
    "글로벌",
    "미래",
    "케이",
    "제일",
    "대림",
    "금호",
    "한솔",
    "효성",
    "동국",
    "일진",
    "삼양",
    "유진",
    "대우",
    "국제",
    "남해",
    "서울",
    "부산",
    "경인",
    "한빛",
    "푸른",
    "새한",
    "동화",
    "광동",
    "보령",
    "녹십자",
    "한미",
    "종근당",
    "에코",
    "나노",
    "메디",
    "바이오",
    "씨엔",
    "지엔",
    "에이치",
    "티에스",
    "디케이",
    "엠케이",
    "제이에스",
    "와이지",
    "에스엠",
    "하이",
    "유니",
    "인터",
)
_SUFFIXES = (
    "전자",
    "화학",
    "제약",
    "바이오",
    "건설",
    "중공업",
    "반도체",
    "산업",
    "홀딩스",
    "테크",
    "에너지",
    "금융지주",
    "통신",
    "소재",
    "식품",
    "물산",
    "로직스",
    "시스템",
    "정밀",
    "디스플레이",
    "엔지니어링",
    "생명과학",
    "솔루션",
    "네트웍스",
    "머티리얼즈",
    "모빌리티",
    "게임즈",
    "엔터테인먼트",
    "제강",
    "해운",
    "증권",
    "보험",
    "캐피탈",
    "리테일",
    "헬스케어",
    "로보틱스",
    "이노베이션",
    "파마",
    "인더스트리",
    "케미칼",
)
_ETF_BRANDS = ("KODEX", "TIGER", "RISE", "ACE", "SOL", "HANARO", "PLUS", "KIWOOM")
_ETF_THEMES = (
    "200",
    "코스닥150",
    "반도체",
    "2차전지산업",
    "미국S&P500",
    "레버리지",
    "인버스",
    "고배당",
    "미국나스닥100",
    "은행",
    "헬스케어",
    "국고채3년",
    "골드선물",
    "자동차",
    "배당성장",
    "200TR",
)
_MEDIAN_CLOSE_KRW = 7_000.0
_CLOSE_SIGMA = 1.5
_MIN_CLOSE_KRW = 150
_MAX_CLOSE_KRW = 2_500_000
_DAILY_MOVE = 0.04


@dataclass(frozen=True, slots=True)
class Listing:
    """One listed instrument, as the master file and the quotation endpoints describe it."""

    code: str
    isin: str
    name: str
    market: Market
    group: str  # scrt_grp_cls_code: ST, EF, EN, RT
    ref_close_krw: int
    shares_listed: int
    face_value_krw: int
    listed_on: date
    activity: Activity
    base_rate_per_s: float  # trade records per virtual second at midday (before profile, bursts, scale)
    qty_scale: float  # typical shares per trade
    halted: bool = False
    liquidation: bool = False


def isin_for(code: str) -> str:
    """``KR7`` + code + ``00`` + the ISIN (Luhn) check digit."""
    body = f"KR7{code}00"
    digits = "".join(str(int(ch, 36)) for ch in body)
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return body + str((10 - total % 10) % 10)


def unit_hash(*parts: object) -> float:
    """A deterministic float in [0, 1) from `parts` (stable across processes and runs)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def daily_close(listing: Listing, seed: int, day: date) -> int:
    """The close of `listing` on calendar `day`: within +-4 % of the reference close, on the grid."""
    move = (unit_hash(seed, listing.code, day.isoformat(), "close") * 2 - 1) * _DAILY_MOVE
    return floor_to_tick(listing.ref_close_krw * (1 + move))


def build_listings(seed: int, count: int) -> list[Listing]:
    """About `count` listings (at least 8), deterministic from `seed`, sorted by code."""
    count = max(count, 8)
    rng = random.Random(f"kis-sim-universe:{seed}")
    code_pool = rng.sample(range(1, 49_999), count + 16)
    names: set[str] = set()
    drafts: list[dict[str, object]] = []
    n_etf = max(1, count // 20)
    n_etn = max(1, count // 100)
    n_reit = max(1, count // 200)
    n_pref = max(1, count // 40)
    for i in range(count - n_pref):
        number = code_pool[i]
        if i < n_etf:
            group, market, code = "EF", "KOSPI", f"{(number % 49_000) * 10 + 10_000:06d}"[-6:]
            name = _unique(names, f"{rng.choice(_ETF_BRANDS)} {rng.choice(_ETF_THEMES)}")
        elif i < n_etf + n_etn:
            group, market, code = "EN", "KOSPI", f"5{number % 10_000:04d}0"
            name = _unique(names, f"{rng.choice(_PREFIXES)} 레버리지 {rng.choice(_ETF_THEMES)} ETN")
        elif i < n_etf + n_etn + n_reit:
            group, market, code = "RT", "KOSPI", f"{number * 10:06d}"
            name = _unique(names, f"{rng.choice(_PREFIXES)}리츠")
        else:
            group = "ST"
            market = "KOSPI" if rng.random() < 0.4 else "KOSDAQ"
            code = f"{number * 10:06d}"
            name = _unique(names, rng.choice(_PREFIXES) + rng.choice(_SUFFIXES))
        close = math.exp(rng.gauss(math.log(_MEDIAN_CLOSE_KRW), _CLOSE_SIGMA))
        if group in ("EF", "EN"):
            close = rng.uniform(5_000, 40_000)
        drafts.append({"code": code, "group": group, "market": market, "name": name, "close": close})
    for j in range(n_pref):
        base = drafts[len(drafts) - 1 - j * 7]
        if base["group"] != "ST":
            continue
        pref_code = str(base["code"])[:5] + "5"
        pref_close = float(str(base["close"])) * rng.uniform(0.6, 0.9)
        drafts.append(
            {
                "code": pref_code,
                "group": "ST",
                "market": base["market"],
                "name": f"{base['name']}우",
                "close": pref_close,
            }
        )
    seen: set[str] = set()
    unique = []
    for d in drafts:
        if d["code"] not in seen:
            seen.add(str(d["code"]))
            unique.append(d)
    return _assign_activity(rng, unique)


def _unique(names: set[str], name: str) -> str:
    candidate = name
    n = 1
    while candidate in names:
        n += 1
        candidate = f"{name}{n}"
    names.add(candidate)
    return candidate


def _assign_activity(rng: random.Random, drafts: list[dict[str, object]]) -> list[Listing]:
    closes = [min(max(float(str(d["close"])), _MIN_CLOSE_KRW), _MAX_CLOSE_KRW) for d in drafts]
    eligible = [i for i, d in enumerate(drafts) if d["group"] == "ST" and closes[i] >= 4_000]
    rng.shuffle(eligible)
    busy_n = min(BUSY_N, max(1, len(eligible) // 3))
    halted_idx = eligible[busy_n] if len(eligible) > busy_n else -1
    liquidation_idx = eligible[busy_n + 1] if len(eligible) > busy_n + 1 else -1
    # activity ranks: the head from the universe's stocks (what Track B can watch), then the rest
    head = eligible[:busy_n]
    in_head = set(head)
    tail = [i for i in range(len(drafts)) if i not in in_head and i != halted_idx]
    rng.shuffle(tail)
    rank_of = {i: r for r, i in enumerate(head + tail, start=1)}
    out: list[Listing] = []
    for i, d in enumerate(drafts):
        close = floor_to_tick(closes[i])
        activity: Activity
        if i == halted_idx:
            activity, rate = "halted", 0.0
        else:
            rank = rank_of[i]
            rate = midday_rate_per_s(rank) * rng.lognormvariate(0.0, RATE_NOISE_SIGMA)
            activity = "busy" if rank <= busy_n else "active" if rate >= ACTIVE_MIN_RATE_PER_S else "quiet"
        shares = int(rng.lognormvariate(math.log(30_000_000), 1.0)) // 1_000 * 1_000 + 1_000
        code = str(d["code"])
        out.append(
            Listing(
                code=code,
                isin=isin_for(code),
                name=str(d["name"]),
                market="KOSPI" if d["market"] == "KOSPI" else "KOSDAQ",
                group=str(d["group"]),
                ref_close_krw=close,
                shares_listed=shares,
                face_value_krw=rng.choice((100, 200, 500, 500, 1_000, 5_000)),
                listed_on=date(rng.randint(1975, 2024), rng.randint(1, 12), rng.randint(1, 28)),
                activity=activity,
                base_rate_per_s=rate,
                qty_scale=min(max(1_500_000 / close / 25, 1.0), 800.0),
                halted=i == halted_idx,
                liquidation=i == liquidation_idx,
            )
        )
    out.sort(key=lambda x: x.code)
    return out
