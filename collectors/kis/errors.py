"""What a KIS call can fail with: `KisError` (``code`` names the KIS msg_cd / error_code, or ours:
timeout, http_404 ...), split into `KisApiError` (an answer a retry will not fix) and
`KisTransportError` (no usable answer). Messages never carry a credential."""

from __future__ import annotations


class KisError(Exception):
    """A KIS call failed. ``code`` is the KIS msg_cd / error_code, or ours (timeout, http_404...)."""

    def __init__(self, code: str, message: str = "", status: int = 0):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.status = status


class KisApiError(KisError):
    """KIS answered with an error that a retry will not fix (bad code, unknown endpoint...)."""


class KisTransportError(KisError):
    """No usable answer: timeout, connection refused/reset, unparseable body from a 5xx."""
