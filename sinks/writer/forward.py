"""The writer's end of the ``archive_stream`` hop: every committed line, with its file and offset,
to the archive-stream sink (``sinks.jetstream``), after the fsync.

The committer thread hands each commit's placed lines to `StreamForwarder.offer` (a list append
under a lock); the writer's loop thread `flush`es them into a `ReliableSender` (acks, replay buffer,
resends) of its own, bounded by ``[jetstream] replay_buffer_bytes``. The writer's acks upstream never
wait for this hop: a slow or dead sink costs replay-buffer memory here, then (past the bound) a
counted `SeqGap`, never the archive or the tick path.

A writer killed -9 loses its replay buffer, so the forwarder keeps ``state/stream_marks.json``: per
file, the offset up to which the sink acknowledged (saved every second). At start, `resume` puts
on the hop every complete line past each file's mark (and of files written since the last save);
what the stream already holds is dropped by JetStream's duplicate window (same Nats-Msg-Id).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq

from observer.config import Config
from observer.reliable import ReliableSender, SeqGap, hop_endpoints
from observer.schema import StreamLine
from sinks.writer.committer import Placed
from sinks.writer.index import track_of
from sinks.writer.repair import archive_files

MARKS_SAVE_S = 1.0
_MARKS_IDLE_S = 3_600.0  # a file without acks for an hour, while nothing is pending, is forgotten
_CHUNK = 1 << 20


class _Id(msgspec.Struct):
    record_id: str = ""


_id_decoder = msgspec.json.Decoder(_Id)


class StreamForwarder:
    """`offer` from the committer thread; `flush`, `pump`, `close` from the writer's loop thread."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        cfg: Config,
        *,
        producer: str,
        run_id: str,
        on_gap: Any,
        root: Path,
        marks_path: Path,
    ):
        data_ep, ack_ep = hop_endpoints(cfg, "archive_stream")
        self._on_gap = on_gap
        self.sender = ReliableSender(
            ctx,
            cfg,
            producer,
            data_ep,
            ack_ep,
            run_id=run_id,
            on_gap=self._gap,
            replay_buffer_bytes=cfg.jetstream.replay_buffer_bytes,
            transmit_on_send=False,
        )
        self._lock = threading.Lock()
        self._placed: list[Placed] = []
        self.gaps = 0
        self.root = root
        self.marks_path = marks_path
        self._ends: dict[int, tuple[str, int]] = {}  # seq -> (file, offset after its line)
        self._done = 0  # seqs up to here are accounted for in the marks
        self.marks: dict[str, list[float]] = {}  # file -> [acknowledged offset, monotonic of update]
        self._marks_dirty = False
        self._last_save = 0.0
        self.resumed = 0

    def offer(self, placed: list[Placed]) -> None:
        """Committer thread, after a commit's fsync. Never blocks on the bus."""
        with self._lock:
            self._placed.extend(placed)

    def flush(self) -> None:
        """Loop thread: put what was committed since the last call on the hop."""
        with self._lock:
            placed, self._placed = self._placed, []
        for path, offset, (rec, line) in placed:
            self._send(str(path), offset, rec.track, rec.market, rec.record_id, line)
        self.sender.pump()
        self._account()

    def _send(self, path: str, offset: int, track: Any, market: str, record_id: str, line: bytes) -> None:
        body = StreamLine(
            path=path, offset=offset, track=track, market=market, record_id=record_id, line=msgspec.Raw(line)
        )
        self._ends[self.sender.send(body)] = (path, offset + len(line) + 1)

    def _account(self) -> None:
        """Move the marks up to what the sink acknowledged; save them every second."""
        sender = self.sender
        now = time.monotonic()
        for seq in range(self._done + 1, sender.floor):
            end = self._ends.pop(seq, None)
            if end is not None and seq <= sender.acked:
                mark = self.marks.setdefault(end[0], [0, now])
                if end[1] > mark[0]:
                    mark[0], mark[1] = end[1], now
                    self._marks_dirty = True
        self._done = max(self._done, sender.floor - 1)
        if self._marks_dirty and now - self._last_save >= MARKS_SAVE_S:
            self._save(now)

    def _save(self, now: float) -> None:
        if self.sender.unacked == 0:
            for path in [p for p, (_, at) in self.marks.items() if now - at > _MARKS_IDLE_S]:
                del self.marks[path]
        doc = {"saved_at": time.time(), "files": {p: int(m[0]) for p, m in self.marks.items()}}
        tmp = self.marks_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(doc).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.marks_path)
        self._last_save = now
        self._marks_dirty = False

    def resume(self) -> None:
        """At start, before the committer: put on the hop every complete line the sink may not have
        acknowledged (past each file's mark; whole files written since the last save). Without a
        marks file (the stream is new here) nothing older is sent, and a first mark is saved."""
        try:
            doc = json.loads(self.marks_path.read_bytes())
            files: dict[str, int] = {str(k): int(v) for k, v in doc["files"].items()}
            saved_at = float(doc["saved_at"])
        except FileNotFoundError:
            self._save(time.monotonic())
            return
        except (ValueError, KeyError, TypeError):
            files, saved_at = {}, 0.0  # unreadable: everything again (the duplicate window drops it)
        now = time.monotonic()
        for full in sorted(archive_files(self.root)):
            rel = full.relative_to(self.root)
            start = files.get(str(rel))
            if start is None:
                if full.stat().st_mtime < saved_at - 2.0:
                    continue  # untouched since the save, and no mark: acknowledged and forgotten
                start = 0
            self.marks[str(rel)] = [start, now]
            self._resend_file(full, rel, start)
        self.sender.pump()

    def _resend_file(self, full: Path, rel: Path, start: int) -> None:
        track = track_of(rel) or "system"
        market = rel.parts[2] if track in ("swing", "scalp", "raw") and len(rel.parts) > 3 else ""
        with open(full, "rb") as f:
            f.seek(start)
            offset, tail = start, b""
            while chunk := f.read(_CHUNK):
                data = tail + chunk
                lines = data.split(b"\n")
                tail = lines.pop()  # incomplete (or empty after the last newline)
                for line in lines:
                    try:
                        record_id = _id_decoder.decode(line).record_id
                    except msgspec.DecodeError:
                        record_id = ""
                    if record_id:
                        self._send(str(rel), offset, track, market, record_id, line)
                        self.resumed += 1
                    offset += len(line) + 1

    def _gap(self, gap: SeqGap) -> None:
        self.gaps += 1
        self._on_gap(gap)

    def close(self, timeout_s: float) -> bool:
        """Flush, wait up to `timeout_s` for the sink's acks, close. True when nothing is left."""
        self.flush()
        done = self.sender.wait_all_acked(timeout_s)
        self._account()
        self._save(time.monotonic())
        self.sender.close()
        return done
