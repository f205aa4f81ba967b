"""The worker registry: name -> "module:Class". Imported lazily so that a worker process only
loads what it runs. The supervisor starts each as ``python -m observer worker NAME``."""

from __future__ import annotations

import importlib

from observer.config import Config
from observer.worker import Worker

WORKERS: dict[str, str] = {
    "sim": "collectors.kis_sim.worker:SimulatorWorker",
    "writer": "sinks.writer.worker:WriterWorker",
    "observer": "observer.core.worker:CoreWorker",
    "monitor": "sinks.monitor.worker:MonitorWorker",
    "rest-collector": "collectors.rest_worker:RestCollectorWorker",
    "ws-collector": "collectors.ws_worker:WsCollectorWorker",
    "housekeeper": "sinks.housekeeper:HousekeeperWorker",
    "synthetic-source": "collectors.synthetic:SyntheticSourceWorker",
}


class UnknownWorker(Exception):
    pass


def worker_class(name: str) -> type[Worker]:
    try:
        target = WORKERS[name]
    except KeyError:
        raise UnknownWorker(f"unknown worker {name!r}; known: {', '.join(sorted(WORKERS))}") from None
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Worker] = getattr(module, cls_name)
    return cls


def build_worker(name: str, cfg: Config) -> Worker:
    return worker_class(name)(cfg)
