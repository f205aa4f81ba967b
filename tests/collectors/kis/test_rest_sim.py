"""The KIS REST client and provider against the real simulator (in-process, real HTTP)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from collectors.kis.provider import KisProvider
from collectors.kis.ratelimit import limiter_for
from collectors.kis.rest import KisRestClient
from collectors.kis.settings import resolve_kis_settings
from collectors.kis.token import TokenManager, token_cache_path
from collectors.kis_sim.auth import key_id
from collectors.kis_sim.schema import ExpireTokens, RateLimit, RestError, RestTimeout
from collectors.kis_sim.server import Simulator
from observer.clock import KST, ManualClock
from observer.config import Secrets
from observer.schema import QuoteSnapshot
from testkit.config import make_config, write_config
from tests.collectors.conftest import sim_toml
from tests.conftest import REPO

FRIDAY_10 = datetime(2026, 3, 13, 10, 0, tzinfo=KST)


def count_token_issues(sim: Simulator) -> list[int]:
    """Wrap the simulator's token issuance with a counter (ground truth has no tokenP count)."""
    calls = [0]
    original = sim.auth.issue_token

    def counting(app_key: str, app_secret: str) -> Any:
        calls[0] += 1
        return original(app_key, app_secret)

    sim.auth.issue_token = counting  # type: ignore[method-assign]
    return calls


def rest_truth(sim: Simulator) -> Any:
    return sim.truth().rest[key_id(sim.options.app_key)]


def assert_paced(truth: Any, rate_per_s: float = 18.0, window_s: int = 5) -> None:
    """The configured pace, as the server counted it, with room for arrival jitter only.

    The limiter spaces request *starts* 1/rate apart; the simulator (like KIS) counts *arrivals* per
    wall second. On a loaded host a handler thread scheduled late can bunch a request or two into the
    next second (CI once counted 21 in one second of an 18/s sweep); KIS would refuse those with
    EGW00201 and the collector retries them. So: at most two over the 20/s limit in a second, at most
    two refused, and over every `window_s` consecutive seconds no more than the configured rate
    allows (plus one burst and that jitter): a limiter paced at 20/s, or not at all, fails this.
    """
    counts = {datetime.fromisoformat(k).timestamp(): v for k, v in truth.per_second.items()}
    assert truth.max_per_s <= 22 and truth.rate_limited <= 2, truth.per_second
    first, last = int(min(counts)), int(max(counts))
    windows = [sum(counts.get(float(s), 0) for s in range(t, t + window_s)) for t in range(first, last + 1)]
    assert max(windows) <= window_s * rate_per_s + 3, (max(windows), truth.per_second)


def provider_for(
    sim: Simulator, base: Path, clock: ManualClock, *, issue_interval_s: float = 61.0
) -> KisProvider:
    cfg = make_config(base, sim_toml(sim))
    settings = resolve_kis_settings(cfg, Secrets({}))
    assert settings.simulated and settings.rest_url.endswith(str(sim.rest_port))
    client = KisRestClient(
        settings, limiter_for(cfg, settings.app_key.reveal(), settings.rate_limit_per_s), backoff_base_s=0.05
    )
    client.bind_tokens(
        TokenManager(token_cache_path(cfg), "fp", client.issue_token, issue_interval_s=issue_interval_s)
    )
    return KisProvider(cfg, [client], clock=clock)


def sweep(provider: KisProvider, symbols: dict[str, str]) -> tuple[list[QuoteSnapshot], Any]:
    got: list[QuoteSnapshot] = []
    lock = threading.Lock()

    def on_quote(q: QuoteSnapshot) -> None:
        with lock:
            got.append(q)

    return got, provider.snapshot(symbols, "20260313T1000", on_quote)


def test_sweep_matches_rows_by_code_and_caches_the_token_0600(
    start_sim: Callable[..., Simulator], short_tmp: Path
) -> None:
    clock = ManualClock(FRIDAY_10)
    sim = start_sim(clock, symbol_count=300)
    issues = count_token_issues(sim)
    provider = provider_for(sim, short_tmp, clock)
    cands = provider.universe_candidates("KOSPI") + provider.universe_candidates("KOSDAQ")
    symbols = {c.symbol: c.market for c in cands}
    symbols["999990"] = "KOSPI"  # unknown code: a blank row, then inquire-price, then a gap
    got, result = sweep(provider, symbols)
    assert result.recorded == len(symbols) - 1 and list(result.failed) == ["999990"]
    truth = sim.market.quotes(sorted(symbols))
    for q in got:  # every row landed on its own symbol (matched by inter_shrn_iscd, not position)
        assert q.price == truth[q.symbol].price and q.market == symbols[q.symbol]
    assert Counter(q.symbol for q in got).most_common(1)[0][1] == 1
    assert issues[0] == 1
    path = token_cache_path(provider.cfg)
    assert path.stat().st_mode & 0o777 == 0o600
    assert sim.options.app_key not in path.read_text() and sim.options.app_secret not in path.read_text()
    provider.close()


def test_fault_periods_cost_only_symbols_listed_as_failed(
    start_sim: Callable[..., Simulator], short_tmp: Path
) -> None:
    clock = ManualClock(FRIDAY_10)
    sim = start_sim(clock, symbol_count=240, token_min_interval_s=0.5)
    provider = provider_for(sim, short_tmp, clock, issue_interval_s=0.6)
    cands = provider.universe_candidates("KOSPI") + provider.universe_candidates("KOSDAQ")
    symbols = {c.symbol: c.market for c in cands}
    sweep(provider, symbols)  # a token exists before the faults
    for fault in (
        RateLimit(duration_s=0.8),
        RestError(status=500, duration_s=0.6),
        RestError(status=502, duration_s=0.6),
        RestTimeout(sleep_s=2.5, duration_s=0.3),
        ExpireTokens(),
    ):
        sim.faults.add(fault)
        got, result = sweep(provider, symbols)
        delivered = {q.symbol for q in got}
        assert len(delivered) == len(got) == result.recorded, fault  # nothing twice
        assert delivered | set(result.failed) == set(symbols), fault  # nothing silently lost
        assert not delivered & set(result.failed), fault
        assert result.recorded >= 0.9 * len(symbols), (fault, result.failed)
    assert rest_truth(sim).max_accepted_per_s <= 20
    provider.close()


def test_mock_account_sweeps_with_inquire_price_under_2_per_s(
    start_sim: Callable[..., Simulator], short_tmp: Path
) -> None:
    clock = ManualClock(FRIDAY_10)
    sim = start_sim(clock, symbol_count=60, account="mock")
    provider = provider_for(sim, short_tmp, clock)
    assert provider.settings.rate_limit_per_s < 2 and not provider.settings.multiprice_available
    cands = provider.universe_candidates("KOSPI")[:8]
    got, result = sweep(provider, {c.symbol: c.market for c in cands})
    assert {q.symbol for q in got} == {c.symbol for c in cands}
    assert result.recorded == 8 and result.fallback_symbols == 8 and not result.failed
    truth = rest_truth(sim)
    assert truth.max_per_s <= 2 and truth.rate_limited == 0
    provider.close()


SWEEPER = """
import sys, threading
from collectors.providers import build_provider
from observer.config import load_config, Secrets
from observer.clock import SystemClock
cfg = load_config(sys.argv[1])
p = build_provider(cfg, Secrets({}), clock=SystemClock())
cands = p.universe_candidates("KOSPI") + p.universe_candidates("KOSDAQ")
r = p.snapshot({c.symbol: c.market for c in cands}, "x", lambda q: None)
print(r.recorded, len(r.failed))
"""


def test_limiter_shared_across_processes_holds_20_per_s_with_a_build_overlapping(
    start_sim: Callable[..., Simulator], short_tmp: Path
) -> None:
    clock = ManualClock(FRIDAY_10)
    sim = start_sim(clock, symbol_count=900)
    sim.market.quotes([x.code for x in sim.market.listings])  # simulate the morning once, up front
    config = write_config(short_tmp, sim_toml(sim))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIS_")} | {"PYTHONPATH": str(REPO)}
    py = str(REPO / ".venv/bin/python")
    procs = [
        subprocess.Popen(
            [py, "-c", SWEEPER, str(config)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    procs.append(
        subprocess.Popen(
            [py, "-m", "observer", "--config", str(config), "universe", "build", "--date", "2026-03-13"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    truth = rest_truth(sim)
    assert truth.requests >= 80  # the three really overlapped on one app key ...
    assert_paced(truth)  # ... and never exceeded it
    assert max(truth.per_second.values()) >= 15, truth.per_second  # the limiter, not the sim, set the pace
    assert "KOSPI 2026-03-13" in outs[2][0]
