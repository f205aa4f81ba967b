"""The transition table and the shutdown order (pure logic)."""

from __future__ import annotations

import itertools

import pytest

from supervisor.states import ALIVE, TRANSITIONS, IllegalTransition, State, check_transition
from supervisor.supervisor import SHUTDOWN_ORDER, shutdown_order


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
    order = shutdown_order(["sim", "writer", "observer", "fake-ok", "rest-collector"])
    assert order == ["fake-ok", "rest-collector", "observer", "writer", "sim"]
    assert order.index("observer") < order.index("writer") < order.index("sim")
