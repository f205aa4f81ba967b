"""System events of CLI commands, kept on disk until the core has them: ``state/events_spool/``.

``observer backup ...`` and ``observer retention ...`` write their events here first (one
``<ns>-<pid>.jsonl`` file per command, fsynced, 0600), then try to deliver them to the core over the
ingest hop. Delivered and acknowledged: the file is removed. Not (the pipeline is down): the file
stays, the command says so, and the housekeeper sends it when it runs: `take` renames the file to
``*.jsonl.sent`` and hands its events over, `settle` removes it once the core acknowledged them,
`requeue` (at the housekeeper's start) puts back what a previous run sent but never saw
acknowledged. The writer skips record ids it already has, so a file sent twice is archived once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from observer.config import Config, state_dir
from observer.schema import SystemEvent
from sinks.housekeeping.layout import ensure_dir, write_file_atomic

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SystemEvent)
MAX_FILES_PER_TAKE = 100
SENT = ".sent"


@dataclass(frozen=True, slots=True)
class Handed:
    """Spool files whose events were just handed to the sender (in this order, after them)."""

    paths: tuple[Path, ...]


def spool_dir(cfg: Config) -> Path:
    return state_dir(cfg) / "events_spool"


def put(cfg: Config, events: Iterable[SystemEvent]) -> Path | None:
    """Write `events` to a new spool file (None when there is nothing to write)."""
    data = b"".join(_encoder.encode(e) + b"\n" for e in events)
    if not data:
        return None
    ensure_dir(spool_dir(cfg))
    path = spool_dir(cfg) / f"{time.time_ns()}-{os.getpid()}.jsonl"
    write_file_atomic(path, data)
    return path


def pending(cfg: Config) -> list[Path]:
    try:
        names = sorted(
            n for n in os.listdir(spool_dir(cfg)) if n.endswith(".jsonl") and not n.startswith(".")
        )
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [spool_dir(cfg) / n for n in names]


def read(path: Path) -> list[SystemEvent]:
    """The events of one spool file; lines that do not decode are skipped (never raised)."""
    out: list[SystemEvent] = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(_decoder.decode(line))
        except msgspec.DecodeError:
            continue
    return out


def take(cfg: Config) -> tuple[list[SystemEvent], Handed]:
    """Every spooled event (oldest file first); the files are renamed ``*.sent`` until `settle`."""
    events: list[SystemEvent] = []
    sent: list[Path] = []
    for path in pending(cfg)[:MAX_FILES_PER_TAKE]:
        events += read(path)
        target = path.with_name(path.name + SENT)
        os.replace(path, target)
        sent.append(target)
    return events, Handed(tuple(sent))


def settle(paths: Iterable[Path]) -> None:
    """The core acknowledged these files' events: remove them."""
    for path in paths:
        path.unlink(missing_ok=True)


def requeue(cfg: Config) -> int:
    """Files a previous run handed over without seeing them acknowledged go back to the spool."""
    try:
        names = [n for n in os.listdir(spool_dir(cfg)) if n.endswith(".jsonl" + SENT)]
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for name in names:
        os.replace(spool_dir(cfg) / name, spool_dir(cfg) / name.removesuffix(SENT))
    return len(names)
