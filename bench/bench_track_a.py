"""Track A sweep wall time against the simulator, next to the floor the rate limit sets.

    .venv/bin/python bench/bench_track_a.py [--symbols 4000] [--fallback-symbols 300] [--full-fallback]

Runs the simulator in-process (its market pre-simulated up to the sweep time, so the figures are
the client's, not the simulator's first-touch cost), then:

1. the multi-symbol sweep of the whole universe (``intstock-multprice``, 30 per call);
2. the inquire-price fallback on ``--fallback-symbols`` symbols (``--full-fallback``: all of them),
   reported per symbol and extrapolated to the universe.

The floor is ``calls / rate``: at KIS's 20 req/s and at the configured limiter rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from collectors.kis.provider import KisProvider
from collectors.kis_sim.auth import key_id
from collectors.kis_sim.server import SimOptions, Simulator
from observer.clock import KST, ManualClock
from observer.config import Secrets, decode_config


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=4_000, help="simulator listing size")
    ap.add_argument("--fallback-symbols", type=int, default=300)
    ap.add_argument("--full-fallback", action="store_true")
    args = ap.parse_args()

    clock = ManualClock(datetime(2026, 3, 13, 10, 0, tzinfo=KST))
    sim = Simulator(SimOptions(symbol_count=args.symbols), clock).start()
    base = Path(tempfile.mkdtemp(prefix="bench-a-", dir="/tmp"))
    cfg = decode_config(
        f'[paths]\ndata_dir = "{base}/data"\nruntime_dir = "{base}/run"\nuniverse_dir = "{base}/universe"\n'
        f"[sim]\nenabled = true\nrest_port = {sim.rest_port}\n"
    )
    provider = KisProvider.from_config(cfg, Secrets({}), clock=clock)
    try:
        cands = provider.universe_candidates("KOSPI") + provider.universe_candidates("KOSDAQ")
        symbols = {c.symbol: c.market for c in cands}
        sim.market.quotes(sorted(symbols))  # simulate the morning up front
        provider.client.inquire_price(next(iter(symbols)))  # the token, outside the timing
        rate = provider.settings.rate_limit_per_s

        t0 = time.perf_counter()
        result = provider.snapshot(symbols, "bench", lambda q: None)
        multi_s = time.perf_counter() - t0
        calls = result.calls
        print(f"universe: {len(symbols)} symbols; limiter {rate:g} req/s (KIS allows 20)")
        print(
            f"multprice sweep: {multi_s:6.2f} s, {calls} calls, recorded {result.recorded}, "
            f"failed {len(result.failed)}, rate-limited answers {result.rate_limited}"
        )
        floor20, floor_cfg = calls / 20.0, calls / rate
        print(
            f"  floor at 20 req/s {floor20:5.2f} s -> ratio {multi_s / floor20:4.2f}x (goal <= 1.10x); "
            f"floor at {rate:g} req/s {floor_cfg:5.2f} s -> ratio {multi_s / floor_cfg:4.2f}x"
        )

        provider._multiprice_ok = False  # the fallback path, as on a mock account or a failing endpoint
        n = len(symbols) if args.full_fallback else min(args.fallback_symbols, len(symbols))
        subset = dict(list(symbols.items())[:n])
        t0 = time.perf_counter()
        fb = provider.snapshot(subset, "bench-fallback", lambda q: None)
        fb_s = time.perf_counter() - t0
        per_symbol = fb_s / max(n, 1)
        print(
            f"inquire-price fallback: {n} symbols in {fb_s:6.2f} s ({fb.calls} calls, failed {len(fb.failed)})"
        )
        print(
            f"  floor at 20 req/s {n / 20:5.2f} s -> ratio {fb_s / (n / 20):4.2f}x; "
            f"extrapolated to {len(symbols)} symbols: {per_symbol * len(symbols):6.1f} s "
            f"(floor {len(symbols) / 20:5.1f} s at 20/s, {len(symbols) / rate:5.1f} s at {rate:g}/s)"
        )
        truth = sim.truth().rest[key_id(sim.options.app_key)]
        print(
            f"simulator: max {truth.max_per_s} req/s in any wall-clock second, {truth.rate_limited} refused"
        )
    finally:
        provider.close()
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
