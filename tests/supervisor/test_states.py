"""The transition table, the shutdown order and the worker registry extension (pure logic)."""

from __future__ import annotations

import itertools

import pytest

from observer.worker_registry import EXTRA_WORKERS_ENV, WORKERS, UnknownWorker, registry, worker_class
from supervisor.states import ALIVE, TRANSITIONS, IllegalTransition, State, check_transition
from supervisor.supervisor import SHUTDOWN_ORDER, shutdown_order
from testkit.fake_workers import EXTRA_WORKERS, StubbornWorker


def test_every_state_has_a_row_and_fatal_is_only_left_by_an_operator() -> None:
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.FATAL] == {State.STARTING, State.STOPPED}
    # no automatic path leads from FATAL or STOPPED back to a running process except STARTING
    assert all(State.RUNNING not in TRANSITIONS[s] for s in State if s is not State.STARTING)


@pytest.mark.parametrize("old,new", list(itertools.product(State, State)))
def test_illegal_transitions_raise(old: State, new: State) -> None:
    if new in TRANSITIONS[old]:
        check_transition(old, new)
    else:
        with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
            check_transition(old, new)


def test_the_lifecycle_paths_are_legal() -> None:
    paths = [
        [State.STOPPED, State.STARTING, State.RUNNING, State.STOPPING, State.STOPPED],
        [
            State.STARTING,
            State.EXITED,
            State.BACKOFF,
            State.STARTING,
            State.RUNNING,
            State.EXITED,
            State.FATAL,
        ],
        [State.RUNNING, State.STOPPING, State.EXITED, State.STARTING],  # hang or operator restart
        [State.FATAL, State.STARTING],
        [State.BACKOFF, State.STOPPED],
    ]
    for path in paths:
        for old, new in itertools.pairwise(path):
            check_transition(old, new)
    assert {State.STARTING, State.RUNNING, State.STOPPING} == ALIVE


def test_shutdown_order_collectors_first_writer_and_sim_last() -> None:
    names = ["sim", "writer", "observer", "monitor", "rest-collector", "ws-collector", "housekeeper"]
    assert shutdown_order(names) == list(SHUTDOWN_ORDER)
    order = shutdown_order(["sim", "writer", "observer", "synthetic-source", "rest-collector"])
    assert order == ["synthetic-source", "rest-collector", "observer", "writer", "sim"]
    assert order.index("observer") < order.index("writer") < order.index("sim")


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
