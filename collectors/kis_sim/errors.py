"""The simulator's named errors. Nothing here is raised across a process boundary."""

from __future__ import annotations


class SimError(Exception):
    """Base of every error the simulator raises on purpose."""


class WebSocketProtocolError(SimError):
    """A peer broke RFC 6455 (bad handshake, unmasked client frame, oversized message...).

    `close_code` is the status the server sends in its close frame before it drops the socket.
    """

    def __init__(self, message: str, close_code: int = 1002):
        super().__init__(message)
        self.close_code = close_code


class ConnectionClosed(SimError):
    """The WebSocket peer went away (EOF, reset, or a close frame)."""


class FaultSpecError(SimError):
    """An admin fault request cannot be applied (unknown kind, bad parameter)."""


class AdminClientError(SimError):
    """The admin endpoint could not be reached or refused a request (used by the CLI)."""


class OAuthError(SimError):
    """An /oauth2 answer that is an error: ``{"error_code", "error_description"}`` with `status`."""

    def __init__(self, status: int, error_code: str, description: str):
        super().__init__(f"{error_code} {description}")
        self.status = status
        self.error_code = error_code
        self.description = description


class KisApiError(SimError):
    """A /uapi answer that is an error: ``{"rt_cd", "msg_cd", "msg1"}`` with HTTP `status`."""

    def __init__(self, status: int, msg_cd: str, msg1: str, rt_cd: str = "1"):
        super().__init__(f"{msg_cd} {msg1}")
        self.status = status
        self.msg_cd = msg_cd
        self.msg1 = msg1
        self.rt_cd = rt_cd
