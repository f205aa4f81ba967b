"""Replay benchmark: figures for `observer replay`, each beside its bare reference in the same run.

    .venv/bin/python bench/bench_replay.py [--lines 3300000] [--keep]

A synthetic trading day shaped like a real one (41 slots x 2 Hz scalp samples 09:30-15:00 in
10-minute files, ~1.5 M raw frames in hourly files, 39 Track A sweeps of 4,000 symbols, a few
events; the lines are the real schema Structs, ~950 / 420 / 890 bytes) is written once to a temp
dir, then:

1. ``--speed max``: `observer replay` (a real process, one draining subscriber) next to a bare
   read-and-publish loop over the same files (read each line, send it on a PUB with a topic; no
   parsing, no merge), lines/s of both and the ratio (goal >= 0.5);
2. RSS of the replay process sampled every 0.5 s over the whole day (flat = streamed);
3. ``--speed 1`` over 30 s of the day: inter-message timing error at the consumer,
   ``|(recv_i - recv_0) - (at_i - at_0)|``, p50 / p99 / max (goal p99 < 5 ms).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from observer.clock import KST  # noqa: E402
from observer.schema import (  # noqa: E402
    ContractMeta,
    Instrument,
    Interpretation,
    MarketDataContract,
    PatternRecord,
    Quality,
    RawFrameRecord,
    SchemaInfo,
    SystemEvent,
)

DAY = datetime(2026, 12, 7, tzinfo=KST)
SYMBOLS = [f"{100000 + i * 7:06d}" for i in range(4000)]
FRAME = (
    "0|H0STCNT0|001|{sym}^093000^8540^2^130^1.55^8385.63^8400^8630^8070^8540^8530^15^340886^2858542200"
    "^9338^9168^-170^98.08^172091^168795^1^0.50^15.76^090000^2^140^092331^5^-90^092350^2^470^20261207"
    "^20^N^300^64^3465^704^1.21^166423^204.83^0^^8410"
)

DRAIN = """
import sys, time, zmq
ctx = zmq.Context(); sub = ctx.socket(zmq.SUB); sub.setsockopt(zmq.RCVHWM, 100000)
sub.setsockopt(zmq.SUBSCRIBE, b""); sub.connect(sys.argv[1])
n = 0; idle_s = float(sys.argv[2]); last = time.monotonic() + 120  # the first message may take a while
print("ready", flush=True)
while time.monotonic() - last < idle_s:
    if sub.poll(100):
        while True:
            try:
                sub.recv_multipart(zmq.NOBLOCK); n += 1
            except zmq.Again:
                break
        last = time.monotonic()
print(n, flush=True)
"""

TIMING = """
import sys, time, zmq, msgspec
from observer.bus import feed_decoder
from observer.schema import FeedMessage
ctx = zmq.Context(); sub = ctx.socket(zmq.SUB); sub.setsockopt(zmq.SUBSCRIBE, b""); sub.connect(sys.argv[1])
out = []
print("ready", flush=True)
while True:
    frames = sub.recv_multipart(); now = time.time_ns()
    body = feed_decoder.decode(frames[1])
    if isinstance(body, FeedMessage):
        out.append((now, int(body.at.timestamp() * 1e9), body.sent_at_ns))
    elif body.final:
        break
def pct(errors):
    errors.sort()
    return [errors[len(errors) // 2], errors[min(len(errors) - 1, int(len(errors) * 0.99))], errors[-1]]
import os
if os.environ.get("TIMING_DUMP"):
    with open(os.environ["TIMING_DUMP"], "w") as f:
        for r, a, s in out:
            f.write(f"{r} {a} {s}\\n")
recv = pct([abs((r - out[0][0]) - (a - out[0][1])) / 1e6 for r, a, _ in out])
sent = pct([abs((s - out[0][2]) - (a - out[0][1])) / 1e6 for _, a, s in out])
print(len(out), *recv, *sent)
"""


def _pattern(track: str, sym: str, market: str, at: datetime, end: datetime, i: int) -> PatternRecord:
    window = track == "scalp"
    inst = Instrument(
        symbol=sym,
        timestamp=at,
        received_at=at,
        price={"open": 8400, "high": 8630, "low": 8070, "close": 8540 + i % 7},
        volume=340886 + i,
        bid_price=8530,
        ask_price=8540,
        bid_size=9168,
        ask_size=9338,
        prev_close=8410,
        trade_count=i % 5 if window else None,
        window_volume=15 * (i % 5) if window else None,
        window_high=8540 if window else None,
        window_low=8530 if window else None,
        vwap=8535.5 if window else None,
        window_start=at if window else None,
        window_end=end if window else None,
        sweep_id=None if window else f"{at:%Y%m%dT%H%M}",
    )
    rid = (
        f"scalp:{sym}:{at:%Y%m%dT%H%M%S}.{at.microsecond // 1000:03d}"
        if window
        else f"swing:{sym}:{at:%Y%m%dT%H%M}"
    )
    return PatternRecord(
        record_id=rid,
        session_id="kis-20261207",
        generated_at=end,
        observation=MarketDataContract(
            meta=ContractMeta(source="kis", market=market, captured_at=end if window else at),
            instruments=[inst],
        ),
        schema=SchemaInfo(version="1.0", field_count=18),
        quality=Quality(validation_passed=True, guard_passed=True, quality_flag="normal"),
        interpretation=Interpretation(
            mitigation_level=0, track=track, slot_number=i % 41 + 1 if window else None
        ),  # type: ignore[arg-type]
    )


def make_day(root: Path, target_lines: int) -> int:
    enc = msgspec.json.Encoder()
    d = f"{DAY:%Y%m%d}"
    n = 0
    # scalp: 41 symbols x 2 Hz, 09:30-15:00, 10-minute files
    start = DAY.replace(hour=9, minute=30)
    windows = 2 * 19_800
    scalp_dir = root / "scalp/kis/KOSPI" / d
    scalp_dir.mkdir(parents=True)
    fh = None
    for w in range(windows):
        at = start + timedelta(milliseconds=500 * w)
        if w % 1200 == 0:
            if fh:
                fh.close()
            fh = open(scalp_dir / f"{at:%H_%M_%S}.jsonl", "wb", buffering=1 << 20)  # noqa: SIM115
        end = at + timedelta(milliseconds=500)
        assert fh is not None
        fh.write(
            b"".join(
                enc.encode(_pattern("scalp", SYMBOLS[s], "KOSPI", at, end, w + s)) + b"\n" for s in range(41)
            )
        )
        n += 41
    if fh:
        fh.close()
    # swing: 39 sweeps of 4000 symbols, each over 200 s
    for sweep in range(39):
        mark = DAY.replace(hour=9) + timedelta(minutes=10 * sweep)
        path = root / "swing/kis/KOSPI" / d / f"{mark:%H}_00.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab", buffering=1 << 20) as f:
            for i, sym in enumerate(SYMBOLS):
                at = mark + timedelta(milliseconds=50 * i)
                f.write(enc.encode(_pattern("swing", sym, "KOSPI", at, at, i)) + b"\n")
        n += len(SYMBOLS)
    # raw: whatever is left of the target, evenly 09:00-15:30 in hourly files
    raw_count = max(target_lines - n - 10, 0)
    step_us = int(23_400 * 1e6 / max(raw_count, 1))
    open_hour = None
    f = None
    for i in range(raw_count):
        at = DAY.replace(hour=9) + timedelta(microseconds=step_us * i)
        if at.hour != open_hour:
            if f:
                f.close()
            open_hour = at.hour
            path = root / "raw/kis/KRX" / d / f"{at:%H}_00.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(path, "wb", buffering=1 << 20)  # noqa: SIM115
        rec = RawFrameRecord(
            record_id=f"raw:ws-collector:bench:{i}",
            provider="kis",
            market="KRX",
            received_at=at,
            tr_id="H0STCNT0",
            frame=FRAME.format(sym=SYMBOLS[i % 41]),
        )
        assert f is not None
        f.write(enc.encode(rec) + b"\n")
    if f:
        f.close()
    n += raw_count
    events = root / "system/events/kis" / f"{d}.jsonl"
    events.parent.mkdir(parents=True)
    with events.open("wb") as f:
        for i in range(10):
            at = DAY.replace(hour=9) + timedelta(minutes=40 * i)
            ev = SystemEvent(record_id=f"evt:bench:{i}", type="bench", severity="INFO", at=at, source="bench")
            f.write(enc.encode(ev) + b"\n")
    return n + 10


BARE = """
import sys, zmq
from pathlib import Path
root = Path(sys.argv[2])
import time
ctx = zmq.Context(); pub = ctx.socket(zmq.XPUB); pub.setsockopt(zmq.SNDHWM, 10000); pub.bind(sys.argv[1])
pub.recv()  # the drain subscriber's subscription: it has joined
n = 0; t0 = time.perf_counter()
for path in sorted(root.rglob("*.jsonl")):
    with open(path, "rb") as f:
        for line in f:
            try:
                pub.send_multipart([b"topic", line], zmq.NOBLOCK)
            except zmq.Again:
                pass
            n += 1
print(n, time.perf_counter() - t0)
"""


def drain(endpoint: str, idle_s: float = 3.0) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", DRAIN, endpoint, str(idle_s)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def observer(cfg: Path, *args: str, **kw: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "observer", "--config", str(cfg), *args],
        env=env,
        cwd=REPO,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=3_300_000)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic day (printed path)")
    ap.add_argument("--reuse", type=Path, help="a base dir kept by an earlier --keep run")
    ap.add_argument("--only-x1", action="store_true", help="only the --speed 1 timing figure")
    args = ap.parse_args()
    base = args.reuse or Path(tempfile.mkdtemp(prefix="obs-bench-replay-", dir="/tmp"))
    os.chmod(base, 0o700)
    cfg = base / "c.toml"
    cfg.write_text(f'[paths]\nruntime_dir = "{base}/run"\ndata_dir = "{base}/none"\n')
    data = base / "data"
    try:
        if not args.reuse:
            t0 = time.perf_counter()
            total = make_day(data, args.lines)
            size = sum(p.stat().st_size for p in data.rglob("*.jsonl"))
            print(
                f"synthetic day: {total:,} lines, {size / 1e9:.2f} GB, written in {time.perf_counter() - t0:.0f} s"
            )
        if not args.only_x1:
            speed_max(base, cfg, data)
        speed_1(base, cfg, data)
    finally:
        if args.keep or args.reuse:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def speed_max(base: Path, cfg: Path, data: Path) -> None:
    """1. bare read-and-publish loop; 2. observer replay --speed max with its RSS sampled."""
    ep = f"ipc://{base}/bare.sock"
    sink = drain(ep)
    bare = subprocess.run(
        [sys.executable, "-c", BARE, ep, str(data)], capture_output=True, text=True, check=True
    )
    n_bare, s_bare = bare.stdout.split()
    bare_rate = int(n_bare) / float(s_bare)
    got_bare = int(sink.communicate(timeout=120)[0].strip())
    print(
        f"bare read+publish: {int(n_bare):,} lines in {float(s_bare):.1f} s = {bare_rate:,.0f} lines/s (subscriber got {got_bare:,})"
    )

    ep = f"ipc://{base}/max.sock"
    sink = drain(ep)
    day = f"{DAY:%Y%m%d}"
    proc = observer(
        cfg,
        "replay",
        "--data",
        str(data),
        "--day",
        day,
        "--speed",
        "max",
        "--no-wait",
        "--quiet",
        "--endpoint",
        ep,
        stderr=subprocess.PIPE,
    )
    ps = psutil.Process(proc.pid)
    rss: list[float] = []
    while proc.poll() is None:
        try:
            rss.append(ps.memory_info().rss / 1e6)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)  # the sampling period
    err = proc.stderr.read() if proc.stderr else ""
    got = int(sink.communicate(timeout=120)[0].strip())
    assert proc.returncode == 0, err
    rate = float(err.split("(")[-1].split("/s")[0].replace(",", "")) if "/s)" in err else 0.0
    print(err.strip().splitlines()[-1])
    print(
        f"replay --speed max: {rate:,.0f} lines/s = {rate / bare_rate:.2f}x the bare loop (goal >= 0.5); subscriber got {got:,}"
    )
    if rss:
        tenth = rss[max(len(rss) // 10, 1) - 1]
        print(
            f"replay RSS: at 10 % of the run {tenth:.0f} MB, peak {max(rss):.0f} MB, last {rss[-1]:.0f} MB "
            f"({len(rss)} samples; peak - 10 % = {max(rss) - tenth:.1f} MB)"
        )


def speed_1(base: Path, cfg: Path, data: Path) -> None:
    """3. --speed 1 over 30 s of the day: timing error at the consumer and at the publisher."""
    ep = f"ipc://{base}/x1.sock"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    timing = subprocess.Popen(
        [sys.executable, "-c", TIMING, ep], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    assert timing.stdout is not None and timing.stdout.readline().strip() == "ready"
    day = f"{DAY:%Y%m%d}"
    x1 = observer(
        cfg,
        "replay",
        "--data",
        str(data),
        "--day",
        day,
        "--from",
        "10:00:00",
        "--to",
        "10:00:30",
        "--speed",
        "1",
        "--quiet",
        "--endpoint",
        ep,
        stderr=subprocess.PIPE,
    )
    x1.wait(120)
    n, *errs = timing.communicate(timeout=60)[0].split()
    r50, r99, rmax, s50, s99, smax = (float(e) for e in errs)
    load = os.getloadavg()[0]
    print(
        f"replay --speed 1, 30 s of the day ({int(n):,} messages), load average {load:.1f} on {os.cpu_count()} CPUs:\n"
        f"  timing error at the consumer p50 {r50:.2f} ms, p99 {r99:.2f} ms, max {rmax:.2f} ms (goal p99 < 5 ms)\n"
        f"  at the publisher (sent_at vs schedule) p50 {s50:.2f} ms, p99 {s99:.2f} ms, max {smax:.2f} ms"
    )


if __name__ == "__main__":
    main()
