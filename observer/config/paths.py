"""Where things live on disk, derived from the config (``$XDG_RUNTIME_DIR`` for the runtime dir).

`require_durable_data_dir`: under the real clock the archive may not live in memory (tmpfs/ramfs).
"""

from __future__ import annotations

import os
from pathlib import Path

from observer.config.tree import Config, ConfigError

VOLATILE_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


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


class VolatileDataDir(ConfigError):
    """The archive would live in memory and vanish at the next reboot."""


def filesystem_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """The type of the filesystem `path` (or its nearest existing ancestor) is on; None if unknown."""
    target = path.absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    target = target.resolve()
    best, fstype = -1, None
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount = Path(fields[4].replace("\\040", " "))
        if (target == mount or mount in target.parents) and len(mount.parts) >= best:
            best, fstype = len(mount.parts), right.split()[0]
    return fstype


def require_durable_data_dir(cfg: Config) -> None:
    """Refuse, under the real clock, a data dir on tmpfs/ramfs (``[paths] allow_volatile_data_dir``
    overrides it, for tests). Raises `VolatileDataDir`."""
    if cfg.clock.mode != "real" or cfg.paths.allow_volatile_data_dir:
        return
    fstype = filesystem_type(data_dir(cfg))
    if fstype in VOLATILE_FILESYSTEMS:
        raise VolatileDataDir(
            f"data dir {data_dir(cfg).absolute()} is on {fstype} (memory): the archive would vanish at the "
            "next reboot; move it ([paths] data_dir or $OBSERVER_DATA_DIR) to a disk "
            "([paths] allow_volatile_data_dir = true accepts it, for tests only)"
        )
