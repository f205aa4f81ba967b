"""Secrets: credentials from the environment only, never from a file; their values print as ``***``.

KIS app keys: ``KIS_APP_KEY`` / ``KIS_APP_SECRET`` (one key), or ``KIS_APP_KEY_1`` /
``KIS_APP_SECRET_1``, ``KIS_APP_KEY_2`` / ... numbered from 1 without a gap (several keys, each with
its own request budget). Mixing the two forms, a gap, or a key without its secret is a
`ConfigError` naming the variable, never its value. `Secrets.kis_keys` lists them in order.

`require_source` refuses to start production without KIS credentials (no silent simulator).

Call `Secret.reveal()` only at the one place that sends the value.
"""

from __future__ import annotations

import os
import re
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


def track_b_sessions(cfg: Config, secrets: Secrets) -> int:
    """How many WebSocket sessions Track B has, one per app key: ``[track_b] sessions`` when set,
    else ``[sim] keys`` on the simulator, else the KIS keys of the environment (at least one)."""
    if cfg.track_b.sessions:
        return cfg.track_b.sessions
    if cfg.sim.enabled:
        return cfg.sim.keys
    return max(1, len(secrets.kis_keys))


def track_b_capacity(cfg: Config, secrets: Secrets | None = None) -> int:
    """Track B's slots: ``max_slots`` per session, one session per app key."""
    return cfg.track_b.max_slots * track_b_sessions(cfg, secrets if secrets is not None else Secrets())


def key_slots(key_index: int, per_session: int) -> range:
    """The slot numbers app key `key_index` (1..) serves: its session's range, one after the other."""
    return range((key_index - 1) * per_session + 1, key_index * per_session + 1)


_NUMBERED = re.compile(r"KIS_APP_(KEY|SECRET)_([0-9]+)")
KisKey = tuple[Secret, Secret]  # (app key, app secret)


def _numbered_kis_keys(env: dict[str, str]) -> list[KisKey]:
    """``KIS_APP_KEY_n`` / ``KIS_APP_SECRET_n``, n = 1.. without a gap; empty values count as unset."""
    found: dict[int, dict[str, str]] = {}
    for name, value in env.items():
        m = _NUMBERED.fullmatch(name)
        if m is None or not value:
            continue
        kind, n = m.groups()
        if n.startswith("0"):
            raise ConfigError(
                f"{name}: numbered KIS key variables are KIS_APP_{kind}_1, KIS_APP_{kind}_2, ..."
            )
        found.setdefault(int(n), {})[kind] = value
    keys: list[KisKey] = []
    for n in range(1, max(found, default=0) + 1):
        pair = found.get(n)
        if pair is None:
            raise ConfigError(
                f"KIS_APP_KEY_{n} and KIS_APP_SECRET_{n} are not set but key {max(found)} is: "
                "number the keys 1, 2, ... without a gap"
            )
        for kind, other in (("KEY", "SECRET"), ("SECRET", "KEY")):
            if kind not in pair:
                raise ConfigError(f"KIS_APP_{kind}_{n} is not set but KIS_APP_{other}_{n} is")
        keys.append((Secret(pair["KEY"]), Secret(pair["SECRET"])))
    return keys


class Secrets:
    """Credentials from the environment only."""

    def __init__(self, env: dict[str, str] | None = None):
        env = dict(os.environ) if env is None else env
        self.kis_app_key = Secret(env.get("KIS_APP_KEY", ""))
        self.kis_app_secret = Secret(env.get("KIS_APP_SECRET", ""))
        numbered = _numbered_kis_keys(env)
        if numbered and (self.kis_app_key or self.kis_app_secret):
            single = "KIS_APP_KEY" if self.kis_app_key else "KIS_APP_SECRET"
            raise ConfigError(
                f"{single} and KIS_APP_KEY_1.. are both set: use either the single key or the numbered keys"
            )
        self.kis_keys_numbered = bool(numbered)
        self.kis_keys: tuple[KisKey, ...] = tuple(numbered) or (
            ((self.kis_app_key, self.kis_app_secret),) if self.has_single_kis_key else ()
        )
        account = env.get("KIS_ACCOUNT", "real").strip().lower() or "real"
        if account not in ("real", "mock"):
            raise ConfigError(f"KIS_ACCOUNT must be 'real' or 'mock', got {account!r}")
        self.kis_account: Literal["real", "mock"] = account  # type: ignore[assignment]
        self.telegram_bot_token = Secret(env.get("TELEGRAM_BOT_TOKEN", ""))
        self.telegram_chat_id = Secret(env.get("TELEGRAM_CHAT_ID", ""))

    @property
    def has_single_kis_key(self) -> bool:
        return bool(self.kis_app_key) and bool(self.kis_app_secret)

    @property
    def has_kis_credentials(self) -> bool:
        return bool(self.kis_keys)

    @property
    def missing_kis(self) -> list[str]:
        """The names of the KIS credential variables that are unset or empty (none with numbered keys)."""
        if self.kis_keys_numbered:
            return []
        return [
            name
            for name, value in (("KIS_APP_KEY", self.kis_app_key), ("KIS_APP_SECRET", self.kis_app_secret))
            if not value
        ]

    def values(self) -> list[str]:
        """Every non-empty secret value, for log masking."""
        numbered = [s for pair in self.kis_keys for s in pair] if self.kis_keys_numbered else []
        out = [
            s.reveal()
            for s in (
                self.kis_app_key,
                self.kis_app_secret,
                *numbered,
                self.telegram_bot_token,
                self.telegram_chat_id,
            )
            if s
        ]
        return [v for v in out if len(v) >= 4]
