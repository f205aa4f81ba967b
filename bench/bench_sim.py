"""Simulator benchmark: does it keep up with its clock while serving 41 busy symbols over WS and a
4,000-symbol intstock-multprice sweep at 20 req/s?

Prints: how long the 41 subscriptions took to be acked (the first look at each symbol), WS frames/s
and records/s, lag of the feed behind virtual time (p50/p99/max, virtual seconds,
1 s resolution of STCK_CNTG_HOUR), whether the client received exactly what the ground truth says was
published, and for each sweep its duration, calls, per-call latency and the gateway's max requests/s.

    .venv/bin/python bench/bench_sim.py [--speed 1.0] [--seconds 20] [--symbols 4000]
        [--start-at 2026-01-05T14:00:00+09:00] [--no-warm-up] [--unthrottled] [--scale 1 10 50]

Each run is repeated per ``--scale`` (``[sim] activity_scale``; default x1, x10, x50): at x50 the 41
busiest symbols publish ~6,000 records/s at 09:30 and the lag shows whether the simulator keeps up.

The first ("cold") sweep right after the start is what a late start costs: `--no-warm-up` measures the
first look alone (aggregate fast-forward), the default adds the background warm-up; `--unthrottled`
lifts the 20 req/s gateway limit and sweeps as fast as the simulator answers (its own cost).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.kis_sim.auth import key_id
from collectors.kis_sim.server import SimOptions, Simulator
from observer.clock import KST, SessionClock

QUOT = "/uapi/domestic-stock/v1/quotations/"


def _feed(ws_url: str, clock: SessionClock, approval: str, codes: list[str], stop: Any, results: Any) -> None:
    """The WS client, in its own process (the simulator's threads must not share its GIL)."""
    out: dict[str, object] = {}
    ws = websocket.create_connection(ws_url, timeout=30, skip_utf8_validation=True)
    subscribe_started = time.monotonic()
    for code in codes:
        ws.send(
            json.dumps(
                {
                    "header": {
                        "approval_key": approval,
                        "custtype": "P",
                        "tr_type": "1",
                        "content-type": "utf-8",
                    },
                    "body": {"input": {"tr_id": "H0STCNT0", "tr_key": code}},
                }
            )
        )
    frames = records = acks = 0
    lags: list[float] = []
    per_symbol: dict[str, int] = {}
    first_at = 0.0
    while not stop.is_set():
        text = ws.recv()
        if text.startswith("{"):
            if '"PINGPONG"' in text:
                ws.send(text)
            elif '"OPSP0000"' in text:
                acks += 1
                if acks == len(codes):
                    out["subscribed_s"] = time.monotonic() - subscribe_started
            continue
        now_virtual = clock.now()
        if not first_at:
            first_at = time.monotonic()
        _, _, count, payload = text.split("|", 3)
        fields = payload.split("^")
        per = len(fields) // int(count)
        frames += 1
        records += int(count)
        for i in range(int(count)):
            per_symbol[fields[i * per]] = per_symbol.get(fields[i * per], 0) + 1
        hhmmss = fields[(int(count) - 1) * per + 1]
        rec_s = int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:6])
        now_s = (
            now_virtual.hour * 3600
            + now_virtual.minute * 60
            + now_virtual.second
            + now_virtual.microsecond / 1e6
        )
        lags.append(max(now_s - rec_s - 1.0, 0.0))  # the record time is truncated to the second
    for code in codes:
        ws.send(
            json.dumps(
                {
                    "header": {
                        "approval_key": approval,
                        "custtype": "P",
                        "tr_type": "2",
                        "content-type": "utf-8",
                    },
                    "body": {"input": {"tr_id": "H0STCNT0", "tr_key": code}},
                }
            )
        )
    acks = 0
    while acks < len(codes):
        text = ws.recv()
        if text.startswith("{"):
            acks += '"OPSP0001"' in text
            continue
        _, _, count, payload = text.split("|", 3)
        fields = payload.split("^")
        per = len(fields) // int(count)
        records += int(count)
        for i in range(int(count)):
            per_symbol[fields[i * per]] = per_symbol.get(fields[i * per], 0) + 1
    ws.close()
    out.update(
        frames=frames,
        records=records,
        lags=lags,
        per_symbol=per_symbol,
        elapsed_s=time.monotonic() - first_at,
    )
    results.put(out)


def _sweep(sim: Simulator, token: str, opts: SimOptions, rate_per_s: float) -> dict[str, float]:
    http = requests.Session()
    headers = {
        "authorization": f"Bearer {token}",
        "appkey": opts.app_key,
        "appsecret": opts.app_secret,
        "tr_id": "FHKST11300006",
        "custtype": "P",
    }
    codes = [x.code for x in sim.market.listings]
    latencies: list[float] = []
    rows = limited = 0
    start = due = time.monotonic()
    for i in range(0, len(codes), 30):
        while (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        # no catching up after a slow answer: a burst would trip the gateway's per-second limit
        due = max(due, time.monotonic()) + 1.0 / rate_per_s
        params = {}
        for k, code in enumerate(codes[i : i + 30], start=1):
            params[f"FID_COND_MRKT_DIV_CODE_{k}"] = "J"
            params[f"FID_INPUT_ISCD_{k}"] = code
        t0 = time.monotonic()
        r = http.get(
            sim.urls["rest"] + QUOT + "intstock-multprice", headers=headers, params=params, timeout=10
        )
        latencies.append(time.monotonic() - t0)
        doc = r.json()
        if doc.get("msg_cd") == "EGW00201":
            limited += 1
        else:
            rows += len(doc["output"])
    latencies.sort()
    return {
        "duration_s": time.monotonic() - start,
        "calls": len(latencies),
        "rows": rows,
        "rate_limited": limited,
        "p50_ms": 1e3 * latencies[len(latencies) // 2],
        "p99_ms": 1e3 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1e3 * latencies[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--symbols", type=int, default=4_000)
    ap.add_argument("--start-at", default="2026-01-05T09:29:40+09:00")
    ap.add_argument("--sweep-rate", type=float, default=19.5, help="multprice calls per second")
    ap.add_argument("--no-sweep", action="store_true", help="WS feed only")
    ap.add_argument("--no-warm-up", action="store_true", help="no background warm-up at start")
    ap.add_argument("--unthrottled", action="store_true", help="no gateway rate limit, sweep flat out")
    ap.add_argument("--scale", type=float, nargs="*", default=[1.0, 10.0, 50.0], help="[sim] activity_scale")
    args = ap.parse_args()
    for scale in args.scale:
        run_once(args, scale)


def run_once(args: argparse.Namespace, scale: float) -> None:
    opts = SimOptions(
        symbol_count=args.symbols,
        warm_up=not args.no_warm_up,
        rate_limit_per_s=1_000_000 if args.unthrottled else None,
        activity_scale=scale,
    )
    sweep_rate = 1e9 if args.unthrottled else args.sweep_rate
    clock = SessionClock(datetime.fromisoformat(args.start_at).astimezone(KST), args.speed)
    sim = Simulator(opts, clock).start()
    try:
        rest = sim.urls["rest"]
        token = requests.post(
            rest + "/oauth2/tokenP",
            json={"grant_type": "client_credentials", "appkey": opts.app_key, "appsecret": opts.app_secret},
            timeout=5,
        ).json()["access_token"]
        approval = requests.post(
            rest + "/oauth2/Approval",
            json={"grant_type": "client_credentials", "appkey": opts.app_key, "secretkey": opts.app_secret},
            timeout=5,
        ).json()["approval_key"]
        busy = sorted(
            (x for x in sim.market.listings if x.activity == "busy"), key=lambda x: -x.base_rate_per_s
        )
        codes = [x.code for x in busy[:41]]
        spawn = mp.get_context("spawn")
        stop, results = spawn.Event(), spawn.Queue()
        feed = spawn.Process(target=_feed, args=(sim.urls["ws"], clock, approval, codes, stop, results))
        feed.start()
        sweeps = []
        t_end = time.monotonic() + args.seconds
        while not args.no_sweep and (time.monotonic() < t_end - 1 or not sweeps):
            sweeps.append(_sweep(sim, token, opts, sweep_rate))
            if time.monotonic() + sweeps[-1]["duration_s"] > t_end:
                break
        while time.monotonic() < t_end:
            time.sleep(0.05)
        stop.set()
        try:
            feed_out: dict[str, object] = results.get(timeout=60)
        except queue.Empty:
            feed_out = {}
        feed.join(30)
        truth = sim.truth()
        session = truth.sessions[0]
        if "lags" not in feed_out:
            raise SystemExit(f"feed failed; session closed: {session.close_reason}")
        lags = sorted(feed_out["lags"])  # type: ignore[arg-type]
        elapsed = float(feed_out["elapsed_s"])  # type: ignore[arg-type]
        per_symbol = feed_out["per_symbol"]  # type: ignore[assignment]
        exact = all(per_symbol.get(c, 0) == s.published_records for c, s in session.symbols.items())  # type: ignore[attr-defined]
        print(
            f"simulator: {len(sim.market.listings)} symbols, activity x{scale:g}, speed {args.speed}x, virtual start {args.start_at}, "
            f"warm-up {'off' if args.no_warm_up else 'on'}, sweep "
            f"{'unthrottled' if args.unthrottled else f'at {args.sweep_rate}/s'}"
        )
        print(f"ws: 41 subscriptions acked in {float(feed_out.get('subscribed_s', float('nan'))):.2f} s")  # type: ignore[arg-type]
        print(
            f"ws: 41 busy symbols for {elapsed:.1f} s real: {feed_out['frames']} frames "
            f"({int(feed_out['frames']) / elapsed:.0f}/s), {feed_out['records']} records "  # type: ignore[call-overload]
            f"({int(feed_out['records']) / elapsed:.0f}/s)"
        )  # type: ignore[call-overload]
        print(
            f"ws lag behind virtual time (virtual s): p50 {statistics.median(lags):.2f}  "
            f"p99 {lags[int(len(lags) * 0.99)]:.2f}  max {lags[-1]:.2f}"
        )
        print(f"ws received == ground truth published: {exact} ({session.records} records published)")
        for i, s in enumerate(sweeps):
            label = "cold" if i == 0 else "warm"
            print(
                f"multprice sweep {i + 1} ({label}): {s['rows']:.0f} rows in {s['calls']:.0f} calls, "
                f"{s['duration_s']:.2f} s; latency p50 {s['p50_ms']:.1f} ms p99 {s['p99_ms']:.1f} ms "
                f"max {s['max_ms']:.1f} ms; rate-limited {s['rate_limited']:.0f}"
            )
        rest_truth = truth.rest.get(key_id(opts.app_key))
        if rest_truth is not None:
            print(
                f"gateway: {rest_truth.requests} /uapi requests, max {rest_truth.max_per_s}/s, "
                f"rate-limited {rest_truth.rate_limited}"
            )
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
