"""Configs for tests and benches: runtime and data dirs under a private base directory."""

from __future__ import annotations

from pathlib import Path

import msgspec

from observer.config import Config, config_from_dict, decode_config


def make_config(base: Path, toml: str = "", **sections: dict[str, object]) -> Config:
    """A Config whose runtime and data dirs live under `base` (plus TOML overrides)."""
    raw = msgspec.to_builtins(decode_config(toml, "<test>"))
    raw["paths"].update(
        data_dir=str(base / "data"),
        runtime_dir=str(base / "run"),
        universe_dir=str(base / "universe"),
        log_dir=str(base / "logs"),
    )
    for name, values in sections.items():
        raw[name].update(values)
    return config_from_dict(raw, "<test>")  # overrides are validated like a file


def write_config(base: Path, toml: str = "") -> Path:
    """Write a TOML config for subprocess workers, paths under `base`."""
    text = (
        f'[paths]\ndata_dir = "{base / "data"}"\nruntime_dir = "{base / "run"}"\n'
        f'universe_dir = "{base / "universe"}"\nlog_dir = "{base / "logs"}"\n' + toml
    )
    path = base / "observer.toml"
    path.write_text(text)
    return path
