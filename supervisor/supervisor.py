"""The supervisor: the only parent of every worker process.

One thread runs one poll loop (finite timeout) over the control socket, the event subscriber
(heartbeats, slots, mitigation, stats) and the reliable sender's acks; every turn each `Watcher`
ticks. The event forwarder (XSUB/XPUB) runs in its own thread. Signal handlers only count signals:
the first SIGTERM/SIGINT starts the ordered, bounded shutdown, a second one SIGKILLs what is left.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zmq

from observer import record_ids
from observer.bus import SUPERVISOR_STATE, EventPublisher, EventSubscriber, Forwarder, context, ctl_topic
from observer.clock import ANCHOR_ENV, Clock, SystemClock
from observer.config import Config, runtime_dir
from observer.control import make_reply
from observer.reliable import ReliableSender, SeqGap, hop_endpoints, new_run_id
from observer.schema import Command, CommandReply, Heartbeat, SystemEvent
from observer.worker_base import clock_from_config
from observer.worker_registry import registry
from supervisor.control import ControlServer
from supervisor.lock import RuntimeLock
from supervisor.process import WorkerProcess, worker_env
from supervisor.states import State
from supervisor.view import TOPICS, BusView
from supervisor.watcher import Transition, Watcher

log = logging.getLogger("observer.supervisor")

PRODUCER = "supervisor"
#: shutdown order of the known workers: intake first, the core after its sources, the writer last
#: but one, the simulator (the market itself) last. Workers not listed stop first.
SHUTDOWN_ORDER = ("rest-collector", "ws-collector", "monitor", "housekeeper", "observer", "writer", "sim")
#: the worker that archives the supervisor's events (they go to it over the ingest hop)
EVENT_SINK = "observer"
#: on shutdown, how long the core may take to acknowledge the events of every earlier stop
_EVENTS_DRAIN_S = 5.0
_LOOP_TIMEOUT_MS = 50


def _anchor(env: Mapping[str, str]) -> float:
    """The shared SessionClock anchor: the one already exported, else the supervisor's start."""
    try:
        return float(env.get(ANCHOR_ENV) or time.time())
    except ValueError:
        log.warning("ignoring a malformed clock anchor", extra={"env": ANCHOR_ENV})
        return time.time()


def shutdown_order(names: list[str]) -> list[str]:
    unknown = [n for n in reversed(names) if n not in SHUTDOWN_ORDER]
    return unknown + [n for n in SHUTDOWN_ORDER if n in names]


class Supervisor:
    """Starts `workers`, keeps them alive, answers the control socket, stops them in order."""

    def __init__(
        self,
        cfg: Config,
        workers: list[str],
        *,
        config_path: str | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.cfg = cfg
        self.run_id = new_run_id()
        self._names = list(dict.fromkeys(workers))
        self._config_path = config_path
        base_env = dict(os.environ if env is None else env)
        self.anchor_epoch_s = _anchor(base_env)
        base_env[ANCHOR_ENV] = repr(self.anchor_epoch_s)
        self._env = worker_env(base_env, self.anchor_epoch_s, config_path)
        self._lock = RuntimeLock(runtime_dir(cfg))
        self.watchers: dict[str, Watcher] = {}
        self.view = BusView()
        self._signals = 0
        self._shutdown_queue: list[str] | None = None
        self._shutdown_deadline = 0.0
        self._event_seq = 0
        self.started_mono = time.monotonic()
        self.clock: Clock = SystemClock()
        self._sender: ReliableSender | None = None
        self._publisher: EventPublisher | None = None
        self._unacked_events: deque[tuple[int, SystemEvent]] = deque()
        self._drain_deadline: float | None = None

    # -- lifecycle
    def run(self) -> int:
        """Run until SIGTERM/SIGINT and every worker has stopped. Raises `AlreadyRunning`."""
        self._lock.acquire()
        os.environ[ANCHOR_ENV] = repr(self.anchor_epoch_s)  # our own clock shares the anchor
        self.clock = clock_from_config(self.cfg)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        ctx = context()
        forwarder = Forwarder(ctx, self.cfg)
        try:
            forwarder.start()
            self._publisher = EventPublisher(ctx, self.cfg)
            subscriber = EventSubscriber(ctx, self.cfg, TOPICS)
            control = ControlServer(ctx, self.cfg, self.handle_command)
            data_ep, ack_ep = hop_endpoints(self.cfg, "ingest")
            self._sender = ReliableSender(ctx, self.cfg, PRODUCER, data_ep, ack_ep, on_gap=self._on_gap)
            log.info(
                "supervisor started",
                extra={
                    "pid": os.getpid(),
                    "run_id": self.run_id,
                    "workers": self._names,
                    "runtime_dir": str(runtime_dir(self.cfg)),
                    "clock_anchor": self.anchor_epoch_s,
                },
            )
            for name in self._names:
                self._watcher(name).start("supervisor start")
            self._loop(control, subscriber)
        finally:
            self._teardown(forwarder, ctx)
        log.info("supervisor stopped", extra={"run_id": self.run_id})
        return 0

    def _loop(self, control: ControlServer, subscriber: EventSubscriber) -> None:
        assert self._sender is not None
        poller = zmq.Poller()
        poller.register(control.sock, zmq.POLLIN)
        poller.register(subscriber.sock, zmq.POLLIN)
        poller.register(self._sender.ack_sub, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll(_LOOP_TIMEOUT_MS))
                now = time.monotonic()
                if subscriber.sock in ready:
                    self._drain_events(subscriber, now)
                if control.sock in ready:
                    control.handle_ready()
                self._sender.pump()
                for watcher in list(self.watchers.values()):
                    watcher.tick(now)
                if self._signals and self._shutdown_queue is None:
                    self._begin_shutdown(now)
                if self._shutdown_queue is not None and self._advance_shutdown(now):
                    return
        finally:
            control.close()
            subscriber.close()

    def _drain_events(self, subscriber: EventSubscriber, now: float) -> None:
        for _ in range(10_000):
            got = subscriber.recv_nowait()
            if got is None:
                return
            topic, body = got
            if isinstance(body, Heartbeat):
                watcher = self.watchers.get(body.worker)
                if watcher is None or not watcher.heartbeat(body.pid, now):
                    for other in self.watchers.values():  # a class whose name differs from its registry name
                        if other.heartbeat(body.pid, now):
                            break
            self.view.handle(topic, body)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals += 1

    # -- shutdown
    def _begin_shutdown(self, now: float) -> None:
        order = shutdown_order(list(self.watchers))
        alive = [n for n in order if self.watchers[n].alive]
        log.info("shutdown requested: stopping workers in order", extra={"order": alive})
        self._shutdown_queue = order
        self._shutdown_deadline = now + len(alive) * (self.cfg.supervisor.stop_timeout_s + 2.0) + 2.0
        for watcher in self.watchers.values():
            watcher.no_restart = True
            if watcher.state in (State.BACKOFF, State.EXITED):
                watcher.stop("supervisor is shutting down")

    def _advance_shutdown(self, now: float) -> bool:
        """Stop the next worker once the previous one is gone. True when all are stopped."""
        assert self._shutdown_queue is not None
        overdue = self._signals > 1 or now > self._shutdown_deadline
        if overdue and any(w.alive for w in self.watchers.values()):
            log.warning(
                "forced shutdown: SIGKILL to every remaining worker", extra={"signals": self._signals}
            )
            self._signals = 1
            self._shutdown_deadline = now + 5.0
            for watcher in self.watchers.values():
                watcher.kill_now()
        if any(w.state is State.STOPPING for w in self.watchers.values()):
            return now > self._shutdown_deadline + 5.0  # a process that even SIGKILL cannot end
        while self._shutdown_queue:
            if self._shutdown_queue[0] == EVENT_SINK and self._events_in_flight(now):
                return False  # the core archives every earlier stop's events before it stops
            watcher = self.watchers[self._shutdown_queue.pop(0)]
            if watcher.alive:
                watcher.stop("supervisor shutdown")
                return False
        return True

    def _events_in_flight(self, now: float) -> bool:
        """Whether supervisor events still wait for the core's ack (bounded by `_EVENTS_DRAIN_S`)."""
        sink = self.watchers.get(EVENT_SINK)
        if self._sender is None or not self._sender.unacked or sink is None or not sink.alive:
            return False
        if self._drain_deadline is None:
            self._drain_deadline = now + _EVENTS_DRAIN_S
        return now < self._drain_deadline

    def _teardown(self, forwarder: Forwarder, ctx: zmq.Context[Any]) -> None:
        for watcher in self.watchers.values():
            if watcher.proc is not None:  # only after a crash of the loop itself
                watcher.proc.kill_now()
                watcher.proc.wait(2.0)
        if self._sender is not None:
            self._spool_unacked()
            self._sender.close()
        if self._publisher is not None:
            self._publisher.close()
        forwarder.stop()
        ctx.destroy(linger=0)
        self._lock.release()

    # -- watchers and transitions
    def _watcher(self, name: str) -> Watcher:
        watcher = self.watchers.get(name)
        if watcher is None:
            watcher = Watcher(name, self.cfg.supervisor, self._spawn, self._on_transition)
            self.watchers[name] = watcher
        return watcher

    def _spawn(self, name: str) -> WorkerProcess:
        return WorkerProcess(name, self._env)

    def _on_transition(self, t: Transition) -> None:
        extra = {
            "worker": t.worker,
            "from": t.old.value,
            "to": t.new.value,
            "reason": t.reason,
            "pid": t.pid,
            "exit_code": t.exit_code,
            "restarts": t.restarts,
        }
        log.log(logging.getLevelName(t.severity), "worker state", extra=extra)
        self._event_seq += 1
        event = SystemEvent(
            record_id=record_ids.event(PRODUCER, self.run_id, self._event_seq),
            type="worker_state",
            severity=t.severity,
            at=self.clock.now(),
            source=PRODUCER,
            provider=self.cfg.archive_provider,
            message=f"{t.worker}: {t.old.value} -> {t.new.value}: {t.reason}",
            details={
                "worker": t.worker,
                "from": t.old.value,
                "to": t.new.value,
                "reason": t.reason,
                "pid": t.pid,
                "exit_code": t.exit_code,
                "restarts": t.restarts,
            },
        )
        if self._sender is not None:
            seq = self._sender.send(event)
            self._unacked_events.append((seq, event))
            done = max(self._sender.acked, self._sender.floor - 1)  # acked, or abandoned (_on_gap)
            while self._unacked_events and self._unacked_events[0][0] <= done:
                self._unacked_events.popleft()
        if self._publisher is not None:
            self._publisher.publish(SUPERVISOR_STATE, event)

    def _spool_unacked(self) -> None:
        """The events the core can no longer take (its own stop, the writer's, the simulator's) go
        to the housekeeper's events spool (fsynced): its next run delivers them to system/."""
        assert self._sender is not None
        acked = self._sender.acked
        events = [event for seq, event in self._unacked_events if seq > acked]
        if not events:
            return
        from sinks.housekeeping import spool  # the one durable way to system/ while the core is down

        try:
            path = spool.put(self.cfg, events)
        except OSError as e:
            log.error(
                "supervisor events lost at exit: cannot spool them",
                extra={"count": len(events), "error": str(e)},
            )
            return
        log.info(
            "supervisor events the core could not take at exit are spooled for the next start",
            extra={"count": len(events), "path": str(path)},
        )

    def _on_gap(self, gap: SeqGap) -> None:
        log.error(
            "supervisor events abandoned: the core did not acknowledge them within the replay bound",
            extra={"first_seq": gap.first, "last_seq": gap.last, "count": gap.count},
        )

    # -- control commands
    def handle_command(self, cmd: Command) -> CommandReply:
        match cmd.action:
            case "status":
                return make_reply(True, "ok", **self.status())
            case "start" | "stop" | "restart":
                return self._worker_command(cmd.action, cmd.target)
            case "slots_list":
                return make_reply(True, "ok", slots=self.view.slots_data())
            case "pin" | "unpin":
                if not cmd.target:
                    return make_reply(False, f"{cmd.action} needs a SYMBOL")
                assert self._publisher is not None
                self._publisher.publish(ctl_topic("observer"), Command(action=cmd.action, target=cmd.target))
                log.info("slot command sent to the core", extra={"action": cmd.action, "symbol": cmd.target})
                return make_reply(True, "sent")
            case _:
                return make_reply(False, f"unknown command {cmd.action!r}")

    def _worker_command(self, action: str, name: str) -> CommandReply:
        if self._shutdown_queue is not None:
            return make_reply(False, "the supervisor is shutting down")
        if name not in self.watchers:
            known = registry(self._env)
            if name not in known:
                return make_reply(False, f"unknown worker {name!r}; known: {', '.join(sorted(known))}")
            if action == "stop":
                return make_reply(True, f"{name} is not running")
        watcher = self._watcher(name)
        log.info("operator command", extra={"action": action, "worker": name})
        ok, message = getattr(watcher, action)(f"operator {action}")
        return make_reply(ok, message, worker=watcher.status(time.monotonic()))

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "supervisor": {
                "pid": os.getpid(),
                "run_id": self.run_id,
                "uptime_s": round(now - self.started_mono, 3),
                "shutting_down": self._shutdown_queue is not None,
                "runtime_dir": str(Path(runtime_dir(self.cfg))),
                "events_unacked": 0 if self._sender is None else self._sender.unacked,
                # the pipeline's clock (the session clock in a demo), next to which status shows wall time
                "clock_now": self.clock.now().isoformat(),
                "clock_mode": self.cfg.clock.mode,
            },
            "workers": [w.status(now) for w in self.watchers.values()],
            **self.view.status_data(),
        }
