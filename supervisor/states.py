"""The per-worker state machine: one transition table, illegal transitions raise.

::

    STOPPED --start--> STARTING --stable_after_s--> RUNNING
    STARTING / RUNNING --exit--> EXITED --restart allowed--> BACKOFF --delay--> STARTING
                                        --flapping-------> FATAL   (CRITICAL event, no more restarts)
    STARTING / RUNNING --stop, restart or hang--> STOPPING --> STOPPED (stop) | EXITED (restart/hang)
    BACKOFF / EXITED / FATAL --stop--> STOPPED;  FATAL / EXITED --start--> STARTING
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.STOPPED: frozenset({S.STARTING}),
    S.STARTING: frozenset({S.RUNNING, S.EXITED, S.STOPPING}),
    S.RUNNING: frozenset({S.EXITED, S.STOPPING}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED, S.EXITED}),
    S.EXITED: frozenset({S.BACKOFF, S.FATAL, S.STARTING, S.STOPPED}),
    S.FATAL: frozenset({S.STARTING, S.STOPPED}),
}

#: states in which a worker process exists
ALIVE = frozenset({S.STARTING, S.RUNNING, S.STOPPING})
#: states in which heartbeats are expected
WATCHED = frozenset({S.STARTING, S.RUNNING})


class IllegalTransition(Exception):
    """A transition that the table does not allow: a supervisor bug, never an operator error."""


def check_transition(current: State, target: State) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"illegal worker state transition {current.value} -> {target.value}")
