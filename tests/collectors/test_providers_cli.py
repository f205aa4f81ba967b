"""Provider registry and the universe CLI (click.testing.CliRunner)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from collectors.kis.provider import KisProvider
from collectors.kis.settings import resolve_kis_keys, resolve_kis_settings
from collectors.kis.token import token_cache_path
from collectors.kis_sim.server import Simulator
from collectors.providers import IMarketDataProvider, ProviderUnavailable, build_provider, build_stream
from collectors.universe_build import UniverseBuilder
from observer.cli import cli
from observer.clock import KST, ManualClock
from observer.config import MissingCredentials, Secrets
from observer.schema import DetailValue, UniverseBuilt
from observer.universe import snapshot_path
from testkit.config import make_config, write_config
from tests.collectors.conftest import sim_toml


@pytest.mark.parametrize("name", ["kiwoom", "upbit", "ib"])
def test_declared_providers_fail_at_start_up_with_a_clear_message(short_tmp: Path, name: str) -> None:
    cfg = make_config(short_tmp, f'[provider]\nname = "{name}"\n')
    message = f"provider '{name}' is declared but not implemented in this release (implemented: kis)"
    for build in (build_provider, build_stream):
        with pytest.raises(ProviderUnavailable, match=re.escape(message)):
            build(cfg, Secrets({}))
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(write_config(short_tmp, f'[provider]\nname = "{name}"\n')),
            "universe",
            "build",
            "--date",
            "2026-03-13",
        ],
    )
    assert result.exit_code == 2 and message in result.output
    worker = CliRunner().invoke(
        cli,
        [
            "--config",
            str(write_config(short_tmp, f'[provider]\nname = "{name}"\n')),
            "worker",
            "ws-collector",
        ],
    )
    assert worker.exit_code == 2 and message in worker.output


def test_kis_provider_satisfies_the_interface(short_tmp: Path) -> None:
    provider = build_provider(make_config(short_tmp, "[sim]\nenabled = true\n"), Secrets({}))
    assert isinstance(provider, KisProvider) and isinstance(provider, IMarketDataProvider)
    assert provider.settings.simulated and provider.name == "kis-sim"  # what the simulator's data says
    provider.close()
    real = build_provider(
        make_config(short_tmp), Secrets({"KIS_APP_KEY": "k" * 36, "KIS_APP_SECRET": "s" * 180})
    )
    assert not real.settings.simulated and real.name == "kis"  # type: ignore[attr-defined]
    real.close()


def test_production_with_numbered_keys_has_a_client_limiter_and_token_cache_per_key(short_tmp: Path) -> None:
    env = {f"KIS_APP_{kind}_{n}": f"{kind[0]}{n}" * 30 for n in (1, 2, 3) for kind in ("KEY", "SECRET")}
    cfg = make_config(short_tmp)
    keys = resolve_kis_keys(cfg, Secrets(env))
    assert [(s.key_index, s.app_key.reveal(), s.app_secret.reveal()) for s in keys] == [
        (n, env[f"KIS_APP_KEY_{n}"], env[f"KIS_APP_SECRET_{n}"]) for n in (1, 2, 3)
    ]
    first = resolve_kis_settings(cfg, Secrets(env))
    assert (first.key_index, first.app_key.reveal()) == (1, env["KIS_APP_KEY_1"])
    provider = build_provider(cfg, Secrets(env))
    assert isinstance(provider, KisProvider) and provider.client is provider.clients[0]
    assert [(c.settings.key_index, c.settings.app_key.reveal()) for c in provider.clients] == [
        (s.key_index, s.app_key.reveal()) for s in keys
    ]
    assert len({c.limiter.path for c in provider.clients}) == 3
    caches = [c.tokens.path for c in provider.clients if c.tokens is not None]
    assert caches[0] == token_cache_path(cfg) and len(set(caches)) == 3
    provider.close()
    single = build_provider(cfg, Secrets({"KIS_APP_KEY": "k" * 36, "KIS_APP_SECRET": "s" * 180}))
    assert [c.settings.key_index for c in single.clients] == [1]  # type: ignore[attr-defined]
    single.close()


def test_production_without_credentials_has_no_source(short_tmp: Path) -> None:
    """No silent simulator: without [sim] enabled and without credentials nothing is built."""
    for build in (build_provider, build_stream):
        with pytest.raises(MissingCredentials, match="KIS_APP_KEY and KIS_APP_SECRET"):
            build(make_config(short_tmp), Secrets({}))
    with pytest.raises(MissingCredentials, match="KIS_APP_SECRET not set") as e:
        build_provider(make_config(short_tmp), Secrets({"KIS_APP_KEY": "k" * 36}))
    assert "k" * 36 not in str(e.value)


def test_universe_build_filters_then_falls_back_with_an_event(
    start_sim: Callable[..., Simulator], short_tmp: Path
) -> None:
    clock = ManualClock(datetime(2026, 3, 13, 8, 30, tzinfo=KST))
    sim = start_sim(clock, symbol_count=240)
    cfg = make_config(short_tmp, sim_toml(sim))
    seen: list[tuple[str, dict[str, DetailValue]]] = []
    provider = KisProvider.from_config(cfg, Secrets({}), clock=clock)
    built: list[UniverseBuilt] = []
    builder = UniverseBuilder(
        cfg, provider, clock, emit=lambda t, s, m, d: seen.append((t, d)), built=built.append
    )
    loaded = builder.ensure(date(2026, 3, 13))
    listings = {x.code: x for x in sim.market.listings}
    kept = {e.symbol for lu in loaded.values() for e in lu.snapshot.symbols}
    for code in kept:
        x = listings[code]
        assert x.group == "ST" and not x.halted and not x.liquidation
    for lu in loaded.values():
        assert all(e.prev_close >= 4_000 for e in lu.snapshot.symbols)
    expected = {
        c
        for c, x in listings.items()
        if x.group == "ST"
        and not x.halted
        and not x.liquidation
        and sim.market.base_price(x, date(2026, 3, 13)) >= 4_000
    }
    assert kept == expected
    assert sorted(b.market for b in built) == ["KOSDAQ", "KOSPI"] and all(
        b.day == date(2026, 3, 13) for b in built
    )
    assert all(
        b.record_id == f"evt:universe:universe_built:{cfg.archive_provider}:{b.market}:20260313"
        for b in built
    )
    path = snapshot_path(Path(cfg.paths.universe_dir), date(2026, 3, 13), "KOSPI")
    assert path.stat().st_mode & 0o777 == 0o600
    # the next day, the master files are unreachable: the latest earlier snapshot is used, and said so
    sim.stop()
    seen.clear()
    fallback = builder.ensure(date(2026, 3, 16))
    assert fallback["KOSPI"].fallback_from == date(2026, 3, 16)
    assert fallback["KOSPI"].snapshot.date == date(2026, 3, 13)
    assert [t for t, _ in seen] == ["universe_fallback", "universe_fallback"]
    assert not snapshot_path(Path(cfg.paths.universe_dir), date(2026, 3, 16), "KOSPI").exists()
    provider.close()
    runner = CliRunner()
    config = write_config(short_tmp, sim_toml(sim))
    out = runner.invoke(
        cli, ["--config", str(config), "universe", "show", "--date", "20260316", "--market", "KOSPI"]
    )
    assert out.exit_code == 0 and "fallback" in out.output and "20260313_KOSPI.json" in out.output
    out = runner.invoke(cli, ["--config", str(config), "universe", "show", "--date", "2026-03-12"])
    assert out.exit_code == 1 and "no universe snapshot" in out.output
