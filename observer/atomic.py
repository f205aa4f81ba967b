"""Atomic private file writes, the one way every process replaces a small state file.

`write_atomic` writes the bytes under a temporary name in the target's directory (0600 unless told),
optionally fsyncs them, then renames over the target (or, `exclusive`, links it so an existing file
is never rewritten), optionally fsyncing the directory. A reader sees the old file or the new one,
never a torn one; a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int = FILE_MODE,
    fsync: bool = True,
    sync_dir: bool = False,
    exclusive: bool = False,
) -> bool:
    """Replace `path` with `data` atomically; False only when `exclusive` and `path` already exists.

    The parent directory is created 0700 if missing (an existing one is left as it is). Raises
    OSError (the temporary file is gone)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)
    return True
