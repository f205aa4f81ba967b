"""Track A sweep wall time with one app key and with several, side by side, against the rate-limit floor.

    .venv/bin/python bench/bench_sweep_keys.py [--symbols 4000] [--keys 3] [--per-call 30]

Runs the simulator in-process with ``--keys`` accounts (its market pre-simulated up to the sweep
time, every key's token issued before the timing), then sweeps the whole universe with the first
key alone and with all of them (``[sim] keys``, as `KisProvider.from_config` builds it). The floor
is ``calls / (keys x rate)``, the configured limiter rate per key (``[kis] rate_limit_per_s``); the
goal is a sweep within 1.10x of it.
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
    ap.add_argument("--keys", type=int, default=3, help="app keys for the second sweep")
    ap.add_argument("--per-call", type=int, default=30, help="symbols per multprice call")
    args = ap.parse_args()

    clock = ManualClock(datetime(2026, 3, 13, 10, 0, tzinfo=KST))
    sim = Simulator(SimOptions(symbol_count=args.symbols, keys=args.keys), clock).start()
    base = Path(tempfile.mkdtemp(prefix="bench-keys-", dir="/tmp"))
    rows = []
    try:
        for keys in sorted({1, args.keys}):
            cfg = decode_config(
                f'[paths]\ndata_dir = "{base}/data"\nruntime_dir = "{base}/run"\nuniverse_dir = "{base}/u"\n'
                f"[sim]\nenabled = true\nrest_port = {sim.rest_port}\nkeys = {keys}\n"
                f"[track_a]\nsymbols_per_call = {args.per_call}\n"
            )
            provider = KisProvider.from_config(cfg, Secrets({}), clock=clock)
            try:
                cands = provider.universe_candidates("KOSPI") + provider.universe_candidates("KOSDAQ")
                symbols = {c.symbol: c.market for c in cands}
                sim.market.quotes(sorted(symbols))  # simulate the morning up front
                for client in provider.clients:
                    client.inquire_price(next(iter(symbols)))  # the tokens, outside the timing
                before = {k: sim.truth().rest[key_id(k)].requests for k, _ in cfg.sim.accounts()}
                rate = provider.settings.rate_limit_per_s
                t0 = time.perf_counter()
                result = provider.snapshot(symbols, "bench", lambda q: None)
                wall_s = time.perf_counter() - t0
            finally:
                provider.close()
            truth = sim.truth().rest
            per_key = [truth[key_id(k)] for k, _ in cfg.sim.accounts()]
            floor_s = result.calls / (keys * rate)
            rows.append((keys, len(symbols), result, wall_s, floor_s, rate))
            print(
                f"{keys} key(s): {len(symbols)} symbols, {result.calls} calls "
                f"(per key {[t.requests - before[k] for t, (k, _) in zip(per_key, cfg.sim.accounts(), strict=True)]}), "
                f"recorded {result.recorded}, failed {len(result.failed)}, refused {result.rate_limited}; "
                f"sim max {max(t.max_per_s for t in per_key)} req/s per key"
            )
        print()
        print(
            f"{'keys':>4} {'calls':>6} {'wall s':>8} {'floor s':>8} {'ratio':>6}   floor = calls / (keys x rate)"
        )
        for keys, _, result, wall_s, floor_s, rate in rows:
            print(
                f"{keys:>4} {result.calls:>6} {wall_s:>8.2f} {floor_s:>8.2f} {wall_s / floor_s:>5.2f}x"
                f"   ({keys} x {rate:g} req/s; goal <= 1.10x)"
            )
        if len(rows) == 2:
            print(f"speed-up {rows[0][3] / rows[1][3]:.2f}x with {rows[1][0]} keys (ideal {rows[1][0]}x)")
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
