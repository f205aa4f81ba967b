"""Loading the configuration: TOML file -> `Config`, environment overrides, the masked view.

Load order: ``--config PATH`` > ``$OBSERVER_CONFIG`` > ``config/observer.toml``.
``$OBSERVER_DATA_DIR`` overrides ``paths.data_dir``; ``$OBSERVER_RUNTIME_DIR`` overrides ``paths.runtime_dir``.
"""

from __future__ import annotations

import os
import tomllib
from datetime import time
from pathlib import Path
from typing import Any

import msgspec

from observer.config.secrets import Secret, Secrets
from observer.config.tree import Config, ConfigError, _Section

CONFIG_ENV = "OBSERVER_CONFIG"
DATA_DIR_ENV = "OBSERVER_DATA_DIR"
RUNTIME_DIR_ENV = "OBSERVER_RUNTIME_DIR"
DEFAULT_CONFIG_PATH = Path("config/observer.toml")


def resolve_config_path(cli_path: str | os.PathLike[str] | None = None) -> Path:
    if cli_path:
        return Path(cli_path)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH


def decode_config(text: bytes | str, source: str = "<string>") -> Config:
    try:
        raw = tomllib.loads(text.decode() if isinstance(text, bytes) else text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    return config_from_dict(raw, source)


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Config:
    """Validate a config given as plain values (what a TOML file decodes to). Raises ConfigError."""
    try:
        return msgspec.convert(_times_of_day(raw, Config, ""), Config, strict=True)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {_explain(str(e))}") from e


def _times_of_day(raw: Any, cls: type[msgspec.Struct], where: str) -> Any:
    """Times of day (``time`` fields) as written in the file: ``"HH:MM"``, ``"HH:MM:SS"`` or a TOML
    local time, KST implied; anything else is a ConfigError naming the key."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for f in msgspec.structs.fields(cls):
        if f.encode_name not in out:
            continue
        key, value = f"{where}{f.encode_name}", out[f.encode_name]
        if isinstance(f.type, type) and issubclass(f.type, _Section):
            out[f.encode_name] = _times_of_day(value, f.type, f"{key}.")
        elif f.type is time:
            out[f.encode_name] = _parse_time_of_day(key, value)
    return out


def _parse_time_of_day(key: str, value: object) -> time:
    if isinstance(value, time) and value.tzinfo is None:
        return value
    if isinstance(value, str):
        parts = value.strip().split(":")
        if len(parts) in (2, 3) and all(p.isdigit() and len(p) == 2 for p in parts):
            h, m, sec = (int(p) for p in [*parts, "00"][:3])
            if h <= 23 and m <= 59 and sec <= 59:
                return time(h, m, sec)
    raise msgspec.ValidationError(f"Expected a KST time of day `HH:MM[:SS]`, got {value!r} - at `$.{key}`")


def _explain(msg: str) -> str:
    # msgspec says e.g. "Object contains unknown field `foo` - at `$.writer`" or
    # "Expected `int`, got `str` - at `$.writer.flush_interval_ms`"; turn `$.a.b` into `a.b`.
    return msg.replace("`$.", "`").replace("at `$`", "at the top level")


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Decode the config file and apply environment overrides. Raises ConfigError."""
    env = dict(os.environ) if env is None else env
    cfg_path = (
        resolve_config_path(path) if path is not None or CONFIG_ENV not in env else Path(env[CONFIG_ENV])
    )
    if cfg_path.exists():
        try:
            text = cfg_path.read_bytes()
        except OSError as e:
            raise ConfigError(f"{cfg_path}: cannot read: {e.strerror}") from e
        cfg = decode_config(text, str(cfg_path))
    elif path is not None or CONFIG_ENV in env:
        raise ConfigError(f"{cfg_path}: config file not found")
    else:
        cfg = Config()
    paths = cfg.paths
    if env.get(DATA_DIR_ENV):
        paths = msgspec.structs.replace(paths, data_dir=env[DATA_DIR_ENV])
    if env.get(RUNTIME_DIR_ENV):
        paths = msgspec.structs.replace(paths, runtime_dir=env[RUNTIME_DIR_ENV])
    if paths is not cfg.paths:
        cfg = msgspec.structs.replace(cfg, paths=paths)
    return cfg


def effective_config_text(cfg: Config, secrets: Secrets) -> str:
    """The effective config as TOML-ish JSON with every secret masked (for `observer config check`)."""
    doc = msgspec.to_builtins(cfg)
    doc["secrets"] = {
        "KIS_APP_KEY": _mask(secrets.kis_app_key),
        "KIS_APP_SECRET": _mask(secrets.kis_app_secret),
        **{
            f"KIS_APP_{kind}_{n}": _mask(value)
            for n, pair in enumerate(secrets.kis_keys if secrets.kis_keys_numbered else (), start=1)
            for kind, value in zip(("KEY", "SECRET"), pair, strict=True)
        },
        "KIS_ACCOUNT": secrets.kis_account,
        "TELEGRAM_BOT_TOKEN": _mask(secrets.telegram_bot_token),
        "TELEGRAM_CHAT_ID": _mask(secrets.telegram_chat_id),
    }
    doc["sim"]["app_key"] = "***"
    doc["sim"]["app_secret"] = "***"
    return msgspec.json.format(msgspec.json.encode(doc), indent=2).decode()


def _mask(s: Secret) -> str:
    return "***" if s else "<unset>"
