"""The worker registry: name -> "module:Class". Imported lazily so that a worker process only
loads what it runs. The supervisor starts each as ``python -m observer worker NAME``.

``$OBSERVER_EXTRA_WORKERS`` (``name=module:Class,...``) adds entries to the registry, e.g. fake
workers in tests that must run through the real ``observer worker NAME`` path.
"""

from __future__ import annotations

import importlib
import os

from observer.config import Config
from observer.worker_base import Worker

WORKERS: dict[str, str] = {
    "sim": "collectors.kis_sim.worker:SimulatorWorker",
    "writer": "sinks.writer.worker:WriterWorker",
    "observer": "observer.core.worker:CoreWorker",
    "monitor": "sinks.monitor.worker:MonitorWorker",
    "rest-collector": "collectors.rest_worker:RestCollectorWorker",
    "ws-collector": "collectors.ws_worker:WsCollectorWorker",
    "housekeeper": "sinks.housekeeping.worker:HousekeeperWorker",
    "jetstream": "sinks.jetstream.worker:JetStreamSinkWorker",
}

#: the workers that read the broker: they need a data source (credentials, or [sim] enabled)
SOURCE_WORKERS = ("rest-collector", "ws-collector")

EXTRA_WORKERS_ENV = "OBSERVER_EXTRA_WORKERS"


class UnknownWorker(Exception):
    pass


def registry(env: dict[str, str] | None = None) -> dict[str, str]:
    """`WORKERS` plus the entries of ``$OBSERVER_EXTRA_WORKERS`` (malformed entries are ignored)."""
    env = dict(os.environ) if env is None else env
    merged = dict(WORKERS)
    for item in env.get(EXTRA_WORKERS_ENV, "").split(","):
        name, sep, target = item.strip().partition("=")
        if sep and name.strip() and ":" in target:
            merged[name.strip()] = target.strip()
    return merged


def worker_class(name: str) -> type[Worker]:
    known = registry()
    try:
        target = known[name]
    except KeyError:
        raise UnknownWorker(f"unknown worker {name!r}; known: {', '.join(sorted(known))}") from None
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Worker] = getattr(module, cls_name)
    return cls


def build_worker(name: str, cfg: Config) -> Worker:
    return worker_class(name)(cfg)
