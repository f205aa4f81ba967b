"""Re-derivation: a recorded day's inputs through a fresh core and writer, into a new archive.

The recorded *inputs* are piped exactly as their producers sent them, in one time-ordered stream
(`reader.read_range` over raw/, swing/ and system/ of the day):

* raw/ frames -> `TradeFrame` (ticks parsed again by the WS collector's own parser), producer
  ``ws-collector``; swing/ lines -> `QuoteSnapshot`, producer ``rest-collector``; the collectors'
  own system events and gap markers (feed state, sweep summaries, universe) as they sent them;
* the supervisor's ``worker_state`` events about the collectors, as it sent them (producer
  ``supervisor``): the core flags the windows after a ws-collector's last frame ``gap`` on its word
  (a killed collector says nothing), so a day with a crash or a shutdown derives the same flags;
* the core's recorded ``sampling_level`` events -> `MitigationLevel` on ``mitigation`` (the monitor's
  part);
* the recorded slot table: the fresh core starts with an empty table for the day (its own resume
  file, ``state/slots.json``) and follows the recorded ``slots_seeded`` / ``slot_change`` events
  through the operator's commands on ``ctl.observer``: every slot is pinned, so its own rebalancing
  cannot move one (its candidates go to the overflow ledger), and a replacement in slot n is
  "unpin the old symbol, pin the new one" (the only unpinned slot is the one evicted, so the
  number is kept). Slot decisions are thus inputs here, as they were the operator's and the
  triggers' at the time; the samples, records and events of the core are derived again.
The fresh core and writer are real processes (``observer worker observer|writer``) on a runtime dir
of their own, with an event forwarder in this process, a config that differs from the live one only
in paths, endpoints (all ipc in the private runtime dir) and clock: a session clock that follows the
recorded times (``start_at`` just before the first input, the same anchor as the pacing here), so
every input reaches the core at its recorded receive time (divided by ``--speed``).

Inherent differences (the comparison test names them): ``generated_at`` (when the line was built);
raw ``record_id`` (collector run + seq of the feeding run); the core's and writer's own events
(run ids, times); metrics and other workers' events (not inputs, not re-derived); a swing line
lacks what a snapshot had but the archive does not keep (value, price limits, halted flag, name);
overflow/ (every candidate finds the slots pinned); the slot events themselves (pins). A change takes
effect when the fresh core handles the command, a millisecond or so after the recorded time: a
window boundary in between would move one sample of the symbols concerned. The day's universe
snapshot must be in ``paths.universe_dir`` (without it the core seeds slots from snapshots).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import msgspec

from observer.bus import (
    HEARTBEAT,
    MITIGATION,
    EventPublisher,
    EventSubscriber,
    Forwarder,
    context,
    ctl_topic,
)
from observer.clock import KST, datetime_to_ns
from observer.config import Config, data_dir, ensure_private_dir
from observer.core.slots import SlotState
from observer.reliable import ReliableSender, hop_endpoints
from observer.replay.pacing import Pacer
from observer.replay.reader import ReadReport, Selection, last_time, read_range
from observer.schema import (
    Command,
    GapMarker,
    MitigationLevel,
    PatternRecord,
    QuoteSnapshot,
    RawFrameRecord,
    SystemEvent,
    TradeFrame,
    typed_from_event,
)

COLLECTORS = ("ws-collector", "rest-collector")
SUPERVISOR = "supervisor"  # the producer name of the supervisor's events on the ingest hop
STARTUP_REAL_S = 20.0  # real seconds the fresh processes get to start before the first input
TAIL_S = 1.0  # virtual seconds after the recorded end, so the last windows close
_raw = msgspec.json.Decoder(RawFrameRecord)
_pattern = msgspec.json.Decoder(PatternRecord)
_event = msgspec.json.Decoder(SystemEvent | GapMarker)


class RederiveError(Exception):
    """Re-derivation refused or failed (the message says why; nothing is written where it must not be)."""


def check_out(cfg: Config, source: Path, out: Path) -> None:
    """Refuse an --out that is the live archive, overlaps the source, or already holds anything."""
    live, src, dst = data_dir(cfg).resolve(), source.resolve(), out.resolve()
    if dst == live:
        raise RederiveError(
            f"refused: --out {out} is the live archive (paths.data_dir); give a new directory"
        )
    if dst == src or src in dst.parents or dst in src.parents:
        raise RederiveError(f"refused: --out {out} overlaps the archive it reads ({source})")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise RederiveError(f"refused: --out {out} is not an empty directory")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return msgspec.json.encode(v).decode()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def fresh_config_text(cfg: Config, out: Path, run_dir: Path, start_at: datetime, speed: float) -> str:
    """The live config with its own paths, private ipc endpoints and the replay clock."""
    doc = msgspec.to_builtins(cfg)
    doc["paths"].update(data_dir=str(out), runtime_dir=str(run_dir), log_dir=str(out / "logs"))
    doc["bus"]["endpoints"] = {}
    doc["clock"] = {"mode": "session", "start_at": start_at.isoformat(), "speed": speed}
    lines = []
    for section, values in doc.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def recorded_end(sel: Selection) -> datetime:
    """The newest time of any line of the day, scalp included."""
    every = Selection(sel.data, sel.start, sel.end, frozenset(("swing", "scalp", "raw", "system")))
    newest = last_time(every)
    if newest is None:
        raise RederiveError(f"nothing recorded on {sel.start:%Y-%m-%d} under {sel.data}")
    return newest


def snapshot_of(rec: PatternRecord) -> QuoteSnapshot:
    inst = rec.observation.instruments[0]
    return QuoteSnapshot(
        provider=rec.observation.meta.source,
        market=rec.observation.meta.market,
        symbol=inst.symbol,
        sweep_id=inst.sweep_id or "",
        exchange_at=inst.timestamp,
        received_at=inst.received_at,
        price=inst.price["close"],
        open=inst.price["open"],
        high=inst.price["high"],
        low=inst.price["low"],
        volume=inst.volume,
        prev_close=inst.prev_close or 0,
        bid_price=inst.bid_price,
        ask_price=inst.ask_price,
        bid_size=inst.bid_size,
        ask_size=inst.ask_size,
    )


def _frame_parser(provider: str) -> Any:
    """The WS collector's own frame parser, through the provider registry (the collectors'
    vocabulary stays in collectors/)."""
    from collectors.providers import ProviderError, frame_parser

    try:
        return frame_parser(provider)
    except ProviderError as e:
        raise RederiveError(f"re-derivation: {e}") from None


class _Fresh:
    """The fresh writer and core processes and this process's side of their bus."""

    def __init__(self, cfg_path: Path, cfg: Config, anchor_epoch_s: float):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVER_", "KIS_", "TELEGRAM_"))}
        env["OBSERVER_CLOCK_ANCHOR"] = repr(anchor_epoch_s)
        self.ctx = context()
        self.forwarder = Forwarder(self.ctx, cfg)
        self.forwarder.start()
        self.events = EventPublisher(self.ctx, cfg)
        self.heartbeats = EventSubscriber(self.ctx, cfg, [HEARTBEAT])
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for name in ("writer", "observer"):
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "observer", "--config", str(cfg_path), "worker", name],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(Path(cfg.paths.log_dir) / f"{name}.stderr", "ab"),  # noqa: SIM115 - the child's
            )
        ingest, ingest_ack = hop_endpoints(cfg, "ingest")
        self.senders = {
            p: ReliableSender(self.ctx, cfg, p, ingest, ingest_ack) for p in (*COLLECTORS, SUPERVISOR)
        }

    def wait_up(self, deadline: float) -> None:
        seen: set[str] = set()
        while seen != set(self.procs):
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RederiveError(
                        f"the fresh {name} exited at start (code {proc.returncode}); see its log"
                    )
            if time.monotonic() > deadline:
                raise RederiveError(
                    f"the fresh {', '.join(sorted(set(self.procs) - seen))} did not start in time"
                )
            self.heartbeats.sock.poll(50)  # a heartbeat, or another look at the processes
            while (got := self.heartbeats.recv_nowait()) is not None:
                seen.add(got[0][len(HEARTBEAT) :])

    def pump(self) -> None:
        for sender in self.senders.values():
            sender.pump()

    def stop(self) -> dict[str, int]:
        for sender in self.senders.values():
            sender.wait_all_acked(30.0)
        codes: dict[str, int] = {}
        for name in ("observer", "writer"):  # the core first: it drains into the writer
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
            try:
                codes[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(5)
        for sender in self.senders.values():
            sender.close()
        self.events.close()
        self.heartbeats.close()
        self.forwarder.stop()
        return codes


def rederive_day(
    cfg: Config, source: Path, day: date, out: Path, *, speed: float = 1.0, quiet: bool = False
) -> str:
    """Re-derive `day` of `source` into the new archive `out`. Returns a summary; raises RederiveError."""
    check_out(cfg, source, out)
    start = datetime.combine(day, dtime(), KST)
    sel = Selection(source, start, start + timedelta(days=1), frozenset(("raw", "swing", "system")))
    report = ReadReport()
    try:
        inputs = read_range(sel, report)
        first = next(inputs, None)
    except Exception as e:  # ReplayError and friends: the message is the point
        raise RederiveError(str(e)) from e
    if first is None:
        raise RederiveError(f"no recorded inputs on {day} under {source}")
    end = recorded_end(sel) + timedelta(seconds=TAIL_S)
    parse = _frame_parser(cfg.provider.name)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    (out / "logs").mkdir(mode=0o700, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="obs-rederive-", dir="/tmp"))
    lead = timedelta(seconds=STARTUP_REAL_S * speed)
    start_at = first.at - lead
    anchor_epoch_s = time.time() + STARTUP_REAL_S
    cfg_path = out / "logs" / "rederive.toml"
    cfg_path.write_text(fresh_config_text(cfg, out, run_dir, start_at, speed))
    state = ensure_private_dir(out / "state")
    (state / "slots.json").write_bytes(msgspec.json.encode(SlotState(day=day, version=0, slots=[])))
    from observer.config import load_config

    fresh_cfg = load_config(cfg_path, env={})
    anchor_mono_ns = time.monotonic_ns() + int((anchor_epoch_s - time.time()) * 1e9)
    pacer = Pacer(speed, anchor=(datetime_to_ns(start_at), anchor_mono_ns))
    fresh = _Fresh(cfg_path, fresh_cfg, anchor_epoch_s)
    counts = {"frames": 0, "snapshots": 0, "events": 0, "levels": 0, "slot_commands": 0}
    t0 = time.monotonic()
    try:
        fresh.wait_up(t0 + STARTUP_REAL_S)
        for line in _chain(first, inputs):
            pacer.wait(line.at_ns, fresh.pump)
            _pipe(line.track, line.raw, parse, fresh, counts)
        pacer.wait(datetime_to_ns(end), fresh.pump)
    finally:
        codes = fresh.stop()
        shutil.rmtree(run_dir, ignore_errors=True)  # the private runtime dir: sockets only
    if any(codes.values()):
        raise RederiveError(f"the fresh processes exited with {codes}; see {out / 'logs'}")
    written = {
        track: sum(p.read_bytes().count(b"\n") for p in out.glob(pattern))
        for track, pattern in (
            ("swing", "swing/*/*/*/*.jsonl"),
            ("scalp", "scalp/*/*/*/*.jsonl"),
            ("raw", "raw/*/*/*/*.jsonl"),
            ("system", "system/events/*/*.jsonl"),
        )
    }
    text = (
        f"re-derived {day} from {source} into {out} in {time.monotonic() - t0:.0f} s: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + " piped; written "
        + ", ".join(f"{k} {v}" for k, v in written.items())
    )
    if report.bad_lines:
        text += "\n" + report.format()
    return text


def _pipe(track: str, raw: bytes, parse: Any, fresh: _Fresh, counts: dict[str, int]) -> None:
    if track == "raw":
        rec = _raw.decode(raw)
        parsed = parse(rec.frame, rec.received_at)
        frame = TradeFrame(
            provider=rec.provider,
            market=rec.market,
            received_at=rec.received_at,
            raw=rec.frame,
            tr_id=rec.tr_id,
            ticks=parsed.ticks,
            parse_error=parsed.error,
        )
        fresh.senders["ws-collector"].send(frame)
        counts["frames"] += 1
    elif track == "swing":
        fresh.senders["rest-collector"].send(snapshot_of(_pattern.decode(raw)))
        counts["snapshots"] += 1
    else:
        ev = _event.decode(raw)
        source = ev.detected_by if isinstance(ev, GapMarker) else ev.source
        if source in COLLECTORS:  # as the collector sent it: typed where it was typed
            fresh.senders[source].send(typed_from_event(ev) if isinstance(ev, SystemEvent) else ev)
            counts["events"] += 1
        elif isinstance(ev, SystemEvent) and source == SUPERVISOR:
            if ev.type == "worker_state" and ev.details.get("worker") in COLLECTORS:
                fresh.senders[SUPERVISOR].send(ev)
                counts["events"] += 1
        elif isinstance(ev, SystemEvent) and ev.source == "observer":
            if ev.type == "sampling_level" and isinstance(ev.details.get("level"), int):
                fresh.events.publish(MITIGATION, MitigationLevel(level=int(ev.details["level"]), at=ev.at))  # type: ignore[arg-type]
                counts["levels"] += 1
            else:
                for action, symbol in slot_commands(ev):
                    fresh.events.publish(ctl_topic("observer"), Command(action=action, target=symbol))
                    counts["slot_commands"] += 1


def slot_commands(ev: SystemEvent) -> list[tuple[str, str]]:
    """The pin/unpin commands that make an all-pinned table follow one recorded slot event."""

    def entries(key: str) -> list[list[str]]:
        value = ev.details.get(key)
        return [item.split(":") for item in value] if isinstance(value, list) else []

    if ev.type == "slots_seeded":
        symbols = ev.details.get("symbols")
        return [("pin", s) for s in symbols] if isinstance(symbols, list) else []
    if ev.type != "slot_change":
        return []
    removed = {int(e[0]): e[1] for e in entries("removed") if len(e) >= 2 and e[0].isdigit()}
    out: list[tuple[str, str]] = []
    for e in entries("added"):
        if len(e) >= 2 and e[0].isdigit():
            old = removed.pop(int(e[0]), None)
            if old is not None:
                out.append(("unpin", old))
            out.append(("pin", e[1]))
    return out + [("unpin", s) for s in removed.values()]  # removed, nothing in its place: named above


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest
