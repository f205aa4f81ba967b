"""The worker registry: every entry is a real worker, and the environment can add fakes."""

from __future__ import annotations

import pytest

from observer.worker_base import Worker
from observer.worker_registry import EXTRA_WORKERS_ENV, WORKERS, UnknownWorker, registry, worker_class
from testkit.fake_workers import EXTRA_WORKERS, StubbornWorker


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_every_registered_worker_imports_and_is_named_as_registered(name: str) -> None:
    cls = worker_class(name)
    assert issubclass(cls, Worker) and cls.name == name


def test_extra_workers_from_the_environment_join_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {EXTRA_WORKERS_ENV: EXTRA_WORKERS + ", bad-entry ,=x:y,also-bad=nocolon"}
    merged = registry(env)
    assert merged["fake-stubborn"] == "testkit.fake_workers:StubbornWorker"
    assert set(WORKERS) <= set(merged)
    assert "bad-entry" not in merged and "also-bad" not in merged and "" not in merged
    monkeypatch.setenv(EXTRA_WORKERS_ENV, EXTRA_WORKERS)
    assert worker_class("fake-stubborn") is StubbornWorker
    monkeypatch.delenv(EXTRA_WORKERS_ENV)
    with pytest.raises(UnknownWorker, match="fake-stubborn"):
        worker_class("fake-stubborn")
