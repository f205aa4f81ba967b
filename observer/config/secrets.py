"""Secrets: credentials from the environment only, never from a file; their values print as ``***``.

`require_source` refuses to start production without KIS credentials (no silent simulator).

Call `Secret.reveal()` only at the one place that sends the value.
"""

from __future__ import annotations

import os
from typing import Literal

from observer.config.tree import Config, ConfigError


class Secret:
    """A value that never prints. Call `reveal()` at the one place that sends it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret(***)" if self._value else "Secret(<unset>)"

    __str__ = __repr__

    def __reduce__(self) -> str:
        raise TypeError("a Secret is not serialisable")


class MissingCredentials(ConfigError):
    """Production (the simulator not enabled) without the broker's credentials: nothing may start."""


def require_source(cfg: Config, secrets: Secrets) -> None:
    """Refuse a configuration with no data source: the simulator runs only where ``[sim] enabled =
    true`` says so, and without it the broker's credentials must be set. Raises `MissingCredentials`
    naming the missing variables (never their values)."""
    if cfg.sim.enabled or cfg.provider.name != "kis":
        return
    missing = secrets.missing_kis
    if missing:
        raise MissingCredentials(
            f"no KIS credentials: {' and '.join(missing)} not set in the environment "
            "(production never falls back to the simulator; set [sim] enabled = true to run on it)"
        )


class Secrets:
    """Credentials from the environment only."""

    def __init__(self, env: dict[str, str] | None = None):
        env = dict(os.environ) if env is None else env
        self.kis_app_key = Secret(env.get("KIS_APP_KEY", ""))
        self.kis_app_secret = Secret(env.get("KIS_APP_SECRET", ""))
        account = env.get("KIS_ACCOUNT", "real").strip().lower() or "real"
        if account not in ("real", "mock"):
            raise ConfigError(f"KIS_ACCOUNT must be 'real' or 'mock', got {account!r}")
        self.kis_account: Literal["real", "mock"] = account  # type: ignore[assignment]
        self.telegram_bot_token = Secret(env.get("TELEGRAM_BOT_TOKEN", ""))
        self.telegram_chat_id = Secret(env.get("TELEGRAM_CHAT_ID", ""))

    @property
    def has_kis_credentials(self) -> bool:
        return bool(self.kis_app_key) and bool(self.kis_app_secret)

    @property
    def missing_kis(self) -> list[str]:
        """The names of the KIS credential variables that are unset or empty."""
        return [
            name
            for name, value in (("KIS_APP_KEY", self.kis_app_key), ("KIS_APP_SECRET", self.kis_app_secret))
            if not value
        ]

    def values(self) -> list[str]:
        """Every non-empty secret value, for log masking."""
        out = [
            s.reveal()
            for s in (self.kis_app_key, self.kis_app_secret, self.telegram_bot_token, self.telegram_chat_id)
            if s
        ]
        return [v for v in out if len(v) >= 4]
