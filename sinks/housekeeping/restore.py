"""Restore a day from its backup package: ``observer backup restore DAY --to DIR [--from PATH]``.

Data flow::

    package (backup/YYYYMMDD/ on the observer host, or <dest>/YYYYMMDD/ on the backup PC)
      -> verify_package: every file's SHA-256 and every archive file inside every tar
      -> each tar member -> DIR/<its archive path> (swing/..., scalp/..., raw/..., system/...,
         metrics/..., universe/YYYYMMDD_{market}.json), hashed again while written, 0600/0700,
         fsynced, temporary name then rename
      -> ``observer verify DIR`` (`sinks.writer.verify`): the restored archive must be sound

Nothing is overwritten: a file that is already there with the same bytes is left alone (a restore
can be repeated), one with different bytes stops the restore before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from observer.atomic import fsync_dir
from sinks.housekeeping.layout import DIR_MODE, FILE_MODE, MANIFEST_NAME
from sinks.housekeeping.manifest import CHUNK_BYTES, Manifest, MemberEntry, hash_file, verify_package


class RestoreError(Exception):
    """The package cannot be restored (damaged, unsafe names, a conflicting file); nothing was written
    unless the message says otherwise."""


@dataclass(slots=True)
class RestoreResult:
    day: str
    source: Path
    target: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes: int = 0


def find_package(source: Path, day_key: str) -> Path:
    """`source` itself when it is a package dir, else ``source/YYYYMMDD``."""
    if (source / MANIFEST_NAME).is_file():
        return source
    candidate = source / day_key
    if (candidate / MANIFEST_NAME).is_file():
        return candidate
    raise RestoreError(f"no package of {day_key} in {source} (no {MANIFEST_NAME})")


def _safe(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts):
        raise RestoreError(f"unsafe archive name {name!r} in the package")
    return path


def _plan(manifest: Manifest, target: Path) -> tuple[dict[str, MemberEntry], list[str], list[str]]:
    """Members by name, those to write, those already there with the same bytes; conflicts raise."""
    members: dict[str, MemberEntry] = {}
    for fam in manifest.families:
        for m in fam.members:
            _safe(m.name)
            members[m.name] = m
    to_write: list[str] = []
    unchanged: list[str] = []
    conflicts: list[str] = []
    for name, m in sorted(members.items()):
        path = target / name
        if not path.exists() and not path.is_symlink():
            to_write.append(name)
        elif path.is_file() and not path.is_symlink() and hash_file(path) == (m.sha256, m.size):
            unchanged.append(name)
        else:
            conflicts.append(name)
    if conflicts:
        raise RestoreError(
            f"{len(conflicts)} file(s) in {target} differ from the package and are not overwritten: "
            + ", ".join(conflicts[:5])
        )
    return members, to_write, unchanged


def _ensure_dirs(target: Path, rel: PurePosixPath) -> Path:
    path = target
    for part in rel.parent.parts:
        path = path / part
        if not path.exists():
            path.mkdir(mode=DIR_MODE)
            os.chmod(path, DIR_MODE)
    return path


def restore_package(package: Path, target: Path) -> RestoreResult:
    """Verify `package` and write its archive files under `target` (see the module docstring)."""
    report = verify_package(package)
    if not report.ok or report.manifest is None:
        raise RestoreError(
            f"package {package} failed verification, nothing restored: " + "; ".join(report.problems[:10])
        )
    manifest = report.manifest
    target.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    members, to_write, unchanged = _plan(manifest, target)
    result = RestoreResult(manifest.day, package, target, unchanged=unchanged)
    wanted = set(to_write)
    for fam in manifest.families:
        if fam.archive is None:
            continue
        with tarfile.open(package / fam.archive, "r:gz") as tar:
            for info in tar:
                if info.name not in wanted or not info.isreg():
                    continue
                src = tar.extractfile(info)
                assert src is not None  # a regular member
                result.bytes += _write_member(src, target, info.name, members[info.name])
                result.written.append(info.name)
    missing = wanted - set(result.written)
    if missing:
        raise RestoreError(f"{len(missing)} file(s) listed but not in the tars: {sorted(missing)[:5]}")
    return result


def _write_member(src: object, target: Path, name: str, entry: MemberEntry) -> int:
    rel = _safe(name)
    parent = _ensure_dirs(target, rel)
    final = parent / rel.name
    tmp = parent / f".{rel.name}.restore-{os.getpid()}"
    h = hashlib.sha256()
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK_BYTES):  # type: ignore[attr-defined]
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if (h.hexdigest(), size) != (entry.sha256, entry.size):
            raise RestoreError(f"{name}: restored bytes differ from the manifest")
        os.rename(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(parent)
    return size
