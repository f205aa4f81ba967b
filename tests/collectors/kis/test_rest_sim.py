"""The KIS REST client and provider against the real simulator (in-process, real HTTP)."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from collectors.kis.provider import KisProvider
from collectors.kis.ratelimit import limiter_for
from collectors.kis.rest import KisRestClient
from collectors.kis.settings import resolve_kis_settings
from collectors.kis.token import TokenManager, token_cache_path
from collectors.kis_sim.auth import key_id
from collectors.kis_sim.schema import ExpireTokens, RateLimit, RestError, RestTimeout
from collectors.kis_sim.server import Simulator
from observer.clock import KST, ManualClock
from observer.config import Secrets, sim_accounts
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


# -- several app keys


def keys_provider(sim: Simulator, base: Path, clock: ManualClock, keys: int, per_call: int) -> KisProvider:
    """A provider with `keys` app keys on `sim`, as `KisProvider.from_config` builds it in production;
    `per_call` symbols per multprice call (few: many calls from a small market, so the pace shows)."""
    cfg = make_config(base, sim_toml(sim, f"keys = {keys}\n[track_a]\nsymbols_per_call = {per_call}\n"))
    provider = KisProvider.from_config(cfg, Secrets({}), clock=clock)
    assert [c.settings.key_index for c in provider.clients] == list(range(1, keys + 1))
    return provider


def secrets_of(sim: Simulator, keys: int) -> list[str]:
    return [
        value for pair in sim_accounts(sim.options.app_key, sim.options.app_secret, keys) for value in pair
    ]


def assert_nothing_secret_logged(records: list[logging.LogRecord], secrets: list[str]) -> None:
    for record in records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert not any(s in text for s in secrets), record.getMessage()


def test_three_keys_share_a_sweep_each_at_its_own_pace(
    start_sim: Callable[..., Simulator], short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock(FRIDAY_10)
    sim = start_sim(clock, symbol_count=900, keys=3)
    provider = keys_provider(sim, short_tmp, clock, keys=3, per_call=5)
    cands = provider.universe_candidates("KOSPI") + provider.universe_candidates("KOSDAQ")
    symbols = {c.symbol: c.market for c in cands}
    sim.market.quotes(sorted(symbols))  # simulate the morning up front
    got, result = sweep(provider, symbols)
    assert sorted(q.symbol for q in got) == sorted(symbols) and result.recorded == len(symbols)
    assert not result.failed and not result.keys_failed
    keys = [key for key, _ in sim_accounts(sim.options.app_key, sim.options.app_secret, 3)]
    truth = sim.truth().rest
    # the ground truth per key id: each key made the calls the sweep counted for it, about a third
    assert result.calls_by_key == {n: truth[key_id(key)].requests for n, key in enumerate(keys, start=1)}
    assert sum(result.calls_by_key.values()) == result.calls >= len(symbols) / 5
    for n, calls in result.calls_by_key.items():
        assert 0.25 * result.calls <= calls <= 0.42 * result.calls, (n, result.calls_by_key)
    for key in keys:
        assert_paced(truth[key_id(key)])  # each key within its own limit ...
    assert result.rate_limited == sum(truth[key_id(k)].rate_limited for k in keys)  # ... as both sides count

    # the previous-close confirmation spreads the same way
    before = {k: truth[key_id(k)].requests for k in keys}
    subset = sorted(symbols)[:150]
    closes, failed = provider.prev_closes(subset)
    assert sorted(closes) == subset and not failed
    after = sim.truth().rest
    assert all(after[key_id(k)].requests - before[k] >= 5 for k in keys), (before, after)
    assert_nothing_secret_logged(caplog.records, secrets_of(sim, 3))
    provider.close()


@pytest.mark.parametrize("how", ["token_revoked", "account_removed"])
def test_a_key_failing_mid_sweep_hands_its_share_to_the_others(
    how: str, start_sim: Callable[..., Simulator], short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock(FRIDAY_10)
    sim = start_sim(clock, symbol_count=600, keys=3)
    provider = keys_provider(sim, short_tmp, clock, keys=3, per_call=5)
    cands = provider.universe_candidates("KOSPI") + provider.universe_candidates("KOSDAQ")
    symbols = {c.symbol: c.market for c in cands}
    sim.market.quotes(sorted(symbols))
    key2, secret2 = sim_accounts(sim.options.app_key, sim.options.app_secret, 3)[1]
    token2 = provider.clients[1].tokens.get()  # type: ignore[union-attr]
    got: list[QuoteSnapshot] = []
    lock = threading.Lock()

    def on_quote(q: QuoteSnapshot) -> None:
        with lock:
            got.append(q)
            if len(got) == 40:  # a few calls into the sweep, every key busy
                if how == "token_revoked":  # the re-issue is refused (KIS: one token per minute)
                    sim.auth.revoke(key2, secret2, token2)
                else:
                    sim.auth.remove_account(key2)

    result = provider.snapshot(symbols, "20260313T1000", on_quote)
    assert sorted(q.symbol for q in got) == sorted(symbols)  # every symbol, once
    assert result.recorded == len(symbols) and not result.failed
    code = "EGW00133" if how == "token_revoked" else "EGW00103"
    assert result.keys_failed == {2: code}
    assert result.calls_by_key[2] < min(result.calls_by_key[1], result.calls_by_key[3]) / 2, (
        result.calls_by_key
    )
    warnings = [
        r for r in caplog.records if getattr(r, "key_index", None) == 2 and r.levelno == logging.WARNING
    ]
    assert warnings and warnings[0].code == code  # type: ignore[attr-defined]
    assert_nothing_secret_logged(caplog.records, [*secrets_of(sim, 3), token2])

    # the next sweep tries the key again (it may be back); it is still out, and said so
    _, again = sweep(provider, symbols)
    assert again.recorded == len(symbols) and again.keys_failed == {2: code}
    provider.close()


def test_when_every_key_fails_the_symbols_left_fail_with_its_code(
    start_sim: Callable[..., Simulator], short_tmp: Path
) -> None:
    clock = ManualClock(FRIDAY_10)
    sim = start_sim(clock, symbol_count=300, keys=2)
    provider = keys_provider(sim, short_tmp, clock, keys=2, per_call=5)
    cands = provider.universe_candidates("KOSPI") + provider.universe_candidates("KOSDAQ")
    symbols = {c.symbol: c.market for c in cands}
    sim.market.quotes(sorted(symbols))
    got: list[QuoteSnapshot] = []
    lock = threading.Lock()

    def on_quote(q: QuoteSnapshot) -> None:
        with lock:
            got.append(q)
            if len(got) == 20:
                for key, _ in sim_accounts(sim.options.app_key, sim.options.app_secret, 2):
                    sim.auth.remove_account(key)

    result = provider.snapshot(symbols, "20260313T1000", on_quote)
    delivered = {q.symbol for q in got}
    assert len(delivered) == len(got) == result.recorded >= 20
    assert delivered | set(result.failed) == set(symbols) and not delivered & set(result.failed)
    assert set(result.failed.values()) == {"EGW00103"} and result.keys_failed == {
        1: "EGW00103",
        2: "EGW00103",
    }
    provider.close()
