"""Running the whole pipeline (`observer run`) as a real process for end-to-end tests."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from testkit.config import write_config
from tests.conftest import REPO, free_port, terminate, wait_for


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIS_", "TELEGRAM_", "OBSERVER_"))}
    env.update(extra)
    return env


def lines(root: Path, pattern: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(root.glob(pattern)):
        out.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return out


class Pipeline:
    def __init__(
        self,
        base: Path,
        toml: str,
        speed: float = 1.0,
        start_at: str = "09:29:50",
        symbol_count: int = 1500,
        sim: str = "",
        **env: str,
    ):
        self.base = base
        self.admin_port = free_port()
        self.cfg_path = write_config(
            base,
            f"""
[clock]
mode = "session"
start_at = "{start_at}"
speed = {speed}
[sim]
enabled = true
rest_port = {free_port()}
ws_port = {free_port()}
admin_port = {self.admin_port}
symbol_count = {symbol_count}
{sim}
"""
            + toml,
        )
        self.data = base / "data"
        self.admin = f"http://127.0.0.1:{self.admin_port}/admin"
        self.env = clean_env(**env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.stderr = ""

    def observer(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "observer", "--config", str(self.cfg_path), *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )

    def status(self) -> dict[str, Any]:
        return json.loads(self.observer("status", "--once", "--json").stdout)

    def wait_filled(self) -> None:
        for pattern in (
            "swing/kis-sim/*/*/*.jsonl",
            "scalp/kis-sim/*/*/*.jsonl",
            "raw/kis-sim/*/*/*.jsonl",
            "system/events/kis-sim/*.jsonl",
        ):
            wait_for(lambda p=pattern: list(self.data.glob(p)), 90, 0.2, f"{pattern} to fill")

    @contextmanager
    def running(self) -> Iterator[Pipeline]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "observer", "--config", str(self.cfg_path), "run"],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            yield self
        finally:
            self.returncode = terminate(self.proc, 60)
            self.stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""


def scalp_rate(data: Path) -> tuple[int, int, int]:
    """(written, expected, symbols): one sample per 0.5 s window between each symbol's first and
    last sample."""
    windows: dict[str, set[str]] = defaultdict(set)
    for rec in lines(data, "scalp/kis-sim/*/*/*.jsonl"):
        inst = rec["observation"]["instruments"][0]
        windows[inst["symbol"]].add(inst["window_start"])
        assert rec["interpretation"]["slot_number"] is not None
    expected = written = 0
    for starts in windows.values():
        times = sorted(datetime.fromisoformat(s) for s in starts)
        expected += int((times[-1] - times[0]) / timedelta(milliseconds=500)) + 1
        written += len(times)
    return written, expected, len(windows)


def slot_returns(data: Path, within: timedelta) -> list[tuple[str, datetime, datetime]]:
    """(symbol, removed at, added again at) for every symbol given a slot again within `within` of
    losing one: churn that leaves holes in its data for nothing."""
    removed_at: dict[str, datetime] = {}
    out: list[tuple[str, datetime, datetime]] = []
    changes = [ev for ev in lines(data, "system/events/*/*.jsonl") if ev.get("type") == "slot_change"]
    for ev in sorted(changes, key=lambda ev: datetime.fromisoformat(ev["at"])):
        at = datetime.fromisoformat(ev["at"])
        for entry in ev["details"].get("added") or []:
            symbol = entry.split(":")[1]
            if symbol in removed_at and at - removed_at[symbol] <= within:
                out.append((symbol, removed_at[symbol], at))
        for entry in ev["details"].get("removed") or []:
            removed_at[entry.split(":")[1]] = at
    return out


def scalp_rate_in_slots(data: Path) -> tuple[int, int, int]:
    """(written, expected, symbols) like `scalp_rate`, but a symbol's windows are counted only while
    it held a slot: its samples split into runs wherever a ``slot_change`` removed it in between
    (a trigger replaced it; its hole is a slot-less time, not a loss)."""
    removed: dict[str, list[datetime]] = defaultdict(list)
    for ev in lines(data, "system/events/*/*.jsonl"):
        if ev.get("type") == "slot_change":
            at = datetime.fromisoformat(ev["at"])
            for entry in ev["details"].get("removed") or []:
                removed[entry.split(":")[1]].append(at)
    windows: dict[str, set[datetime]] = defaultdict(set)
    for rec in lines(data, "scalp/*/*/*/*.jsonl"):
        inst = rec["observation"]["instruments"][0]
        windows[inst["symbol"]].add(datetime.fromisoformat(inst["window_start"]))
    expected = written = 0
    step = timedelta(milliseconds=500)
    for symbol, starts in windows.items():
        times = sorted(starts)
        run_start = times[0]
        for prev, cur in itertools.pairwise(times):
            if cur - prev > step and any(prev < at <= cur for at in removed.get(symbol, ())):
                expected += int((prev - run_start) / step) + 1
                run_start = cur
        expected += int((times[-1] - run_start) / step) + 1
        written += len(times)
    return written, expected, len(windows)


class BotApi(BaseHTTPRequestHandler):
    """A stand-in for the Telegram Bot API: records every sendMessage (class-level list)."""

    messages: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        doc = (
            json.loads(body)
            if body.startswith(b"{")
            else dict(x.split("=", 1) for x in body.decode().split("&"))
        )
        self.messages.append({"path": self.path, **doc})
        out = b'{"ok":true,"result":{}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *_: object) -> None:
        pass


def start_bot_api() -> ThreadingHTTPServer:
    """A fresh `BotApi` on a free loopback port (serving in a thread); `shutdown()` it after."""
    BotApi.messages = []
    bot = ThreadingHTTPServer(("127.0.0.1", 0), BotApi)
    threading.Thread(target=bot.serve_forever, daemon=True).start()
    return bot
