"""The publisher thread of the JetStream sink: nats-py's asyncio loop, off the worker's loop thread.

It takes admitted hop batches from a bounded queue, publishes every line (pipelined,
``publish_async``, at most ``max_in_flight`` unacknowledged), and hands ``Published(producer,
run_id, seq)`` back to the loop thread only when JetStream acknowledged every line of that batch
and of all before it. A line whose publish failed or timed out (the server restarting, a lost
connection) is published again, with the same ``Nats-Msg-Id``, until JetStream takes it: the
stream's duplicate window makes the retries, and the writer's resends after a sink restart,
land once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
from nats.js import api
from nats.js.errors import NotFoundError

from observer.bus import stream_subject
from observer.config import JetStreamConfig
from observer.schema import EnvelopeBatch, StreamLine

# what a server that is down, restarting or slow makes nats-py raise; anything else is a bug and crashes
NATS_FAILURES = (nats.errors.Error, OSError, TimeoutError)
log = logging.getLogger("observer.jetstream")
PATH_HEADER = "Observer-Path"
OFFSET_HEADER = "Observer-Offset"
MSG_ID_HEADER = "Nats-Msg-Id"
_BACKOFF_MAX_S = 2.0


@dataclass(frozen=True, slots=True)
class Published:
    """Everything of (producer, run_id) up to `seq` is in the stream."""

    producer: str
    run_id: str
    seq: int


def stream_config(jcfg: JetStreamConfig) -> api.StreamConfig:
    return api.StreamConfig(
        name=jcfg.stream,
        subjects=[jcfg.subject_prefix + ".>"],
        storage=api.StorageType.FILE,
        num_replicas=jcfg.replicas,
        duplicate_window=jcfg.duplicate_window_s,
    )


async def connect(jcfg: JetStreamConfig, stopped: Callable[[], bool]) -> Any:
    """Connect (retrying every second until `stopped`); reconnects after that are nats-py's."""
    while True:
        try:
            return await nats.connect(
                jcfg.url,
                connect_timeout=2,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
            )
        except NATS_FAILURES as e:  # no server yet: the hop keeps its backlog meanwhile
            if stopped():
                raise
            log.warning("nats connect failed; retrying", extra={"url": jcfg.url, "error": repr(e)})
            await asyncio.sleep(1.0)


class Publisher:
    """`run` in a background thread; `stop` from any thread. Counters are read by the loop thread."""

    def __init__(
        self,
        jcfg: JetStreamConfig,
        batches: queue.Queue[EnvelopeBatch[StreamLine]],
        post: Callable[[object], bool],
    ):
        self.jcfg = jcfg
        self.batches = batches
        self.post = post
        self._stop = threading.Event()
        self.published = 0
        self.duplicates = 0
        self.retries = 0
        self.connected = False

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        nc = await connect(self.jcfg, self._stop.is_set)
        try:
            js = nc.jetstream(publish_async_max_pending=self.jcfg.max_in_flight)
            await self._ensure_stream(js)
            self.connected = True
            loop = asyncio.get_running_loop()
            while not self._stop.is_set():
                group = await loop.run_in_executor(None, self._take)
                if group:
                    await self._publish_group(js, group)
        finally:
            self.connected = False
            await nc.close()

    async def _ensure_stream(self, js: Any) -> None:
        while True:
            try:
                await js.stream_info(self.jcfg.stream)
                return
            except NotFoundError:
                await js.add_stream(stream_config(self.jcfg))
                log.info("stream created", extra={"stream": self.jcfg.stream})
                return
            except NATS_FAILURES as e:  # the server is (re)starting
                if self._stop.is_set():
                    raise
                log.warning("stream not reachable; retrying", extra={"error": repr(e)})
                await asyncio.sleep(1.0)

    def _take(self) -> list[EnvelopeBatch[StreamLine]]:
        """Wait up to 0.2 s for a batch, then take what else waits, up to ``max_in_flight`` lines."""
        try:
            group = [self.batches.get(timeout=0.2)]
        except queue.Empty:
            return []
        lines = len(group[0].bodies)
        while lines < self.jcfg.max_in_flight:
            try:
                batch = self.batches.get_nowait()
            except queue.Empty:
                break
            group.append(batch)
            lines += len(batch.bodies)
        return group

    async def _publish_group(self, js: Any, group: list[EnvelopeBatch[StreamLine]]) -> None:
        todo = [body for batch in group for body in batch.bodies]
        backoff = 0.1
        while todo:
            todo = await self._publish(js, todo)
            if todo and self._stop.is_set():
                return  # not acknowledged on the hop: the writer resends it to the next sink
            if todo:
                self.retries += len(todo)
                log.warning("JetStream did not acknowledge; publishing again", extra={"lines": len(todo)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
        for batch in group:
            self.post(Published(batch.producer, batch.run_id, batch.seq + len(batch.bodies) - 1))

    async def _publish(self, js: Any, bodies: list[StreamLine]) -> list[StreamLine]:
        """Publish `bodies` pipelined; returns those JetStream did not acknowledge."""
        prefix, timeout = self.jcfg.subject_prefix, self.jcfg.publish_timeout_s
        futures: list[Any] = []
        for body in bodies:
            line = bytes(body.line)
            headers = {
                MSG_ID_HEADER: body.record_id,
                PATH_HEADER: body.path,
                OFFSET_HEADER: str(body.offset),
            }
            subject = stream_subject(prefix, body.track, body.market, body.record_id, line)
            try:
                futures.append(await js.publish_async(subject, line, wait_stall=timeout, headers=headers))
            except NATS_FAILURES as e:  # disconnected, outbound buffer full: this one and the rest again
                log.debug("publish failed", extra={"error": repr(e)})
                futures.extend([None] * (len(bodies) - len(futures)))
                break
        failed: list[StreamLine] = []
        for body, fut in zip(bodies, futures, strict=True):
            if fut is None:
                failed.append(body)
                continue
            try:
                ack = await asyncio.wait_for(fut, timeout)
            except (
                NATS_FAILURES
            ):  # timeout, no responders, a server error: publish it again (counted in retries)
                failed.append(body)
                continue
            self.published += 1
            if ack.duplicate:
                self.duplicates += 1
        return failed
