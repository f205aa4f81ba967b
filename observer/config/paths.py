"""Where things live on disk, derived from the config (``$XDG_RUNTIME_DIR`` for the runtime dir)."""

from __future__ import annotations

import os
from pathlib import Path

from observer.config.tree import Config


def runtime_dir(cfg: Config) -> Path:
    if cfg.paths.runtime_dir:
        return Path(cfg.paths.runtime_dir)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "krx-observer"
    return Path(f"/tmp/krx-observer-{os.getuid()}")


def data_dir(cfg: Config) -> Path:
    return Path(cfg.paths.data_dir)


def log_dir(cfg: Config) -> Path:
    return Path(cfg.paths.log_dir) if cfg.paths.log_dir else data_dir(cfg) / "logs"


def research_dir(cfg: Config) -> Path:
    """Where the research outputs go (``parquet/``, ``reports/``)."""
    return Path(cfg.research.out_dir) if cfg.research.out_dir else data_dir(cfg) / "research"


def state_dir(cfg: Config) -> Path:
    """Small durable state files (token cache, slot state, writer index)."""
    return data_dir(cfg) / "state"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) with mode 0700; tighten it if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
