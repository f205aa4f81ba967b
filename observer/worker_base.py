"""The worker base: one process, one zmq Context, one poll loop with a finite timeout.

Subclasses fill in `on_start` (create sockets, `register` them with handlers), `on_tick` (called
every loop turn, at least every ``tick_interval_s``), and `on_stop` (drain, flush, close). Signal
handlers only set a flag. The base publishes a `Heartbeat` on ``heartbeat.<name>`` every
``heartbeat_interval_ms`` and exits on its own when its parent (the supervisor) dies: the kernel
sends SIGTERM (``PR_SET_PDEATHSIG``) and the loop also checks ``getppid()``.

Slow work (network, disk) runs off the loop: `spawn` starts a background thread whose results come
back through the worker's bounded inbox (`post`, read on the loop thread by `drain_inbox`); an
exception in such a thread is re-raised on the loop thread, so the worker exits and the supervisor
restarts it visibly instead of a thread dying unnoticed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import zmq

from observer import record_ids
from observer.bus import EventPublisher, context, heartbeat_topic
from observer.clock import Clock, SessionClock, SystemClock, anchor_from_env, parse_start_at
from observer.config import Config, Secrets, log_dir
from observer.logs import setup_logging
from observer.reliable import new_run_id
from observer.schema import Heartbeat, SystemEvent

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to signal us when our parent dies (Linux); harmless elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True, slots=True)
class ThreadCrashed:
    """A background thread of a worker raised: the loop thread re-raises it (the worker exits and
    the supervisor restarts it visibly) instead of the thread dying silently."""

    what: str
    error: BaseException


class WorkerThreadError(RuntimeError):
    """A worker's background thread failed; ``__cause__`` is its exception."""


def clock_from_config(cfg: Config) -> Clock:
    if cfg.clock.mode == "real":
        return SystemClock()
    today = SystemClock().now().date()
    return SessionClock(parse_start_at(cfg.clock.start_at, today), cfg.clock.speed, anchor_from_env())


class Worker:
    """Base class of every worker process. See the module docstring for the contract."""

    name: str = "worker"
    tick_interval_s: float = 0.05
    inbox_size: int = 10_000  # results of background threads waiting for the loop thread

    def __init__(self, cfg: Config, *, clock: Clock | None = None, secrets: Secrets | None = None):
        self.cfg = cfg
        self.clock = clock or clock_from_config(cfg)
        self.secrets = secrets or Secrets()
        self.run_id = new_run_id()
        self._event_ids = record_ids.EventIds(self.name, self.run_id)
        self.log = logging.getLogger(f"observer.{self.name}")
        self._stop_requested = False
        self._idle = threading.Event()  # never set: a timed wait for workers without sockets
        self._handlers: dict[Any, Callable[[], None]] = {}
        self._poller = zmq.Poller()
        self._ppid = os.getppid()
        self._last_heartbeat = 0.0
        self.ctx: zmq.Context[Any] | None = None
        self.events: EventPublisher | None = None
        self.started_at: datetime | None = None
        self.inbox: queue.Queue[object] = queue.Queue(maxsize=self.inbox_size)

    # -- hooks for subclasses
    def on_start(self) -> None:
        """Create sockets and state; `register` readable sockets."""

    def on_tick(self) -> None:
        """Periodic work; called every loop turn."""

    def on_stop(self) -> None:
        """Drain, flush, close. Bounded: must return within the supervisor's stop timeout."""

    def stats(self) -> dict[str, float]:
        """Numbers published with every heartbeat."""
        return {}

    # -- helpers
    def register(self, sock: Any, handler: Callable[[], None]) -> None:
        self._poller.register(sock, zmq.POLLIN)
        self._handlers[sock] = handler

    def unregister(self, sock: Any) -> None:
        self._poller.unregister(sock)
        self._handlers.pop(sock, None)

    # -- background threads: network or disk work off the loop thread
    def spawn(self, what: str, fn: Callable[..., object], *args: object) -> threading.Thread:
        """Run ``fn(*args)`` in a daemon thread. Results go back with `post`; an exception becomes a
        `ThreadCrashed` in the inbox, re-raised by `drain_inbox` on the loop thread."""

        def guarded() -> None:
            try:
                fn(*args)
            except Exception as e:  # a bug in a thread must crash the worker visibly, not hang it
                self.post(ThreadCrashed(what, e))

        thread = threading.Thread(target=guarded, name=what, daemon=True)
        thread.start()
        return thread

    def post(self, item: object, timeout_s: float | None = None) -> bool:
        """Hand `item` to the loop thread. Blocks while the inbox is full (back-pressure on the
        thread, never on the loop); with `timeout_s`, gives up after it and returns False."""
        try:
            self.inbox.put(item, timeout=timeout_s)
        except queue.Full:
            self.log.error("inbox full; item dropped", extra={"worker": self.name, "item": repr(item)[:200]})
            return False
        return True

    def drain_inbox(
        self, handle: Callable[[object], None], limit: int = 5_000, *, raise_crash: bool = True
    ) -> None:
        """On the loop thread: hand up to `limit` posted items to `handle`; a `ThreadCrashed` raises
        `WorkerThreadError` (or is only logged when `raise_crash` is False, e.g. while stopping)."""
        for _ in range(limit):
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, ThreadCrashed):
                if raise_crash:
                    raise WorkerThreadError(f"{item.what} thread failed") from item.error
                self.log.error("thread failed", extra={"what": item.what, "error": repr(item.error)})
                continue
            handle(item)

    def request_stop(self, *_: object) -> None:
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    def next_event_id(self) -> str:
        """The id of this run's next event (``evt:{worker}:{run_id}:{n}``)."""
        return self._event_ids.next()

    def make_event(self, type_: str, severity: str, message: str, **details: Any) -> SystemEvent:
        at = self.clock.now()
        return SystemEvent(
            record_id=self._event_ids.next(),
            type=type_,
            severity=severity,  # type: ignore[arg-type]
            at=at,
            source=self.name,
            provider=self.cfg.archive_provider,
            message=message,
            details=details,
        )

    # -- the loop
    def run(self) -> int:
        """Run until asked to stop. Returns the process exit code."""
        setup_logging(self.name, self.cfg.logging.level, log_dir(self.cfg), self.secrets.values())
        if threading.current_thread() is threading.main_thread():
            # a worker run in a thread (tests, embedding) is stopped with request_stop() instead
            die_with_parent()
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        self.ctx = context()
        self.events = EventPublisher(self.ctx, self.cfg)
        self.started_at = self.clock.now()
        self.log.info(
            "worker starting", extra={"worker": self.name, "pid": os.getpid(), "run_id": self.run_id}
        )
        try:
            self.on_start()
            self._loop()
        finally:
            self.log.info("worker stopping", extra={"worker": self.name})
            try:
                self.on_stop()
            finally:
                self.events.close()
                self.ctx.destroy(linger=0)
        self.log.info("worker stopped", extra={"worker": self.name})
        return 0

    def _loop(self) -> None:
        hb_interval_s = self.cfg.supervisor.heartbeat_interval_ms / 1000
        timeout_ms = max(1, int(self.tick_interval_s * 1000))
        while not self._stop_requested:
            if self._handlers:
                for sock, _ in self._poller.poll(timeout_ms):
                    handler = self._handlers.get(sock)
                    if handler is not None:
                        handler()
            else:  # zmq returns at once from a poll on no sockets: that would spin a core
                self._idle.wait(self.tick_interval_s)
            self.on_tick()
            now = time.monotonic()
            if now - self._last_heartbeat >= hb_interval_s:
                self._last_heartbeat = now
                self._heartbeat()
                if os.getppid() != self._ppid:
                    self.log.warning("parent died; stopping", extra={"worker": self.name})
                    self._stop_requested = True

    def _heartbeat(self) -> None:
        assert self.events is not None
        hb = Heartbeat(
            worker=self.name, pid=os.getpid(), run_id=self.run_id, at=self.clock.now(), stats=self.stats()
        )
        self.events.publish(heartbeat_topic(self.name), hb)
