"""A recorded simulated hour: replayed at x10 and x1 and re-derived (issue 13's "Must show" on an hour).

    .venv/bin/python bench/bench_replay_hour.py                                   # the hour (~35 min)
    .venv/bin/python bench/bench_replay_hour.py --minutes 5 --x1-minutes 1        # a short form (~6 min)
    .venv/bin/python bench/bench_replay_hour.py --x1-minutes 60                   # x1 of the whole hour (+1 h)

1. **Record**: ``observer run`` (supervisor, simulator, every worker) on a session clock from
   ``--start-at`` (09:28) at ``--speed-clock`` (6: a simulated hour in 10 real minutes; the
   simulator, the collectors, the core's 2 Hz windows, the writer's rotation and the monitor all
   follow the one clock), realistic activity (``[sim] activity_scale`` 1, 4,000 symbols), until
   ``--minutes`` (60) after Track B opens at 09:30: 41 slots at 2 Hz, a Track A sweep every 10
   minutes, raw frames. CPU mitigation is off (a shared 2-core machine would trip it; every other
   mitigation signal stays on); the recording's gap markers and level changes are printed.
2. **Replay** with ``observer replay`` (a real process, its XPUB feed on an ipc socket) to a real
   zmq SUB consumer (a fresh interpreter decoding `FeedMessage`): the whole recording at x10, and at
   x1 a ``--x1-minutes`` slice (5 by default, from 09:39:30: the 09:40 sweep's burst is in it; x1 of
   the whole hour is an hour of wall time, so it is an option). For each: the consumer's messages
   against the archive files read directly (``line_time``, the replay reader's own notion of a
   line's time): count, missing / extra / duplicated (track, record_id), whether the sequence is
   non-decreasing in time and equal to the archive sorted by time; per-topic seq holes; the
   inter-message timing error ``|(t_i - t_0) - (at_i - at_0) / speed|`` at the consumer (receive
   time) and at the publisher (``sent_at_ns``), p50 / p99 / max (goal p99 < 5 ms at x1).
3. **Re-derive** the day (``observer replay --rederive --day D --out DIR`` at ``--rederive-speed``,
   the clock speed by default, so the fresh core sees the inputs at the pace the recorded one did)
   and compare every scalp line with the recorded one (`testkit.rederive.compare_scalp`):
   identical / differing / only recorded / only derived, each split into next to a recorded slot
   change (the inherent case) and unexplained; the tail after the recorded end (inherent, cut);
   swing lines (``generated_at`` aside) and raw frames (received_at, frame) compared too.

On a shared machine timing figures move with the neighbours' load: the load average is printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from observer.clock import ANCHOR_ENV, KST, SessionClock, datetime_to_ns, parse_start_at  # noqa: E402
from observer.replay.reader import line_time  # noqa: E402
from testkit.rederive import compare_scalp, lines_by_id  # noqa: E402
from testkit.wait import poll_until  # noqa: E402

TRACK_B_OPEN = "09:30:00"
ARCHIVE_GLOBS = (  # the replay reader's tracks, in its file order
    ("swing", "swing/*/*/*/*.jsonl"),
    ("scalp", "scalp/*/*/*/*.jsonl"),
    ("raw", "raw/*/*/*/*.jsonl"),
    ("system", "system/events/*/*.jsonl"),
    ("overflow", "system/overflow/*/*.jsonl"),
    ("metrics", "metrics/*.jsonl"),
)

CONSUMER = """
import sys, time, zmq, msgspec
from observer.bus import feed_decoder
from observer.schema import FeedMessage
class _Id(msgspec.Struct):
    record_id: str
ids = msgspec.json.Decoder(_Id)
ctx = zmq.Context(); sub = ctx.socket(zmq.SUB); sub.setsockopt(zmq.RCVHWM, 0)
sub.setsockopt(zmq.SUBSCRIBE, b""); sub.connect(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[3])
seq, holes, n = {}, 0, 0
print("ready", flush=True)
with open(sys.argv[2], "w") as out:
    while time.monotonic() < deadline:
        if not sub.poll(200):
            continue
        frames = sub.recv_multipart(); now = time.time_ns()
        body = feed_decoder.decode(frames[1])
        if isinstance(body, FeedMessage):
            n += 1
            last = seq.get(body.topic, 0)
            holes += max(body.seq - last - 1, 0)
            seq[body.topic] = body.seq
            at_ns = int(body.at.timestamp() * 1e9)
            out.write(f"{now} {at_ns} {body.sent_at_ns} {body.track} {ids.decode(body.line).record_id}\\n")
        elif body.final:
            print(n, holes, sum(body.published.values()), body.dropped, flush=True)
            sys.exit(0)
print("timeout", n, holes, flush=True)
sys.exit(1)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "TELEGRAM_", "OBSERVER_"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _observer(cfg: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "observer", "--config", str(cfg), *args]


def _count(data: Path, pattern: str) -> int:
    return sum(p.read_bytes().count(b"\n") for p in data.glob(pattern))


def _pct(values: list[float]) -> tuple[float, float, float]:
    v = sorted(values)
    return v[len(v) // 2], v[min(len(v) - 1, int(len(v) * 0.99))], v[-1]


# --------------------------------------------------------------------------- 1. record


def record(base: Path, minutes: float, speed: float, start_at: str) -> tuple[Path, Path]:
    cfg = base / "observer.toml"
    cfg.write_text(
        f'[paths]\ndata_dir = "{base}/data"\nruntime_dir = "{base}/run"\n'
        f'universe_dir = "{base}/universe"\nlog_dir = "{base}/logs"\n'
        f'[clock]\nmode = "session"\nstart_at = "{start_at}"\nspeed = {speed}\n'
        f"[sim]\nenabled = true\nrest_port = {_port()}\nws_port = {_port()}\nadmin_port = {_port()}\n"
        "activity_scale = 1.0\n"
        '[monitor]\ncpu_level1_pct = 101.0\ncpu_level2_pct = 101.0\nmetrics_listen = ""\n'
    )
    data = base / "data"
    anchor = time.time()
    clock = SessionClock(parse_start_at(start_at, datetime.now(KST).date()), speed, anchor)
    opens = parse_start_at(TRACK_B_OPEN, clock.start_at.date())
    stop_at = opens + timedelta(minutes=minutes, seconds=2)
    real_s = (stop_at - clock.start_at).total_seconds() / speed
    print(
        f"recording {clock.start_at:%Y-%m-%d %H:%M:%S} .. {stop_at:%H:%M:%S} KST on a session clock x{speed:g} "
        f"(~{real_s / 60:.1f} real minutes), activity_scale 1"
    )
    t0 = time.monotonic()
    with open(base / "run.stderr", "wb") as err:
        proc = subprocess.Popen(
            _observer(cfg, "run"),
            cwd=REPO,
            env=_env(**{ANCHOR_ENV: repr(anchor)}),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:

            def done() -> bool:
                if proc.poll() is not None:
                    raise SystemExit(f"the pipeline exited early ({proc.returncode}); see {base}/run.stderr")
                return clock.now() >= stop_at

            poll_until(done, real_s + 120, 0.5, "the end of the recording", SystemExit)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    events = [json.loads(x) for p in data.glob("system/events/*/*.jsonl") for x in p.read_text().splitlines()]
    gaps = Counter(f"{e.get('track')}/{e.get('reason')}" for e in events if e.get("type") == "gap_marker")
    levels = [e["details"].get("level") for e in events if e.get("type") == "sampling_level"]
    slot_changes = sum(e.get("type") == "slot_change" for e in events)
    counts = {track: _count(data, pattern) for track, pattern in ARCHIVE_GLOBS}
    print(
        f"recorded in {time.monotonic() - t0:.0f} s wall (exit {proc.returncode}): "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + f"; gap markers {dict(gaps) or 0}; mitigation level changes {levels or 'none'}; slot changes {slot_changes}"
    )
    return cfg, data


# --------------------------------------------------------------------------- 2. replay


def expected_lines(data: Path, start: datetime | None, end: datetime | None) -> list[tuple[int, str, str]]:
    """(time ns, track, record_id) of every archive line in [start, end), sorted by time (stable:
    file order, then line order, as the replay reader merges)."""
    out: list[tuple[int, str, str]] = []
    lo = datetime_to_ns(start) if start else -(2**63)
    hi = datetime_to_ns(end) if end else 2**63
    for track, pattern in ARCHIVE_GLOBS:
        for path in sorted(data.glob(pattern)):
            for raw in path.read_bytes().splitlines():
                record_id, at = line_time(track, raw)
                at_ns = datetime_to_ns(at)
                if lo <= at_ns < hi:
                    out.append((at_ns, track, record_id))
    out.sort(key=lambda x: x[0])
    return out


@dataclass
class ReplayRun:
    label: str
    wall_s: float
    summary: str


def replay(
    base: Path, cfg: Path, data: Path, day: str, speed: float, start: datetime | None, end: datetime | None
) -> ReplayRun:
    label = f"x{speed:g}"
    expected = expected_lines(data, start, end)
    span_s = (expected[-1][0] - expected[0][0]) / 1e9
    endpoint = f"ipc://{base}/replay-{label}.sock"
    got_path = base / f"consumer-{label}.txt"
    budget_s = span_s / speed + 300
    consumer = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, endpoint, str(got_path), str(budget_s)],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert consumer.stdout is not None and consumer.stdout.readline().strip() == "ready"
    selection = ["--day", day] + (
        ["--from", start.isoformat(), "--to", end.isoformat()] if start and end else []
    )
    t0 = time.monotonic()
    done = subprocess.run(
        _observer(
            cfg, "replay", "--data", str(data), "--endpoint", endpoint, "--quiet", "--speed", f"{speed:g}"
        )
        + selection,
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=budget_s,
    )
    wall_s = time.monotonic() - t0
    try:
        out, _ = consumer.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        consumer.kill()
        out, _ = consumer.communicate()
    if done.returncode != 0:
        raise SystemExit(f"replay {label} failed ({done.returncode}): {done.stderr[-2000:]}")
    n, holes, published, dropped = out.split()[-4:]
    got = [line.split() for line in got_path.read_text().splitlines()]
    received = [(int(at), track, rid) for _, at, _, track, rid in got]
    want_ids = Counter((t, r) for _, t, r in expected)
    got_ids = Counter((t, r) for _, t, r in received)
    missing = sum((want_ids - got_ids).values())
    extra = sum((got_ids - want_ids).values())
    duplicated = sum(c - 1 for c in got_ids.values() if c > 1)
    backwards = sum(b[0] < a[0] for a, b in itertools.pairwise(received))
    same_sequence = received == expected
    recv = [int(r) for r, *_ in got]
    sent = [int(s) for _, _, s, *_ in got]
    at = [a for a, _, _ in received]
    err_recv = _pct([abs((r - recv[0]) - (a - at[0]) / speed) / 1e6 for r, a in zip(recv, at, strict=True)])
    err_sent = _pct([abs((s - sent[0]) - (a - at[0]) / speed) / 1e6 for s, a in zip(sent, at, strict=True)])
    what = "the whole recording" if start is None else f"{start:%H:%M:%S}..{end:%H:%M:%S}"
    tracks = Counter(t for _, t, _ in expected)
    summary = (
        f"replay --speed {speed:g}, {what} ({span_s / 60:.1f} recorded minutes, "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(tracks.items()))
        + f") in {wall_s:.1f} s wall, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:\n"
        f"  archive {len(expected):,} lines, consumer {len(received):,} (replay published {int(published):,}, "
        f"dropped {int(dropped)}, consumer seq holes {int(holes)}): missing {missing}, extra {extra}, "
        f"duplicated {duplicated}; time order: {backwards} step(s) back, "
        f"sequence {'identical to' if same_sequence else 'DIFFERENT from'} the archive sorted by time\n"
        f"  timing error at the consumer p50 {err_recv[0]:.2f} ms, p99 {err_recv[1]:.2f} ms, max {err_recv[2]:.2f} ms"
        f"{' (goal p99 < 5 ms)' if speed == 1 else ''}\n"
        f"  at the publisher (sent_at vs schedule) p50 {err_sent[0]:.2f} ms, p99 {err_sent[1]:.2f} ms, "
        f"max {err_sent[2]:.2f} ms"
    )
    if int(n) != len(received):
        summary += f"\n  (consumer counted {n}, wrote {len(received)})"
    tail = [x for x in done.stderr.strip().splitlines() if not x.startswith("replayed ")]
    if tail:
        summary += "\n  replay said: " + " | ".join(tail[:5])
    got_path.unlink()
    return ReplayRun(label, wall_s, summary)


# --------------------------------------------------------------------------- 3. re-derive


class _Raw(msgspec.Struct):
    received_at: str
    frame: str


def rederive(base: Path, cfg: Path, data: Path, day: str, speed: float) -> str:
    out = base / "rederived"
    t0 = time.monotonic()
    done = subprocess.run(
        _observer(
            cfg,
            "replay",
            "--rederive",
            "--day",
            day,
            "--data",
            str(data),
            "--out",
            str(out),
            "--quiet",
            "--speed",
            f"{speed:g}",
        ),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
    )
    wall_s = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"rederive failed ({done.returncode}): {done.stderr[-3000:]}")
    cmp = compare_scalp(data, out)
    unexplained = cmp.unexplained
    n_rec = len(cmp.recorded)

    def split(ids: list[str]) -> str:
        near = sum(r in cmp.near_change for r in ids)
        return f"{len(ids):,} ({near:,} next to a slot change, {len(ids) - near:,} unexplained)"

    text = (
        f"re-derivation --speed {speed:g} in {wall_s:.0f} s wall: {done.stderr.strip().splitlines()[0]}\n"
        f"  scalp: recorded {n_rec:,}; identical {len(cmp.identical):,} ({len(cmp.identical) / max(n_rec, 1):.4%}); "
        f"differing {split(cmp.differing)}; missing (only recorded) {split(cmp.only_recorded)}; "
        f"extra (only derived) {split(cmp.only_derived)}; derived after the recorded end (cut) {cmp.tail:,}"
    )
    if unexplained:
        text += f"\n  first unexplained: {cmp.first_difference(unexplained)}"
    swing_rec, swing_der = lines_by_id(data, "swing/*/*/*/*.jsonl"), lines_by_id(out, "swing/*/*/*/*.jsonl")
    for rec in (*swing_rec.values(), *swing_der.values()):
        rec.pop("generated_at", None)
    swing_diff = sum(swing_der.get(k) != v for k, v in swing_rec.items()) + len(
        set(swing_der) - set(swing_rec)
    )
    dec = msgspec.json.Decoder(_Raw)

    def frames(root: Path) -> Counter[tuple[str, str]]:
        return Counter(
            (r.received_at, r.frame)
            for p in root.glob("raw/*/*/*/*.jsonl")
            for r in (dec.decode(x) for x in p.read_bytes().splitlines())
        )

    raw_rec, raw_der = frames(data), frames(out)
    text += (
        f"\n  swing: recorded {len(swing_rec):,}, differing or unmatched {swing_diff}; raw frames: recorded "
        f"{sum(raw_rec.values()):,}, derived {sum(raw_der.values()):,}, "
        f"{'identical' if raw_rec == raw_der else 'DIFFERENT'} (received_at, frame)"
    )
    return text


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="simulated minutes after Track B opens")
    ap.add_argument("--speed-clock", type=float, default=6.0, help="the recording's session clock speed")
    ap.add_argument("--start-at", default="09:28:00", help="session time at the start (KST)")
    ap.add_argument(
        "--x1-minutes", type=float, default=5.0, help="minutes replayed at x1 (the whole: minutes)"
    )
    ap.add_argument("--x1-from", help="session time the x1 slice starts (default 09:39:30, or mid-range)")
    ap.add_argument("--rederive-speed", type=float, help="default: --speed-clock")
    ap.add_argument("--keep", action="store_true", help="keep the recording (path printed)")
    ap.add_argument("--reuse", type=Path, help="a base dir kept by --keep: skip the recording")
    args = ap.parse_args()
    t_all = time.monotonic()
    base = args.reuse or Path(tempfile.mkdtemp(prefix="obs-bench-hour-", dir="/tmp"))
    os.chmod(base, 0o700)
    try:
        if args.reuse:
            cfg, data = base / "observer.toml", base / "data"
            shutil.rmtree(base / "rederived", ignore_errors=True)
        else:
            cfg, data = record(base, args.minutes, args.speed_clock, args.start_at)
        ymd = sorted(p.name for p in data.glob("scalp/*/*/*"))[0]
        day = datetime.strptime(ymd, "%Y%m%d").replace(tzinfo=KST)
        opens = parse_start_at(TRACK_B_OPEN, day.date())
        x1_minutes = min(args.x1_minutes, args.minutes)
        if args.x1_from:
            x1_start = parse_start_at(args.x1_from, day.date())
        elif args.minutes >= 15 and x1_minutes <= args.minutes - 9.5:
            x1_start = opens + timedelta(minutes=9.5)
        else:
            x1_start = opens + timedelta(minutes=(args.minutes - x1_minutes) / 2)
        whole = x1_minutes >= args.minutes
        print(replay(base, cfg, data, ymd, 10.0, None, None).summary)
        x1_end = x1_start + timedelta(minutes=x1_minutes)
        print(
            replay(base, cfg, data, ymd, 1.0, None if whole else x1_start, None if whole else x1_end).summary
        )
        print(rederive(base, cfg, data, ymd, args.rederive_speed or args.speed_clock))
        print(f"bench wall time {(time.monotonic() - t_all) / 60:.1f} min")
    finally:
        if args.keep or args.reuse:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
