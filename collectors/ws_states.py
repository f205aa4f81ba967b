"""The WS collector's connection lifecycle: one transition table, illegal transitions raise.

::

    CLOSED --the trading-session window opens--> WAITING
    WAITING --retry time reached and every old reader thread ended--> CONNECTING
    CONNECTING --the session's thread reports it up--> UP
    CONNECTING / UP --lost: reader down, receive watchdog, session in use, key rejected--> WAITING
    WAITING / CONNECTING / UP --the window closes--> CLOSED
    any but STOPPED --the worker stops--> STOPPED

At most one session exists, in CONNECTING and UP; WAITING holds the retry time (reconnect
backoff); an outage (gap marker, escalation) runs from the first loss until data flows again or
the window closes. `collectors.ws_link.Link` is the only writer of the state.
"""

from __future__ import annotations

import enum


class LinkState(enum.Enum):
    CLOSED = "CLOSED"  # outside the trading-session window: no session wanted
    WAITING = "WAITING"  # in the window, no session: the next attempt is scheduled
    CONNECTING = "CONNECTING"  # a session's thread fetches the credential and connects
    UP = "UP"  # connected: subscriptions, receive watchdog, health
    STOPPED = "STOPPED"  # the worker is stopping; nothing leaves this state


L = LinkState
TRANSITIONS: dict[LinkState, frozenset[LinkState]] = {
    L.CLOSED: frozenset({L.WAITING, L.STOPPED}),
    L.WAITING: frozenset({L.CONNECTING, L.CLOSED, L.STOPPED}),
    L.CONNECTING: frozenset({L.UP, L.WAITING, L.CLOSED, L.STOPPED}),
    L.UP: frozenset({L.WAITING, L.CLOSED, L.STOPPED}),
    L.STOPPED: frozenset(),
}

#: states inside the trading-session window (a session is wanted)
IN_WINDOW = frozenset({L.WAITING, L.CONNECTING, L.UP})
#: states in which a session exists
WITH_SESSION = frozenset({L.CONNECTING, L.UP})


class IllegalTransition(Exception):
    """A transition the table does not allow: a collector bug, never an operator error."""


def check_transition(current: LinkState, target: LinkState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"illegal ws link transition {current.value} -> {target.value}")
