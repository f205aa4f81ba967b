"""Configs for tests and benches: runtime and data dirs under a private base directory."""

from __future__ import annotations

from pathlib import Path

import msgspec

from observer.config import Config, decode_config


def make_config(base: Path, toml: str = "", **sections: dict[str, object]) -> Config:
    """A Config whose runtime and data dirs live under `base` (plus TOML overrides)."""
    cfg = decode_config(toml, "<test>")
    paths = msgspec.structs.replace(
        cfg.paths,
        data_dir=str(base / "data"),
        runtime_dir=str(base / "run"),
        universe_dir=str(base / "universe"),
        log_dir=str(base / "logs"),
    )
    cfg = msgspec.structs.replace(cfg, paths=paths)
    for name, values in sections.items():
        cfg = msgspec.structs.replace(cfg, **{name: msgspec.structs.replace(getattr(cfg, name), **values)})
    return cfg


def write_config(base: Path, toml: str = "") -> Path:
    """Write a TOML config for subprocess workers, paths under `base`."""
    text = (
        f'[paths]\ndata_dir = "{base / "data"}"\nruntime_dir = "{base / "run"}"\n'
        f'universe_dir = "{base / "universe"}"\nlog_dir = "{base / "logs"}"\n' + toml
    )
    path = base / "observer.toml"
    path.write_text(text)
    return path
